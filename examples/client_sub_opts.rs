//! Port of paho.mqtt.python examples/client_sub_opts.py: a subscriber whose user name, password, TLS and session options come from the command line.
//!
//! Run: `cargo run --example client_sub_opts -- [-H|--host localhost] [-P|--port 1883|8883] [-t|--topic '$SYS/#'] [-q|--qos 0]
//!       [-c|--clientid ID] [-u|--username U] [-p|--password P] [-d|--disable-clean-session] [-k|--keepalive 60]
//!       [-s|--use-tls] [--insecure] [-F|--cacerts ca.crt] [--tls-version tlsv1.2] [-D|--debug] [-C|--count N]`
//!
//! The options are the Python ones (note `-P` is the port and `-p` the password, as there).
//! `-C/--count N` (not in the original) disconnects after N messages. The original's default
//! host is mqtt.eclipseprojects.io; here it is localhost. TLS needs the `tls` feature
//! (without it connecting returns `Error::NotSupported`).
//!
//! The option handling, which both `*_opts.py` originals repeat word for word, is shared here
//! in `common::OptsClient` (same options, defaults and order of set-up).

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{py_bytes, rc_list, OptsClient};
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

fn on_subscribe(
    _mqttc: &mqtt::Client,
    mid: u16,
    reason_code_list: &[mqtt::ReasonCode],
    _properties: &mqtt::Properties,
) {
    println!("Subscribed: {mid} {}", rc_list(reason_code_list));
}

fn on_log(_mqttc: &mqtt::Client, _level: mqtt::LogLevel, string: &str) {
    println!("{string}");
}

fn main() -> mqtt::Result<()> {
    let OptsClient {
        args,
        mqttc,
        host,
        port,
        topic,
        qos,
        keepalive,
    } = OptsClient::from_command_line(&["-C", "--count"], "$SYS/#")?;
    let count: Option<usize> = args.opt(&["-C", "--count"]);

    let received = Arc::new(AtomicUsize::new(0));
    mqttc.on_message(move |mqttc, msg| {
        on_message(mqttc, msg);
        // Not in the original: stop after --count messages.
        if Some(received.fetch_add(1, Ordering::SeqCst) + 1) == count {
            let _ = mqttc.disconnect();
        }
    });
    mqttc.on_connect(on_connect);
    mqttc.on_publish(on_publish);
    mqttc.on_subscribe(on_subscribe);

    if args.flag(&["-D", "--debug"]) {
        mqttc.on_log(on_log);
    }

    println!("Connecting to {host} port: {port}");
    mqttc.connect(&host, port, keepalive)?;
    mqttc.subscribe(&topic, qos)?;

    mqttc.loop_forever()
}
