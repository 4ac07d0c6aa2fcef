//! MQTT 5 properties: which property is allowed in which packet, encoding and decoding.

use super::error::DecodeError;
use super::wire::{self, Reader};
use crate::Properties;

/// The packet (or will) a property block belongs to; selects the spec's table of allowed
/// properties (MQTT 5.0 section 2.2.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PropertyContext {
    /// CONNECT properties.
    Connect,
    /// Will properties in the CONNECT payload.
    Will,
    /// CONNACK properties.
    ConnAck,
    /// PUBLISH properties.
    Publish,
    /// PUBACK properties.
    PubAck,
    /// PUBREC properties.
    PubRec,
    /// PUBREL properties.
    PubRel,
    /// PUBCOMP properties.
    PubComp,
    /// SUBSCRIBE properties.
    Subscribe,
    /// SUBACK properties.
    SubAck,
    /// UNSUBSCRIBE properties.
    Unsubscribe,
    /// UNSUBACK properties.
    UnsubAck,
    /// DISCONNECT properties.
    Disconnect,
    /// AUTH properties.
    Auth,
}

impl PropertyContext {
    /// The packet's name as used in messages ("CONNECT", "will", ...).
    pub fn name(self) -> &'static str {
        match self {
            PropertyContext::Connect => "CONNECT",
            PropertyContext::Will => "will",
            PropertyContext::ConnAck => "CONNACK",
            PropertyContext::Publish => "PUBLISH",
            PropertyContext::PubAck => "PUBACK",
            PropertyContext::PubRec => "PUBREC",
            PropertyContext::PubRel => "PUBREL",
            PropertyContext::PubComp => "PUBCOMP",
            PropertyContext::Subscribe => "SUBSCRIBE",
            PropertyContext::SubAck => "SUBACK",
            PropertyContext::Unsubscribe => "UNSUBSCRIBE",
            PropertyContext::UnsubAck => "UNSUBACK",
            PropertyContext::Disconnect => "DISCONNECT",
            PropertyContext::Auth => "AUTH",
        }
    }

    /// True when the property with identifier `id` may appear in this context.
    pub fn allows(self, id: u8) -> bool {
        use PropertyContext::*;
        match id {
            0x01 | 0x02 | 0x03 | 0x08 | 0x09 => matches!(self, Publish | Will),
            0x0B => matches!(self, Publish | Subscribe),
            0x11 => matches!(self, Connect | ConnAck | Disconnect),
            0x12 | 0x13 | 0x1A | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => self == ConnAck,
            0x15 | 0x16 => matches!(self, Connect | ConnAck | Auth),
            0x17 | 0x19 => self == Connect,
            0x18 => self == Will,
            0x1C => matches!(self, ConnAck | Disconnect),
            0x1F => matches!(
                self,
                ConnAck
                    | PubAck
                    | PubRec
                    | PubRel
                    | PubComp
                    | SubAck
                    | UnsubAck
                    | Disconnect
                    | Auth
            ),
            0x21 | 0x22 | 0x27 => matches!(self, Connect | ConnAck),
            0x23 => self == Publish,
            0x26 => true,
            _ => false,
        }
    }
}

/// The spec's name of property `id`.
pub(crate) fn property_name(id: u8) -> &'static str {
    match id {
        0x01 => "Payload Format Indicator",
        0x02 => "Message Expiry Interval",
        0x03 => "Content Type",
        0x08 => "Response Topic",
        0x09 => "Correlation Data",
        0x0B => "Subscription Identifier",
        0x11 => "Session Expiry Interval",
        0x12 => "Assigned Client Identifier",
        0x13 => "Server Keep Alive",
        0x15 => "Authentication Method",
        0x16 => "Authentication Data",
        0x17 => "Request Problem Information",
        0x18 => "Will Delay Interval",
        0x19 => "Request Response Information",
        0x1A => "Response Information",
        0x1C => "Server Reference",
        0x1F => "Reason String",
        0x21 => "Receive Maximum",
        0x22 => "Topic Alias Maximum",
        0x23 => "Topic Alias",
        0x24 => "Maximum QoS",
        0x25 => "Retain Available",
        0x26 => "User Property",
        0x27 => "Maximum Packet Size",
        0x28 => "Wildcard Subscription Available",
        0x29 => "Subscription Identifier Available",
        0x2A => "Shared Subscription Available",
        _ => "unknown property",
    }
}

/// One property value, borrowed from a `Properties`.
enum Val<'a> {
    Byte(u8),
    U16(u16),
    U32(u32),
    Var(u32),
    Str(&'a str),
    Bin(&'a [u8]),
    Pair(&'a str, &'a str),
}

/// Calls `f` for every property set in `p`, in ascending identifier order (user properties
/// and subscription identifiers in their order). Stops at the first error.
fn visit<'a>(
    p: &'a Properties,
    mut f: impl FnMut(u8, Val<'a>) -> crate::Result<()>,
) -> crate::Result<()> {
    if let Some(v) = p.payload_format_indicator {
        f(0x01, Val::Byte(v))?;
    }
    if let Some(v) = p.message_expiry_interval {
        f(0x02, Val::U32(v))?;
    }
    if let Some(v) = &p.content_type {
        f(0x03, Val::Str(v))?;
    }
    if let Some(v) = &p.response_topic {
        f(0x08, Val::Str(v))?;
    }
    if let Some(v) = &p.correlation_data {
        f(0x09, Val::Bin(v))?;
    }
    for &v in &p.subscription_identifiers {
        f(0x0B, Val::Var(v))?;
    }
    if let Some(v) = p.session_expiry_interval {
        f(0x11, Val::U32(v))?;
    }
    if let Some(v) = &p.assigned_client_identifier {
        f(0x12, Val::Str(v))?;
    }
    if let Some(v) = p.server_keep_alive {
        f(0x13, Val::U16(v))?;
    }
    if let Some(v) = &p.authentication_method {
        f(0x15, Val::Str(v))?;
    }
    if let Some(v) = &p.authentication_data {
        f(0x16, Val::Bin(v))?;
    }
    if let Some(v) = p.request_problem_information {
        f(0x17, Val::Byte(v))?;
    }
    if let Some(v) = p.will_delay_interval {
        f(0x18, Val::U32(v))?;
    }
    if let Some(v) = p.request_response_information {
        f(0x19, Val::Byte(v))?;
    }
    if let Some(v) = &p.response_information {
        f(0x1A, Val::Str(v))?;
    }
    if let Some(v) = &p.server_reference {
        f(0x1C, Val::Str(v))?;
    }
    if let Some(v) = &p.reason_string {
        f(0x1F, Val::Str(v))?;
    }
    if let Some(v) = p.receive_maximum {
        f(0x21, Val::U16(v))?;
    }
    if let Some(v) = p.topic_alias_maximum {
        f(0x22, Val::U16(v))?;
    }
    if let Some(v) = p.topic_alias {
        f(0x23, Val::U16(v))?;
    }
    if let Some(v) = p.maximum_qos {
        f(0x24, Val::Byte(v))?;
    }
    if let Some(v) = p.retain_available {
        f(0x25, Val::Byte(v))?;
    }
    for (k, v) in &p.user_properties {
        f(0x26, Val::Pair(k, v))?;
    }
    if let Some(v) = p.maximum_packet_size {
        f(0x27, Val::U32(v))?;
    }
    if let Some(v) = p.wildcard_subscription_available {
        f(0x28, Val::Byte(v))?;
    }
    if let Some(v) = p.subscription_identifier_available {
        f(0x29, Val::Byte(v))?;
    }
    if let Some(v) = p.shared_subscription_available {
        f(0x2A, Val::Byte(v))?;
    }
    Ok(())
}

fn bad(id: u8, ctx: PropertyContext, why: &str) -> crate::Error {
    crate::Error::InvalidArgument(format!(
        "property {} (0x{id:02X}) in {}: {why}",
        property_name(id),
        ctx.name()
    ))
}

/// Validates `p` for `ctx` and returns the length of the encoded property block WITHOUT its
/// own length prefix.
pub(crate) fn encoded_len(p: &Properties, ctx: PropertyContext) -> crate::Result<usize> {
    let mut len = 0usize;
    let mut sub_ids = 0usize;
    visit(p, |id, v| {
        if !ctx.allows(id) {
            return Err(bad(id, ctx, "not allowed in this packet"));
        }
        let n = match v {
            Val::Byte(b) => {
                if b > 1 {
                    return Err(bad(id, ctx, "the value must be 0 or 1"));
                }
                1
            }
            Val::U16(x) => {
                if x == 0 && matches!(id, 0x21 | 0x23) {
                    return Err(bad(id, ctx, "the value must not be 0"));
                }
                2
            }
            Val::U32(x) => {
                if x == 0 && id == 0x27 {
                    return Err(bad(id, ctx, "the value must not be 0"));
                }
                4
            }
            Val::Var(x) => {
                if x == 0 || x as usize > wire::MAX_VARINT {
                    return Err(bad(id, ctx, "the value must be in 1..=268435455"));
                }
                sub_ids += 1;
                if ctx != PropertyContext::Publish && sub_ids > 1 {
                    return Err(bad(id, ctx, "only one is allowed"));
                }
                wire::varint_len(x as usize)
            }
            Val::Str(s) => {
                wire::check_str(s, property_name(id))?;
                2 + s.len()
            }
            Val::Bin(b) => {
                wire::check_binary(b, property_name(id))?;
                2 + b.len()
            }
            Val::Pair(k, v) => {
                wire::check_str(k, "User Property name")?;
                wire::check_str(v, "User Property value")?;
                4 + k.len() + v.len()
            }
        };
        len = len.saturating_add(1 + n);
        Ok(())
    })?;
    Ok(len)
}

/// Appends the property block (length prefix and properties). `body_len` comes from
/// [`encoded_len`], which must have succeeded for `p`.
pub(crate) fn write(out: &mut Vec<u8>, p: &Properties, body_len: usize) {
    wire::write_varint(out, body_len);
    let _ = visit(p, |id, v| {
        out.push(id);
        match v {
            Val::Byte(b) => out.push(b),
            Val::U16(x) => wire::write_u16(out, x),
            Val::U32(x) => wire::write_u32(out, x),
            Val::Var(x) => wire::write_varint(out, x as usize),
            Val::Str(s) => wire::write_str(out, s),
            Val::Bin(b) => wire::write_binary(out, b),
            Val::Pair(k, v) => {
                wire::write_str(out, k);
                wire::write_str(out, v);
            }
        }
        Ok(())
    });
}

/// Total encoded size of the property block including its length prefix.
pub(crate) fn block_len(body_len: usize) -> usize {
    wire::varint_len(body_len) + body_len
}

/// Validates and appends the property block of `p` for `ctx`.
pub(crate) fn write_props(
    out: &mut Vec<u8>,
    p: &Properties,
    ctx: PropertyContext,
) -> crate::Result<()> {
    let len = encoded_len(p, ctx)?;
    if len > wire::MAX_VARINT {
        return Err(crate::Error::PayloadSize(format!(
            "the {} properties are {len} bytes long",
            ctx.name()
        )));
    }
    write(out, p, len);
    Ok(())
}

fn set_once<T>(slot: &mut Option<T>, v: T, id: u8) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::protocol(format!(
            "property {} (0x{id:02X}) included more than once",
            property_name(id)
        )));
    }
    *slot = Some(v);
    Ok(())
}

/// Reads a property block (length prefix and properties) for `ctx`.
///
/// Malformed: a length running past the packet, an unknown identifier, a truncated value or
/// a bad string. Protocol error: a property not allowed in `ctx`, a duplicate of a
/// single-valued property, or an out-of-range value.
pub(crate) fn read(r: &mut Reader<'_>, ctx: PropertyContext) -> Result<Properties, DecodeError> {
    let len = r.varint("property length")?;
    if len > r.remaining() {
        return Err(DecodeError::malformed(format!(
            "{} property length {len} runs past the end of the packet",
            ctx.name()
        )));
    }
    let mut pr = Reader::new(r.take(len, "properties")?);
    let mut p = Properties::default();
    // What the user properties may hold once decoded: each pair costs two `String`s (48
    // bytes) plus its text, from as little as 5 bytes on the wire. A packet of empty pairs
    // would inflate about tenfold; it is refused past INFLATION times its wire size.
    let user_budget = len
        .saturating_mul(INFLATION)
        .saturating_add(INFLATION_SLACK);
    let mut user_bytes = 0usize;
    // Hash set, not a scan of the Vec: a hostile PUBLISH may carry millions of identifiers.
    let mut seen_sub_ids = std::collections::HashSet::new();
    while !pr.is_empty() {
        let raw_id = pr.varint("property identifier")?;
        let id = match u8::try_from(raw_id) {
            Ok(id) if property_name(id) != "unknown property" => id,
            _ => {
                return Err(DecodeError::malformed(format!(
                    "unknown property identifier 0x{raw_id:02X} in {}",
                    ctx.name()
                )))
            }
        };
        let name = property_name(id);
        // Read the value first: a truncated value is malformed whatever the property.
        match id {
            0x01 => set_once(&mut p.payload_format_indicator, pr.u8(name)?, id)?,
            0x02 => set_once(&mut p.message_expiry_interval, pr.u32(name)?, id)?,
            0x03 => set_once(&mut p.content_type, pr.string(name)?, id)?,
            0x08 => set_once(&mut p.response_topic, pr.string(name)?, id)?,
            0x09 => set_once(&mut p.correlation_data, pr.binary(name)?.to_vec(), id)?,
            0x0B => {
                let v = pr.varint(name)?;
                // v <= 268435455 always holds for a 4-byte varint.
                let v = v as u32;
                // PUBLISH may carry several, one per matching subscription; the same value
                // twice is refused, as libmosquitto does (Mosquitto conformance case
                // "2*subscription-identifier=1").
                if (ctx != PropertyContext::Publish && !p.subscription_identifiers.is_empty())
                    || !seen_sub_ids.insert(v)
                {
                    return Err(DecodeError::protocol(
                        "property Subscription Identifier (0x0B) included more than once",
                    ));
                }
                p.subscription_identifiers.push(v);
            }
            0x11 => set_once(&mut p.session_expiry_interval, pr.u32(name)?, id)?,
            0x12 => set_once(&mut p.assigned_client_identifier, pr.string(name)?, id)?,
            0x13 => set_once(&mut p.server_keep_alive, pr.u16(name)?, id)?,
            0x15 => set_once(&mut p.authentication_method, pr.string(name)?, id)?,
            0x16 => set_once(&mut p.authentication_data, pr.binary(name)?.to_vec(), id)?,
            0x17 => set_once(&mut p.request_problem_information, pr.u8(name)?, id)?,
            0x18 => set_once(&mut p.will_delay_interval, pr.u32(name)?, id)?,
            0x19 => set_once(&mut p.request_response_information, pr.u8(name)?, id)?,
            0x1A => set_once(&mut p.response_information, pr.string(name)?, id)?,
            0x1C => set_once(&mut p.server_reference, pr.string(name)?, id)?,
            0x1F => set_once(&mut p.reason_string, pr.string(name)?, id)?,
            0x21 => set_once(&mut p.receive_maximum, pr.u16(name)?, id)?,
            0x22 => set_once(&mut p.topic_alias_maximum, pr.u16(name)?, id)?,
            0x23 => set_once(&mut p.topic_alias, pr.u16(name)?, id)?,
            0x24 => set_once(&mut p.maximum_qos, pr.u8(name)?, id)?,
            0x25 => set_once(&mut p.retain_available, pr.u8(name)?, id)?,
            0x26 => {
                let k = pr.string("User Property name")?;
                let v = pr.string("User Property value")?;
                user_bytes += std::mem::size_of::<(String, String)>() + k.len() + v.len();
                if user_bytes > user_budget {
                    return Err(DecodeError::malformed(format!(
                        "{} user properties would take more than {INFLATION} times their \
                         {len} bytes on the wire once decoded",
                        p.user_properties.len() + 1
                    )));
                }
                p.user_properties.push((k, v));
            }
            0x27 => set_once(&mut p.maximum_packet_size, pr.u32(name)?, id)?,
            0x28 => set_once(&mut p.wildcard_subscription_available, pr.u8(name)?, id)?,
            0x29 => set_once(&mut p.subscription_identifier_available, pr.u8(name)?, id)?,
            0x2A => set_once(&mut p.shared_subscription_available, pr.u8(name)?, id)?,
            _ => {
                return Err(DecodeError::malformed(format!(
                    "unknown property identifier 0x{id:02X}"
                )))
            }
        }
        if !ctx.allows(id) {
            return Err(DecodeError::protocol(format!(
                "property {name} (0x{id:02X}) is not allowed in {}",
                ctx.name()
            )));
        }
    }
    check_values(&p)?;
    p.user_properties.shrink_to_fit();
    p.subscription_identifiers.shrink_to_fit();
    Ok(p)
}

/// Decoded user properties may take at most this many times the bytes of their property
/// block on the wire (plus [`INFLATION_SLACK`]).
pub(crate) const INFLATION: usize = 8;
/// Bytes every property block may hold decoded whatever its size on the wire.
pub(crate) const INFLATION_SLACK: usize = 4096;

fn check_values(p: &Properties) -> Result<(), DecodeError> {
    let flags = [
        (p.payload_format_indicator, 0x01),
        (p.request_problem_information, 0x17),
        (p.request_response_information, 0x19),
        (p.maximum_qos, 0x24),
        (p.retain_available, 0x25),
        (p.wildcard_subscription_available, 0x28),
        (p.subscription_identifier_available, 0x29),
        (p.shared_subscription_available, 0x2A),
    ];
    for (v, id) in flags {
        if let Some(v) = v {
            if v > 1 {
                return Err(DecodeError::protocol(format!(
                    "property {} (0x{id:02X}) has value {v}; it must be 0 or 1",
                    property_name(id)
                )));
            }
        }
    }
    let zero = |what: &str| DecodeError::protocol(format!("property {what} must not be 0"));
    if p.receive_maximum == Some(0) {
        return Err(zero("Receive Maximum"));
    }
    if p.maximum_packet_size == Some(0) {
        return Err(zero("Maximum Packet Size"));
    }
    if p.topic_alias == Some(0) {
        return Err(zero("Topic Alias"));
    }
    if p.subscription_identifiers.contains(&0) {
        return Err(zero("Subscription Identifier"));
    }
    if let Some(t) = &p.response_topic {
        if t.is_empty() || t.contains(['+', '#']) {
            return Err(DecodeError::protocol(
                "property Response Topic must be a non-empty topic name without wildcards",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use PropertyContext as C;

    /// Every property set, with values valid for its own context.
    pub(crate) fn all_properties() -> Properties {
        Properties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(4_294_967_295),
            content_type: Some("text/plain".into()),
            response_topic: Some("response/topic".into()),
            correlation_data: Some(b"7deac5c5".to_vec()),
            subscription_identifiers: vec![1, 268_435_455],
            session_expiry_interval: Some(3600),
            assigned_client_identifier: Some("auto-1".into()),
            server_keep_alive: Some(30),
            authentication_method: Some("SCRAM".into()),
            authentication_data: Some(vec![0, 1, 2]),
            request_problem_information: Some(0),
            will_delay_interval: Some(10),
            request_response_information: Some(1),
            response_information: Some("resp".into()),
            server_reference: Some("other:1883".into()),
            reason_string: Some("why".into()),
            receive_maximum: Some(20),
            topic_alias_maximum: Some(10),
            topic_alias: Some(3),
            maximum_qos: Some(1),
            retain_available: Some(0),
            user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
            maximum_packet_size: Some(1024),
            wildcard_subscription_available: Some(1),
            subscription_identifier_available: Some(0),
            shared_subscription_available: Some(1),
        }
    }

    const ALL: [C; 14] = [
        C::Connect,
        C::Will,
        C::ConnAck,
        C::Publish,
        C::PubAck,
        C::PubRec,
        C::PubRel,
        C::PubComp,
        C::Subscribe,
        C::SubAck,
        C::Unsubscribe,
        C::UnsubAck,
        C::Disconnect,
        C::Auth,
    ];

    /// `all_properties()` restricted to what `ctx` allows.
    pub(crate) fn allowed_subset(ctx: C) -> Properties {
        let mut p = Properties::default();
        let all = all_properties();
        macro_rules! keep {
            ($($f:ident: $id:expr),*) => {$(
                if ctx.allows($id) { p.$f = all.$f.clone(); }
            )*};
        }
        keep!(payload_format_indicator: 0x01, message_expiry_interval: 0x02,
            content_type: 0x03, response_topic: 0x08, correlation_data: 0x09,
            session_expiry_interval: 0x11, assigned_client_identifier: 0x12,
            server_keep_alive: 0x13, authentication_method: 0x15, authentication_data: 0x16,
            request_problem_information: 0x17, will_delay_interval: 0x18,
            request_response_information: 0x19, response_information: 0x1A,
            server_reference: 0x1C, reason_string: 0x1F, receive_maximum: 0x21,
            topic_alias_maximum: 0x22, topic_alias: 0x23, maximum_qos: 0x24,
            retain_available: 0x25, user_properties: 0x26, maximum_packet_size: 0x27,
            wildcard_subscription_available: 0x28, subscription_identifier_available: 0x29,
            shared_subscription_available: 0x2A);
        if ctx == C::Publish {
            p.subscription_identifiers = all.subscription_identifiers.clone();
        } else if ctx == C::Subscribe {
            p.subscription_identifiers = vec![268_435_455];
        }
        p
    }

    fn roundtrip(p: &Properties, ctx: C) -> Properties {
        let mut out = Vec::new();
        write_props(&mut out, p, ctx).unwrap();
        let mut r = Reader::new(&out);
        let d = read(&mut r, ctx).unwrap();
        assert!(r.is_empty());
        d
    }

    #[test]
    fn roundtrip_every_context() {
        for ctx in ALL {
            let p = allowed_subset(ctx);
            assert!(!p.user_properties.is_empty());
            assert_eq!(roundtrip(&p, ctx), p, "{ctx:?}");
            assert_eq!(
                roundtrip(&Properties::default(), ctx),
                Properties::default()
            );
        }
    }

    #[test]
    fn disallowed_refused_on_encode() {
        let all = all_properties();
        for ctx in ALL {
            let e = encoded_len(&all, ctx).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, crate::Error::InvalidArgument(_)));
            assert!(msg.contains(ctx.name()), "{msg}");
        }
        let p = Properties {
            topic_alias: Some(1),
            ..Default::default()
        };
        let msg = encoded_len(&p, C::Connect).unwrap_err().to_string();
        assert!(
            msg.contains("Topic Alias") && msg.contains("CONNECT"),
            "{msg}"
        );
    }

    #[test]
    fn ascending_order_bytes() {
        let p = Properties {
            user_properties: vec![("a".into(), "b".into())],
            topic_alias: Some(5),
            payload_format_indicator: Some(1),
            ..Default::default()
        };
        let mut out = Vec::new();
        write_props(&mut out, &p, C::Publish).unwrap();
        assert_eq!(out, [12, 0x01, 1, 0x23, 0, 5, 0x26, 0, 1, b'a', 0, 1, b'b']);
    }

    fn dec(bytes: &[u8], ctx: C) -> Result<Properties, DecodeError> {
        read(&mut Reader::new(bytes), ctx)
    }

    #[test]
    fn decode_errors() {
        use crate::types::ReasonCode as R;
        let mal = R::MALFORMED_PACKET;
        let pro = R::PROTOCOL_ERROR;
        let cases: &[(&[u8], C, R)] = &[
            (&[2, 0x04, 1], C::Publish, mal),
            (&[2, 0x00, 1], C::Publish, mal),
            (&[3, 0x80, 0x01, 1], C::Publish, mal),
            (&[5, 0x02, 0, 0, 0], C::Publish, mal),
            (&[9, 0x02, 0, 0, 0, 1], C::Publish, mal),
            (&[2, 0x01, 2], C::Publish, pro),
            (&[4, 0x01, 1, 0x01, 1], C::Publish, pro),
            (&[2, 0x0B, 0], C::Publish, pro),
            (&[3, 0x0B, 0x80, 0x00], C::Publish, mal),
            (&[3, 0x21, 0, 0], C::ConnAck, pro),
            (&[5, 0x27, 0, 0, 0, 0], C::ConnAck, pro),
            (&[3, 0x23, 0, 0], C::Publish, pro),
            (&[2, 0x24, 2], C::ConnAck, pro),
            (&[2, 0x17, 0], C::Publish, pro),
            (&[5, 0x11, 0, 0, 0, 1], C::Publish, pro),
            (&[4, 0x0B, 1, 0x0B, 2], C::Subscribe, pro),
            (&[4, 0x0B, 1, 0x0B, 1], C::Publish, pro),
            (&[4, 0x08, 0, 1, b'#'], C::Publish, pro),
            (&[3, 0x08, 0, 0], C::Publish, pro),
            (&[4, 0x26, 0, 1, b'p'], C::Publish, mal),
            (&[4, 0x03, 0, 1, 0], C::Publish, mal),
            (&[0x80], C::Publish, mal),
        ];
        for (bytes, ctx, reason) in cases {
            let e = dec(bytes, *ctx).unwrap_err();
            assert_eq!(e.reason, *reason, "{bytes:02X?} {ctx:?}: {e}");
        }
        let p = dec(&[4, 0x0B, 1, 0x0B, 2], C::Publish).unwrap();
        assert_eq!(p.subscription_identifiers, [1, 2]);
        let p = dec(&[10, 0x26, 0, 0, 0, 0, 0x26, 0, 0, 0, 0], C::PubAck).unwrap();
        assert_eq!(p.user_properties.len(), 2);
    }

    #[test]
    fn encode_value_rules() {
        let bad = [
            Properties {
                payload_format_indicator: Some(2),
                ..Default::default()
            },
            Properties {
                topic_alias: Some(0),
                ..Default::default()
            },
            Properties {
                subscription_identifiers: vec![0],
                ..Default::default()
            },
            Properties {
                subscription_identifiers: vec![268_435_456],
                ..Default::default()
            },
            Properties {
                content_type: Some("a\0".into()),
                ..Default::default()
            },
        ];
        for p in &bad {
            assert!(encoded_len(p, C::Publish).is_err(), "{p:?}");
        }
        let two = Properties {
            subscription_identifiers: vec![1, 2],
            ..Default::default()
        };
        assert!(encoded_len(&two, C::Subscribe).is_err());
        assert!(encoded_len(&two, C::Publish).is_ok());
    }
}
