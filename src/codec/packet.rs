//! The packet-level dispatch, encode and decode side by side: the fixed header, the size
//! limit, and one arm per packet type calling that family's encoder or decoder.

use super::error::DecodeError;
use super::wire::{self, Reader, VarInt};
use super::{ack, connect, publish, subscribe, Packet};
use crate::types::Protocol;

impl Packet {
    /// The packet's name as Paho logs it ("CONNECT", "PUBACK", ...).
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }

    /// Appends the encoded packet to `out`.
    ///
    /// Errors: `InvalidArgument` for a property not allowed in this packet, a string that is
    /// not valid MQTT UTF-8, a topic or filter that fails validation, an empty SUBSCRIBE, or a
    /// packet that `protocol` cannot carry (AUTH before MQTT 5); `PayloadSize` when the
    /// remaining length would exceed 268,435,455 bytes. On error nothing is appended.
    pub fn encode(&self, protocol: Protocol, out: &mut Vec<u8>) -> crate::Result<()> {
        let start = out.len();
        let r = self.encode_inner(protocol, out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn encode_inner(&self, protocol: Protocol, out: &mut Vec<u8>) -> crate::Result<()> {
        match self {
            Packet::Connect(c) => connect::encode_connect(c, out),
            Packet::ConnAck(c) => connect::encode_connack(c, protocol, out),
            Packet::Publish(p) => publish::encode_publish(
                out,
                protocol,
                &p.topic,
                &p.payload,
                p.qos,
                p.retain,
                p.dup,
                p.pkid,
                Some(&p.properties),
            ),
            Packet::PubAck(a) => ack::encode_ack(a, ack::AckKind::PubAck, protocol, out),
            Packet::PubRec(a) => ack::encode_ack(a, ack::AckKind::PubRec, protocol, out),
            Packet::PubRel(a) => ack::encode_ack(a, ack::AckKind::PubRel, protocol, out),
            Packet::PubComp(a) => ack::encode_ack(a, ack::AckKind::PubComp, protocol, out),
            Packet::Subscribe(s) => subscribe::encode_subscribe(s, protocol, out),
            Packet::SubAck(s) => subscribe::encode_suback(s, protocol, out),
            Packet::Unsubscribe(u) => subscribe::encode_unsubscribe(u, protocol, out),
            Packet::UnsubAck(u) => subscribe::encode_unsuback(u, protocol, out),
            Packet::PingReq => wire::write_packet(out, 0xC0, &[]),
            Packet::PingResp => wire::write_packet(out, 0xD0, &[]),
            Packet::Disconnect(d) => ack::encode_disconnect(d, protocol, out),
            Packet::Auth(a) => ack::encode_auth(a, protocol, out),
        }
    }
}

/// The fixed header of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedHeader {
    /// First byte: packet type (high nibble) and flags (low nibble).
    pub byte1: u8,
    /// Remaining length: bytes after the fixed header.
    pub remaining_len: usize,
    /// Length of the fixed header itself (2..=5).
    pub header_len: usize,
}

impl FixedHeader {
    /// Packet type (1..=15; 0 is reserved).
    pub fn packet_type(&self) -> u8 {
        self.byte1 >> 4
    }

    /// Whole packet length: header plus remaining length.
    pub fn packet_len(&self) -> usize {
        self.header_len.saturating_add(self.remaining_len)
    }
}

/// Parses the fixed header at the start of `buf`. `Ok(None)` when more bytes are needed;
/// malformed when the remaining length has a fifth byte or is not minimally encoded.
pub fn parse_fixed_header(buf: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
    let Some((&byte1, rest)) = buf.split_first() else {
        return Ok(None);
    };
    match wire::read_varint(rest)? {
        VarInt::Incomplete => Ok(None),
        VarInt::Value(remaining_len, n) => Ok(Some(FixedHeader {
            byte1,
            remaining_len,
            header_len: 1 + n,
        })),
    }
}

/// Checks the packet type and the reserved flag bits of the first byte.
fn check_byte1(byte1: u8, protocol: Protocol) -> Result<(), DecodeError> {
    let ty = byte1 >> 4;
    let flags = byte1 & 0x0F;
    match ty {
        0 => Err(DecodeError::malformed("packet type 0 is reserved")),
        3 => Ok(()),
        6 | 8 | 10 if flags == 0b0010 => Ok(()),
        15 if !protocol.is_v5() => Err(DecodeError::malformed(
            "AUTH (packet type 15) does not exist before MQTT 5",
        )),
        6 | 8 | 10 => Err(DecodeError::malformed(format!(
            "packet type {ty} with fixed header flags 0x{flags:X}; they must be 0x2"
        ))),
        _ if flags != 0 => Err(DecodeError::malformed(format!(
            "packet type {ty} with fixed header flags 0x{flags:X}; they must be 0"
        ))),
        _ => Ok(()),
    }
}

/// Decodes one packet from the start of `buf`.
///
/// Returns the packet and the number of bytes it used, or `Ok(None)` (consuming nothing)
/// when `buf` does not yet hold the whole packet. The packet size is checked against
/// `max_packet_size` (pass `usize::MAX` for no limit) as soon as the fixed header is
/// complete, so the caller never has to buffer an oversized packet. The reserved flag bits
/// are checked from the first byte, too.
///
/// CONNECT is decoded with the protocol it announces; every other packet with `protocol`.
pub fn decode(
    buf: &[u8],
    protocol: Protocol,
    max_packet_size: usize,
) -> Result<Option<(Packet, usize)>, DecodeError> {
    if let Some(&b) = buf.first() {
        check_byte1(b, protocol)?;
    }
    let Some(h) = parse_fixed_header(buf)? else {
        return Ok(None);
    };
    let total = h.packet_len();
    if total > max_packet_size {
        return Err(DecodeError::too_large(format!(
            "packet of {total} bytes exceeds the maximum packet size of {max_packet_size} bytes"
        )));
    }
    let Some(body) = buf.get(h.header_len..total) else {
        return Ok(None);
    };
    let packet = decode_body(h.byte1, body, protocol)?;
    Ok(Some((packet, total)))
}

/// Decodes the variable header and payload of a packet whose first byte is `byte1`.
pub(crate) fn decode_body(
    byte1: u8,
    body: &[u8],
    protocol: Protocol,
) -> Result<Packet, DecodeError> {
    check_byte1(byte1, protocol)?;
    let mut r = Reader::new(body);
    let packet = match byte1 >> 4 {
        1 => Packet::Connect(connect::decode_connect(&mut r)?),
        2 => Packet::ConnAck(connect::decode_connack(&mut r, protocol)?),
        3 => Packet::Publish(publish::decode_publish(byte1, &mut r, protocol)?),
        4 => Packet::PubAck(ack::decode_ack(&mut r, protocol, ack::AckKind::PubAck)?),
        5 => Packet::PubRec(ack::decode_ack(&mut r, protocol, ack::AckKind::PubRec)?),
        6 => Packet::PubRel(ack::decode_ack(&mut r, protocol, ack::AckKind::PubRel)?),
        7 => Packet::PubComp(ack::decode_ack(&mut r, protocol, ack::AckKind::PubComp)?),
        8 => Packet::Subscribe(subscribe::decode_subscribe(&mut r, protocol)?),
        9 => Packet::SubAck(subscribe::decode_suback(&mut r, protocol)?),
        10 => Packet::Unsubscribe(subscribe::decode_unsubscribe(&mut r, protocol)?),
        11 => Packet::UnsubAck(subscribe::decode_unsuback(&mut r, protocol)?),
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 => Packet::Disconnect(ack::decode_disconnect(&mut r, protocol)?),
        _ => Packet::Auth(ack::decode_auth(&mut r)?),
    };
    if !r.is_empty() {
        return Err(DecodeError::malformed(format!(
            "{} has {} unexpected trailing bytes",
            packet.name(),
            r.remaining()
        )));
    }
    Ok(packet)
}
