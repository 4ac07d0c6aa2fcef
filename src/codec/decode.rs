//! Decoding: fixed header, size limit, dispatch to the per-packet decoders.

use std::fmt;

use super::wire::{self, Reader, VarInt};
use super::{ack, connect, publish, subscribe, Packet};
use crate::types::{Protocol, ReasonCode};

/// Why a received packet was refused. `reason` is the MQTT 5 reason code to put in the
/// DISCONNECT the client sends: `MALFORMED_PACKET` (0x81), `PROTOCOL_ERROR` (0x82) or
/// `PACKET_TOO_LARGE` (0x95).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// MQTT 5 reason code describing the failure.
    pub reason: ReasonCode,
    /// What was wrong, for logs.
    pub message: String,
}

impl DecodeError {
    /// A Malformed Packet (0x81) error.
    pub fn malformed(message: impl Into<String>) -> Self {
        DecodeError {
            reason: ReasonCode::MALFORMED_PACKET,
            message: message.into(),
        }
    }

    /// A Protocol Error (0x82) error.
    pub fn protocol(message: impl Into<String>) -> Self {
        DecodeError {
            reason: ReasonCode::PROTOCOL_ERROR,
            message: message.into(),
        }
    }

    /// A Packet Too Large (0x95) error.
    pub fn too_large(message: impl Into<String>) -> Self {
        DecodeError {
            reason: ReasonCode::PACKET_TOO_LARGE,
            message: message.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (reason 0x{:02X})", self.message, self.reason.0)
    }
}

impl std::error::Error for DecodeError {}

impl From<DecodeError> for crate::Error {
    fn from(e: DecodeError) -> Self {
        crate::Error::Protocol(e.message)
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

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;
    use crate::types::{QoS, RetainHandling, SubscribeOptions};
    use crate::Properties;

    const ALL_PROTOCOLS: [Protocol; 3] = [Protocol::V31, Protocol::V311, Protocol::V5];

    fn enc(p: &Packet, proto: Protocol) -> Vec<u8> {
        let mut out = Vec::new();
        p.encode(proto, &mut out)
            .unwrap_or_else(|e| panic!("encoding {p:?}: {e}"));
        out
    }

    fn dec(bytes: &[u8], proto: Protocol) -> Result<Packet, DecodeError> {
        match decode(bytes, proto, usize::MAX)? {
            Some((p, n)) => {
                assert_eq!(n, bytes.len(), "decode used {n} of {} bytes", bytes.len());
                Ok(p)
            }
            None => panic!("incomplete: {bytes:02X?}"),
        }
    }

    fn user() -> Properties {
        Properties {
            user_properties: vec![("key".into(), "value".into())],
            ..Default::default()
        }
    }

    fn v5_props(ctx: PropertyContext) -> Properties {
        super::super::properties::tests::allowed_subset(ctx)
    }

    fn ack(reason: u8, properties: Properties) -> Ack {
        Ack {
            pkid: 7,
            reason: ReasonCode(reason),
            properties,
        }
    }

    /// Packets valid in `proto` (properties only for MQTT 5).
    fn samples(proto: Protocol) -> Vec<Packet> {
        use PropertyContext as C;
        let v5 = proto.is_v5();
        let pr = |ctx| {
            if v5 {
                v5_props(ctx)
            } else {
                Properties::default()
            }
        };
        let mut v = Vec::new();
        for (will, user_name, pass) in [
            (false, false, false),
            (true, true, true),
            (true, true, false),
        ] {
            v.push(Packet::Connect(Connect {
                protocol: proto,
                clean_start: !will,
                keep_alive: 60,
                client_id: if will { "cid".into() } else { String::new() },
                will: will.then(|| LastWill {
                    topic: "will/topic".into(),
                    payload: b"bye".to_vec(),
                    qos: QoS::ExactlyOnce,
                    retain: true,
                    properties: pr(C::Will),
                }),
                username: user_name.then(|| "user".into()),
                password: pass.then(|| vec![0, 1, 255]),
                properties: pr(C::Connect),
            }));
        }
        if v5 {
            v.push(Packet::Connect(Connect {
                protocol: proto,
                clean_start: true,
                keep_alive: 0,
                client_id: "c".into(),
                will: None,
                username: None,
                password: Some(b"pw".to_vec()),
                properties: Properties::default(),
            }));
        }
        for code in [0u8, 5] {
            v.push(Packet::ConnAck(ConnAck {
                session_present: code == 0,
                code: if v5 && code == 5 { 0x87 } else { code },
                properties: pr(C::ConnAck),
            }));
        }
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            v.push(Packet::Publish(Publish {
                dup: qos != QoS::AtMostOnce,
                qos,
                retain: qos == QoS::AtLeastOnce,
                topic: "a/b/\u{2A6D4}".into(),
                pkid: if qos == QoS::AtMostOnce { 0 } else { 65535 },
                properties: pr(C::Publish),
                payload: vec![1, 2, 3],
            }));
        }
        v.push(Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t".into(),
            pkid: 0,
            properties: Properties::default(),
            payload: Vec::new(),
        }));
        if v5 {
            v.push(Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: String::new(),
                pkid: 1,
                properties: Properties {
                    topic_alias: Some(4),
                    ..Default::default()
                },
                payload: b"x".to_vec(),
            }));
        }
        let acks = if v5 {
            vec![
                ack(0, Properties::default()),
                ack(0x10, Properties::default()),
                ack(0x80, user()),
                ack(0, user()),
            ]
        } else {
            vec![ack(0, Properties::default())]
        };
        for a in acks {
            v.push(Packet::PubAck(a.clone()));
            v.push(Packet::PubRec(a.clone()));
            let rel = if a.reason.0 == 0 {
                a.clone()
            } else {
                Ack {
                    reason: ReasonCode(0x92),
                    ..a
                }
            };
            v.push(Packet::PubRel(rel.clone()));
            v.push(Packet::PubComp(rel));
        }
        if v5 {
            let mut a = ack(0, v5_props(C::PubAck));
            v.push(Packet::PubAck(a.clone()));
            a.properties = v5_props(C::PubRec);
            v.push(Packet::PubRec(a.clone()));
            a.properties = v5_props(C::PubRel);
            v.push(Packet::PubRel(a.clone()));
            a.properties = v5_props(C::PubComp);
            v.push(Packet::PubComp(a));
        }
        let opts = if v5 {
            SubscribeOptions {
                qos: QoS::ExactlyOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
            }
        } else {
            SubscribeOptions::qos(QoS::AtLeastOnce)
        };
        v.push(Packet::Subscribe(Subscribe {
            pkid: 1,
            filters: vec![
                ("test/subscribe".into(), opts),
                ("a/+/#".into(), SubscribeOptions::default()),
            ],
            properties: pr(C::Subscribe),
        }));
        v.push(Packet::SubAck(SubAck {
            pkid: 1,
            reasons: vec![ReasonCode(0), ReasonCode(2), ReasonCode(0x80)],
            properties: pr(C::SubAck),
        }));
        v.push(Packet::Unsubscribe(Unsubscribe {
            pkid: 2,
            filters: vec!["test/subscribe".into(), "#".into()],
            properties: pr(C::Unsubscribe),
        }));
        v.push(Packet::UnsubAck(UnsubAck {
            pkid: 2,
            reasons: if v5 {
                vec![ReasonCode(0), ReasonCode(0x11)]
            } else {
                Vec::new()
            },
            properties: pr(C::UnsubAck),
        }));
        v.push(Packet::PingReq);
        v.push(Packet::PingResp);
        v.push(Packet::Disconnect(Disconnect::default()));
        if v5 {
            v.push(Packet::Disconnect(Disconnect {
                reason: ReasonCode(0x04),
                properties: Properties::default(),
            }));
            v.push(Packet::Disconnect(Disconnect {
                reason: ReasonCode(0x8B),
                properties: v5_props(C::Disconnect),
            }));
            v.push(Packet::Auth(Auth::default()));
            v.push(Packet::Auth(Auth {
                reason: ReasonCode(0x18),
                properties: Properties::default(),
            }));
            v.push(Packet::Auth(Auth {
                reason: ReasonCode(0x19),
                properties: v5_props(C::Auth),
            }));
        }
        v
    }

    #[test]
    fn roundtrip_every_packet() {
        for proto in ALL_PROTOCOLS {
            let mut types = std::collections::HashSet::new();
            for p in samples(proto) {
                let bytes = enc(&p, proto);
                let d = dec(&bytes, proto).unwrap_or_else(|e| panic!("{proto:?} {p:?}: {e}"));
                assert_eq!(d, p, "{proto:?}");
                types.insert(p.name());
            }
            assert_eq!(
                types.len(),
                if proto.is_v5() { 15 } else { 14 },
                "{proto:?}"
            );
        }
    }

    #[test]
    fn v3_ignores_properties_and_reasons() {
        for proto in [Protocol::V31, Protocol::V311] {
            let p = Packet::PubAck(ack(0x80, user()));
            assert_eq!(enc(&p, proto), [0x40, 2, 0, 7]);
            let p = Packet::Disconnect(Disconnect {
                reason: ReasonCode(4),
                properties: user(),
            });
            assert_eq!(enc(&p, proto), [0xE0, 0]);
            let p = Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: "t".into(),
                pkid: 0,
                properties: user(),
                payload: b"p".to_vec(),
            });
            assert_eq!(enc(&p, proto), [0x30, 4, 0, 1, b't', b'p']);
            let p = Packet::Auth(Auth::default());
            let mut out = vec![9];
            let e = p.encode(proto, &mut out).unwrap_err();
            assert!(matches!(e, crate::Error::InvalidArgument(_)));
            assert_eq!(out, [9]);
        }
    }

    fn s(x: &str) -> Vec<u8> {
        let mut v = (x.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(x.as_bytes());
        v
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn connect(proto: Protocol) -> Connect {
        Connect {
            protocol: proto,
            clean_start: true,
            keep_alive: 60,
            client_id: "fuzzish".into(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        }
    }

    #[test]
    fn bytes_connect() {
        let p = Packet::Connect(connect(Protocol::V311));
        let want = cat(&[&[0x10, 19], &s("MQTT"), &[4, 0x02, 0, 60], &s("fuzzish")]);
        assert_eq!(enc(&p, Protocol::V311), want);
        // The protocol comes from the CONNECT itself.
        assert_eq!(enc(&p, Protocol::V5), want);

        let p = Packet::Connect(connect(Protocol::V5));
        let want = cat(&[&[0x10, 20], &s("MQTT"), &[5, 0x02, 0, 60, 0], &s("fuzzish")]);
        assert_eq!(enc(&p, Protocol::V5), want);

        let mut c = connect(Protocol::V31);
        c.client_id = "c".into();
        c.keep_alive = 10;
        c.will = Some(LastWill {
            topic: "t".into(),
            payload: b"wp".to_vec(),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: user(),
        });
        c.username = Some("u".into());
        c.password = Some(b"pw".to_vec());
        let want = cat(&[
            &[0x10, 29],
            &s("MQIsdp"),
            &[3, 0xEE, 0, 10],
            &s("c"),
            &s("t"),
            &s("wp"),
            &s("u"),
            &s("pw"),
        ]);
        assert_eq!(enc(&Packet::Connect(c.clone()), Protocol::V31), want);

        // Password without user name: only MQTT 5.
        c.username = None;
        for proto in [Protocol::V31, Protocol::V311] {
            c.protocol = proto;
            let mut out = Vec::new();
            let e = Packet::Connect(c.clone())
                .encode(proto, &mut out)
                .unwrap_err();
            assert!(matches!(e, crate::Error::InvalidArgument(_)));
            assert!(out.is_empty());
        }

        let mut c = connect(Protocol::V5);
        c.client_id = "c".into();
        c.keep_alive = 10;
        c.properties.session_expiry_interval = Some(10);
        c.will = Some(LastWill {
            topic: "t".into(),
            payload: Vec::new(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Properties {
                will_delay_interval: Some(5),
                ..Default::default()
            },
        });
        let want = cat(&[
            &[0x10, 30],
            &s("MQTT"),
            &[5, 0x06, 0, 10],
            &[5, 0x11, 0, 0, 0, 10],
            &s("c"),
            &[5, 0x18, 0, 0, 0, 5],
            &s("t"),
            &[0, 0],
        ]);
        assert_eq!(enc(&Packet::Connect(c.clone()), Protocol::V5), want);
        // Will properties are checked against the will table.
        c.will.as_mut().unwrap().properties.topic_alias = Some(1);
        let mut out = Vec::new();
        let e = Packet::Connect(c)
            .encode(Protocol::V5, &mut out)
            .unwrap_err();
        assert!(e.to_string().contains("Topic Alias") && e.to_string().contains("will"));
    }

    fn publish(qos: QoS, pkid: u16, properties: Properties) -> Packet {
        Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic: "topic".into(),
            pkid,
            properties,
            payload: b"hi".to_vec(),
        })
    }

    #[test]
    fn bytes_publish() {
        let p = publish(QoS::AtMostOnce, 0, Properties::default());
        let want = cat(&[&[0x30, 9], &s("topic"), b"hi"]);
        assert_eq!(enc(&p, Protocol::V311), want);
        let want5 = cat(&[&[0x30, 10], &s("topic"), &[0], b"hi"]);
        assert_eq!(enc(&p, Protocol::V5), want5);

        let mut p = publish(QoS::AtLeastOnce, 10, Properties::default());
        if let Packet::Publish(x) = &mut p {
            x.dup = true;
        }
        let want = cat(&[&[0x3A, 11], &s("topic"), &[0, 10], b"hi"]);
        assert_eq!(enc(&p, Protocol::V311), want);

        let mut p = publish(
            QoS::ExactlyOnce,
            11,
            Properties {
                payload_format_indicator: Some(1),
                topic_alias: Some(2),
                ..Default::default()
            },
        );
        if let Packet::Publish(x) = &mut p {
            x.retain = true;
        }
        let want = cat(&[
            &[0x35, 17],
            &s("topic"),
            &[0, 11],
            &[5, 0x01, 1, 0x23, 0, 2],
            b"hi",
        ]);
        assert_eq!(enc(&p, Protocol::V5), want);
    }

    #[test]
    fn encode_publish_fast_path() {
        let mut out = vec![0xAA];
        encode_publish(
            &mut out,
            Protocol::V5,
            "a/b",
            b"payload",
            QoS::AtLeastOnce,
            false,
            false,
            3,
            None,
        )
        .unwrap();
        assert_eq!(
            out,
            cat(&[&[0xAA, 0x32, 15], &s("a/b"), &[0, 3, 0], b"payload"])
        );
        let bad: [(&str, QoS, u16, Option<Properties>); 6] = [
            ("a/+", QoS::AtMostOnce, 0, None),
            ("#", QoS::AtMostOnce, 0, None),
            ("a\0", QoS::AtMostOnce, 0, None),
            ("", QoS::AtMostOnce, 0, None),
            ("a", QoS::AtLeastOnce, 0, None),
            (
                "a",
                QoS::AtMostOnce,
                0,
                Some(Properties {
                    reason_string: Some("no".into()),
                    ..Default::default()
                }),
            ),
        ];
        for (topic, qos, pkid, props) in bad {
            let mut out = vec![1];
            let e = encode_publish(
                &mut out,
                Protocol::V5,
                topic,
                b"",
                qos,
                false,
                false,
                pkid,
                props.as_ref(),
            )
            .unwrap_err();
            assert!(matches!(e, crate::Error::InvalidArgument(_)), "{topic:?}");
            assert_eq!(out, [1]);
        }
        // Empty topic with a Topic Alias: only MQTT 5.
        let alias = Properties {
            topic_alias: Some(1),
            ..Default::default()
        };
        let mut out = Vec::new();
        encode_publish(
            &mut out,
            Protocol::V5,
            "",
            b"",
            QoS::AtMostOnce,
            false,
            false,
            0,
            Some(&alias),
        )
        .unwrap();
        assert_eq!(out, [0x30, 6, 0, 0, 3, 0x23, 0, 1]);
        let mut out = Vec::new();
        assert!(encode_publish(
            &mut out,
            Protocol::V311,
            "",
            b"",
            QoS::AtMostOnce,
            false,
            false,
            0,
            Some(&alias)
        )
        .is_err());
    }

    #[test]
    fn payload_size_limit() {
        let payload = vec![0u8; MAX_REMAINING_LENGTH - 2 - 1 + 1];
        let mut out = Vec::new();
        let e = encode_publish(
            &mut out,
            Protocol::V311,
            "t",
            &payload,
            QoS::AtMostOnce,
            false,
            false,
            0,
            None,
        )
        .unwrap_err();
        assert!(matches!(e, crate::Error::PayloadSize(_)), "{e}");
        assert!(out.is_empty());
        let payload = vec![0u8; MAX_REMAINING_LENGTH - 2 - 1];
        encode_publish(
            &mut out,
            Protocol::V311,
            "t",
            &payload,
            QoS::AtMostOnce,
            false,
            false,
            0,
            None,
        )
        .unwrap();
        assert_eq!(out.len(), 1 + 4 + MAX_REMAINING_LENGTH);
        assert_eq!(&out[..5], [0x30, 0xFF, 0xFF, 0xFF, 0x7F]);
    }

    #[test]
    fn bytes_subscribe_unsubscribe() {
        let sub = |opts, properties| {
            Packet::Subscribe(Subscribe {
                pkid: 1,
                filters: vec![("test/subscribe".into(), opts)],
                properties,
            })
        };
        let opts = SubscribeOptions {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
        };
        let p = sub(opts, Properties::default());
        let want = cat(&[&[0x82, 19, 0, 1], &s("test/subscribe"), &[2]]);
        assert_eq!(enc(&p, Protocol::V311), want);
        let mut props = user();
        props.subscription_identifiers = vec![268_435_455];
        let p = sub(opts, props.clone());
        let want = cat(&[
            &[0x82, 38, 0, 1, 18, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F, 0x26],
            &s("key"),
            &s("value"),
            &s("test/subscribe"),
            &[0x2E],
        ]);
        assert_eq!(enc(&p, Protocol::V5), want);

        let un = Packet::Unsubscribe(Unsubscribe {
            pkid: 1,
            filters: vec!["test/subscribe".into()],
            properties: Properties::default(),
        });
        let want = cat(&[&[0xA2, 18, 0, 1], &s("test/subscribe")]);
        assert_eq!(enc(&un, Protocol::V311), want);
        let want = cat(&[&[0xA2, 19, 0, 1, 0], &s("test/subscribe")]);
        assert_eq!(enc(&un, Protocol::V5), want);

        for bad in [
            Packet::Subscribe(Subscribe {
                pkid: 1,
                filters: Vec::new(),
                properties: Properties::default(),
            }),
            Packet::Subscribe(Subscribe {
                pkid: 1,
                filters: vec![("a/#/b".into(), SubscribeOptions::default())],
                properties: Properties::default(),
            }),
            Packet::Unsubscribe(Unsubscribe {
                pkid: 1,
                filters: vec!["a+".into()],
                properties: Properties::default(),
            }),
            Packet::Unsubscribe(Unsubscribe {
                pkid: 1,
                filters: Vec::new(),
                properties: Properties::default(),
            }),
        ] {
            let mut out = Vec::new();
            let e = bad.encode(Protocol::V5, &mut out).unwrap_err();
            assert!(matches!(e, crate::Error::InvalidArgument(_)));
            assert!(out.is_empty());
        }
    }

    #[test]
    fn bytes_acks_disconnect_auth_misc() {
        let v5 = Protocol::V5;
        let v3 = Protocol::V311;
        let reason_x = Properties {
            reason_string: Some("x".into()),
            ..Default::default()
        };
        let cases: Vec<(Packet, Protocol, Vec<u8>)> = vec![
            (
                Packet::PubAck(ack(0, Properties::default())),
                v3,
                vec![0x40, 2, 0, 7],
            ),
            (
                Packet::PubAck(ack(0, Properties::default())),
                v5,
                vec![0x40, 2, 0, 7],
            ),
            (
                Packet::PubRec(ack(0x10, Properties::default())),
                v5,
                vec![0x50, 3, 0, 7, 0x10],
            ),
            (
                Packet::PubRec(ack(0x10, Properties::default())),
                v3,
                vec![0x50, 2, 0, 7],
            ),
            (
                Packet::PubRel(ack(0, reason_x.clone())),
                v5,
                vec![0x62, 8, 0, 7, 0, 4, 0x1F, 0, 1, b'x'],
            ),
            (
                Packet::PubRel(ack(0, Properties::default())),
                v3,
                vec![0x62, 2, 0, 7],
            ),
            (
                Packet::PubComp(ack(0x92, Properties::default())),
                v5,
                vec![0x70, 3, 0, 7, 0x92],
            ),
            (Packet::PingReq, v3, vec![0xC0, 0]),
            (Packet::PingResp, v5, vec![0xD0, 0]),
            (Packet::Disconnect(Disconnect::default()), v3, vec![0xE0, 0]),
            (Packet::Disconnect(Disconnect::default()), v5, vec![0xE0, 0]),
            (
                Packet::Disconnect(Disconnect {
                    reason: ReasonCode(4),
                    properties: Properties::default(),
                }),
                v5,
                vec![0xE0, 1, 4],
            ),
            (
                Packet::Disconnect(Disconnect {
                    reason: ReasonCode(0),
                    properties: Properties {
                        session_expiry_interval: Some(0),
                        ..Default::default()
                    },
                }),
                v5,
                vec![0xE0, 7, 0, 5, 0x11, 0, 0, 0, 0],
            ),
            (Packet::Auth(Auth::default()), v5, vec![0xF0, 0]),
            (
                Packet::Auth(Auth {
                    reason: ReasonCode(0x18),
                    properties: Properties {
                        authentication_method: Some("m".into()),
                        ..Default::default()
                    },
                }),
                v5,
                vec![0xF0, 6, 0x18, 4, 0x15, 0, 1, b'm'],
            ),
            (
                Packet::ConnAck(ConnAck {
                    session_present: true,
                    code: 0,
                    properties: Properties::default(),
                }),
                v3,
                vec![0x20, 2, 1, 0],
            ),
            (
                Packet::ConnAck(ConnAck {
                    session_present: false,
                    code: 0,
                    properties: Properties {
                        receive_maximum: Some(20),
                        ..Default::default()
                    },
                }),
                v5,
                vec![0x20, 6, 0, 0, 3, 0x21, 0, 20],
            ),
            (
                Packet::SubAck(SubAck {
                    pkid: 1,
                    reasons: vec![ReasonCode(1)],
                    properties: Properties::default(),
                }),
                v3,
                vec![0x90, 3, 0, 1, 1],
            ),
            (
                Packet::SubAck(SubAck {
                    pkid: 1,
                    reasons: vec![ReasonCode(2)],
                    properties: Properties::default(),
                }),
                v5,
                vec![0x90, 4, 0, 1, 0, 2],
            ),
            (
                Packet::UnsubAck(UnsubAck {
                    pkid: 1,
                    reasons: Vec::new(),
                    properties: Properties::default(),
                }),
                v3,
                vec![0xB0, 2, 0, 1],
            ),
            (
                Packet::UnsubAck(UnsubAck {
                    pkid: 1,
                    reasons: vec![ReasonCode(0)],
                    properties: Properties::default(),
                }),
                v5,
                vec![0xB0, 4, 0, 1, 0, 0],
            ),
        ];
        for (p, proto, want) in cases {
            assert_eq!(enc(&p, proto), want, "{p:?} {proto:?}");
            let lossy = !proto.is_v5() && matches!(&p, Packet::PubRec(a) if a.reason.0 != 0);
            if !lossy {
                assert_eq!(dec(&want, proto).unwrap(), p, "{want:02X?}");
            }
        }
    }

    #[test]
    fn property_not_allowed_refused() {
        let p = Packet::PubAck(ack(
            0,
            Properties {
                topic_alias: Some(1),
                ..Default::default()
            },
        ));
        let mut out = vec![7];
        let e = p.encode(Protocol::V5, &mut out).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("Topic Alias") && msg.contains("PUBACK"),
            "{msg}"
        );
        assert_eq!(out, [7]);
    }

    #[test]
    fn partial_input_needs_more() {
        for proto in ALL_PROTOCOLS {
            for p in samples(proto) {
                let bytes = enc(&p, proto);
                for n in 0..bytes.len() {
                    assert_eq!(
                        decode(&bytes[..n], proto, usize::MAX),
                        Ok(None),
                        "{p:?} {n}"
                    );
                }
                // Followed by another packet: only the first is consumed.
                let mut two = bytes.clone();
                two.extend_from_slice(&[0xD0, 0]);
                let (d, used) = decode(&two, proto, usize::MAX).unwrap().unwrap();
                assert_eq!((d, used), (p, bytes.len()));
            }
        }
    }

    #[test]
    fn oversize_refused_from_header() {
        let e = decode(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F], Protocol::V5, 1000).unwrap_err();
        assert_eq!(e.reason, ReasonCode::PACKET_TOO_LARGE);
        let e = decode(&[0x30, 0x80, 0x08], Protocol::V311, 1025).unwrap_err();
        assert_eq!(e.reason, ReasonCode::PACKET_TOO_LARGE);
        // Exactly at the limit is fine.
        let bytes = enc(
            &publish(QoS::AtMostOnce, 0, Properties::default()),
            Protocol::V311,
        );
        assert!(decode(&bytes, Protocol::V311, bytes.len())
            .unwrap()
            .is_some());
        assert!(decode(&bytes, Protocol::V311, bytes.len() - 1).is_err());
        // Converts into the crate error.
        let ce: crate::Error = e.into();
        assert!(matches!(ce, crate::Error::Protocol(_)));
    }

    #[test]
    fn fixed_header() {
        assert_eq!(parse_fixed_header(&[]), Ok(None));
        assert_eq!(parse_fixed_header(&[0x30]), Ok(None));
        assert_eq!(parse_fixed_header(&[0x30, 0x80]), Ok(None));
        assert_eq!(
            parse_fixed_header(&[0x30, 0x80, 0x01]),
            Ok(Some(FixedHeader {
                byte1: 0x30,
                remaining_len: 128,
                header_len: 3
            }))
        );
        let e = parse_fixed_header(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).unwrap_err();
        assert_eq!(e.reason, ReasonCode::MALFORMED_PACKET);
        assert!(decode(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF], Protocol::V5, usize::MAX).is_err());
    }

    fn reason_of(bytes: &[u8], proto: Protocol) -> u8 {
        match decode(bytes, proto, usize::MAX) {
            Err(e) => e.reason.0,
            other => panic!("{bytes:02X?} decoded: {other:?}"),
        }
    }

    #[test]
    fn decode_refusals() {
        let v5 = Protocol::V5;
        let v3 = Protocol::V311;
        let m = 0x81;
        let pe = 0x82;
        let t = |x: &str| s(x);
        let cases: Vec<(Vec<u8>, Protocol, u8)> = vec![
            (vec![0x00, 0], v3, m),
            (vec![0x41, 2, 0, 1], v3, m),
            (vec![0x60, 2, 0, 1], v3, m),
            (vec![0x83, 2, 0, 1], v3, m),
            (vec![0xF0, 0], v3, m),
            (vec![0xC0, 1, 0], v3, m),
            (vec![0xD0, 1, 0], v5, m),
            (vec![0xE0, 1, 0], v3, m),
            (vec![0x20, 3, 0, 0, 0], v3, m),
            (vec![0x20, 1, 0], v3, m),
            (vec![0x20, 2, 2, 0], v3, m),
            (vec![0x20, 2, 0, 6], v3, pe),
            (vec![0x20, 2, 0, 0], v5, m),
            (vec![0x20, 3, 0, 1, 0], v5, pe),
            (vec![0x40, 2, 0, 0], v3, pe),
            (vec![0x40, 3, 0, 1, 0], v3, m),
            (vec![0x40, 3, 0, 1, 0x92], v5, pe),
            (vec![0x62, 3, 0, 1, 0x10], v5, pe),
            (vec![0x40, 5, 0, 1, 0, 0, 0], v5, m),
            (vec![0x40, 4, 0, 1, 0, 1], v5, m),
            (vec![0xE0, 1, 0x01], v5, pe),
            (vec![0xF0, 1, 0x01], v5, pe),
            (vec![0x90, 2, 0, 1], v3, pe),
            (vec![0x90, 3, 0, 1, 3], v3, pe),
            (vec![0x90, 4, 0, 1, 0, 0x81], v5, pe),
            (vec![0xB0, 3, 0, 1, 0], v3, m),
            (vec![0xB0, 2, 0, 1], v5, m),
            (cat(&[&[0x30, 7], &t("a+b")[..], b"pp"]), v3, m),
            (cat(&[&[0x30, 2], &t("")[..]]), v3, pe),
            (cat(&[&[0x30, 3], &t("")[..], &[0]]), v5, pe),
            (cat(&[&[0x32, 5], &t("a")[..], &[0, 0]]), v3, pe),
            (cat(&[&[0x36, 6], &t("a")[..], &[0, 1, 0]]), v5, pe),
            (cat(&[&[0x36, 4], &t("a")[..], &[0x20]]), v5, m),
            (cat(&[&[0x30, 4], &[0, 2, 0xC2, 0x9F]]), v3, m),
            (cat(&[&[0x30, 4], &[0, 2, 0xED, 0xA0]]), v3, m),
            (cat(&[&[0x30, 5], &t("a")[..], &[2, 0x23]]), v5, m),
            (cat(&[&[0x30, 5], &t("a")[..], &[9, 0x23]]), v5, m),
        ];
        for (bytes, proto, want) in cases {
            assert_eq!(reason_of(&bytes, proto), want, "{bytes:02X?} {proto:?}");
        }
        // Accepted oddities (as libmosquitto / the Mosquitto corpus).
        let ok: Vec<(Vec<u8>, Protocol)> = vec![
            (cat(&[&[0x38, 4], &t("a")[..], b"p"]), v3),
            (vec![0x20, 4, 0, 0, 0, 0], v5),
            (vec![0xB0, 3, 0, 1, 0], v5),
            (vec![0xB0, 4, 0, 1, 0, 0xFF], v5),
            (vec![0x40, 2, 0, 1], v5),
        ];
        for (bytes, proto) in ok {
            assert!(
                decode(&bytes, proto, usize::MAX).unwrap().is_some(),
                "{bytes:02X?}"
            );
        }
    }

    /// xorshift64*: deterministic pseudo-random bytes without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn check_no_panic(bytes: &[u8], proto: Protocol) {
        for max in [usize::MAX, 64] {
            if let Ok(Some((p, n))) = decode(bytes, proto, max) {
                assert!(n <= bytes.len());
                // Whatever decodes re-encodes, and decodes to the same packet again.
                let enc_proto = match &p {
                    Packet::Connect(c) => c.protocol,
                    _ => proto,
                };
                let mut out = Vec::new();
                p.encode(proto, &mut out)
                    .unwrap_or_else(|e| panic!("{bytes:02X?} -> {p:?}: {e}"));
                let again = decode(&out, enc_proto, usize::MAX).unwrap().unwrap().0;
                assert_eq!(again, p, "{bytes:02X?}");
            }
        }
    }

    #[test]
    fn fuzz_random_and_mutated() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut seeds = Vec::new();
        for proto in ALL_PROTOCOLS {
            for p in samples(proto) {
                seeds.push((enc(&p, proto), proto));
            }
        }
        let rounds = std::env::var("CODEC_FUZZ_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(40_000usize);
        for round in 0..rounds {
            let proto = ALL_PROTOCOLS[round % 3];
            let bytes: Vec<u8> = if round % 4 == 0 {
                let len = rng.below(40);
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                let (seed, _) = &seeds[rng.below(seeds.len())];
                let mut b = seed.clone();
                for _ in 0..=rng.below(4) {
                    match rng.below(4) {
                        0 if !b.is_empty() => {
                            let i = rng.below(b.len());
                            b[i] = rng.next() as u8;
                        }
                        1 if !b.is_empty() => {
                            let i = rng.below(b.len());
                            b[i] ^= 1 << rng.below(8);
                        }
                        2 if !b.is_empty() => {
                            b.truncate(rng.below(b.len()));
                        }
                        _ => {
                            let i = rng.below(b.len() + 1);
                            b.insert(i, rng.next() as u8);
                        }
                    }
                }
                // Keep the remaining length consistent half of the time so the body
                // decoders (not just the framing) see the mutations.
                if round % 2 == 0 && b.len() >= 2 && b.len() - 2 < 128 {
                    b[1] = (b.len() - 2) as u8;
                }
                b
            };
            check_no_panic(&bytes, proto);
        }
    }

    #[test]
    fn huge_counts_do_not_allocate() {
        // A remaining length promising 256 MB with only a few bytes present: needs more
        // input, allocates nothing.
        let bytes = [0x90, 0xFF, 0xFF, 0xFF, 0x7F, 0, 1];
        assert_eq!(decode(&bytes, Protocol::V5, usize::MAX), Ok(None));
        // A property length far beyond the packet: malformed.
        let bytes = [0x40, 7, 0, 1, 0, 0xFF, 0xFF, 0xFF, 0x7F];
        assert_eq!(reason_of(&bytes, Protocol::V5), 0x81);
    }
}
