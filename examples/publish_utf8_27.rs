//! Port of paho.mqtt.python examples/publish_utf8-27.py: publishes a message with a non-ASCII (UTF-8) topic and payload with `publish::single` (the Python 2.7 variant).
//!
//! Run: `cargo run --example publish_utf8_27 -- [--host localhost] [--port 1883]`
//!
//! Python 2.7 needed `u"..."` literals; Rust strings are always UTF-8, so this port differs
//! from `publish_utf8_3` only by its payload: topic `paho/test/single/ô`, payload `bôô`.

#[path = "common/mod.rs"]
mod common;

use common::Args;
use mqtt_sync::publish;
use mqtt_sync::QoS;

fn main() -> mqtt_sync::Result<()> {
    let args = Args::parse(&["--host", "--port"]);
    let topic = "paho/test/single/ô";
    let payload = "bôô";
    publish::single(
        topic,
        payload,
        QoS::AtMostOnce,
        false,
        &publish::Options {
            hostname: args.host(),
            port: args.port(),
            ..Default::default()
        },
    )
}
