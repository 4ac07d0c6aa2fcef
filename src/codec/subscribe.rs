//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK.

use super::error::DecodeError;
use super::properties::{self as props, PropertyContext};
use super::wire::{self, Reader};
use super::{SubAck, Subscribe, UnsubAck, Unsubscribe};
use crate::types::{Protocol, QoS, ReasonCode, RetainHandling, SubscribeOptions};
use crate::Properties;

/// Encodes SUBSCRIBE. MQTT 3.x sends only the QoS bits of each options byte.
pub(crate) fn encode_subscribe(
    s: &Subscribe,
    protocol: Protocol,
    out: &mut Vec<u8>,
) -> crate::Result<()> {
    if s.filters.is_empty() {
        return Err(crate::Error::InvalidArgument(
            "SUBSCRIBE needs at least one topic filter".into(),
        ));
    }
    let mut b = Vec::with_capacity(16 + s.filters.iter().map(|f| f.0.len() + 3).sum::<usize>());
    wire::write_u16(&mut b, s.pkid);
    if protocol.is_v5() {
        props::write_props(&mut b, &s.properties, PropertyContext::Subscribe)?;
    }
    for (filter, opts) in &s.filters {
        crate::topic::validate_topic_filter(filter)?;
        wire::write_str(&mut b, filter);
        b.push(if protocol.is_v5() {
            opts.to_byte()
        } else {
            opts.qos as u8
        });
    }
    wire::write_packet(out, 0x82, &b)
}

/// Checks a topic filter received in SUBSCRIBE/UNSUBSCRIBE.
fn decode_filter(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let f = r.string("topic filter")?;
    if f.chars().any(wire::is_disallowed_char) {
        return Err(DecodeError::malformed(
            "topic filter contains a control character or a non-character",
        ));
    }
    crate::topic::validate_topic_filter(&f)
        .map_err(|e| DecodeError::protocol(format!("invalid topic filter {f:?}: {e}")))?;
    Ok(f)
}

fn nonzero_pkid(r: &mut Reader<'_>) -> Result<u16, DecodeError> {
    let pkid = r.u16("packet identifier")?;
    if pkid == 0 {
        return Err(DecodeError::protocol("packet identifier 0"));
    }
    Ok(pkid)
}

/// Decodes SUBSCRIBE (used by test brokers).
pub(crate) fn decode_subscribe(
    r: &mut Reader<'_>,
    protocol: Protocol,
) -> Result<Subscribe, DecodeError> {
    let pkid = nonzero_pkid(r)?;
    let properties = if protocol.is_v5() {
        props::read(r, PropertyContext::Subscribe)?
    } else {
        Properties::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let f = decode_filter(r)?;
        let o = r.u8("subscription options")?;
        let reserved = if protocol.is_v5() { 0xC0 } else { 0xFC };
        if o & reserved != 0 {
            return Err(DecodeError::malformed(format!(
                "subscription options 0x{o:02X} have reserved bits set"
            )));
        }
        let qos = match o & 0x03 {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            2 => QoS::ExactlyOnce,
            _ => return Err(DecodeError::malformed("subscription QoS 3")),
        };
        let retain_handling = match (o >> 4) & 0x03 {
            0 => RetainHandling::SendOnSubscribe,
            1 => RetainHandling::SendIfNewSubscription,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::protocol("retain handling 3")),
        };
        filters.push((
            f,
            SubscribeOptions {
                qos,
                no_local: o & 0x04 != 0,
                retain_as_published: o & 0x08 != 0,
                retain_handling,
            },
        ));
    }
    if filters.is_empty() {
        return Err(DecodeError::protocol("SUBSCRIBE without topic filters"));
    }
    Ok(Subscribe {
        pkid,
        filters,
        properties,
    })
}

/// Encodes SUBACK.
pub(crate) fn encode_suback(
    s: &SubAck,
    protocol: Protocol,
    out: &mut Vec<u8>,
) -> crate::Result<()> {
    let mut b = Vec::with_capacity(8 + s.reasons.len());
    wire::write_u16(&mut b, s.pkid);
    if protocol.is_v5() {
        props::write_props(&mut b, &s.properties, PropertyContext::SubAck)?;
    }
    b.extend(s.reasons.iter().map(|r| r.0));
    wire::write_packet(out, 0x90, &b)
}

/// The MQTT 5 SUBACK reason codes (section 3.9.3).
const SUBACK_V5_CODES: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];

/// The MQTT 3.1.1 SUBACK return codes.
const SUBACK_V3_CODES: &[u8] = &[0x00, 0x01, 0x02, 0x80];

/// Decodes SUBACK: at least one reason code, each from the version's set.
pub(crate) fn decode_suback(r: &mut Reader<'_>, protocol: Protocol) -> Result<SubAck, DecodeError> {
    let pkid = nonzero_pkid(r)?;
    let properties = if protocol.is_v5() {
        props::read(r, PropertyContext::SubAck)?
    } else {
        Properties::default()
    };
    let codes = r.rest();
    if codes.is_empty() {
        return Err(DecodeError::protocol("SUBACK without reason codes"));
    }
    let allowed = if protocol.is_v5() {
        SUBACK_V5_CODES
    } else {
        SUBACK_V3_CODES
    };
    if let Some(c) = codes.iter().find(|c| !allowed.contains(c)) {
        return Err(DecodeError::protocol(format!(
            "SUBACK reason code 0x{c:02X} is not allowed"
        )));
    }
    Ok(SubAck {
        pkid,
        reasons: codes.iter().map(|&c| ReasonCode(c)).collect(),
        properties,
    })
}

/// Encodes UNSUBSCRIBE.
pub(crate) fn encode_unsubscribe(
    u: &Unsubscribe,
    protocol: Protocol,
    out: &mut Vec<u8>,
) -> crate::Result<()> {
    if u.filters.is_empty() {
        return Err(crate::Error::InvalidArgument(
            "UNSUBSCRIBE needs at least one topic filter".into(),
        ));
    }
    let mut b = Vec::with_capacity(16 + u.filters.iter().map(|f| f.len() + 2).sum::<usize>());
    wire::write_u16(&mut b, u.pkid);
    if protocol.is_v5() {
        props::write_props(&mut b, &u.properties, PropertyContext::Unsubscribe)?;
    }
    for filter in &u.filters {
        crate::topic::validate_topic_filter(filter)?;
        wire::write_str(&mut b, filter);
    }
    wire::write_packet(out, 0xA2, &b)
}

/// Decodes UNSUBSCRIBE (used by test brokers).
pub(crate) fn decode_unsubscribe(
    r: &mut Reader<'_>,
    protocol: Protocol,
) -> Result<Unsubscribe, DecodeError> {
    let pkid = nonzero_pkid(r)?;
    let properties = if protocol.is_v5() {
        props::read(r, PropertyContext::Unsubscribe)?
    } else {
        Properties::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(decode_filter(r)?);
    }
    if filters.is_empty() {
        return Err(DecodeError::protocol("UNSUBSCRIBE without topic filters"));
    }
    Ok(Unsubscribe {
        pkid,
        filters,
        properties,
    })
}

/// Encodes UNSUBACK (MQTT 3.x: packet id only).
pub(crate) fn encode_unsuback(
    u: &UnsubAck,
    protocol: Protocol,
    out: &mut Vec<u8>,
) -> crate::Result<()> {
    let mut b = Vec::with_capacity(8 + u.reasons.len());
    wire::write_u16(&mut b, u.pkid);
    if protocol.is_v5() {
        props::write_props(&mut b, &u.properties, PropertyContext::UnsubAck)?;
        b.extend(u.reasons.iter().map(|r| r.0));
    }
    wire::write_packet(out, 0xB0, &b)
}

/// Decodes UNSUBACK.
///
/// MQTT 3.x: exactly the packet id. MQTT 5: packet id, properties and the reason codes, taken
/// as they are: like libmosquitto (Mosquitto conformance cases "v5.0 UNSUBACK / B0",
/// "B0 with property", "B0 reason code 0xFF unknown"), neither an empty list nor a code
/// outside the spec's UNSUBACK set is refused.
pub(crate) fn decode_unsuback(
    r: &mut Reader<'_>,
    protocol: Protocol,
) -> Result<UnsubAck, DecodeError> {
    let pkid = nonzero_pkid(r)?;
    if !protocol.is_v5() {
        return Ok(UnsubAck {
            pkid,
            reasons: Vec::new(),
            properties: Properties::default(),
        });
    }
    let properties = props::read(r, PropertyContext::UnsubAck)?;
    let reasons = r.rest().iter().map(|&c| ReasonCode(c)).collect();
    Ok(UnsubAck {
        pkid,
        reasons,
        properties,
    })
}
