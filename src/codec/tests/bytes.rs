//! Byte-exact encodings and decodings of each packet family, checked against the layouts of
//! the MQTT 3.1, 3.1.1 and 5.0 specifications.

use super::*;

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
