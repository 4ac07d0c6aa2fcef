//! Port of paho.mqtt.python examples/client_sub-ws.py: a subscriber connected over WebSockets (`Transport::WebSockets`).
//!
//! Run: `cargo run --features websockets --example client_sub_ws -- [--host localhost] [--port 8080] [--path /mqtt] [--topic '$SYS/broker/version'] [--count N] [--quiet]`
//!
//! `--port` is the broker's WebSockets listener (mosquitto: `listener 8080` + `protocol
//! websockets`; the original uses mqtt.eclipseprojects.io port 80); `--path` is passed to `ws_set_options` (default `/mqtt`). As in the original,
//! debug logging (`on_log`) is on; `--quiet` turns it off. `--count N` disconnects after N
//! messages (the original runs until interrupted). Needs the `websockets` feature (without
//! it connecting returns `Error::NotSupported`).

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
    let args = Args::parse(&["--host", "--port", "--path", "--topic", "--count"]);
    let host = args.host();
    let port: u16 = args.get(&["--port"], 8080);
    let topic = args
        .value(&["--topic"])
        .unwrap_or_else(|| "$SYS/broker/version".into());
    let count: Option<usize> = args.opt(&["--count"]);
    let received = Arc::new(AtomicUsize::new(0));

    // If you want to use a specific client id, use
    // .client_id("client-id")
    // but note that the client id must be unique on the broker. Leaving the client
    // id parameter empty will generate a random id for you.
    let mqttc = mqtt::Client::builder()
        .transport(mqtt::Transport::WebSockets)
        .build()?;
    if let Some(path) = args.value(&["--path"]) {
        mqttc.ws_set_options(&path, &[])?;
    }
    mqttc.on_message(move |mqttc, msg| {
        on_message(mqttc, msg);
        // Not in the original: stop after --count messages.
        if Some(received.fetch_add(1, Ordering::SeqCst) + 1) == count {
            let _ = mqttc.disconnect();
        }
    });
    mqttc.on_connect(on_connect);
    mqttc.on_subscribe(on_subscribe);
    // Uncomment to enable debug messages (on in the original; --quiet turns it off)
    if !args.flag(&["--quiet"]) {
        mqttc.on_log(on_log);
    }
    mqttc.connect(&host, port, 60)?;
    mqttc.subscribe(&topic, mqtt::QoS::AtMostOnce)?;

    mqttc.loop_forever()
}
