//! A small `mosquitto_sub` look-alike: subscribes and prints each message as `topic payload`.
//!
//! The Rust counterpart of Paho's `examples/client_sub.py` (subscribe, print in
//! `on_message`) and `examples/subscribe_simple.py` (stop after a number of messages), with
//! `mosquitto_sub`'s short options:
//!
//! ```text
//! cargo run --example sub -- -h 127.0.0.1 -p 1883 -t 'demo/#' -q 1 -C 3 -W 10
//! ```
//!
//! The subscription is made in `on_connect`, so a reconnect renews it. With `-C count` the
//! program disconnects and exits 0 after `count` messages; with `-W secs` it gives up after
//! that long and exits 27 (as `mosquitto_sub -W`).

use std::process::ExitCode;
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mqtt_sync as mqtt;

const USAGE: &str = "\
usage: sub -t topic [-t topic ...] [-h host] [-p port] [-q 0|1|2] [-C count] [-W secs]
           [-i client_id] [-V 31|311|5] [-u username] [-P password] [-k keepalive]

  -h host       broker host (default localhost)
  -p port       broker port (default 1883)
  -t topic      topic filter to subscribe to (required; may be repeated)
  -q qos        0, 1 or 2 (default 0)
  -C count      exit after this many messages (default: run until interrupted)
  -W secs       exit with status 27 if the messages have not arrived after secs seconds
  -i id         client id (default mqtt-sync-sub-<pid>)
  -V protocol   31, 311 or 5 (default 311)
  -u username   user name
  -P password   password (needs -u)
  -k keepalive  keepalive in seconds (default 60)
  --help        this text";

/// The exit status after `-W` expires (as `mosquitto_sub`).
const TIMED_OUT: u8 = 27;

struct Args {
    host: String,
    port: u16,
    topics: Vec<String>,
    qos: mqtt::QoS,
    count: Option<u64>,
    wait: Option<Duration>,
    client_id: String,
    protocol: mqtt::Protocol,
    username: Option<String>,
    password: Option<String>,
    keepalive: u16,
}

fn number<T: FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: {v:?} is not a valid number"))
}

fn protocol(v: &str) -> Result<mqtt::Protocol, String> {
    match v {
        "31" | "mqttv31" => Ok(mqtt::Protocol::V31),
        "311" | "mqttv311" => Ok(mqtt::Protocol::V311),
        "5" | "mqttv5" => Ok(mqtt::Protocol::V5),
        _ => Err(format!("-V: {v:?} is not one of 31, 311, 5")),
    }
}

fn qos(v: &str) -> Result<mqtt::QoS, String> {
    let n: u8 = number("-q", v)?;
    mqtt::QoS::try_from(n).map_err(|_| format!("-q: {v:?} is not 0, 1 or 2"))
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        host: "localhost".into(),
        port: 1883,
        topics: Vec::new(),
        qos: mqtt::QoS::AtMostOnce,
        count: None,
        wait: None,
        client_id: format!("mqtt-sync-sub-{}", std::process::id()),
        protocol: mqtt::Protocol::V311,
        username: None,
        password: None,
        keepalive: 60,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let v = match flag.as_str() {
            "-h" | "-p" | "-t" | "-q" | "-C" | "-W" | "-i" | "-V" | "-u" | "-P" | "-k" => {
                it.next().ok_or_else(|| format!("{flag} needs a value"))?
            }
            _ => return Err(format!("unknown option {flag:?}")),
        };
        match flag.as_str() {
            "-h" => a.host = v,
            "-p" => a.port = number("-p", &v)?,
            "-t" => a.topics.push(v),
            "-q" => a.qos = qos(&v)?,
            "-C" => {
                let n: u64 = number("-C", &v)?;
                if n == 0 {
                    return Err("-C: the count must be at least 1".into());
                }
                a.count = Some(n);
            }
            "-W" => {
                let secs: f64 = number("-W", &v)?;
                a.wait = Some(
                    Duration::try_from_secs_f64(secs)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| format!("-W: {v:?} is not a positive number of seconds"))?,
                );
            }
            "-i" => a.client_id = v,
            "-V" => a.protocol = protocol(&v)?,
            "-u" => a.username = Some(v),
            "-P" => a.password = Some(v),
            "-k" => a.keepalive = number("-k", &v)?,
            _ => unreachable!("every flag with a value is listed above"),
        }
    }
    if a.topics.is_empty() {
        return Err("at least one topic is required (-t)".into());
    }
    if a.port == 0 {
        return Err("-p: the port must be 1-65535".into());
    }
    if a.password.is_some() && a.username.is_none() {
        return Err("-P needs -u".into());
    }
    Ok(a)
}

/// What the callbacks report to the main thread.
enum Event {
    Message(String),
    Fatal(String),
}

enum Outcome {
    Done,
    TimedOut,
}

fn run(a: Args) -> Result<Outcome, String> {
    let client = mqtt::Client::builder()
        .client_id(a.client_id.clone())
        .protocol(a.protocol)
        .build()
        .map_err(|e| format!("bad client settings: {e}"))?;
    if let Some(user) = &a.username {
        client
            .username_pw_set(user, a.password.as_deref())
            .map_err(|e| format!("-u/-P: {e}"))?;
    }

    let (tx, rx) = mpsc::channel();

    let on_connect_tx = tx.clone();
    let filters: Vec<(String, mqtt::QoS)> = a.topics.iter().map(|t| (t.clone(), a.qos)).collect();
    client.on_connect(move |c, _flags, rc, _props| {
        if rc.is_failure() {
            let _ = on_connect_tx.send(Event::Fatal(format!(
                "the broker refused the connection: {rc}"
            )));
            return;
        }
        // Subscribing in on_connect means that a reconnect renews the subscriptions.
        let topics: Vec<(&str, mqtt::QoS)> =
            filters.iter().map(|(t, q)| (t.as_str(), *q)).collect();
        if let Err(e) = c.subscribe_many(&topics) {
            let _ = on_connect_tx.send(Event::Fatal(format!("subscribe: {e}")));
        }
    });

    let on_subscribe_tx = tx.clone();
    let topics = a.topics.clone();
    client.on_subscribe(move |_c, _mid, rcs, _props| {
        for (topic, rc) in topics.iter().zip(rcs) {
            if rc.is_failure() {
                let _ = on_subscribe_tx.send(Event::Fatal(format!(
                    "the broker refused the subscription to {topic:?}: {rc}"
                )));
            }
        }
    });

    client.on_message(move |_c, msg| {
        let _ = tx.send(Event::Message(format!(
            "{} {}",
            msg.topic(),
            String::from_utf8_lossy(msg.payload())
        )));
    });

    client
        .connect(&a.host, a.port, a.keepalive)
        .map_err(|e| format!("cannot connect to {}:{}: {e}", a.host, a.port))?;
    client
        .loop_start()
        .map_err(|e| format!("loop_start: {e}"))?;

    let deadline = a.wait.map(|w| Instant::now() + w);
    let mut received = 0u64;
    let outcome = loop {
        if a.count.is_some_and(|c| received >= c) {
            break Ok(Outcome::Done);
        }
        let ev = match deadline {
            Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                Ok(ev) => ev,
                Err(mpsc::RecvTimeoutError::Timeout) => break Ok(Outcome::TimedOut),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err("the client went away".to_string())
                }
            },
            None => match rx.recv() {
                Ok(ev) => ev,
                Err(_) => break Err("the client went away".to_string()),
            },
        };
        match ev {
            Event::Message(line) => {
                println!("{line}");
                received += 1;
            }
            Event::Fatal(e) => break Err(e),
        }
    };

    let _ = client.disconnect();
    let _ = client.loop_stop();
    outcome
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sub: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::TimedOut) => {
            eprintln!("sub: timed out");
            ExitCode::from(TIMED_OUT)
        }
        Err(e) => {
            eprintln!("sub: {e}");
            ExitCode::FAILURE
        }
    }
}
