//! Finding the broker with DNS SRV records (`connect_srv`): the client looks up
//! `_mqtt._tcp.<domain>`, connects to the best target (lowest priority value first, weighted
//! random among equals, falling back to the next target when one is down), subscribes to a
//! topic of its own, publishes one message to it, prints the message when the broker
//! delivers it back, and exits.
//!
//! Run: `cargo run --example srv -- [--domain example.com] [--nameserver 127.0.0.1:53]`
//!
//! `--nameserver ip:port` asks that DNS server instead of the system's (`srv_nameserver_set`).
//! A zone for it, e.g. with dnsmasq:
//! `dnsmasq --no-daemon --port 5353 --srv-host=_mqtt._tcp.example.test,localhost,1883,10,5`
//! then `--domain example.test --nameserver 127.0.0.1:5353`. With TLS configured
//! (`tls_set`), `connect_srv` looks up `_secure-mqtt._tcp.<domain>` instead and checks the
//! certificate against the SRV target name. Needs the `srv` feature (on by default).

#[path = "common/mod.rs"]
mod common;

use std::net::SocketAddr;

use common::{py_bytes, Args};
use mqtt_sync as mqtt;

fn main() -> mqtt::Result<()> {
    let args = Args::parse(&["--domain", "--nameserver"]);
    let domain = args
        .value(&["--domain"])
        .unwrap_or_else(|| "eclipseprojects.io".into());
    let nameserver: Option<SocketAddr> = args.opt(&["--nameserver"]);
    let topic = format!("mqtt-sync/examples/srv/{}", std::process::id());

    let mqttc = mqtt::Client::new("");
    mqttc.srv_nameserver_set(nameserver)?;

    let sub_topic = topic.clone();
    mqttc.on_connect(move |mqttc, _flags, reason_code, _props| {
        // host() and port() are those of the SRV target that answered.
        println!(
            "connected to {}:{}: {reason_code}",
            mqttc.host(),
            mqttc.port()
        );
        if reason_code.is_failure() {
            let _ = mqttc.disconnect();
            return;
        }
        if let Err(e) = mqttc.subscribe(&sub_topic, mqtt::QoS::AtLeastOnce) {
            eprintln!("subscribe failed: {e}");
            let _ = mqttc.disconnect();
        }
    });
    let pub_topic = topic.clone();
    mqttc.on_subscribe(move |mqttc, _mid, reason_codes, _props| {
        println!("subscribed to {pub_topic}: {reason_codes:?}");
        if let Err(e) = mqttc.publish(&pub_topic, "hello via SRV", mqtt::QoS::AtLeastOnce, false) {
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

    // No record gives Error::Dns ("no SRV record for _mqtt._tcp.<domain>"); when every
    // target fails, the last target's connection error.
    if let Err(e) = mqttc.connect_srv(&domain, 60) {
        eprintln!("cannot connect via SRV records of {domain}: {e}");
        return Err(e);
    }
    mqttc.loop_forever()
}
