//! Port of paho.mqtt.python examples/client_sub.py: a simple subscriber that prints every message it receives.
//!
//! Run: `cargo run --example client_sub -- [--host localhost] [--port 1883] [--topic '$SYS/#'] [--qos 0] [--count N] [--debug]`
//!
//! `--count N` disconnects after N messages (the Python original runs until interrupted),
//! so `loop_forever()` returns and the program ends.

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{py_bytes, rc_list, Args};
use mqtt_sync as mqtt;

fn on_connect(
    _mqttc: &mqtt::Client,
    _flags: mqtt::ConnectFlags,
    reason_code: mqtt::ReasonCode,
    _properties: &mqtt::Properties,
) {
    println!("reason_code: {reason_code}");
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
    let args = Args::parse(&["--host", "--port", "--topic", "--qos", "--count"]);
    let topic = args.value(&["--topic"]).unwrap_or_else(|| "$SYS/#".into());
    let qos = mqtt::QoS::try_from(args.get(&["--qos"], 0u8))
        .map_err(|_| mqtt::Error::InvalidArgument("qos".into()))?;
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
    mqttc.connect(&args.host(), args.port(), 60)?;
    mqttc.subscribe(&topic, qos)?;

    mqttc.loop_forever()
}
