//! Port of paho.mqtt.python examples/client_sub-class.py: the MQTT client used inside a class (here a struct wrapping `Client`).
//!
//! Run: `cargo run --example client_sub_class -- [--host localhost] [--port 1883] [--topic '$SYS/#'] [--count N]`
//!
//! Python subclasses `mqtt.Client` and overrides its `on_*` methods. Rust has no inheritance,
//! so `MyMQTTClass` owns a `Client`, dereferences to it (so `self.connect(..)` reads as in
//! Python) and routes every callback to one of its own methods. `--count N` disconnects after
//! N messages, which makes `loop_once()` fail and `run()` return, as the Python loop does
//! when `loop()` returns non-zero.

#[path = "common/mod.rs"]
mod common;

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use common::{py_bytes, rc_list, Args};
use mqtt_sync as mqtt;

#[allow(clippy::upper_case_acronyms)]
struct MyMQTTClass {
    client: mqtt::Client,
    host: String,
    port: u16,
    topic: String,
    count: Option<usize>,
    received: AtomicUsize,
}

impl Deref for MyMQTTClass {
    type Target = mqtt::Client;
    fn deref(&self) -> &mqtt::Client {
        &self.client
    }
}

impl MyMQTTClass {
    fn new(
        client_id: &str,
        host: String,
        port: u16,
        topic: String,
        count: Option<usize>,
    ) -> Arc<MyMQTTClass> {
        let this = Arc::new(MyMQTTClass {
            client: mqtt::Client::new(client_id),
            host,
            port,
            topic,
            count,
            received: AtomicUsize::new(0),
        });
        // The callbacks hold a Weak reference: the client must not keep its owner alive.
        let w: Weak<MyMQTTClass> = Arc::downgrade(&this);
        let me = w.clone();
        this.client.on_connect(move |mqttc, flags, rc, props| {
            if let Some(me) = me.upgrade() {
                me.on_connect(mqttc, flags, rc, props)
            }
        });
        let me = w.clone();
        this.client.on_connect_fail(move |mqttc, err| {
            if let Some(me) = me.upgrade() {
                me.on_connect_fail(mqttc, err)
            }
        });
        let me = w.clone();
        this.client.on_message(move |mqttc, msg| {
            if let Some(me) = me.upgrade() {
                me.on_message(mqttc, msg)
            }
        });
        let me = w.clone();
        this.client.on_publish(move |mqttc, mid, rc, props| {
            if let Some(me) = me.upgrade() {
                me.on_publish(mqttc, mid, rc, props)
            }
        });
        let me = w;
        this.client.on_subscribe(move |mqttc, mid, rcs, props| {
            if let Some(me) = me.upgrade() {
                me.on_subscribe(mqttc, mid, rcs, props)
            }
        });
        this
    }

    fn on_connect(
        &self,
        _mqttc: &mqtt::Client,
        _flags: mqtt::ConnectFlags,
        reason_code: mqtt::ReasonCode,
        _properties: &mqtt::Properties,
    ) {
        println!("rc: {reason_code}");
    }

    fn on_connect_fail(&self, _mqttc: &mqtt::Client, _err: &mqtt::Error) {
        println!("Connect failed");
    }

    fn on_message(&self, mqttc: &mqtt::Client, msg: &mqtt::Message) {
        println!(
            "{} {} {}",
            msg.topic(),
            msg.qos() as u8,
            py_bytes(msg.payload())
        );
        // Not in the original: stop after --count messages.
        if Some(self.received.fetch_add(1, Ordering::SeqCst) + 1) == self.count {
            let _ = mqttc.disconnect();
        }
    }

    fn on_publish(
        &self,
        _mqttc: &mqtt::Client,
        mid: u16,
        _reason_code: mqtt::ReasonCode,
        _properties: &mqtt::Properties,
    ) {
        println!("mid: {mid}");
    }

    fn on_subscribe(
        &self,
        _mqttc: &mqtt::Client,
        mid: u16,
        reason_code_list: &[mqtt::ReasonCode],
        _properties: &mqtt::Properties,
    ) {
        println!("Subscribed: {mid} {}", rc_list(reason_code_list));
    }

    #[allow(dead_code)]
    fn on_log(&self, _mqttc: &mqtt::Client, _level: mqtt::LogLevel, string: &str) {
        println!("{string}");
    }

    /// Returns the Paho error number that ended the loop (`MQTT_ERR_*`), like Python's `run()`.
    fn run(&self) -> i32 {
        if let Err(e) = self.connect(&self.host, self.port, 60) {
            return e.code();
        }
        if let Err(e) = self.subscribe(&self.topic, mqtt::QoS::AtMostOnce) {
            return e.code();
        }

        let mut rc = 0;
        while rc == 0 {
            rc = match self.loop_once(Duration::from_secs(1)) {
                Ok(()) => 0,
                Err(e) => e.code(),
            };
        }
        rc
    }
}

fn main() {
    let args = Args::parse(&["--host", "--port", "--topic", "--count"]);
    let topic = args.value(&["--topic"]).unwrap_or_else(|| "$SYS/#".into());

    // If you want to use a specific client id, use
    // MyMQTTClass::new("client-id", ..)
    // but note that the client id must be unique on the broker. Leaving the client
    // id parameter empty will generate a random id for you.
    let mqttc = MyMQTTClass::new("", args.host(), args.port(), topic, args.opt(&["--count"]));
    let rc = mqttc.run();

    println!("rc: {rc}");
}
