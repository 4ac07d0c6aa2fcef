//! MQTT over TLS: server verification against a CA file, an optional client certificate,
//! and `tls_insecure_set`. The client subscribes to a topic of its own, publishes one
//! message to it, prints the message when the broker delivers it back, and exits.
//!
//! Run: `cargo run --example tls -- [--host localhost] [--port 8883] [--cafile ca.pem]
//! [--cert client.pem --key client.key] [--insecure]`
//!
//! - `--cafile`: the CA that signed the broker's certificate (default: the system store);
//! - `--cert` / `--key`: a client certificate and its key (PEM: PKCS#1, PKCS#8 or EC; `--key`
//!   may be left out when `--cert` holds the key too; an encrypted key needs
//!   `TlsOptions::keyfile_password` with `tls_set_with`), for a listener with
//!   `require_certificate true`;
//! - `--insecure`: skip the host name check (the chain is still verified), as Paho's
//!   `tls_insecure_set(True)`.
//!
//! A mosquitto listener for it: `listener 8883`, `cafile ca.pem`, `certfile server.pem`,
//! `keyfile server.key` (and `require_certificate true` to ask for a client certificate).
//! Needs the `tls` feature (on by default).

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;

use common::{py_bytes, Args};
use mqtt_sync as mqtt;

fn main() -> mqtt::Result<()> {
    let args = Args::parse(&["--host", "--port", "--cafile", "--cert", "--key"]);
    let host = args.host();
    let port: u16 = args.get(&["--port"], 8883);
    let cafile: Option<PathBuf> = args.opt(&["--cafile"]);
    let cert: Option<PathBuf> = args.opt(&["--cert"]);
    let key: Option<PathBuf> = args.opt(&["--key"]);
    let topic = format!("mqtt-sync/examples/tls/{}", std::process::id());

    let mqttc = mqtt::Client::new("");
    // Loads and checks the files now: a bad path or key is reported here.
    mqttc.tls_set(cafile.as_deref(), cert.as_deref(), key.as_deref())?;
    if args.flag(&["--insecure"]) {
        mqttc.tls_insecure_set(true)?;
    }

    let sub_topic = topic.clone();
    mqttc.on_connect(move |mqttc, _flags, reason_code, _props| {
        println!("connected over TLS: {reason_code}");
        if reason_code.is_failure() {
            let _ = mqttc.disconnect();
            return;
        }
        // Subscribing in on_connect renews the subscription after a reconnect.
        if let Err(e) = mqttc.subscribe(&sub_topic, mqtt::QoS::AtLeastOnce) {
            eprintln!("subscribe failed: {e}");
            let _ = mqttc.disconnect();
        }
    });
    let pub_topic = topic.clone();
    mqttc.on_subscribe(move |mqttc, _mid, reason_codes, _props| {
        println!("subscribed to {pub_topic}: {reason_codes:?}");
        if let Err(e) = mqttc.publish(&pub_topic, "hello over TLS", mqtt::QoS::AtLeastOnce, false) {
            eprintln!("publish failed: {e}");
            let _ = mqttc.disconnect();
        }
    });
    mqttc.on_message(|mqttc, msg| {
        println!(
            "{} {} {}",
            msg.topic(),
            msg.qos() as u8,
            py_bytes(msg.payload())
        );
        let _ = mqttc.disconnect();
    });

    // Errors of the TLS handshake (wrong CA, host name mismatch, no client certificate
    // under TLS 1.2) come back from connect() as Error::Tls.
    if let Err(e) = mqttc.connect(&host, port, 60) {
        eprintln!("cannot connect to {host}:{port}: {e}");
        return Err(e);
    }
    // Returns after disconnect().
    mqttc.loop_forever()
}
