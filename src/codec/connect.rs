//! CONNECT and CONNACK.

use super::error::DecodeError;
use super::properties::{self as props, PropertyContext};
use super::wire::{self, Reader};
use super::{ConnAck, Connect, LastWill};
use crate::types::{Protocol, QoS};
use crate::Properties;

/// Encodes CONNECT with the protocol named in `c.protocol` (name, level and properties).
pub(crate) fn encode_connect(c: &Connect, out: &mut Vec<u8>) -> crate::Result<()> {
    let v5 = c.protocol.is_v5();
    if c.password.is_some() && c.username.is_none() && !v5 {
        return Err(crate::Error::InvalidArgument(
            "a password without a user name can only be sent with MQTT 5; set a user name".into(),
        ));
    }
    let mut b = Vec::with_capacity(64);
    wire::write_str(
        &mut b,
        if c.protocol == Protocol::V31 {
            "MQIsdp"
        } else {
            "MQTT"
        },
    );
    // Bridge mode: bit 7 of the protocol level (as Paho and mosquitto do).
    b.push(c.protocol.level() | if c.bridge { 0x80 } else { 0 });
    let mut flags = 0u8;
    if c.username.is_some() {
        flags |= 0x80;
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    if let Some(w) = &c.will {
        flags |= 0x04 | ((w.qos as u8) << 3);
        if w.retain {
            flags |= 0x20;
        }
    }
    if c.clean_start {
        flags |= 0x02;
    }
    b.push(flags);
    wire::write_u16(&mut b, c.keep_alive);
    if v5 {
        props::write_props(&mut b, &c.properties, PropertyContext::Connect)?;
    }
    wire::check_str(&c.client_id, "client id")?;
    wire::write_str(&mut b, &c.client_id);
    if let Some(w) = &c.will {
        if v5 {
            props::write_props(&mut b, &w.properties, PropertyContext::Will)?;
        }
        crate::topic::validate_topic_name(&w.topic)?;
        wire::write_str(&mut b, &w.topic);
        wire::check_binary(&w.payload, "will payload")?;
        wire::write_binary(&mut b, &w.payload);
    }
    if let Some(u) = &c.username {
        wire::check_str(u, "user name")?;
        wire::write_str(&mut b, u);
    }
    if let Some(p) = &c.password {
        wire::check_binary(p, "password")?;
        wire::write_binary(&mut b, p);
    }
    wire::write_packet(out, 0x10, &b)
}

/// Decodes CONNECT (used by test brokers); the protocol comes from the packet itself.
pub(crate) fn decode_connect(r: &mut Reader<'_>) -> Result<Connect, DecodeError> {
    let name = r.string("protocol name")?;
    let level_byte = r.u8("protocol level")?;
    let bridge = level_byte & 0x80 != 0;
    let level = level_byte & 0x7F;
    let protocol = match (name.as_str(), level) {
        ("MQIsdp", 3) => Protocol::V31,
        ("MQTT", 4) => Protocol::V311,
        ("MQTT", 5) => Protocol::V5,
        _ => {
            return Err(DecodeError::protocol(format!(
                "unsupported protocol name {name:?} level {level}"
            )))
        }
    };
    let v5 = protocol.is_v5();
    let flags = r.u8("connect flags")?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::malformed("CONNECT reserved flag bit 0 is set"));
    }
    let has_will = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    if !has_will && (will_qos != 0 || will_retain) {
        return Err(DecodeError::malformed(
            "CONNECT will QoS or will retain set without the will flag",
        ));
    }
    let will_qos = match will_qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => return Err(DecodeError::malformed("CONNECT will QoS 3")),
    };
    let has_user = flags & 0x80 != 0;
    let has_pass = flags & 0x40 != 0;
    if has_pass && !has_user && !v5 {
        return Err(DecodeError::protocol(
            "CONNECT password flag without user name flag",
        ));
    }
    let keep_alive = r.u16("keep alive")?;
    let properties = if v5 {
        props::read(r, PropertyContext::Connect)?
    } else {
        Properties::default()
    };
    let client_id = r.string("client id")?;
    let will = if has_will {
        let wprops = if v5 {
            props::read(r, PropertyContext::Will)?
        } else {
            Properties::default()
        };
        let topic = r.string("will topic")?;
        if topic.is_empty() || topic.contains(['+', '#']) {
            return Err(DecodeError::protocol(format!(
                "will topic {topic:?} is not a valid topic name"
            )));
        }
        let payload = r.binary("will payload")?.to_vec();
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties: wprops,
        })
    } else {
        None
    };
    let username = if has_user {
        Some(r.string("user name")?)
    } else {
        None
    };
    let password = if has_pass {
        Some(r.binary("password")?.to_vec())
    } else {
        None
    };
    Ok(Connect {
        protocol,
        clean_start: flags & 0x02 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
        bridge,
    })
}

/// Encodes CONNACK.
pub(crate) fn encode_connack(
    c: &ConnAck,
    protocol: Protocol,
    out: &mut Vec<u8>,
) -> crate::Result<()> {
    let mut b = Vec::with_capacity(8);
    b.push(u8::from(c.session_present));
    b.push(c.code);
    if protocol.is_v5() {
        props::write_props(&mut b, &c.properties, PropertyContext::ConnAck)?;
    }
    wire::write_packet(out, 0x20, &b)
}

/// The MQTT 5 CONNACK reason codes (section 3.2.2.2).
const CONNACK_V5_CODES: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];

/// Decodes CONNACK.
///
/// MQTT 3.x: exactly 2 bytes, flags bits 7..1 zero, return code 0..5. MQTT 5: reason code
/// from the CONNACK set and a property block; bytes after the properties are ignored, as
/// libmosquitto does (Mosquitto conformance case "v5.0 CONNACK / 20 long").
pub(crate) fn decode_connack(
    r: &mut Reader<'_>,
    protocol: Protocol,
) -> Result<ConnAck, DecodeError> {
    let flags = r.u8("connack flags")?;
    let code = r.u8("connack return code")?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::malformed(format!(
            "CONNACK acknowledge flags 0x{flags:02X}: bits 7..1 are reserved"
        )));
    }
    let properties = if protocol.is_v5() {
        if !CONNACK_V5_CODES.contains(&code) {
            return Err(DecodeError::protocol(format!(
                "CONNACK reason code 0x{code:02X} is not a CONNACK reason code"
            )));
        }
        let p = props::read(r, PropertyContext::ConnAck)?;
        let _ = r.rest();
        p
    } else {
        if code > 5 {
            return Err(DecodeError::protocol(format!(
                "CONNACK return code {code} is not 0..5"
            )));
        }
        Properties::default()
    };
    Ok(ConnAck {
        session_present: flags & 0x01 != 0,
        code,
        properties,
    })
}
