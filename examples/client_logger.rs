//! Port of paho.mqtt.python examples/client_logger.py: a subscriber whose internal log goes to the standard logger (`enable_logger`).
//!
//! Run: `cargo run --example client_logger -- [--host localhost] [--port 1883] [--count N]`
//!
//! Python's `logging.basicConfig(level=logging.DEBUG)` becomes a tiny `log::Log` that prints
//! `LEVEL:target:message` on stderr, like Python's default format (any `log` backend, such
//! as env_logger, works the same way). `--count N` (not in the original, which runs until
//! interrupted) disconnects after N messages.

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::Args;
use mqtt_sync as mqtt;

/// The equivalent of `logging.basicConfig(level=logging.DEBUG)`.
struct BasicConfig;

impl log::Log for BasicConfig {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Debug
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("{}:{}:{}", record.level(), record.target(), record.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: BasicConfig = BasicConfig;

fn main() -> mqtt::Result<()> {
    let args = Args::parse(&["--host", "--port", "--count"]);
    let count: Option<usize> = args.opt(&["--count"]);

    log::set_logger(&LOGGER).expect("no other logger");
    log::set_max_level(log::LevelFilter::Debug);

    // If you want to use a specific client id, use
    // let mqttc = mqtt::Client::new("client-id");
    // but note that the client id must be unique on the broker. Leaving the client
    // id parameter empty will generate a random id for you.
    let mqttc = mqtt::Client::new("");

    // Python passes its logger; here the lines go to the `log` crate, target "mqtt_sync".
    mqttc.enable_logger();

    // Not in the original: stop after --count messages.
    let received = Arc::new(AtomicUsize::new(0));
    mqttc.on_message(move |mqttc, _msg| {
        if Some(received.fetch_add(1, Ordering::SeqCst) + 1) == count {
            let _ = mqttc.disconnect();
        }
    });

    mqttc.connect(&args.host(), args.port(), 60)?;
    mqttc.subscribe("$SYS/#", mqtt::QoS::AtMostOnce)?;

    mqttc.loop_forever()
}
