//! Port of paho.mqtt.python examples/subscribe_simple.py: receives a few messages with the `subscribe::simple` helper and prints them.
//!
//! Run: `cargo run --example subscribe_simple -- [--host localhost] [--port 1883] [--count 2]`
//!
//! Subscribes to `#`, skips retained messages, returns after `--count` (Python's
//! `msg_count`, 2) messages and prints each topic and payload.

#[path = "common/mod.rs"]
mod common;

use common::{py_bytes, Args};
use mqtt_sync::subscribe;
use mqtt_sync::QoS;

fn main() -> mqtt_sync::Result<()> {
    let args = Args::parse(&["--host", "--port", "--count"]);
    let topics = ["#"];

    let m = subscribe::simple(
        &topics,
        QoS::AtMostOnce,
        args.get(&["--count"], 2),
        false,
        &subscribe::Options {
            hostname: args.host(),
            port: args.port(),
            ..Default::default()
        },
    )?;
    for a in m {
        println!("{}", a.topic());
        println!("{}", py_bytes(a.payload()));
    }
    Ok(())
}
