//! Blocking subscriptions, as Python's `paho.mqtt.subscribe` module.
//!
//! ```no_run
//! use mqtt_sync::{subscribe, QoS};
//! let msgs = subscribe::simple(&["sensors/#"], QoS::AtMostOnce, 1, true, &subscribe::Options::default())?;
//! println!("{} {:?}", msgs[0].topic(), msgs[0].payload());
//! # Ok::<(), mqtt_sync::Error>(())
//! ```

use std::sync::{Arc, Mutex};

use super::{Common, OneShot};
use crate::types::{Protocol, QoS, Transport};
use crate::{Auth, Client, Error, Message, ProxyOptions, Result, TlsOptions, Will};

/// Connection options of the subscribe helpers; the defaults are Python's keyword defaults.
#[derive(Clone, Debug)]
pub struct Options {
    /// Broker host. Default `"localhost"`.
    pub hostname: String,
    /// Broker port. Default 1883.
    pub port: u16,
    /// Client id. Default `""`.
    pub client_id: String,
    /// Keepalive in seconds. Default 60.
    pub keepalive: u16,
    /// Will message. Default none.
    pub will: Option<Will>,
    /// User name and password. Default none.
    pub auth: Option<Auth>,
    /// TLS settings. Default none.
    pub tls: Option<TlsOptions>,
    /// Protocol version. Default `Protocol::V311`.
    pub protocol: Protocol,
    /// Transport. Default `Transport::Tcp`.
    pub transport: Transport,
    /// Proxy. Default none.
    pub proxy: Option<ProxyOptions>,
    /// MQTT 3.x clean session. Default true. Ignored for MQTT 5.
    pub clean_session: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hostname: "localhost".into(),
            port: 1883,
            client_id: String::new(),
            keepalive: 60,
            will: None,
            auth: None,
            tls: None,
            protocol: Protocol::V311,
            transport: Transport::Tcp,
            proxy: None,
            clean_session: true,
        }
    }
}

/// Subscribes to `topics` and calls `callback` for every message until the callback calls
/// `client.disconnect()` (Python's `subscribe.callback`). A refused connection returns
/// `Err(ConnectionRefused(rc))`.
pub fn callback(
    callback: impl FnMut(&Client, &Message) + Send + 'static,
    topics: &[&str],
    qos: QoS,
    options: &Options,
) -> Result<()> {
    if topics.is_empty() {
        return Err(Error::invalid("subscribe needs at least one topic"));
    }
    let common = options.common();
    let OneShot { client, failure } = OneShot::new(&common)?;
    let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    {
        let f = failure.clone();
        client.on_connect(move |c, _flags, rc, _props| {
            if f.refused(c, rc) {
                return;
            }
            let list: Vec<(&str, QoS)> = topics.iter().map(|t| (t.as_str(), qos)).collect();
            if let Err(e) = c.subscribe_many(&list) {
                f.fail(c, e);
            }
        });
    }
    client.on_message(callback);
    OneShot { client, failure }.run(&common)
}

impl Options {
    fn common(&self) -> Common<'_> {
        Common {
            hostname: &self.hostname,
            port: self.port,
            client_id: &self.client_id,
            keepalive: self.keepalive,
            will: &self.will,
            auth: &self.auth,
            tls: &self.tls,
            protocol: self.protocol,
            transport: self.transport,
            proxy: &self.proxy,
            clean_session: Some(self.clean_session),
        }
    }
}

/// Subscribes to `topics` and returns the first `msg_count` messages (Python's
/// `subscribe.simple`); with `retained` false, retained messages are skipped. `msg_count`
/// of 0 returns `Err(InvalidArgument)`.
pub fn simple(
    topics: &[&str],
    qos: QoS,
    msg_count: usize,
    retained: bool,
    options: &Options,
) -> Result<Vec<Message>> {
    if msg_count < 1 {
        return Err(Error::invalid("msg_count must be at least 1"));
    }
    let got: Arc<Mutex<Vec<Message>>> =
        Arc::new(Mutex::new(Vec::with_capacity(msg_count.min(1024))));
    let sink = got.clone();
    callback(
        move |c, m| {
            if m.retain() && !retained {
                return;
            }
            let Ok(mut v) = sink.lock() else {
                return;
            };
            if v.len() >= msg_count {
                return;
            }
            v.push(m.clone());
            if v.len() == msg_count {
                let _ = c.disconnect();
            }
        },
        topics,
        qos,
        options,
    )?;
    let v = std::mem::take(&mut *got.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(v)
}
