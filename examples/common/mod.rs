//! Helpers shared by the example ports (included with `#[path = "common/mod.rs"] mod common;`).
//!
//! - [`Args`]: a tiny command-line parser (std only): `--name value`, `--name=value`, `-n value`,
//!   flags, and positional arguments.
//! - [`py_bytes`]: formats a payload as Python prints `str(msg.payload)` (`b'...'`), so the
//!   output of a port can be compared with the output of the Python original.
//! - [`rc_list`]: formats a list of reason codes as Paho prints `str(reason_code_list)`.
//! - [`OptsClient`]: the options shared by `client_pub_opts` and `client_sub_opts` (their
//!   Python originals repeat the same argparse block), and the client they configure.
#![allow(dead_code)]

use std::str::FromStr;

/// Parsed command line. `valued` lists the options that take a value (all spellings).
pub struct Args {
    opts: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

impl Args {
    /// Parses `std::env::args()`; options listed in `valued` take the next argument as value.
    pub fn parse(valued: &[&str]) -> Args {
        Args::parse_from(std::env::args().skip(1), valued)
    }

    /// Parses the given arguments (see [`Args::parse`]).
    pub fn parse_from(args: impl IntoIterator<Item = String>, valued: &[&str]) -> Args {
        let mut opts = Vec::new();
        let mut positional = Vec::new();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let is_number =
                a.len() > 1 && a[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.');
            if a == "--" {
                positional.extend(it.by_ref());
            } else if a.starts_with('-') && a.len() > 1 && !is_number {
                if let Some((name, value)) = a.split_once('=') {
                    opts.push((name.to_string(), Some(value.to_string())));
                } else if valued.contains(&a.as_str()) {
                    let v = it
                        .next()
                        .unwrap_or_else(|| usage_error(&format!("{a} needs a value")));
                    opts.push((a, Some(v)));
                } else {
                    opts.push((a, None));
                }
            } else {
                positional.push(a);
            }
        }
        Args { opts, positional }
    }

    /// The last value given for any of `names`.
    pub fn value(&self, names: &[&str]) -> Option<String> {
        self.opts
            .iter()
            .rev()
            .find(|(n, _)| names.contains(&n.as_str()))
            .and_then(|(_, v)| v.clone())
    }

    /// The value of `names` parsed as `T`, or `default`.
    pub fn get<T: FromStr>(&self, names: &[&str], default: T) -> T {
        self.opt(names).unwrap_or(default)
    }

    /// The value of `names` parsed as `T`, if given.
    pub fn opt<T: FromStr>(&self, names: &[&str]) -> Option<T> {
        self.value(names).map(|v| {
            v.parse()
                .unwrap_or_else(|_| usage_error(&format!("bad value {v:?} for {}", names[0])))
        })
    }

    /// Whether any of `names` was given (as a flag).
    pub fn flag(&self, names: &[&str]) -> bool {
        self.opts.iter().any(|(n, _)| names.contains(&n.as_str()))
    }

    /// The arguments that are not options.
    pub fn positional(&self) -> &[String] {
        &self.positional
    }

    /// `--host` (default `localhost`).
    pub fn host(&self) -> String {
        self.value(&["--host"])
            .unwrap_or_else(|| "localhost".to_string())
    }

    /// `--port` (default 1883).
    pub fn port(&self) -> u16 {
        self.get(&["--port"], 1883)
    }
}

/// Prints `msg` and exits with status 2 (as argparse / getopt do).
pub fn usage_error(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

/// `bytes` as Python's `str(b)`: `b'...'` with `\xNN`, `\n`, `\r`, `\t`, `\\` and `\'` escapes.
pub fn py_bytes(bytes: &[u8]) -> String {
    let mut s = String::from("b'");
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\'' => s.push_str("\\'"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('\'');
    s
}

/// A reason code list as `[Granted QoS 0, ...]`.
pub fn rc_list(rcs: &[mqtt_sync::ReasonCode]) -> String {
    let names: Vec<String> = rcs.iter().map(|rc| rc.to_string()).collect();
    format!("[{}]", names.join(", "))
}

/// The command-line options that `client_pub_opts.py` and `client_sub_opts.py` share, and the
/// client built from them (clean session, TLS, credentials), in the originals' order.
pub struct OptsClient {
    pub args: Args,
    pub mqttc: mqtt_sync::Client,
    pub host: String,
    pub port: u16,
    pub topic: String,
    pub qos: mqtt_sync::QoS,
    pub keepalive: u16,
}

/// Options that take a value in both `*_opts` examples (plus `extra` of the caller's own).
const OPTS_VALUED: &[&str] = &[
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
    "-k",
    "--keepalive",
    "-F",
    "--cacerts",
    "--tls-version",
];

impl OptsClient {
    /// Parses the shared options (and the caller's `extra` valued ones) and builds the client.
    pub fn from_command_line(extra: &[&str], default_topic: &str) -> mqtt_sync::Result<OptsClient> {
        use mqtt_sync as mqtt;
        let valued: Vec<&str> = OPTS_VALUED.iter().chain(extra).copied().collect();
        let args = Args::parse(&valued);
        let host = args
            .value(&["-H", "--host"])
            .unwrap_or_else(|| "localhost".into());
        let topic = args
            .value(&["-t", "--topic"])
            .unwrap_or_else(|| default_topic.into());
        let qos: u8 = args.get(&["-q", "--qos"], 0);
        let qos = mqtt::QoS::try_from(qos)
            .map_err(|_| mqtt::Error::InvalidArgument(format!("bad qos {qos}")))?;
        let clientid = args.value(&["-c", "--clientid"]).unwrap_or_default();
        let username = args.value(&["-u", "--username"]);
        let password = args.value(&["-p", "--password"]);
        let disable_clean_session = args.flag(&["-d", "--disable-clean-session"]);
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
                ca_certs: cacerts.map(std::path::PathBuf::from),
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

        Ok(OptsClient {
            args,
            mqttc,
            host,
            port,
            topic,
            qos,
            keepalive,
        })
    }
}
