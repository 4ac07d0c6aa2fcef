//! The one-shot helpers, as Python's `paho.mqtt.publish` and `paho.mqtt.subscribe` modules.
//! They sit on top of the client and use only its public API, as an application would.
//!
//! Both take the same connection options (`publish::Options`, `subscribe::Options`); what
//! they share — making the client from those options, recording the failure a callback
//! sees, connecting and running the loop until `disconnect()` — is [`OneShot`].

pub mod publish;
pub mod subscribe;

use std::sync::{Arc, Mutex};

use crate::types::{Protocol, ReasonCode, Transport};
use crate::{Auth, Client, Error, ProxyOptions, Result, TlsOptions, Will};

/// The connection options both helpers' `Options` hold.
pub(crate) struct Common<'a> {
    pub hostname: &'a str,
    pub port: u16,
    pub client_id: &'a str,
    pub keepalive: u16,
    pub will: &'a Option<Will>,
    pub auth: &'a Option<Auth>,
    pub tls: &'a Option<TlsOptions>,
    pub protocol: Protocol,
    pub transport: Transport,
    pub proxy: &'a Option<ProxyOptions>,
    /// MQTT 3.x clean session (`None`: the builder's default).
    pub clean_session: Option<bool>,
}

/// The failure a callback of a helper recorded (the last one); the helper returns it.
#[derive(Clone, Default)]
pub(crate) struct Failure(Arc<Mutex<Option<Error>>>);

impl Failure {
    /// Records `e` (replacing an earlier one) and disconnects, so that the helper's loop
    /// ends.
    pub(crate) fn fail(&self, client: &Client, e: Error) {
        if let Ok(mut f) = self.0.lock() {
            *f = Some(e);
        }
        let _ = client.disconnect();
    }

    /// In `on_connect`: a refused CONNACK ends the helper with `ConnectionRefused(rc)`.
    /// Returns true when it was refused.
    pub(crate) fn refused(&self, client: &Client, rc: ReasonCode) -> bool {
        if rc.is_failure() {
            self.fail(client, Error::ConnectionRefused(rc));
        }
        rc.is_failure()
    }

    fn take(&self) -> Option<Error> {
        self.0.lock().ok().and_then(|mut f| f.take())
    }
}

/// A helper's client, made and configured from the common options.
pub(crate) struct OneShot {
    pub client: Client,
    pub failure: Failure,
}

impl OneShot {
    pub(crate) fn new(o: &Common<'_>) -> Result<OneShot> {
        let mut b = Client::builder()
            .client_id(o.client_id)
            .protocol(o.protocol)
            .transport(o.transport);
        if let Some(clean) = o.clean_session.filter(|_| o.protocol != Protocol::V5) {
            b = b.clean_session(clean);
        }
        let client = b.build()?;
        if let Some(p) = o.proxy {
            client.proxy_set(p.clone())?;
        }
        if let Some(a) = o.auth {
            client.username_pw_set(&a.username, a.password.as_deref())?;
        }
        if let Some(w) = o.will {
            client.will_set_with_properties(
                &w.topic,
                &w.payload,
                w.qos,
                w.retain,
                w.properties.clone().unwrap_or_default(),
            )?;
        }
        if let Some(t) = o.tls {
            client.tls_set_with(t.clone())?;
        }
        Ok(OneShot {
            client,
            failure: Failure::default(),
        })
    }

    /// Connects, runs the loop until the callbacks disconnect, and returns the failure they
    /// recorded.
    pub(crate) fn run(self, o: &Common<'_>) -> Result<()> {
        self.client.connect(o.hostname, o.port, o.keepalive)?;
        self.client.loop_forever()?;
        match self.failure.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
