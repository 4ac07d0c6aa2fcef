//! PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT and AUTH.

use super::error::DecodeError;
use super::properties::{self as props, PropertyContext};
use super::wire::{self, Reader};
use super::{Ack, Auth, Disconnect};
use crate::types::{Protocol, ReasonCode};
use crate::Properties;

/// Which of the four acknowledgement packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub(crate) enum AckKind {
    PubAck,
    PubRec,
    PubRel,
    PubComp,
}

impl AckKind {
    fn byte1(self) -> u8 {
        match self {
            AckKind::PubAck => 0x40,
            AckKind::PubRec => 0x50,
            AckKind::PubRel => 0x62,
            AckKind::PubComp => 0x70,
        }
    }

    fn context(self) -> PropertyContext {
        match self {
            AckKind::PubAck => PropertyContext::PubAck,
            AckKind::PubRec => PropertyContext::PubRec,
            AckKind::PubRel => PropertyContext::PubRel,
            AckKind::PubComp => PropertyContext::PubComp,
        }
    }

    /// The reason codes the spec allows in this packet.
    fn reasons(self) -> &'static [u8] {
        match self {
            AckKind::PubAck | AckKind::PubRec => {
                &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]
            }
            AckKind::PubRel | AckKind::PubComp => &[0x00, 0x92],
        }
    }
}

/// Appends `[reason] [properties]` in MQTT 5's shortest form: nothing when the reason is 0
/// and there are no properties, the reason alone when there are no properties.
fn write_reason_props(
    b: &mut Vec<u8>,
    reason: ReasonCode,
    p: &Properties,
    ctx: PropertyContext,
) -> crate::Result<()> {
    let len = props::encoded_len(p, ctx)?;
    if len == 0 {
        if reason != ReasonCode::SUCCESS {
            b.push(reason.0);
        }
        return Ok(());
    }
    b.push(reason.0);
    props::write_props(b, p, ctx)
}

/// Encodes PUBACK/PUBREC/PUBREL/PUBCOMP.
pub(crate) fn encode_ack(
    a: &Ack,
    kind: AckKind,
    protocol: Protocol,
    out: &mut Vec<u8>,
) -> crate::Result<()> {
    if !protocol.is_v5() || (a.reason == ReasonCode::SUCCESS && a.properties.is_empty()) {
        // The short form, without a buffer: the hot path of every acknowledgement.
        let [hi, lo] = a.pkid.to_be_bytes();
        out.extend_from_slice(&[kind.byte1(), 2, hi, lo]);
        return Ok(());
    }
    let mut b = Vec::with_capacity(4);
    wire::write_u16(&mut b, a.pkid);
    if protocol.is_v5() {
        write_reason_props(&mut b, a.reason, &a.properties, kind.context())?;
    }
    wire::write_packet(out, kind.byte1(), &b)
}

/// Decodes PUBACK/PUBREC/PUBREL/PUBCOMP (the fixed header flags are already checked).
pub(crate) fn decode_ack(
    r: &mut Reader<'_>,
    protocol: Protocol,
    kind: AckKind,
) -> Result<Ack, DecodeError> {
    let pkid = r.u16("packet identifier")?;
    if pkid == 0 {
        return Err(DecodeError::protocol("packet identifier 0"));
    }
    let mut reason = ReasonCode::SUCCESS;
    let mut properties = Properties::default();
    if protocol.is_v5() && !r.is_empty() {
        reason = ReasonCode(r.u8("reason code")?);
        if !kind.reasons().contains(&reason.0) {
            return Err(DecodeError::protocol(format!(
                "reason code 0x{:02X} is not allowed in {}",
                reason.0,
                kind.context().name()
            )));
        }
        if !r.is_empty() {
            properties = props::read(r, kind.context())?;
        }
    }
    Ok(Ack {
        pkid,
        reason,
        properties,
    })
}

/// The MQTT 5 DISCONNECT reason codes (section 3.14.2.1).
const DISCONNECT_CODES: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];

/// The MQTT 5 AUTH reason codes (section 3.15.2.1).
const AUTH_CODES: &[u8] = &[0x00, 0x18, 0x19];

/// Encodes DISCONNECT (MQTT 3.x: no variable header at all).
pub(crate) fn encode_disconnect(
    d: &Disconnect,
    protocol: Protocol,
    out: &mut Vec<u8>,
) -> crate::Result<()> {
    let mut b = Vec::new();
    if protocol.is_v5() {
        write_reason_props(&mut b, d.reason, &d.properties, PropertyContext::Disconnect)?;
    }
    wire::write_packet(out, 0xE0, &b)
}

/// Decodes DISCONNECT.
pub(crate) fn decode_disconnect(
    r: &mut Reader<'_>,
    protocol: Protocol,
) -> Result<Disconnect, DecodeError> {
    let mut d = Disconnect::default();
    if protocol.is_v5() && !r.is_empty() {
        d.reason = ReasonCode(r.u8("reason code")?);
        if !DISCONNECT_CODES.contains(&d.reason.0) {
            return Err(DecodeError::protocol(format!(
                "reason code 0x{:02X} is not a DISCONNECT reason code",
                d.reason.0
            )));
        }
        if !r.is_empty() {
            d.properties = props::read(r, PropertyContext::Disconnect)?;
        }
    }
    Ok(d)
}

/// Encodes AUTH; `InvalidArgument` before MQTT 5.
pub(crate) fn encode_auth(a: &Auth, protocol: Protocol, out: &mut Vec<u8>) -> crate::Result<()> {
    if !protocol.is_v5() {
        return Err(crate::Error::InvalidArgument(
            "AUTH packets exist only in MQTT 5; connect with protocol MQTT 5 for extended \
             authentication"
                .into(),
        ));
    }
    let mut b = Vec::new();
    write_reason_props(&mut b, a.reason, &a.properties, PropertyContext::Auth)?;
    wire::write_packet(out, 0xF0, &b)
}

/// Decodes AUTH (MQTT 5 only; the caller refuses it for 3.x).
pub(crate) fn decode_auth(r: &mut Reader<'_>) -> Result<Auth, DecodeError> {
    let mut a = Auth::default();
    if !r.is_empty() {
        a.reason = ReasonCode(r.u8("reason code")?);
        if !AUTH_CODES.contains(&a.reason.0) {
            return Err(DecodeError::protocol(format!(
                "reason code 0x{:02X} is not an AUTH reason code",
                a.reason.0
            )));
        }
        if !r.is_empty() {
            a.properties = props::read(r, PropertyContext::Auth)?;
        }
    }
    Ok(a)
}
