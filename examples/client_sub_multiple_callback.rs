//! Port of paho.mqtt.python examples/client_sub-multiple-callback.py: a subscriber with per-subscription message callbacks (`message_callback_add`).
//!
//! Run: `cargo run --example client_sub_multiple_callback -- [--host localhost] [--port 1883] [--count N]`
//!
//! Messages under `$SYS/broker/messages/#` and `$SYS/broker/bytes/#` go to their own
//! callbacks, everything else under `$SYS/#` to `on_message`. `--count N` disconnects after
//! N messages in total (the original runs until interrupted). The broker must publish `$SYS`
//! topics (mosquitto: `sys_interval` > 0).

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{py_bytes, Args};
use mqtt_sync as mqtt;

fn on_message_msgs(_mosq: &mqtt::Client, msg: &mqtt::Message) {
    // This callback will only be called for messages with topics that match
    // $SYS/broker/messages/#
    println!(
        "MESSAGES: {} {} {}",
        msg.topic(),
        msg.qos() as u8,
        py_bytes(msg.payload())
    );
}

fn on_message_bytes(_mosq: &mqtt::Client, msg: &mqtt::Message) {
    // This callback will only be called for messages with topics that match
    // $SYS/broker/bytes/#
    println!(
        "BYTES: {} {} {}",
        msg.topic(),
        msg.qos() as u8,
        py_bytes(msg.payload())
    );
}

fn on_message(_mosq: &mqtt::Client, msg: &mqtt::Message) {
    // This callback will be called for messages that we receive that do not
    // match any patterns defined in topic specific callbacks, i.e. in this case
    // those messages that do not have topics $SYS/broker/messages/# nor
    // $SYS/broker/bytes/#
    println!(
        "{} {} {}",
        msg.topic(),
        msg.qos() as u8,
        py_bytes(msg.payload())
    );
}

/// Not in the original: wraps a callback so that the client disconnects after `count` messages.
fn counted(
    received: &Arc<AtomicUsize>,
    count: Option<usize>,
    f: fn(&mqtt::Client, &mqtt::Message),
) -> impl FnMut(&mqtt::Client, &mqtt::Message) + Send + 'static {
    let received = received.clone();
    move |mosq, msg| {
        f(mosq, msg);
        if Some(received.fetch_add(1, Ordering::SeqCst) + 1) == count {
            let _ = mosq.disconnect();
        }
    }
}

fn main() -> mqtt::Result<()> {
    let args = Args::parse(&["--host", "--port", "--count"]);
    let count: Option<usize> = args.opt(&["--count"]);
    let received = Arc::new(AtomicUsize::new(0));

    let mqttc = mqtt::Client::new("");

    // Add message callbacks that will only trigger on a specific subscription match.
    mqttc.message_callback_add(
        "$SYS/broker/messages/#",
        counted(&received, count, on_message_msgs),
    )?;
    mqttc.message_callback_add(
        "$SYS/broker/bytes/#",
        counted(&received, count, on_message_bytes),
    )?;
    mqttc.on_message(counted(&received, count, on_message));
    mqttc.connect(&args.host(), args.port(), 60)?;
    mqttc.subscribe("$SYS/#", mqtt::QoS::AtMostOnce)?;

    mqttc.loop_forever()
}
