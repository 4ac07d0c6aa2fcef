//! Port of paho.mqtt.python examples/subscribe_callback.py: prints every message with the `subscribe::callback` helper.
//!
//! Run: `cargo run --example subscribe_callback -- [--host localhost] [--port 1883] [--count N]`
//!
//! Subscribes to `#` and prints `topic : payload`. `--count N` (not in the original, which
//! runs until interrupted) disconnects after N messages, which ends `subscribe::callback`.

#[path = "common/mod.rs"]
mod common;

use common::{py_bytes, Args};
use mqtt_sync::{subscribe, Client, Message, QoS};

fn print_msg(_client: &Client, message: &Message) {
    println!("{} : {}", message.topic(), py_bytes(message.payload()));
}

fn main() -> mqtt_sync::Result<()> {
    let args = Args::parse(&["--host", "--port", "--count"]);
    let count: Option<usize> = args.opt(&["--count"]);
    let mut received = 0;

    subscribe::callback(
        move |client, message| {
            print_msg(client, message);
            // Not in the original: stop after --count messages.
            received += 1;
            if Some(received) == count {
                let _ = client.disconnect();
            }
        },
        &["#"],
        QoS::AtMostOnce,
        &subscribe::Options {
            hostname: args.host(),
            port: args.port(),
            ..Default::default()
        },
    )
}
