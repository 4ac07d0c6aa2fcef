//! Port of paho.mqtt.python examples/client_pub_opts.py: a publisher whose user name, password, TLS and session options come from the command line.
//!
//! Run: `cargo run --example client_pub_opts -- [-H|--host localhost] [-P|--port 1883|8883] [-t|--topic paho/test/opts] [-q|--qos 0]
//!       [-c|--clientid ID] [-u|--username U] [-p|--password P] [-d|--disable-clean-session] [-N|--nummsgs 1] [-S|--delay 1]
//!       [-k|--keepalive 60] [-s|--use-tls] [--insecure] [-F|--cacerts ca.crt] [--tls-version tlsv1.2] [-D|--debug]`
//!
//! The options are the Python ones (note `-P` is the port and `-p` the password, as there).
//! It publishes `--nummsgs` messages `{"msgnum": "<n>"}`, waiting for each one to be
//! published and then `--delay` seconds, and disconnects. The original's default host is
//! mqtt.eclipseprojects.io; here it is localhost. TLS needs the `tls` feature (without it
//! connecting returns `Error::NotSupported`).

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{py_bytes, Args};
use mqtt_sync as mqtt;

fn on_connect(
    _mqttc: &mqtt::Client,
    _flags: mqtt::ConnectFlags,
    reason_code: mqtt::ReasonCode,
    _properties: &mqtt::Properties,
) {
    println!("connect reason_code: {reason_code}");
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
    let args = Args::parse(&[
        "-H",
        "--host",
        "-t",
        "--topic",
        "-q",
        "--qos",
        "-c",
        "--clientid",
        "-u",
        "--username",
        "-p",
        "--password",
        "-P",
        "--port",
        "-N",
        "--nummsgs",
        "-S",
        "--delay",
        "-k",
        "--keepalive",
        "-F",
        "--cacerts",
        "--tls-version",
    ]);
    let host = args
        .value(&["-H", "--host"])
        .unwrap_or_else(|| "localhost".into());
    let topic = args
        .value(&["-t", "--topic"])
        .unwrap_or_else(|| "paho/test/opts".into());
    let qos: u8 = args.get(&["-q", "--qos"], 0);
    let qos = mqtt::QoS::try_from(qos)
        .map_err(|_| mqtt::Error::InvalidArgument(format!("bad qos {qos}")))?;
    let clientid = args.value(&["-c", "--clientid"]).unwrap_or_default();
    let username = args.value(&["-u", "--username"]);
    let password = args.value(&["-p", "--password"]);
    let disable_clean_session = args.flag(&["-d", "--disable-clean-session"]);
    let nummsgs: u32 = args.get(&["-N", "--nummsgs"], 1);
    let delay: f64 = args.get(&["-S", "--delay"], 1.0);
    let keepalive: u16 = args.get(&["-k", "--keepalive"], 60);
    let cacerts = args.value(&["-F", "--cacerts"]);
    let insecure = args.flag(&["--insecure"]);

    let mut usetls = args.flag(&["-s", "--use-tls"]);

    if cacerts.is_some() {
        usetls = true;
    }

    let port: u16 = match args.opt(&["-P", "--port"]) {
        Some(port) => port,
        None if usetls => 8883,
        None => 1883,
    };

    let mqttc = mqtt::Client::builder()
        .client_id(clientid)
        .clean_session(!disable_clean_session)
        .build()?;

    if usetls {
        let tls_version = match args.value(&["--tls-version"]).as_deref() {
            Some("tlsv1.3") => Some(mqtt::TlsVersion::Tls13),
            Some("tlsv1.2") => Some(mqtt::TlsVersion::Tls12),
            Some("tlsv1.1") => Some(mqtt::TlsVersion::Tls11),
            Some("tlsv1") => Some(mqtt::TlsVersion::Tls10),
            None => None,
            Some(_) => {
                println!("Unknown TLS version - ignoring");
                None
            }
        };

        let cert_required = if !insecure {
            mqtt::CertReqs::Required
        } else {
            mqtt::CertReqs::None
        };

        mqttc.tls_set_with(mqtt::TlsOptions {
            ca_certs: cacerts.map(PathBuf::from),
            certfile: None,
            keyfile: None,
            cert_reqs: cert_required,
            tls_version,
            ..Default::default()
        })?;

        if insecure {
            mqttc.tls_insecure_set(true)?;
        }
    }

    if username.is_some() || password.is_some() {
        mqttc.username_pw_set(username.as_deref().unwrap_or(""), password.as_deref())?;
    }

    mqttc.on_message(on_message);
    mqttc.on_connect(on_connect);
    mqttc.on_publish(on_publish);

    if args.flag(&["-D", "--debug"]) {
        mqttc.on_log(on_log);
    }

    println!("Connecting to {host} port: {port}");
    mqttc.connect(&host, port, keepalive)?;

    mqttc.loop_start()?;

    for x in 0..nummsgs {
        let msg_txt = format!("{{\"msgnum\": \"{x}\"}}");
        println!("Publishing: {msg_txt}");
        let infot = mqttc.publish(&topic, &msg_txt, qos, false)?;
        infot.wait_for_publish(None)?;

        std::thread::sleep(Duration::from_secs_f64(delay));
    }

    mqttc.disconnect()?;
    // Not in the original (Python's loop thread is a daemon that dies with the program):
    // let the network thread send the DISCONNECT and end.
    mqttc.loop_stop()
}
