//! Port of paho.mqtt.python examples/client_sub-srv.py: a subscriber that finds its broker with a DNS SRV look-up (`connect_srv`).
//!
//! Run: `cargo run --features srv --example client_sub_srv -- [--domain eclipseprojects.io] [--nameserver 127.0.0.1:53] [--count N] [--debug]`
//!
//! `connect_srv` looks up `_mqtt._tcp.<domain>` (honouring priority and weight) and connects
//! to the first target that answers. `--nameserver ip:port` asks that DNS server instead of
//! the system's. `--count N` disconnects after N messages, which makes `loop_once()` fail and
//! the loop end, as in the Python original when `loop()` returns non-zero. Needs the `srv`
//! feature (without it `connect_srv` returns `Error::NotSupported`).

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{py_bytes, rc_list, Args};
use mqtt_sync as mqtt;

fn on_connect(
    mqttc: &mqtt::Client,
    _flags: mqtt::ConnectFlags,
    _reason_code: mqtt::ReasonCode,
    _properties: &mqtt::Properties,
) {
    println!("Connected to {}:{}", mqttc.host(), mqttc.port());
}

fn on_message(_mqttc: &mqtt::Client, msg: &mqtt::Message) {
    println!(
        "{} {} {}",
        msg.topic(),
        msg.qos() as u8,
        py_bytes(msg.payload())
    );
}

fn on_subscribe(
    _mqttc: &mqtt::Client,
    mid: u16,
    reason_code_list: &[mqtt::ReasonCode],
    _properties: &mqtt::Properties,
) {
    println!("Subscribed: {mid} {}", rc_list(reason_code_list));
}

fn on_log(_mqttc: &mqtt::Client, _level: mqtt::LogLevel, string: &str) {
    println!("{string}");
}

fn main() -> mqtt::Result<()> {
    let args = Args::parse(&["--domain", "--nameserver", "--count"]);
    let domain = args
        .value(&["--domain"])
        .unwrap_or_else(|| "eclipseprojects.io".into());
    let nameserver: Option<std::net::SocketAddr> = args.opt(&["--nameserver"]);
    let count: Option<usize> = args.opt(&["--count"]);
    let received = Arc::new(AtomicUsize::new(0));

    // If you want to use a specific client id, use
    // let mqttc = mqtt::Client::new("client-id");
    // but note that the client id must be unique on the broker. Leaving the client
    // id parameter empty will generate a random id for you.
    let mqttc = mqtt::Client::new("");
    mqttc.on_message(move |mqttc, msg| {
        on_message(mqttc, msg);
        // Not in the original: stop after --count messages.
        if Some(received.fetch_add(1, Ordering::SeqCst) + 1) == count {
            let _ = mqttc.disconnect();
        }
    });
    mqttc.on_connect(on_connect);
    mqttc.on_subscribe(on_subscribe);
    // Uncomment to enable debug messages (or pass --debug)
    if args.flag(&["--debug"]) {
        mqttc.on_log(on_log);
    }
    mqttc.srv_nameserver_set(nameserver)?;
    mqttc.connect_srv(&domain, 60)?;
    mqttc.subscribe("$SYS/broker/version", mqtt::QoS::AtMostOnce)?;

    let mut rc = 0;
    while rc == 0 {
        rc = match mqttc.loop_once(Duration::from_secs(1)) {
            Ok(()) => 0,
            Err(e) => e.code(),
        };
    }

    println!("rc: {rc}");
    Ok(())
}
