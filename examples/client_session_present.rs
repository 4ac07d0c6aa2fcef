//! Port of paho.mqtt.python examples/client_session_present.py: demonstrates the session present flag when connecting.
//!
//! Run: `cargo run --example client_session_present -- [--host localhost] [--port 1883] [--id asdfj] [--debug]`
//!
//! Connects three times with client id `asdfj` (`--id` changes it): with clean session off
//! (session not present), again (session present, as the broker kept it), then with clean
//! session on (not present). Each connection is ended in `on_connect`; `on_disconnect`
//! reconnects once. It finishes by itself. Python's `userdata` counter is an `AtomicUsize`
//! captured by the callbacks (`user_data_set(obj + 1)` is a `fetch_add`).

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::Args;
use mqtt_sync as mqtt;

fn on_connect(
    mqttc: &mqtt::Client,
    obj: &AtomicUsize,
    flags: mqtt::ConnectFlags,
    reason_code: mqtt::ReasonCode,
    _properties: &mqtt::Properties,
) {
    match obj.load(Ordering::SeqCst) {
        0 => println!("First connection:"),
        1 => println!("Second connection:"),
        2 => println!("Third connection (with clean session=True):"),
        _ => {}
    }
    println!("    Session present: {}", flags.session_present);
    println!("    Connection result: {reason_code}");
    let _ = mqttc.disconnect();
}

fn on_disconnect(
    mqttc: &mqtt::Client,
    obj: &AtomicUsize,
    _flags: mqtt::DisconnectFlags,
    _reason_code: mqtt::ReasonCode,
    _properties: &mqtt::Properties,
) {
    // mqttc.user_data_set(obj + 1)
    let obj = obj.fetch_add(1, Ordering::SeqCst);
    if obj == 0 {
        if let Err(e) = mqttc.reconnect() {
            println!("reconnect failed: {e}");
        }
    }
}

fn on_log(_mqttc: &mqtt::Client, _level: mqtt::LogLevel, string: &str) {
    println!("{string}");
}

fn main() -> mqtt::Result<()> {
    let args = Args::parse(&["--host", "--port", "--id"]);
    let (host, port) = (args.host(), args.port());
    let client_id = args.value(&["--id"]).unwrap_or_else(|| "asdfj".into());

    let mqttc = mqtt::Client::builder()
        .client_id(client_id.clone())
        .clean_session(false)
        .build()?;
    let userdata = Arc::new(AtomicUsize::new(0)); // mqttc.user_data_set(0)
    let obj = userdata.clone();
    mqttc.on_connect(move |c, flags, rc, props| on_connect(c, &obj, flags, rc, props));
    let obj = userdata.clone();
    mqttc.on_disconnect(move |c, flags, rc, props| on_disconnect(c, &obj, flags, rc, props));
    // Uncomment to enable debug messages (or pass --debug)
    if args.flag(&["--debug"]) {
        mqttc.on_log(on_log);
    }
    mqttc.connect(&host, port, 60)?;

    mqttc.loop_forever()?;

    // Clear session
    let mqttc = mqtt::Client::builder()
        .client_id(client_id)
        .clean_session(true)
        .build()?;
    let userdata = Arc::new(AtomicUsize::new(2)); // mqttc.user_data_set(2)
    let obj = userdata.clone();
    mqttc.on_connect(move |c, flags, rc, props| on_connect(c, &obj, flags, rc, props));
    mqttc.connect(&host, port, 60)?;
    mqttc.loop_forever()
}
