//! One-shot publishing, as Python's `paho.mqtt.publish` module: connect, publish, disconnect.
//!
//! ```no_run
//! use mqtt_sync::{publish, QoS};
//! publish::single("home/lamp", "on", QoS::AtLeastOnce, false, &publish::Options::default())?;
//! # Ok::<(), mqtt_sync::Error>(())
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::{Common, Failure, OneShot};
use crate::types::{Protocol, QoS, Transport};
use crate::{Auth, Client, Error, ProxyOptions, Result, TlsOptions, Will};

/// Connection options of the helpers; the defaults are Python's keyword defaults.
#[derive(Clone, Debug)]
pub struct Options {
    /// Broker host. Default `"localhost"`.
    pub hostname: String,
    /// Broker port. Default 1883.
    pub port: u16,
    /// Client id. Default `""` (the broker assigns one).
    pub client_id: String,
    /// Keepalive in seconds. Default 60.
    pub keepalive: u16,
    /// Will message. Default none.
    pub will: Option<Will>,
    /// User name and password. Default none.
    pub auth: Option<Auth>,
    /// TLS settings. Default none (plain TCP).
    pub tls: Option<TlsOptions>,
    /// Protocol version. Default `Protocol::V311`.
    pub protocol: Protocol,
    /// Transport. Default `Transport::Tcp`.
    pub transport: Transport,
    /// Proxy. Default none (`mqtt_proxy` is honoured).
    pub proxy: Option<ProxyOptions>,
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
        }
    }
}

/// One message for `multiple` (Python's message dict or tuple).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Msg {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// QoS.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
}

impl Msg {
    /// A message with QoS 0, not retained.
    pub fn new(topic: impl Into<String>, payload: impl AsRef<[u8]>) -> Self {
        Msg {
            topic: topic.into(),
            payload: payload.as_ref().to_vec(),
            ..Default::default()
        }
    }
}

/// Publishes one message and disconnects (Python's `publish.single`).
pub fn single(
    topic: &str,
    payload: impl AsRef<[u8]>,
    qos: QoS,
    retain: bool,
    options: &Options,
) -> Result<()> {
    multiple(
        &[Msg {
            topic: topic.to_string(),
            payload: payload.as_ref().to_vec(),
            qos,
            retain,
        }],
        options,
    )
}

/// Publishes several messages, one at a time, each after the previous one's `on_publish`
/// (as Paho), then disconnects (Python's `publish.multiple`). If the connection drops midway
/// the client reconnects and resends what was not acknowledged. A refused connection returns
/// `Err(ConnectionRefused(rc))` (its message is Paho's `connack_string`); an empty list
/// returns `Err(InvalidArgument)`.
pub fn multiple(msgs: &[Msg], options: &Options) -> Result<()> {
    if msgs.is_empty() {
        return Err(Error::invalid(
            "publish::multiple needs at least one message",
        ));
    }
    let common = options.common();
    let OneShot { client, failure } = OneShot::new(&common)?;
    let queue = Arc::new(Mutex::new(msgs.iter().cloned().collect::<VecDeque<Msg>>()));

    fn do_publish(c: &Client, queue: &Mutex<VecDeque<Msg>>, failure: &Failure) {
        let next = queue.lock().ok().and_then(|mut q| q.pop_front());
        if let Some(m) = next {
            if let Err(e) = c.publish(&m.topic, &m.payload, m.qos, m.retain) {
                failure.fail(c, e);
            }
        }
    }

    {
        let (q, f) = (queue.clone(), failure.clone());
        client.on_connect(move |c, _flags, rc, _props| {
            if !f.refused(c, rc) && q.lock().map(|q| !q.is_empty()).unwrap_or(false) {
                do_publish(c, &q, &f);
            }
        });
    }
    {
        let (q, f) = (queue, failure.clone());
        client.on_publish(move |c, _mid, rc, _props| {
            if rc.is_failure() {
                f.fail(c, Error::PublishRefused(rc));
            } else if q.lock().map(|q| q.is_empty()).unwrap_or(true) {
                let _ = c.disconnect();
            } else {
                do_publish(c, &q, &f);
            }
        });
    }
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
            clean_session: None,
        }
    }
}
