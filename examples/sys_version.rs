//! Connects to a broker, subscribes to `$SYS/broker/version` and prints every message as
//! `topic payload`.
//!
//! The Rust counterpart of Paho's `examples/client_sub.py` and of the "Getting Started"
//! subscriber in the Paho README (subscribe in `on_connect`, print in `on_message`,
//! `loop_forever`), narrowed to the broker's version topic:
//!
//! ```text
//! cargo run --example sys_version -- --host 127.0.0.1 --port 1883 --exit-after-first
//! ```
//!
//! Options: `--host HOST` (default localhost), `--port PORT` (default 1883),
//! `--protocol 3.1|3.1.1|5` (default 3.1.1), `--exit-after-first` (disconnect after the first
//! message; without it the program runs until interrupted).
//!
//! Mosquitto publishes `$SYS` topics every `sys_interval` seconds (10 by default), and
//! `$SYS/broker/version` is retained, so it arrives right after subscribing.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mqtt_sync as mqtt;

const TOPIC: &str = "$SYS/broker/version";

struct Args {
    host: String,
    port: u16,
    protocol: mqtt::Protocol,
    exit_after_first: bool,
}

const USAGE: &str =
    "usage: sys_version [--host HOST] [--port PORT] [--protocol 3.1|3.1.1|5] [--exit-after-first]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        host: "localhost".to_string(),
        port: 1883,
        protocol: mqtt::Protocol::V311,
        exit_after_first: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--host" => args.host = value("--host")?,
            "--port" => {
                let v = value("--port")?;
                args.port = v
                    .parse()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("--port: {v:?} is not a port number (1-65535)"))?;
            }
            "--protocol" => {
                let v = value("--protocol")?;
                args.protocol = match v.as_str() {
                    "3.1" | "31" => mqtt::Protocol::V31,
                    "3.1.1" | "311" => mqtt::Protocol::V311,
                    "5" | "5.0" => mqtt::Protocol::V5,
                    _ => return Err(format!("--protocol: {v:?} is not one of 3.1, 3.1.1, 5")),
                };
            }
            "--exit-after-first" => args.exit_after_first = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sys_version: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    // MQTT 3.1 needs a client id of 1..=23 characters.
    let client = match mqtt::Client::builder()
        .client_id(format!("sysver-{}", std::process::id()))
        .protocol(args.protocol)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sys_version: {e}");
            return ExitCode::FAILURE;
        }
    };

    let failed = Arc::new(AtomicBool::new(false));

    // Subscribing in on_connect means that a reconnect renews the subscription.
    let connect_failed = failed.clone();
    client.on_connect(move |c, _flags, rc, _props| {
        if rc.is_failure() {
            eprintln!("sys_version: the broker refused the connection: {rc}");
            connect_failed.store(true, Ordering::SeqCst);
            let _ = c.disconnect();
            return;
        }
        if let Err(e) = c.subscribe(TOPIC, mqtt::QoS::AtMostOnce) {
            eprintln!("sys_version: subscribe failed: {e}");
            connect_failed.store(true, Ordering::SeqCst);
            let _ = c.disconnect();
        }
    });

    let exit_after_first = args.exit_after_first;
    client.on_message(move |c, msg| {
        println!("{} {}", msg.topic(), String::from_utf8_lossy(msg.payload()));
        if exit_after_first {
            // loop_forever() returns once the DISCONNECT is written.
            let _ = c.disconnect();
        }
    });

    if let Err(e) = client.connect(&args.host, args.port, 60) {
        eprintln!(
            "sys_version: cannot connect to {}:{}: {e}",
            args.host, args.port
        );
        return ExitCode::FAILURE;
    }
    if let Err(e) = client.loop_forever() {
        eprintln!("sys_version: {e}");
        return ExitCode::FAILURE;
    }
    if failed.load(Ordering::SeqCst) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
