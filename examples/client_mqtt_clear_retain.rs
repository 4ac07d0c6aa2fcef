//! Port of paho.mqtt.python examples/client_mqtt_clear_retain.py: a client that clears every retained message it receives on a topic.
//!
//! Run: `cargo run --example client_mqtt_clear_retain -- [-d] [-h|--host hostname] [-i|--id clientid] [-k|--keepalive 60]
//!       [-p|--port 1883] [-u|--username username [-P|--password password]] [-v|--verbose] [--timeout SECS] -t|--topic topic`
//!
//! For every retained message on `topic` (wildcards allowed) it publishes an empty retained
//! message (QoS 1), which deletes it, and exits when the last of those is acknowledged. The
//! options are the original's getopt ones (`-h` is the host, as there). `--timeout SECS`
//! (not in the original, which waits forever when nothing is retained) exits after that
//! long. Python's globals and `userdata` (`verbose`) are captured state.

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Args;
use mqtt_sync as mqtt;

fn on_connect(
    _mqttc: &mqtt::Client,
    userdata: bool,
    _flags: mqtt::ConnectFlags,
    rc: mqtt::ReasonCode,
    _properties: &mqtt::Properties,
) {
    if userdata {
        println!("rc: {rc}");
    }
}

fn on_message(mqttc: &mqtt::Client, userdata: bool, final_mid: &AtomicU16, msg: &mqtt::Message) {
    if !msg.retain() {
        // sys.exit()
    } else {
        if userdata {
            println!("Clearing topic {}", msg.topic());
        }
        match mqttc.publish(msg.topic(), b"", mqtt::QoS::AtLeastOnce, true) {
            Ok(info) => final_mid.store(info.mid(), Ordering::SeqCst),
            Err(e) => println!("publish failed: {e}"),
        }
    }
}

fn on_publish(
    _mqttc: &mqtt::Client,
    final_mid: &AtomicU16,
    mid: u16,
    _rc: mqtt::ReasonCode,
    _properties: &mqtt::Properties,
) {
    if mid == final_mid.load(Ordering::SeqCst) {
        std::process::exit(0);
    }
}

fn on_log(_mqttc: &mqtt::Client, _level: mqtt::LogLevel, string: &str) {
    println!("{string}");
}

fn print_usage() {
    println!(
        "mqtt_clear_retain [-d] [-h hostname] [-i clientid] [-k keepalive] [-p port] [-u username [-P password]] [-v] [--timeout secs] -t topic"
    );
}

fn main() -> mqtt::Result<()> {
    let args = Args::parse(&[
        "-h",
        "--host",
        "-i",
        "--id",
        "-k",
        "--keepalive",
        "-p",
        "--port",
        "-P",
        "--password",
        "-t",
        "--topic",
        "-u",
        "--username",
        "--timeout",
    ]);
    let debug = args.flag(&["-d", "--debug"]);
    let host = args
        .value(&["-h", "--host"])
        .unwrap_or_else(|| "localhost".into());
    let client_id = args.value(&["-i", "--id"]).unwrap_or_default();
    let keepalive: u16 = args.get(&["-k", "--keepalive"], 60);
    let port: u16 = args.get(&["-p", "--port"], 1883);
    let password = args.value(&["-P", "--password"]);
    let topic = args.value(&["-t", "--topic"]);
    let username = args.value(&["-u", "--username"]);
    let verbose = args.flag(&["-v", "--verbose"]);
    let timeout: Option<f64> = args.opt(&["--timeout"]);

    let Some(topic) = topic else {
        println!("You must provide a topic to clear.\n");
        print_usage();
        std::process::exit(2);
    };
    println!("{topic}");

    let final_mid = Arc::new(AtomicU16::new(0));
    let mqttc = mqtt::Client::new(client_id);
    let userdata = verbose; // mqttc._userdata = verbose
    let fm = final_mid.clone();
    mqttc.on_message(move |c, msg| on_message(c, userdata, &fm, msg));
    let fm = final_mid;
    mqttc.on_publish(move |c, mid, rc, props| on_publish(c, &fm, mid, rc, props));
    mqttc.on_connect(move |c, flags, rc, props| on_connect(c, userdata, flags, rc, props));
    if debug {
        mqttc.on_log(on_log);
    }

    if let Some(username) = username {
        mqttc.username_pw_set(&username, password.as_deref())?;
    }
    mqttc.connect(&host, port, keepalive)?;
    mqttc.subscribe(&topic, mqtt::QoS::AtMostOnce)?;

    if let Some(secs) = timeout {
        // Not in the original: give up when nothing (more) is retained.
        let weak = mqttc.downgrade();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs));
            if let Some(c) = weak.upgrade() {
                if verbose {
                    println!("Nothing (more) to clear after {secs} s");
                }
                let _ = c.disconnect();
            }
        });
    }
    mqttc.loop_forever()
}
