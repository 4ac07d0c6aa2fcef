//! Plain option structs (Python keyword arguments map to struct update syntax).

use crate::types::{CleanStart, QoS};
use crate::Properties;

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

/// One broker of a server list ([`Client::connect_servers`](crate::Client::connect_servers)).
///
/// ```
/// use mqtt_sync::{Server, Transport};
/// let primary = Server::new("broker-a.example", 1883);
/// let backup = Server {
///     transport: Some(Transport::WebSockets),
///     ..Server::new("broker-b.example", 8080)
/// };
/// assert_eq!(backup.port, 8080);
/// # let _ = primary;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The transport for this server; `None`: the client's (from the builder).
    pub transport: Option<crate::Transport>,
}

impl Server {
    /// A server reached with the client's transport.
    pub fn new(host: impl Into<String>, port: u16) -> Server {
        Server {
            host: host.into(),
            port,
            transport: None,
        }
    }
}
