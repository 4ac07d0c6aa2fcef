//! Port of paho.mqtt.python examples/client_pub_opts.py: a publisher whose user name, password, TLS and session options come from the command line.
//!
//! Run: `cargo run --example client_pub_opts -- [-H|--host localhost] [-P|--port 1883|8883] [-t|--topic paho/test/opts] [-q|--qos 0]
//!       [-c|--clientid ID] [-u|--username U] [-p|--password P] [-d|--disable-clean-session] [-N|--nummsgs 1] [-S|--delay 1]
//!       [-k|--keepalive 60] [-s|--use-tls] [--insecure] [-F|--cacerts ca.crt] [--tls-version tlsv1.2] [-D|--debug]`
//!
//! The options are the Python ones (note `-P` is the port and `-p` the password, as there).
//! It publishes `--nummsgs` messages `{"msgnum": "<n>"}`, waiting for each one to be
//! published and then `--delay` seconds, and disconnects. The original's default host is
//! mqtt.eclipseprojects.io; here it is localhost. TLS needs the `tls` feature (without it
//! connecting returns `Error::NotSupported`).
//!
//! The option handling, which both `*_opts.py` originals repeat word for word, is shared here
//! in `common::OptsClient` (same options, defaults and order of set-up).

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::{py_bytes, OptsClient};
use mqtt_sync as mqtt;

fn on_connect(
    _mqttc: &mqtt::Client,
    _flags: mqtt::ConnectFlags,
    reason_code: mqtt::ReasonCode,
    _properties: &mqtt::Properties,
) {
    println!("connect reason_code: {reason_code}");
}

fn on_message(_mqttc: &mqtt::Client, msg: &mqtt::Message) {
    println!(
        "{} {} {}",
        msg.topic(),
        msg.qos() as u8,
        py_bytes(msg.payload())
    );
}

fn on_publish(
    _mqttc: &mqtt::Client,
    mid: u16,
    _reason_code: mqtt::ReasonCode,
    _properties: &mqtt::Properties,
) {
    println!("mid: {mid}");
}

fn on_log(_mqttc: &mqtt::Client, _level: mqtt::LogLevel, string: &str) {
    println!("{string}");
}

fn main() -> mqtt::Result<()> {
    let OptsClient {
        args,
        mqttc,
        host,
        port,
        topic,
        qos,
        keepalive,
    } = OptsClient::from_command_line(&["-N", "--nummsgs", "-S", "--delay"], "paho/test/opts")?;
    let nummsgs: u32 = args.get(&["-N", "--nummsgs"], 1);
    let delay: f64 = args.get(&["-S", "--delay"], 1.0);

    mqttc.on_message(on_message);
    mqttc.on_connect(on_connect);
    mqttc.on_publish(on_publish);

    if args.flag(&["-D", "--debug"]) {
        mqttc.on_log(on_log);
    }

    println!("Connecting to {host} port: {port}");
    mqttc.connect(&host, port, keepalive)?;

    mqttc.loop_start()?;

    for x in 0..nummsgs {
        let msg_txt = format!("{{\"msgnum\": \"{x}\"}}");
        println!("Publishing: {msg_txt}");
        let infot = mqttc.publish(&topic, &msg_txt, qos, false)?;
        infot.wait_for_publish(None)?;

        std::thread::sleep(Duration::from_secs_f64(delay));
    }

    mqttc.disconnect()?;
    // Not in the original (Python's loop thread is a daemon that dies with the program):
    // let the network thread send the DISCONNECT and end.
    mqttc.loop_stop()
}
