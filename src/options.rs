//! Plain option structs (Python keyword arguments map to struct update syntax) and the
//! client builder.

use crate::types::{CleanStart, Protocol, QoS, Transport};
use crate::{Client, Error, Properties, Result};

/// Options of `Client::connect_with` (Paho's `connect()` keyword arguments).
///
/// ```
/// use mqtt_sync::ConnectOptions;
/// let opts = ConnectOptions { port: 8883, keepalive: 30, ..ConnectOptions::new("broker.local") };
/// assert_eq!(opts.port, 8883);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Broker host name or address (for `Transport::Unix`, the socket path). Default `"localhost"`.
    pub host: String,
    /// Broker port. Default 1883.
    pub port: u16,
    /// Keepalive in seconds; 0 disables it. Default 60.
    pub keepalive: u16,
    /// Local address to bind to. Default none.
    pub bind_address: Option<String>,
    /// Local port to bind to (0 = any). Default 0.
    pub bind_port: u16,
    /// MQTT 5 clean start. Default `CleanStart::FirstOnly`. Must stay the default for MQTT 3.x,
    /// which takes clean session from the builder instead.
    pub clean_start: CleanStart,
    /// MQTT 5 CONNECT properties. Default none.
    pub properties: Option<Properties>,
}

impl ConnectOptions {
    /// Options for `host` with every other field at its default.
    pub fn new(host: impl Into<String>) -> Self {
        ConnectOptions {
            host: host.into(),
            ..Default::default()
        }
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            host: "localhost".into(),
            port: 1883,
            keepalive: 60,
            bind_address: None,
            bind_port: 0,
            clean_start: CleanStart::FirstOnly,
            properties: None,
        }
    }
}

/// A will message (used by the helpers' options; `Client::will_set` takes the same fields).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Will {
    /// Will topic.
    pub topic: String,
    /// Will payload.
    pub payload: Vec<u8>,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
    /// MQTT 5 will properties.
    pub properties: Option<Properties>,
}

/// User name and optional password (used by the helpers' options).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// User name.
    pub username: String,
    /// Password (hidden by `Debug`).
    pub password: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

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
    pub(crate) client_id: String,
    pub(crate) clean_session: Option<bool>,
    pub(crate) protocol: Protocol,
    pub(crate) transport: Transport,
    pub(crate) reconnect_on_failure: bool,
    pub(crate) manual_ack: bool,
}

impl ClientBuilder {
    pub(crate) fn new() -> Self {
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

pub(crate) fn validate_session(
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
