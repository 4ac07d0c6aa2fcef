//! Port of paho.mqtt.python examples/client_pub-wait.py: publishing with `loop_start()` and waiting for a message to be published (`wait_for_publish`).
//!
//! Run: `cargo run --example client_pub_wait -- [--host localhost] [--port 1883] [--debug]`
//!
//! Publishes "bar" on `tuple` and on `class` with QoS 2, waits until the second one is
//! published and exits (it finishes by itself, as the original).

#[path = "common/mod.rs"]
mod common;

use common::{py_bytes, Args};
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

fn on_publish(
    _mqttc: &mqtt::Client,
    mid: u16,
    _reason_code: mqtt::ReasonCode,
    _properties: &mqtt::Properties,
) {
    println!("mid: {mid}");
}

fn on_log(_mqttc: &mqtt::Client, _level: mqtt::LogLevel, string: &str) {
    println!("{string}");
}

fn main() -> mqtt::Result<()> {
    let args = Args::parse(&["--host", "--port"]);

    // If you want to use a specific client id, use
    // let mqttc = mqtt::Client::new("client-id");
    // but note that the client id must be unique on the broker. Leaving the client
    // id parameter empty will generate a random id for you.
    let mqttc = mqtt::Client::new("");
    mqttc.on_message(on_message);
    mqttc.on_connect(on_connect);
    mqttc.on_publish(on_publish);
    // Uncomment to enable debug messages (or pass --debug)
    if args.flag(&["--debug"]) {
        mqttc.on_log(on_log);
    }
    mqttc.connect(&args.host(), args.port(), 60)?;

    mqttc.loop_start()?;

    // Python's `(rc, mid) = mqttc.publish(...)` tuple form: in Rust, the result and the mid.
    println!("tuple");
    let mid = mqttc
        .publish("tuple", "bar", mqtt::QoS::ExactlyOnce, false)?
        .mid();
    let _ = mid;
    println!("class");
    let infot = mqttc.publish("class", "bar", mqtt::QoS::ExactlyOnce, false)?;

    infot.wait_for_publish(None)
}
