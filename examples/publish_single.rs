//! Port of paho.mqtt.python examples/publish_single.py: publishes one message with the `publish::single` helper.
//!
//! Run: `cargo run --example publish_single -- [--host localhost] [--port 1883]`
//!
//! Publishes "boo" on `paho/test/single` and exits (the original uses mqtt.eclipseprojects.io).

#[path = "common/mod.rs"]
mod common;

use common::Args;
use mqtt_sync::publish;
use mqtt_sync::QoS;

fn main() -> mqtt_sync::Result<()> {
    let args = Args::parse(&["--host", "--port"]);
    publish::single(
        "paho/test/single",
        "boo",
        QoS::AtMostOnce,
        false,
        &publish::Options {
            hostname: args.host(),
            port: args.port(),
            ..Default::default()
        },
    )
}
