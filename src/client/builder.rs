//! `ClientBuilder`: Paho's constructor keywords (client id, clean session, protocol,
//! transport, reconnect on failure, manual ack).

use super::Client;
use crate::types::{Protocol, Transport};
use crate::{Error, Result};

/// Builds a `Client` (Paho's `Client(...)` constructor keywords). Start with `Client::builder()`.
///
/// ```
/// use mqtt_sync::{Client, Protocol};
/// let client = Client::builder().client_id("sensor-1").protocol(Protocol::V5).build()?;
/// assert_eq!(client.client_id(), "sensor-1");
/// # Ok::<(), mqtt_sync::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ClientBuilder {
    pub(super) client_id: String,
    pub(super) clean_session: Option<bool>,
    pub(super) protocol: Protocol,
    pub(super) transport: Transport,
    pub(super) reconnect_on_failure: bool,
    pub(super) manual_ack: bool,
}

impl ClientBuilder {
    pub(super) fn new() -> Self {
        ClientBuilder {
            reconnect_on_failure: true,
            ..Default::default()
        }
    }
    /// Client identifier; empty (the default) lets the broker assign one (MQTT 3.1 gets a
    /// generated 22-character id, as in Paho).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }
    /// MQTT 3.x clean session (default true). Not allowed with MQTT 5, which uses
    /// `ConnectOptions::clean_start`.
    pub fn clean_session(mut self, clean: bool) -> Self {
        self.clean_session = Some(clean);
        self
    }
    /// Protocol version (default `Protocol::V311`).
    pub fn protocol(mut self, p: Protocol) -> Self {
        self.protocol = p;
        self
    }
    /// Transport (default `Transport::Tcp`).
    pub fn transport(mut self, t: Transport) -> Self {
        self.transport = t;
        self
    }
    /// Reconnect automatically in `loop_start`/`loop_forever` after a failure (default true).
    pub fn reconnect_on_failure(mut self, on: bool) -> Self {
        self.reconnect_on_failure = on;
        self
    }
    /// Acknowledge incoming QoS 1/2 messages only when `Client::ack` is called (default false).
    pub fn manual_ack(mut self, on: bool) -> Self {
        self.manual_ack = on;
        self
    }
    /// Validates the settings and makes the client. `Err(InvalidArgument)` where Python raises
    /// `ValueError`: `clean_session(false)` with an empty client id on MQTT 3.x, or
    /// `clean_session` set at all with MQTT 5.
    pub fn build(self) -> Result<Client> {
        validate_session(self.protocol, &self.client_id, self.clean_session)?;
        Ok(Client::from_builder(self))
    }
}

pub(super) fn validate_session(
    protocol: Protocol,
    client_id: &str,
    clean: Option<bool>,
) -> Result<()> {
    if protocol == Protocol::V5 {
        if clean.is_some() {
            return Err(Error::invalid(
                "clean_session is not used with MQTT 5.0; use ConnectOptions::clean_start",
            ));
        }
    } else if clean == Some(false) && client_id.is_empty() {
        return Err(Error::invalid(
            "a client id must be provided if clean session is false",
        ));
    }
    Ok(())
}
