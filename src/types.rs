//! Small public value types shared by the codec, the session and the client.

use std::fmt;

/// The MQTT protocol version spoken on the wire (Paho's `MQTTv31`, `MQTTv311`, `MQTTv5`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// MQTT 3.1 (protocol name `MQIsdp`, level 3).
    V31,
    /// MQTT 3.1.1 (protocol name `MQTT`, level 4). The default, as in Paho.
    #[default]
    V311,
    /// MQTT 5.0 (protocol name `MQTT`, level 5).
    V5,
}

impl Protocol {
    /// The protocol level byte sent in CONNECT (3, 4 or 5).
    pub fn level(self) -> u8 {
        match self {
            Protocol::V31 => 3,
            Protocol::V311 => 4,
            Protocol::V5 => 5,
        }
    }

    /// True for MQTT 5.0.
    pub fn is_v5(self) -> bool {
        self == Protocol::V5
    }
}

/// How the client reaches the broker (Paho's `transport="tcp" | "websockets" | "unix"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Transport {
    /// Plain TCP (optionally wrapped in TLS). The default.
    #[default]
    Tcp,
    /// MQTT over WebSockets (`ws://` or, with TLS configured, `wss://`).
    WebSockets,
    /// A Unix domain socket; the host is the socket path and the port is ignored.
    Unix,
}

/// Quality of service of a message or subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    /// QoS 0: fire and forget.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: acknowledged with PUBACK, may be duplicated.
    AtLeastOnce = 1,
    /// QoS 2: four-way handshake, delivered exactly once.
    ExactlyOnce = 2,
}

impl TryFrom<u8> for QoS {
    type Error = crate::Error;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        match v {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            _ => Err(crate::Error::InvalidArgument(format!(
                "invalid QoS {v}: QoS must be 0, 1 or 2"
            ))),
        }
    }
}

impl From<QoS> for u8 {
    fn from(q: QoS) -> u8 {
        q as u8
    }
}

/// The clean-session / clean-start choice of `connect_with` (Paho's `clean_start`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CleanStart {
    /// Clean start on the first connection only, resume on reconnects
    /// (Paho `MQTT_CLEAN_START_FIRST_ONLY`, the default).
    #[default]
    FirstOnly,
    /// Clean start on every connection (`True`).
    Always,
    /// Never clean start (`False`).
    Never,
}

impl From<bool> for CleanStart {
    fn from(b: bool) -> Self {
        if b {
            CleanStart::Always
        } else {
            CleanStart::Never
        }
    }
}

/// Flags passed to `on_connect` (Paho's `ConnectFlags`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ConnectFlags {
    /// The broker resumed an existing session.
    pub session_present: bool,
}

/// Flags passed to `on_disconnect` (Paho's `DisconnectFlags`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DisconnectFlags {
    /// True when the broker sent an MQTT 5 DISCONNECT packet.
    pub is_disconnect_packet_from_server: bool,
}

/// Severity of a line given to `on_log` (Paho's `MQTT_LOG_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogLevel {
    /// `MQTT_LOG_DEBUG` (16): every packet sent and received.
    Debug,
    /// `MQTT_LOG_INFO` (1).
    Info,
    /// `MQTT_LOG_NOTICE` (2).
    Notice,
    /// `MQTT_LOG_WARNING` (4).
    Warning,
    /// `MQTT_LOG_ERR` (8).
    Error,
}

impl LogLevel {
    /// The `log` crate level this maps to (as Paho's `LOGGING_LEVEL` table).
    pub fn to_log_level(self) -> log::Level {
        match self {
            LogLevel::Debug => log::Level::Debug,
            LogLevel::Info | LogLevel::Notice => log::Level::Info,
            LogLevel::Warning => log::Level::Warn,
            LogLevel::Error => log::Level::Error,
        }
    }
}

/// Retain handling of an MQTT 5 subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// Send retained messages at the time of the subscribe (0).
    #[default]
    SendOnSubscribe = 0,
    /// Send retained messages only if the subscription did not exist (1).
    SendIfNewSubscription = 1,
    /// Do not send retained messages (2).
    DoNotSend = 2,
}

/// Options of one subscription (Paho's `SubscribeOptions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SubscribeOptions {
    /// Maximum QoS the broker may use for this subscription.
    pub qos: QoS,
    /// MQTT 5: do not receive messages this client publishes itself.
    pub no_local: bool,
    /// MQTT 5: keep the retain flag as published.
    pub retain_as_published: bool,
    /// MQTT 5: when to send retained messages.
    pub retain_handling: RetainHandling,
}

impl SubscribeOptions {
    /// Options with the given QoS and every other field at its default.
    pub fn qos(qos: QoS) -> Self {
        SubscribeOptions {
            qos,
            ..Default::default()
        }
    }

    /// The subscription options byte of SUBSCRIBE (for MQTT 3.x only the QoS bits are used).
    pub fn to_byte(self) -> u8 {
        (self.qos as u8)
            | (u8::from(self.no_local) << 2)
            | (u8::from(self.retain_as_published) << 3)
            | ((self.retain_handling as u8) << 4)
    }
}

/// An MQTT 5 reason code (MQTT 3.x return codes are mapped to these values).
///
/// `Display` gives the spec's name, e.g. `"Success"` or `"Not authorized"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ReasonCode(pub u8);

macro_rules! reason_codes {
    ($( $(#[$m:meta])* $name:ident = $val:expr ),* $(,)?) => {
        impl ReasonCode {
            $( $(#[$m])* pub const $name: ReasonCode = ReasonCode($val); )*
        }
    };
}

reason_codes! {
    /// 0x00 Success (CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, AUTH).
    SUCCESS = 0x00,
    /// 0x00 Normal disconnection (DISCONNECT).
    NORMAL_DISCONNECTION = 0x00,
    /// 0x00 Granted QoS 0 (SUBACK).
    GRANTED_QOS_0 = 0x00,
    /// 0x01 Granted QoS 1 (SUBACK).
    GRANTED_QOS_1 = 0x01,
    /// 0x02 Granted QoS 2 (SUBACK).
    GRANTED_QOS_2 = 0x02,
    /// 0x04 Disconnect with Will Message (DISCONNECT).
    DISCONNECT_WITH_WILL_MESSAGE = 0x04,
    /// 0x10 No matching subscribers (PUBACK, PUBREC).
    NO_MATCHING_SUBSCRIBERS = 0x10,
    /// 0x11 No subscription existed (UNSUBACK).
    NO_SUBSCRIPTION_EXISTED = 0x11,
    /// 0x18 Continue authentication (AUTH).
    CONTINUE_AUTHENTICATION = 0x18,
    /// 0x19 Re-authenticate (AUTH).
    RE_AUTHENTICATE = 0x19,
    /// 0x80 Unspecified error.
    UNSPECIFIED_ERROR = 0x80,
    /// 0x81 Malformed Packet.
    MALFORMED_PACKET = 0x81,
    /// 0x82 Protocol Error.
    PROTOCOL_ERROR = 0x82,
    /// 0x83 Implementation specific error.
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83,
    /// 0x84 Unsupported Protocol Version.
    UNSUPPORTED_PROTOCOL_VERSION = 0x84,
    /// 0x85 Client Identifier not valid.
    CLIENT_IDENTIFIER_NOT_VALID = 0x85,
    /// 0x86 Bad User Name or Password.
    BAD_USER_NAME_OR_PASSWORD = 0x86,
    /// 0x87 Not authorized.
    NOT_AUTHORIZED = 0x87,
    /// 0x88 Server unavailable.
    SERVER_UNAVAILABLE = 0x88,
    /// 0x89 Server busy.
    SERVER_BUSY = 0x89,
    /// 0x8A Banned.
    BANNED = 0x8A,
    /// 0x8B Server shutting down.
    SERVER_SHUTTING_DOWN = 0x8B,
    /// 0x8C Bad authentication method.
    BAD_AUTHENTICATION_METHOD = 0x8C,
    /// 0x8D Keep Alive timeout.
    KEEP_ALIVE_TIMEOUT = 0x8D,
    /// 0x8E Session taken over.
    SESSION_TAKEN_OVER = 0x8E,
    /// 0x8F Topic Filter invalid.
    TOPIC_FILTER_INVALID = 0x8F,
    /// 0x90 Topic Name invalid.
    TOPIC_NAME_INVALID = 0x90,
    /// 0x91 Packet Identifier in use.
    PACKET_IDENTIFIER_IN_USE = 0x91,
    /// 0x92 Packet Identifier not found.
    PACKET_IDENTIFIER_NOT_FOUND = 0x92,
    /// 0x93 Receive Maximum exceeded.
    RECEIVE_MAXIMUM_EXCEEDED = 0x93,
    /// 0x94 Topic Alias invalid.
    TOPIC_ALIAS_INVALID = 0x94,
    /// 0x95 Packet too large.
    PACKET_TOO_LARGE = 0x95,
    /// 0x96 Message rate too high.
    MESSAGE_RATE_TOO_HIGH = 0x96,
    /// 0x97 Quota exceeded.
    QUOTA_EXCEEDED = 0x97,
    /// 0x98 Administrative action.
    ADMINISTRATIVE_ACTION = 0x98,
    /// 0x99 Payload format invalid.
    PAYLOAD_FORMAT_INVALID = 0x99,
    /// 0x9A Retain not supported.
    RETAIN_NOT_SUPPORTED = 0x9A,
    /// 0x9B QoS not supported.
    QOS_NOT_SUPPORTED = 0x9B,
    /// 0x9C Use another server.
    USE_ANOTHER_SERVER = 0x9C,
    /// 0x9D Server moved.
    SERVER_MOVED = 0x9D,
    /// 0x9E Shared Subscriptions not supported.
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E,
    /// 0x9F Connection rate exceeded.
    CONNECTION_RATE_EXCEEDED = 0x9F,
    /// 0xA0 Maximum connect time.
    MAXIMUM_CONNECT_TIME = 0xA0,
    /// 0xA1 Subscription Identifiers not supported.
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1,
    /// 0xA2 Wildcard Subscriptions not supported.
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2,
}

impl ReasonCode {
    /// The numeric value.
    pub fn value(self) -> u8 {
        self.0
    }

    /// True for failure codes (0x80 and above).
    pub fn is_failure(self) -> bool {
        self.0 >= 0x80
    }

    /// The spec's name of this code, or `"Unknown reason code"`.
    pub fn name(self) -> &'static str {
        match self.0 {
            0x00 => "Success",
            0x01 => "Granted QoS 1",
            0x02 => "Granted QoS 2",
            0x04 => "Disconnect with will message",
            0x10 => "No matching subscribers",
            0x11 => "No subscription existed",
            0x18 => "Continue authentication",
            0x19 => "Re-authenticate",
            0x80 => "Unspecified error",
            0x81 => "Malformed packet",
            0x82 => "Protocol error",
            0x83 => "Implementation specific error",
            0x84 => "Unsupported protocol version",
            0x85 => "Client identifier not valid",
            0x86 => "Bad user name or password",
            0x87 => "Not authorized",
            0x88 => "Server unavailable",
            0x89 => "Server busy",
            0x8A => "Banned",
            0x8B => "Server shutting down",
            0x8C => "Bad authentication method",
            0x8D => "Keep alive timeout",
            0x8E => "Session taken over",
            0x8F => "Topic filter invalid",
            0x90 => "Topic name invalid",
            0x91 => "Packet identifier in use",
            0x92 => "Packet identifier not found",
            0x93 => "Receive maximum exceeded",
            0x94 => "Topic alias invalid",
            0x95 => "Packet too large",
            0x96 => "Message rate too high",
            0x97 => "Quota exceeded",
            0x98 => "Administrative action",
            0x99 => "Payload format invalid",
            0x9A => "Retain not supported",
            0x9B => "QoS not supported",
            0x9C => "Use another server",
            0x9D => "Server moved",
            0x9E => "Shared subscriptions not supported",
            0x9F => "Connection rate exceeded",
            0xA0 => "Maximum connect time",
            0xA1 => "Subscription identifiers not supported",
            0xA2 => "Wildcard subscriptions not supported",
            _ => "Unknown reason code",
        }
    }

    /// Maps an MQTT 3.x CONNACK return code (0..5) to its MQTT 5 reason code, as Paho's
    /// `convert_connack_rc_to_reason_code`.
    pub fn from_connack_v3(rc: u8) -> ReasonCode {
        match rc {
            0 => ReasonCode::SUCCESS,
            1 => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            2 => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            3 => ReasonCode::SERVER_UNAVAILABLE,
            4 => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            5 => ReasonCode::NOT_AUTHORIZED,
            _ => ReasonCode::UNSPECIFIED_ERROR,
        }
    }
}

impl PartialEq<u8> for ReasonCode {
    fn eq(&self, other: &u8) -> bool {
        self.0 == *other
    }
}

impl From<u8> for ReasonCode {
    fn from(v: u8) -> Self {
        ReasonCode(v)
    }
}

impl From<ReasonCode> for u8 {
    fn from(r: ReasonCode) -> u8 {
        r.0
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// MQTT 5 properties: one field per property of the spec. Empty for MQTT 3.x.
///
/// A property that is not allowed in the packet it is sent with is refused with
/// `Error::InvalidArgument` when that packet is sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties {
    /// 0x01 Payload Format Indicator (PUBLISH, will).
    pub payload_format_indicator: Option<u8>,
    /// 0x02 Message Expiry Interval in seconds (PUBLISH, will).
    pub message_expiry_interval: Option<u32>,
    /// 0x03 Content Type (PUBLISH, will).
    pub content_type: Option<String>,
    /// 0x08 Response Topic (PUBLISH, will).
    pub response_topic: Option<String>,
    /// 0x09 Correlation Data (PUBLISH, will).
    pub correlation_data: Option<Vec<u8>>,
    /// 0x0B Subscription Identifier(s): one in SUBSCRIBE, any number in a received PUBLISH.
    pub subscription_identifiers: Vec<u32>,
    /// 0x11 Session Expiry Interval in seconds (CONNECT, CONNACK, DISCONNECT).
    pub session_expiry_interval: Option<u32>,
    /// 0x12 Assigned Client Identifier (CONNACK).
    pub assigned_client_identifier: Option<String>,
    /// 0x13 Server Keep Alive in seconds (CONNACK).
    pub server_keep_alive: Option<u16>,
    /// 0x15 Authentication Method (CONNECT, CONNACK, AUTH).
    pub authentication_method: Option<String>,
    /// 0x16 Authentication Data (CONNECT, CONNACK, AUTH).
    pub authentication_data: Option<Vec<u8>>,
    /// 0x17 Request Problem Information (CONNECT).
    pub request_problem_information: Option<u8>,
    /// 0x18 Will Delay Interval in seconds (will).
    pub will_delay_interval: Option<u32>,
    /// 0x19 Request Response Information (CONNECT).
    pub request_response_information: Option<u8>,
    /// 0x1A Response Information (CONNACK).
    pub response_information: Option<String>,
    /// 0x1C Server Reference (CONNACK, DISCONNECT).
    pub server_reference: Option<String>,
    /// 0x1F Reason String (acks, CONNACK, DISCONNECT, AUTH).
    pub reason_string: Option<String>,
    /// 0x21 Receive Maximum (CONNECT, CONNACK).
    pub receive_maximum: Option<u16>,
    /// 0x22 Topic Alias Maximum (CONNECT, CONNACK).
    pub topic_alias_maximum: Option<u16>,
    /// 0x23 Topic Alias (PUBLISH).
    pub topic_alias: Option<u16>,
    /// 0x24 Maximum QoS (CONNACK).
    pub maximum_qos: Option<u8>,
    /// 0x25 Retain Available (CONNACK).
    pub retain_available: Option<u8>,
    /// 0x26 User Property pairs, in order (every packet with properties).
    pub user_properties: Vec<(String, String)>,
    /// 0x27 Maximum Packet Size (CONNECT, CONNACK).
    pub maximum_packet_size: Option<u32>,
    /// 0x28 Wildcard Subscription Available (CONNACK).
    pub wildcard_subscription_available: Option<u8>,
    /// 0x29 Subscription Identifier Available (CONNACK).
    pub subscription_identifier_available: Option<u8>,
    /// 0x2A Shared Subscription Available (CONNACK).
    pub shared_subscription_available: Option<u8>,
}

impl Properties {
    /// True when no property is set.
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }
}

/// Counters for monitoring ([`Client::stats`](crate::Client::stats)), since the client was
/// made (`reinitialise` starts them again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// PUBLISH packets sent, by QoS (index 0, 1, 2); resends after a reconnect not counted.
    pub messages_sent: [u64; 3],
    /// PUBLISH packets received, by QoS (index 0, 1, 2), duplicates included.
    pub messages_received: [u64; 3],
    /// Connections that reached a successful CONNACK.
    pub connections: u64,
    /// Bytes written to the socket (all packets, MQTT framing included).
    pub bytes_sent: u64,
    /// Bytes of whole packets received from the broker.
    pub bytes_received: u64,
}

impl Stats {
    /// Connections after the first: how often the client reconnected.
    pub fn reconnects(&self) -> u64 {
        self.connections.saturating_sub(1)
    }
}

/// What the application answers to an MQTT 5 AUTH packet from the broker (enhanced
/// authentication, MQTT 5 §4.12): the return value of the [`Client::on_auth`] callback.
///
/// Paho Python has no such callback; see the porting guide's
/// [enhanced authentication section](crate::docs::porting).
///
/// [`Client::on_auth`]: crate::Client::on_auth
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthReply {
    /// Answer with AUTH 0x18 (Continue authentication) carrying these Authentication Data;
    /// the client adds the Authentication Method of the connection.
    Continue(Vec<u8>),
    /// Send nothing: the exchange is complete (the broker's AUTH 0x00 after a
    /// re-authentication), or the application answers later with
    /// [`Client::auth`](crate::Client::auth).
    Done,
    /// Give up: the client sends DISCONNECT with this reason code (for example
    /// [`ReasonCode::NOT_AUTHORIZED`] when the broker's proof does not verify) and stops,
    /// as [`Client::disconnect_with`](crate::Client::disconnect_with) does.
    Abort(ReasonCode),
}
