//! Codec tests: round trips of every packet in every protocol, refusals, partial input,
//! size limits and a deterministic random/mutation no-panic loop. Byte-exact encodings of the
//! spec's packets are in `bytes.rs`.

use super::*;
use crate::codec::packet::parse_fixed_header;
use crate::types::{QoS, RetainHandling, SubscribeOptions};
use crate::Properties;

mod bytes;

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
    super::properties::tests::allowed_subset(ctx)
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
            bridge: false,
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
            bridge: false,
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
        bridge: false,
    }
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

/// `encode_aliased` adds a Topic Alias to an encoded MQTT 5 PUBLISH (topic kept or emptied):
/// the same bytes as encoding with the alias, and other properties and the payload kept.
#[test]
fn encode_aliased_matches_encoding_with_the_alias() {
    use crate::codec::publish::{encode_aliased, encoded_topic};
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let pkid = if qos == QoS::AtMostOnce { 0 } else { 7 };
        for keep in [true, false] {
            for payload in [&b""[..], &b"hello"[..], &[b'x'; 300][..]] {
                let mut plain = Vec::new();
                encode_publish(
                    &mut plain,
                    Protocol::V5,
                    "a/b",
                    payload,
                    qos,
                    true,
                    false,
                    pkid,
                    None,
                )
                .unwrap();
                assert_eq!(encoded_topic(&plain), Some("a/b"));
                let mut got = Vec::new();
                assert!(encode_aliased(&plain, 3, keep, &mut got));
                let props = Properties {
                    topic_alias: Some(3),
                    ..Properties::default()
                };
                let mut want = Vec::new();
                let topic = if keep { "a/b" } else { "" };
                encode_publish(
                    &mut want,
                    Protocol::V5,
                    topic,
                    payload,
                    qos,
                    true,
                    false,
                    pkid,
                    Some(&props),
                )
                .unwrap();
                assert_eq!(
                    got,
                    want,
                    "qos {qos:?} keep {keep} payload {}",
                    payload.len()
                );
            }
        }
    }
    // Other properties stay; the alias is added to them.
    let props = Properties {
        content_type: Some("text/plain".into()),
        user_properties: vec![("k".into(), "v".into())],
        ..Properties::default()
    };
    let mut plain = Vec::new();
    encode_publish(
        &mut plain,
        Protocol::V5,
        "t",
        b"p",
        QoS::AtLeastOnce,
        false,
        false,
        9,
        Some(&props),
    )
    .unwrap();
    let mut got = Vec::new();
    assert!(encode_aliased(&plain, 65535, false, &mut got));
    match dec(&got, Protocol::V5).unwrap() {
        Packet::Publish(p) => {
            assert_eq!(p.topic, "");
            assert_eq!(p.pkid, 9);
            assert_eq!(&p.payload[..], b"p");
            assert_eq!(p.properties.topic_alias, Some(65535));
            assert_eq!(p.properties.content_type.as_deref(), Some("text/plain"));
            assert_eq!(p.properties.user_properties, props.user_properties);
        }
        other => panic!("not a PUBLISH: {other:?}"),
    }
    // Not a PUBLISH: nothing appended.
    let mut none = Vec::new();
    assert!(!encode_aliased(&[0xC0, 0x00], 1, true, &mut none));
    assert!(none.is_empty());
}
