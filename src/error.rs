//! The crate's one error type and Paho's `MQTT_ERR_*` numbers.

use crate::types::ReasonCode;

/// Paho `MQTT_ERR_AGAIN` (-1).
pub const MQTT_ERR_AGAIN: i32 = -1;
/// Paho `MQTT_ERR_SUCCESS` (0).
pub const MQTT_ERR_SUCCESS: i32 = 0;
/// Paho `MQTT_ERR_NOMEM` (1).
pub const MQTT_ERR_NOMEM: i32 = 1;
/// Paho `MQTT_ERR_PROTOCOL` (2).
pub const MQTT_ERR_PROTOCOL: i32 = 2;
/// Paho `MQTT_ERR_INVAL` (3).
pub const MQTT_ERR_INVAL: i32 = 3;
/// Paho `MQTT_ERR_NO_CONN` (4).
pub const MQTT_ERR_NO_CONN: i32 = 4;
/// Paho `MQTT_ERR_CONN_REFUSED` (5).
pub const MQTT_ERR_CONN_REFUSED: i32 = 5;
/// Paho `MQTT_ERR_NOT_FOUND` (6).
pub const MQTT_ERR_NOT_FOUND: i32 = 6;
/// Paho `MQTT_ERR_CONN_LOST` (7).
pub const MQTT_ERR_CONN_LOST: i32 = 7;
/// Paho `MQTT_ERR_TLS` (8).
pub const MQTT_ERR_TLS: i32 = 8;
/// Paho `MQTT_ERR_PAYLOAD_SIZE` (9).
pub const MQTT_ERR_PAYLOAD_SIZE: i32 = 9;
/// Paho `MQTT_ERR_NOT_SUPPORTED` (10).
pub const MQTT_ERR_NOT_SUPPORTED: i32 = 10;
/// Paho `MQTT_ERR_AUTH` (11).
pub const MQTT_ERR_AUTH: i32 = 11;
/// Paho `MQTT_ERR_ACL_DENIED` (12).
pub const MQTT_ERR_ACL_DENIED: i32 = 12;
/// Paho `MQTT_ERR_UNKNOWN` (13).
pub const MQTT_ERR_UNKNOWN: i32 = 13;
/// Paho `MQTT_ERR_ERRNO` (14).
pub const MQTT_ERR_ERRNO: i32 = 14;
/// Paho `MQTT_ERR_QUEUE_SIZE` (15).
pub const MQTT_ERR_QUEUE_SIZE: i32 = 15;
/// Paho `MQTT_ERR_KEEPALIVE` (16).
pub const MQTT_ERR_KEEPALIVE: i32 = 16;

/// Everything that can go wrong. Each message says what happened and what to do.
///
/// `Error::code()` gives Paho's `MQTT_ERR_*` number so ported code that compares return
/// codes keeps working.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A bad argument (Python raises `ValueError`). A programmer error: fix the call.
    InvalidArgument(String),
    /// The call is not allowed in the client's current state (for example a setter that is
    /// locked while connected, or a blocking wait on the network thread).
    InvalidState(String),
    /// The client is not connected; connect first (QoS 1/2 publishes are queued instead).
    NoConnection,
    /// The broker broke the protocol, or sent a malformed packet; the connection is closed.
    Protocol(String),
    /// The broker refused the connection with this reason code.
    ConnectionRefused(ReasonCode),
    /// The connection to the broker was lost.
    ConnectionLost,
    /// A TLS set-up or handshake error.
    Tls(Detail),
    /// A packet would exceed a size limit (MQTT's 268435455 bytes, or the broker's maximum
    /// packet size).
    PayloadSize(String),
    /// The feature or option is not supported by this build or by the broker.
    NotSupported(String),
    /// The broker refused a message (PUBACK/PUBREC with a failure reason code).
    PublishRefused(ReasonCode),
    /// `max_queued_messages_set` is reached; the message was not queued.
    QueueSize,
    /// The broker did not answer PINGREQ within the keepalive.
    Keepalive,
    /// An operating-system I/O error.
    Io(std::io::Error),
    /// A wait ran out of time.
    Timeout,
    /// A name lookup failed (host name or DNS SRV).
    Dns(Detail),
    /// A WebSocket handshake or framing error.
    WebSocket(Detail),
    /// A proxy refused or failed the tunnel.
    Proxy(Detail),
    /// The session store ([`Client::persistence_set`](crate::Client::persistence_set)) could
    /// not write or load a record, or its file is not a valid store.
    Persistence(Detail),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidArgument(a) => write!(f, "invalid argument: {a}"),
            Error::InvalidState(a) => write!(f, "invalid state: {a}"),
            Error::NoConnection => write!(f, "the client is not connected to a broker; call connect() and run a loop first"),
            Error::Protocol(a) => write!(f, "protocol error: {a} (the connection was closed; check that the port speaks MQTT and the \
         protocol version the client uses)"),
            Error::ConnectionRefused(rc) => write!(f, "connection refused by the broker: {} ({rc})", connack_string(rc.value())),
            Error::ConnectionLost => write!(f, "the connection to the broker was lost; the loop reconnects if it runs with reconnect on"),
            Error::Tls(a) => write!(f, "TLS error: {a} (check the CA file, that the certificate is for the host name you \
         connect to, and that the port speaks TLS)"),
            Error::PayloadSize(a) => write!(f, "payload or packet too large: {a}"),
            Error::NotSupported(a) => write!(f, "not supported: {a}"),
            Error::PublishRefused(a) => write!(f, "the broker refused the message: {a}"),
            Error::QueueSize => write!(f, "the outgoing message queue is full (max_queued_messages); retry later or raise the limit"),
            Error::Keepalive => write!(f, "the broker did not answer PINGREQ within the keepalive; the connection is considered lost"),
            Error::Io(a) => write!(f, "I/O error: {a}"),
            Error::Timeout => write!(f, "timed out waiting (for a connect: is the broker reachable and answering? \
         connect_timeout_set gives it longer)"),
            Error::Dns(a) => write!(f, "DNS lookup failed: {a} (check the host name; for connect_srv the domain's SRV records \
         and srv_nameserver_set)"),
            Error::WebSocket(a) => write!(f, "WebSocket error: {a}"),
            Error::Proxy(a) => write!(f, "proxy error: {a}"),
            Error::Persistence(a) => write!(f, "persistence error: {a}"),
        }
    }
}

/// The error's cause, for error chains (`anyhow`, `eyre`, `Error::source`): the I/O error of
/// `Io`, and the underlying error of a `Tls`, `Dns`, `WebSocket` or `Proxy` error when there
/// was one (a TLS library error, a resolver error, a socket error). Messages already include
/// the cause's text; the chain keeps it as a value.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Tls(d)
            | Error::Dns(d)
            | Error::WebSocket(d)
            | Error::Proxy(d)
            | Error::Persistence(d) => d.source(),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(e)
    }
}

/// The payload of the `Tls`, `Dns`, `WebSocket` and `Proxy` errors: the message (what
/// `Display` shows; `Detail` derefs to it and compares equal to strings) and, when there was
/// one, the error that caused it, which [`Error`]'s `source()` returns.
#[derive(Clone)]
pub struct Detail {
    message: String,
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Detail {
    /// A message without an underlying error.
    pub fn new(message: impl Into<String>) -> Detail {
        Detail {
            message: message.into(),
            source: None,
        }
    }

    /// A message and the error that caused it.
    pub fn caused(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Detail {
        Detail {
            message: message.into(),
            source: Some(std::sync::Arc::new(source)),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The underlying error, if any.
    pub fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.source {
            Some(e) => Some(&**e as &(dyn std::error::Error + 'static)),
            None => None,
        }
    }
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::fmt::Debug for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.message, f)
    }
}

impl std::ops::Deref for Detail {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

impl AsRef<str> for Detail {
    fn as_ref(&self) -> &str {
        &self.message
    }
}

impl From<String> for Detail {
    fn from(message: String) -> Detail {
        Detail::new(message)
    }
}

impl From<&str> for Detail {
    fn from(message: &str) -> Detail {
        Detail::new(message)
    }
}

impl PartialEq<str> for Detail {
    fn eq(&self, other: &str) -> bool {
        self.message == other
    }
}

impl PartialEq<&str> for Detail {
    fn eq(&self, other: &&str) -> bool {
        self.message == *other
    }
}

impl PartialEq<String> for Detail {
    fn eq(&self, other: &String) -> bool {
        &self.message == other
    }
}

impl Error {
    /// Paho's `MQTT_ERR_*` number for this error.
    pub fn code(&self) -> i32 {
        match self {
            Error::InvalidArgument(_) => MQTT_ERR_INVAL,
            Error::InvalidState(_) => MQTT_ERR_INVAL,
            Error::NoConnection => MQTT_ERR_NO_CONN,
            Error::Protocol(_) => MQTT_ERR_PROTOCOL,
            Error::ConnectionRefused(_) => MQTT_ERR_CONN_REFUSED,
            Error::ConnectionLost => MQTT_ERR_CONN_LOST,
            Error::Tls(_) => MQTT_ERR_TLS,
            Error::PayloadSize(_) => MQTT_ERR_PAYLOAD_SIZE,
            Error::NotSupported(_) => MQTT_ERR_NOT_SUPPORTED,
            Error::PublishRefused(_) => MQTT_ERR_UNKNOWN,
            Error::QueueSize => MQTT_ERR_QUEUE_SIZE,
            Error::Keepalive => MQTT_ERR_KEEPALIVE,
            Error::Io(_) => MQTT_ERR_ERRNO,
            Error::Timeout => MQTT_ERR_UNKNOWN,
            Error::Dns(_) => MQTT_ERR_ERRNO,
            Error::WebSocket(_) => MQTT_ERR_ERRNO,
            Error::Proxy(_) => MQTT_ERR_ERRNO,
            Error::Persistence(_) => MQTT_ERR_ERRNO,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidArgument(msg.into())
    }

    pub(crate) fn state(msg: impl Into<String>) -> Error {
        Error::InvalidState(msg.into())
    }
}

/// Paho's `error_string(mqtt_errno)`: a description of an `MQTT_ERR_*` number.
pub fn error_string(code: i32) -> &'static str {
    match code {
        MQTT_ERR_SUCCESS => "No error.",
        MQTT_ERR_NOMEM => "Out of memory.",
        MQTT_ERR_PROTOCOL => {
            "A network protocol error occurred when communicating with the broker."
        }
        MQTT_ERR_INVAL => "Invalid function arguments provided.",
        MQTT_ERR_NO_CONN => "The client is not currently connected.",
        MQTT_ERR_CONN_REFUSED => "The connection was refused.",
        MQTT_ERR_NOT_FOUND => "Message not found (internal error).",
        MQTT_ERR_CONN_LOST => "The connection was lost.",
        MQTT_ERR_TLS => "A TLS error occurred.",
        MQTT_ERR_PAYLOAD_SIZE => "Payload too large.",
        MQTT_ERR_NOT_SUPPORTED => "This feature is not supported.",
        MQTT_ERR_AUTH => "Authorisation failed.",
        MQTT_ERR_ACL_DENIED => "Access denied by ACL.",
        MQTT_ERR_UNKNOWN => "Unknown error.",
        MQTT_ERR_ERRNO => "Error defined by errno.",
        MQTT_ERR_QUEUE_SIZE => "Message queue full.",
        MQTT_ERR_KEEPALIVE => "Client or broker did not communicate in the keepalive interval.",
        _ => "Unknown error.",
    }
}

/// Paho's `connack_string(connack_code)`: a description of a CONNACK code. Accepts MQTT 3.x
/// return codes 0..5 and MQTT 5 reason codes (`ReasonCode::value()`).
pub fn connack_string(rc: u8) -> &'static str {
    match rc {
        0 => "Connection Accepted.",
        1 => "Connection Refused: unacceptable protocol version.",
        2 => "Connection Refused: identifier rejected.",
        3 => "Connection Refused: broker unavailable.",
        4 => "Connection Refused: bad user name or password.",
        5 => "Connection Refused: not authorised.",
        // The MQTT 5 CONNACK reason codes; anything else is unknown.
        0x80 => "Connection Refused: unspecified error.",
        0x81 => "Connection Refused: malformed packet.",
        0x82 => "Connection Refused: protocol error.",
        0x83 => "Connection Refused: implementation specific error.",
        0x84 => "Connection Refused: unsupported protocol version.",
        0x85 => "Connection Refused: client identifier not valid.",
        0x86 => "Connection Refused: bad user name or password.",
        0x87 => "Connection Refused: not authorised.",
        0x88 => "Connection Refused: server unavailable.",
        0x89 => "Connection Refused: server busy.",
        0x8A => "Connection Refused: banned.",
        0x8C => "Connection Refused: bad authentication method.",
        0x90 => "Connection Refused: topic name invalid.",
        0x95 => "Connection Refused: packet too large.",
        0x97 => "Connection Refused: quota exceeded.",
        0x99 => "Connection Refused: payload format invalid.",
        0x9A => "Connection Refused: retain not supported.",
        0x9B => "Connection Refused: QoS not supported.",
        0x9C => "Connection Refused: use another server.",
        0x9D => "Connection Refused: server moved.",
        0x9F => "Connection Refused: connection rate exceeded.",
        _ => "Connection Refused: unknown reason.",
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
