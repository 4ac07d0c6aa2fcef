//! Port of paho.mqtt.python examples/publish_multiple.py: publishes several messages in one connection with the `publish::multiple` helper.
//!
//! Run: `cargo run --example publish_multiple -- [--host localhost] [--port 1883]`
//!
//! Publishes "multiple 1" and "multiple 2" on `paho/test/multiple` and exits. Python accepts
//! a dict or a tuple per message; here both are a `publish::Msg` (`Msg::new` gives QoS 0,
//! not retained, like the dict form's defaults).

#[path = "common/mod.rs"]
mod common;

use common::Args;
use mqtt_sync::publish;
use mqtt_sync::QoS;

fn main() -> mqtt_sync::Result<()> {
    let args = Args::parse(&["--host", "--port"]);
    let msgs = [
        publish::Msg::new("paho/test/multiple", "multiple 1"),
        publish::Msg {
            topic: "paho/test/multiple".into(),
            payload: b"multiple 2".to_vec(),
            qos: QoS::AtMostOnce,
            retain: false,
        },
    ];
    publish::multiple(
        &msgs,
        &publish::Options {
            hostname: args.host(),
            port: args.port(),
            ..Default::default()
        },
    )
}
