//! The MQTT codec: bytes <-> packets for MQTT 3.1, 3.1.1 and 5.0 in one packet model.
//!
//! No I/O and no clock. Decoding partial input returns `Ok(None)` and consumes nothing; the
//! remaining length is checked against the maximum packet size before anything else, and no
//! input can make the decoder panic (it is fuzzed).
//!
//! `mod.rs` holds the packet model; `packet.rs` the encode and decode dispatch side by side
//! (fixed header, size limit, one arm per packet type); one file per packet family
//! (`connect.rs`, `publish.rs`, `subscribe.rs`, `ack.rs`) with its encoder and decoder;
//! `properties.rs`; `wire.rs` for integers, strings and the bounds-checked reader.

use crate::types::{Protocol, QoS, ReasonCode, SubscribeOptions};
use crate::Properties;

mod ack;
mod connect;
mod error;
mod packet;
mod properties;
mod publish;
mod subscribe;
#[cfg(test)]
mod tests;
pub(crate) mod wire;

pub use error::DecodeError;
pub use packet::{decode, parse_fixed_header, FixedHeader};
pub use properties::PropertyContext;
pub(crate) use publish::{encode_aliased, encoded_topic};
pub use publish::{encode_publish, set_dup};

/// The largest remaining length MQTT can express (268,435,455 bytes).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// The will message carried by CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastWill {
    /// Will topic (a topic name, no wildcards).
    pub topic: String,
    /// Will payload.
    pub payload: Vec<u8>,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
    /// MQTT 5 will properties.
    pub properties: Properties,
}

/// CONNECT (client to server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// Protocol version: selects `MQIsdp`/3, `MQTT`/4 or `MQTT`/5.
    pub protocol: Protocol,
    /// Clean session (3.x) / clean start (5).
    pub clean_start: bool,
    /// Keepalive in seconds.
    pub keep_alive: u16,
    /// Client identifier (may be empty).
    pub client_id: String,
    /// Will message.
    pub will: Option<LastWill>,
    /// User name.
    pub username: Option<String>,
    /// Password (binary data in MQTT 3.1.1 and 5).
    pub password: Option<Vec<u8>>,
    /// MQTT 5 CONNECT properties.
    pub properties: Properties,
    /// Bridge mode: bit 7 of the protocol level set, so a broker that supports it does not
    /// loop messages back (Paho's and mosquitto's `try_private`).
    pub bridge: bool,
}

/// CONNACK (server to client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present flag.
    pub session_present: bool,
    /// The raw return code: MQTT 3.x return code (0..5) or MQTT 5 reason code.
    pub code: u8,
    /// MQTT 5 CONNACK properties.
    pub properties: Properties,
}

/// PUBLISH (both directions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// DUP flag.
    pub dup: bool,
    /// QoS.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name (may be empty in MQTT 5 when a Topic Alias is given).
    pub topic: String,
    /// Packet identifier (0 for QoS 0, where it is not on the wire).
    pub pkid: u16,
    /// MQTT 5 PUBLISH properties.
    pub properties: Properties,
    /// Application payload.
    pub payload: Vec<u8>,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share this shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Packet identifier.
    pub pkid: u16,
    /// MQTT 5 reason code (`SUCCESS` for MQTT 3.x and when omitted on the wire).
    pub reason: ReasonCode,
    /// MQTT 5 properties.
    pub properties: Properties,
}

/// SUBSCRIBE (client to server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier.
    pub pkid: u16,
    /// Topic filters with their options.
    pub filters: Vec<(String, SubscribeOptions)>,
    /// MQTT 5 properties (Subscription Identifier, User Property).
    pub properties: Properties,
}

/// SUBACK (server to client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier.
    pub pkid: u16,
    /// One code per filter: granted QoS 0/1/2 or a failure (0x80 in MQTT 3.x).
    pub reasons: Vec<ReasonCode>,
    /// MQTT 5 properties.
    pub properties: Properties,
}

/// UNSUBSCRIBE (client to server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier.
    pub pkid: u16,
    /// Topic filters.
    pub filters: Vec<String>,
    /// MQTT 5 properties (User Property).
    pub properties: Properties,
}

/// UNSUBACK (server to client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier.
    pub pkid: u16,
    /// MQTT 5: one reason code per filter. Empty for MQTT 3.x.
    pub reasons: Vec<ReasonCode>,
    /// MQTT 5 properties.
    pub properties: Properties,
}

/// DISCONNECT (both directions in MQTT 5).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// Reason code (MQTT 5; `NORMAL_DISCONNECTION` for 3.x).
    pub reason: ReasonCode,
    /// MQTT 5 properties.
    pub properties: Properties,
}

/// AUTH (MQTT 5 only, both directions).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Auth {
    /// Reason code.
    pub reason: ReasonCode,
    /// Properties (Authentication Method/Data, Reason String, User Property).
    pub properties: Properties,
}

/// One MQTT control packet of any of the 15 types.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // Properties are large; packets are short-lived.
pub enum Packet {
    /// 1 CONNECT
    Connect(Connect),
    /// 2 CONNACK
    ConnAck(ConnAck),
    /// 3 PUBLISH
    Publish(Publish),
    /// 4 PUBACK
    PubAck(Ack),
    /// 5 PUBREC
    PubRec(Ack),
    /// 6 PUBREL
    PubRel(Ack),
    /// 7 PUBCOMP
    PubComp(Ack),
    /// 8 SUBSCRIBE
    Subscribe(Subscribe),
    /// 9 SUBACK
    SubAck(SubAck),
    /// 10 UNSUBSCRIBE
    Unsubscribe(Unsubscribe),
    /// 11 UNSUBACK
    UnsubAck(UnsubAck),
    /// 12 PINGREQ
    PingReq,
    /// 13 PINGRESP
    PingResp,
    /// 14 DISCONNECT
    Disconnect(Disconnect),
    /// 15 AUTH (MQTT 5)
    Auth(Auth),
}
