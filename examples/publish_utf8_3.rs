//! Port of paho.mqtt.python examples/publish_utf8-3.py: publishes a message with a non-ASCII (UTF-8) topic and payload with `publish::single`.
//!
//! Run: `cargo run --example publish_utf8_3 -- [--host localhost] [--port 1883]`
//!
//! Rust strings are UTF-8, so nothing needs encoding: topic `paho/test/single/ô`.

#[path = "common/mod.rs"]
mod common;

use common::Args;
use mqtt_sync::publish;
use mqtt_sync::QoS;

fn main() -> mqtt_sync::Result<()> {
    let args = Args::parse(&["--host", "--port"]);
    let topic = "paho/test/single/ô";
    let payload = "German umlauts like \"ä\" ü\"ö\" are not supported";
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
