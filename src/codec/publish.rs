//! PUBLISH: the allocation-free encoding fast path and decoding.

use super::error::DecodeError;
use super::properties::{self as props, PropertyContext};
use super::wire::{self, Reader};
use super::Publish;
use crate::types::{Protocol, QoS};
use crate::Properties;

/// Appends a PUBLISH packet to `out` with a single reservation and no intermediate buffer.
///
/// `properties` are written for MQTT 5 only (ignored for 3.x). `pkid` is written for QoS 1
/// and 2 and must then be non-zero. The topic is checked with one scan (no `+`, `#` or NUL,
/// at most 65535 bytes); it may be empty only for MQTT 5 with a Topic Alias. On error
/// nothing is appended: `InvalidArgument` for a bad topic, packet id or property,
/// `PayloadSize` when the packet exceeds MQTT's maximum remaining length.
#[allow(clippy::too_many_arguments)]
pub fn encode_publish(
    out: &mut Vec<u8>,
    protocol: Protocol,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
    dup: bool,
    pkid: u16,
    properties: Option<&Properties>,
) -> crate::Result<()> {
    let v5 = protocol.is_v5();
    let properties = if v5 { properties } else { None };
    if topic.is_empty() {
        let has_alias = matches!(properties, Some(p) if p.topic_alias.is_some());
        if !has_alias {
            return Err(crate::Error::InvalidArgument(
                "the PUBLISH topic is empty; an empty topic is only allowed in MQTT 5 with a \
                 Topic Alias"
                    .into(),
            ));
        }
    } else if topic.len() > 65_535 {
        return Err(crate::Error::InvalidArgument(format!(
            "the PUBLISH topic is {} bytes long; at most 65535 are allowed",
            topic.len()
        )));
    } else if topic.bytes().any(|b| matches!(b, b'+' | b'#' | 0)) {
        return Err(crate::Error::InvalidArgument(format!(
            "the PUBLISH topic {topic:?} contains a wildcard (+ or #) or a null character"
        )));
    }
    if qos != QoS::AtMostOnce && pkid == 0 {
        return Err(crate::Error::InvalidArgument(
            "a QoS 1 or 2 PUBLISH needs a non-zero packet identifier".into(),
        ));
    }
    let prop_len = match properties {
        Some(p) => props::encoded_len(p, PropertyContext::Publish)?,
        None => 0,
    };
    let remaining = 2usize
        .saturating_add(topic.len())
        .saturating_add(if qos == QoS::AtMostOnce { 0 } else { 2 })
        .saturating_add(if v5 { props::block_len(prop_len) } else { 0 })
        .saturating_add(payload.len());
    wire::check_remaining(remaining)?;
    let byte1 = 0x30 | (u8::from(dup) << 3) | ((qos as u8) << 1) | u8::from(retain);
    out.reserve(1 + wire::varint_len(remaining) + remaining);
    out.push(byte1);
    wire::write_varint(out, remaining);
    wire::write_str(out, topic);
    if qos != QoS::AtMostOnce {
        wire::write_u16(out, pkid);
    }
    if v5 {
        match properties {
            Some(p) => props::write(out, p, prop_len),
            None => out.push(0),
        }
    }
    out.extend_from_slice(payload);
    Ok(())
}

/// Sets the DUP flag of an encoded PUBLISH (for a resend), leaving every other byte as it is.
pub fn set_dup(packet: &mut [u8]) {
    if let Some(b) = packet.first_mut() {
        if *b >> 4 == 3 {
            *b |= 0x08;
        }
    }
}

/// The length of the fixed header of an encoded PUBLISH (`None`: not a PUBLISH).
fn fixed_header_len(packet: &[u8]) -> Option<usize> {
    if packet.first()? >> 4 != 3 {
        return None;
    }
    match wire::read_varint(packet.get(1..)?).ok()? {
        wire::VarInt::Value(_, n) => Some(1 + n),
        wire::VarInt::Incomplete => None,
    }
}

/// The topic of a PUBLISH encoded by [`encode_publish`] (`None` if it is not one).
pub(crate) fn encoded_topic(packet: &[u8]) -> Option<&str> {
    let h = fixed_header_len(packet)?;
    let len = usize::from(u16::from_be_bytes([*packet.get(h)?, *packet.get(h + 1)?]));
    std::str::from_utf8(packet.get(h + 2..h + 2 + len)?).ok()
}

/// Appends to `out` the MQTT 5 PUBLISH `packet` (encoded by [`encode_publish`], without a
/// Topic Alias) with Topic Alias `alias` added, and its topic kept (the alias is being
/// set) or left empty (the alias is known to the broker). Returns false and appends
/// nothing if `packet` is not such a PUBLISH.
pub(crate) fn encode_aliased(
    packet: &[u8],
    alias: u16,
    keep_topic: bool,
    out: &mut Vec<u8>,
) -> bool {
    let Some(h) = fixed_header_len(packet) else {
        return false;
    };
    let Some(topic) = encoded_topic(packet) else {
        return false;
    };
    let topic_end = h + 2 + topic.len();
    let id_end = topic_end + if (packet[0] >> 1) & 3 == 0 { 0 } else { 2 };
    let Some(wire::VarInt::Value(plen, n)) =
        packet.get(id_end..).and_then(|b| wire::read_varint(b).ok())
    else {
        return false;
    };
    let props_start = id_end + n;
    let props_end = props_start + plen;
    if props_end > packet.len() {
        return false;
    }
    let new_topic = if keep_topic { topic.as_bytes() } else { &[] };
    let new_plen = plen + 3;
    let remaining = 2
        + new_topic.len()
        + (id_end - topic_end)
        + wire::varint_len(new_plen)
        + new_plen
        + (packet.len() - props_end);
    if wire::check_remaining(remaining).is_err() {
        return false;
    }
    out.reserve(1 + wire::varint_len(remaining) + remaining);
    out.push(packet[0]);
    wire::write_varint(out, remaining);
    wire::write_u16(out, new_topic.len() as u16);
    out.extend_from_slice(new_topic);
    out.extend_from_slice(&packet[topic_end..id_end]);
    wire::write_varint(out, new_plen);
    out.extend_from_slice(&packet[props_start..props_end]);
    out.push(0x23);
    wire::write_u16(out, alias);
    out.extend_from_slice(&packet[props_end..]);
    true
}

/// Decodes PUBLISH. `byte1` carries DUP, QoS and RETAIN.
///
/// As libmosquitto (and the Mosquitto conformance cases): the topic must be valid UTF-8
/// without U+0000, control characters, non-characters or wildcards (malformed); QoS 3 is
/// reported as a protocol error once the rest of the variable header parsed, and as
/// malformed when it does not; QoS > 0 with packet id 0 is a protocol error; DUP with QoS 0
/// is accepted.
pub(crate) fn decode_publish(
    byte1: u8,
    r: &mut Reader<'_>,
    protocol: Protocol,
) -> Result<Publish, DecodeError> {
    let qos_bits = (byte1 >> 1) & 0x03;
    let topic_bytes = r.binary("topic")?;
    let topic = wire::decode_str(topic_bytes, "PUBLISH topic")?;
    if topic.chars().any(wire::is_disallowed_char) {
        return Err(DecodeError::malformed(
            "PUBLISH topic contains a control character or a non-character",
        ));
    }
    if topic.contains(['+', '#']) {
        return Err(DecodeError::malformed(format!(
            "PUBLISH topic {topic:?} contains a wildcard"
        )));
    }
    let pkid = if qos_bits == 0 {
        0
    } else {
        r.u16("packet identifier")?
    };
    let properties = if protocol.is_v5() {
        props::read(r, PropertyContext::Publish)?
    } else {
        Properties::default()
    };
    let qos = match qos_bits {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => return Err(DecodeError::protocol("PUBLISH with QoS 3")),
    };
    if qos != QoS::AtMostOnce && pkid == 0 {
        return Err(DecodeError::protocol(
            "PUBLISH with QoS > 0 and packet identifier 0",
        ));
    }
    if topic.is_empty() && properties.topic_alias.is_none() {
        return Err(DecodeError::protocol(
            "PUBLISH with an empty topic and no Topic Alias",
        ));
    }
    let payload = r.rest().to_vec();
    Ok(Publish {
        dup: byte1 & 0x08 != 0,
        qos,
        retain: byte1 & 0x01 != 0,
        topic,
        pkid,
        properties,
        payload,
    })
}
