//! MQTT over WebSockets (`Transport::WebSockets`), plain `ws://` or `wss://` with `--tls`,
//! with a custom upgrade path. The client subscribes to a topic of its own, publishes one
//! message to it, prints the message when the broker delivers it back, and exits.
//!
//! Run: `cargo run --example websockets -- [--host localhost] [--port 8080] [--path /mqtt]
//! [--tls [--cafile ca.pem]]`
//!
//! `--port` is the broker's WebSockets listener (mosquitto: `listener 8080` +
//! `protocol websockets`; add `cafile`/`certfile`/`keyfile` for wss). `--path` is the HTTP
//! path of the upgrade request (default `/mqtt`); `ws_set_options` may add headers too.
//! `--tls` turns on TLS (wss://) trusting `--cafile`, or the system store without it.
//! Needs the `websockets` feature, and `tls` for `--tls` (both on by default).

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;

use common::{py_bytes, Args};
use mqtt_sync as mqtt;

fn main() -> mqtt::Result<()> {
    let args = Args::parse(&["--host", "--port", "--path", "--cafile"]);
    let host = args.host();
    let port: u16 = args.get(&["--port"], 8080);
    let path = args.value(&["--path"]).unwrap_or_else(|| "/mqtt".into());
    let cafile: Option<PathBuf> = args.opt(&["--cafile"]);
    let tls = args.flag(&["--tls"]);
    let topic = format!("mqtt-sync/examples/websockets/{}", std::process::id());

    let mqttc = mqtt::Client::builder()
        .transport(mqtt::Transport::WebSockets)
        .build()?;
    // The path of the upgrade request and any extra headers (e.g. for an authenticating
    // reverse proxy in front of the broker).
    mqttc.ws_set_options(&path, &[("User-Agent", "mqtt-sync websockets example")])?;
    if tls {
        mqttc.tls_set(cafile.as_deref(), None, None)?;
    }

    let sub_topic = topic.clone();
    mqttc.on_connect(move |mqttc, _flags, reason_code, _props| {
        println!(
            "connected over {}: {reason_code}",
            if tls { "wss" } else { "ws" }
        );
        if reason_code.is_failure() {
            let _ = mqttc.disconnect();
            return;
        }
        if let Err(e) = mqttc.subscribe(&sub_topic, mqtt::QoS::ExactlyOnce) {
            eprintln!("subscribe failed: {e}");
            let _ = mqttc.disconnect();
        }
    });
    let pub_topic = topic.clone();
    mqttc.on_subscribe(move |mqttc, _mid, reason_codes, _props| {
        println!("subscribed to {pub_topic}: {reason_codes:?}");
        if let Err(e) = mqttc.publish(
            &pub_topic,
            "hello over WebSockets",
            mqtt::QoS::ExactlyOnce,
            false,
        ) {
            eprintln!("publish failed: {e}");
            let _ = mqttc.disconnect();
        }
    });
    mqttc.on_message(|mqttc, msg| {
        println!(
            "{} {} {}",
            msg.topic(),
            msg.qos() as u8,
            py_bytes(msg.payload())
        );
        let _ = mqttc.disconnect();
    });

    // A refused upgrade (wrong path, no "mqtt" subprotocol) comes back as Error::WebSocket.
    if let Err(e) = mqttc.connect(&host, port, 60) {
        eprintln!("cannot connect to {host}:{port}{path}: {e}");
        return Err(e);
    }
    mqttc.loop_forever()
}
