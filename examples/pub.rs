//! A small `mosquitto_pub` look-alike: publishes a message `count` times and exits.
//!
//! The Rust counterpart of Paho's `examples/client_pub-wait.py` (publish, then
//! `wait_for_publish`), with `mosquitto_pub`'s short options:
//!
//! ```text
//! cargo run --example pub -- -h 127.0.0.1 -p 1883 -t demo/topic -q 1 -m hello -n 3
//! ```
//!
//! Each QoS 1/2 message is waited for (`MessageInfo::wait_for_publish`) before the next is
//! sent, so when the program exits 0 the broker has acknowledged them all. `{n}` in the message
//! is replaced by the message's number (1..=count).

use std::process::ExitCode;
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

use mqtt_sync as mqtt;

const USAGE: &str = "\
usage: pub -t topic [-m message] [-h host] [-p port] [-q 0|1|2] [-n count] [-r]
           [-i client_id] [-V 31|311|5] [-u username] [-P password] [-k keepalive]

  -h host       broker host (default localhost)
  -p port       broker port (default 1883)
  -t topic      topic to publish to (required)
  -m message    payload (default empty); {n} is replaced by the message number
  -n count      how many times to publish (default 1)
  -q qos        0, 1 or 2 (default 0)
  -r            retain
  -i id         client id (default mqtt-sync-pub-<pid>)
  -V protocol   31, 311 or 5 (default 311)
  -u username   user name
  -P password   password (needs -u)
  -k keepalive  keepalive in seconds (default 60)
  --help        this text";

/// How long to wait for the CONNACK and for each acknowledgement.
const TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    host: String,
    port: u16,
    topic: String,
    message: String,
    count: u64,
    qos: mqtt::QoS,
    retain: bool,
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
    let mut topic = None;
    let mut a = Args {
        host: "localhost".into(),
        port: 1883,
        topic: String::new(),
        message: String::new(),
        count: 1,
        qos: mqtt::QoS::AtMostOnce,
        retain: false,
        client_id: format!("mqtt-sync-pub-{}", std::process::id()),
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
        if flag == "-r" {
            a.retain = true;
            continue;
        }
        let v = match flag.as_str() {
            "-h" | "-p" | "-t" | "-m" | "-n" | "-q" | "-i" | "-V" | "-u" | "-P" | "-k" => {
                it.next().ok_or_else(|| format!("{flag} needs a value"))?
            }
            _ => return Err(format!("unknown option {flag:?}")),
        };
        match flag.as_str() {
            "-h" => a.host = v,
            "-p" => a.port = number("-p", &v)?,
            "-t" => topic = Some(v),
            "-m" => a.message = v,
            "-n" => a.count = number("-n", &v)?,
            "-q" => a.qos = qos(&v)?,
            "-i" => a.client_id = v,
            "-V" => a.protocol = protocol(&v)?,
            "-u" => a.username = Some(v),
            "-P" => a.password = Some(v),
            "-k" => a.keepalive = number("-k", &v)?,
            _ => unreachable!("every flag with a value is listed above"),
        }
    }
    a.topic = topic.ok_or("a topic is required (-t)")?;
    if a.port == 0 {
        return Err("-p: the port must be 1-65535".into());
    }
    if a.password.is_some() && a.username.is_none() {
        return Err("-P needs -u".into());
    }
    Ok(a)
}

fn run(a: Args) -> Result<(), String> {
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
    client.on_connect(move |_c, _flags, rc, _props| {
        let _ = tx.send(rc);
    });

    client
        .connect(&a.host, a.port, a.keepalive)
        .map_err(|e| format!("cannot connect to {}:{}: {e}", a.host, a.port))?;
    client
        .loop_start()
        .map_err(|e| format!("loop_start: {e}"))?;

    let result = publish_all(&client, &a, &rx);

    // disconnect() writes what is queued, then DISCONNECT; loop_stop() ends the thread.
    let _ = client.disconnect();
    let _ = client.loop_stop();
    result
}

fn publish_all(
    client: &mqtt::Client,
    a: &Args,
    connected: &mpsc::Receiver<mqtt::ReasonCode>,
) -> Result<(), String> {
    match connected.recv_timeout(TIMEOUT) {
        Ok(rc) if rc.is_failure() => {
            return Err(format!("the broker refused the connection: {rc}"))
        }
        Ok(_) => {}
        Err(_) => {
            return Err(format!(
                "no CONNACK from {}:{} within {TIMEOUT:?}",
                a.host, a.port
            ))
        }
    }
    for n in 1..=a.count {
        let payload = a.message.replace("{n}", &n.to_string());
        let info = client
            .publish(&a.topic, payload, a.qos, a.retain)
            .map_err(|e| format!("publish #{n} to {:?}: {e}", a.topic))?;
        if a.qos != mqtt::QoS::AtMostOnce {
            info.wait_for_publish(Some(TIMEOUT))
                .map_err(|e| format!("publish #{n} (mid {}): not acknowledged: {e}", info.mid()))?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pub: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pub: {e}");
            ExitCode::FAILURE
        }
    }
}
