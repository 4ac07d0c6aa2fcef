mod support;
// The broker's MQTT 5 limits from CONNACK.
use support::scripted_client::*;

/// connect() + loop_start() with MQTT 5, CONNACK with `connack_props`.
#[track_caller]
fn start_v5_with(
    broker: &ScriptedBroker,
    c: &Client,
    ev: &Events<Ev>,
    ka: u16,
    connack_props: &[u8],
) -> ScriptedConn {
    c.connect(HOST, broker.port(), ka).unwrap();
    c.loop_start().unwrap();
    accept_connack(broker, ev, &s::connack_v5(false, 0, connack_props)).0
}

#[test]
fn receive_maximum_lowers_the_window() {
    let broker = ScriptedBroker::bind();
    let c = v5("rm");
    let ev = hook(&c);
    let mut conn = start_v5_with(&broker, &c, &ev, 60, &p_u16(0x21, 2));
    let infos: Vec<_> = (1..=4)
        .map(|i| {
            c.publish("rm", format!("{i}"), QoS::AtLeastOnce, false)
                .unwrap()
        })
        .collect();
    conn.expect_packet(&s::publish_v5("rm", b"1", 1, 1, false, false, &[]), T);
    conn.expect_packet(&s::publish_v5("rm", b"2", 1, 2, false, false, &[]), T);
    conn.expect_silence(QUIET);
    conn.send(&s::puback(1));
    conn.expect_packet(&s::publish_v5("rm", b"3", 1, 3, false, false, &[]), T);
    conn.expect_silence(Duration::from_millis(100));
    conn.send(&s::puback(2));
    conn.expect_packet(&s::publish_v5("rm", b"4", 1, 4, false, false, &[]), T);
    conn.send(&s::puback(3));
    conn.send(&s::puback(4));
    for i in &infos {
        i.wait_for_publish(Some(T)).unwrap();
    }
}

#[test]
fn maximum_packet_size_refuses_oversize_publish_subscribe_unsubscribe() {
    let broker = ScriptedBroker::bind();
    let c = v5("mps");
    let ev = hook(&c);
    let mut conn = start_v5_with(&broker, &c, &ev, 60, &p_u32(0x27, 40));
    let big = vec![b'x'; 100];
    assert!(
        c.publish("t", &big, QoS::AtMostOnce, false).is_err(),
        "QoS 0 oversize accepted"
    );
    assert!(
        c.publish("t", &big, QoS::AtLeastOnce, false).is_err(),
        "QoS 1 oversize accepted"
    );
    let long = "f/".repeat(30);
    assert!(
        c.subscribe(&long, QoS::AtMostOnce).is_err(),
        "oversize SUBSCRIBE accepted"
    );
    assert!(
        c.unsubscribe(&long).is_err(),
        "oversize UNSUBSCRIBE accepted"
    );
    conn.expect_silence(QUIET);
    // A packet of exactly 40 bytes is fine: 2 header + 2+1 topic + 2 id + 1 props + 32 payload.
    let ok = c
        .publish("t", vec![b'y'; 32], QoS::AtLeastOnce, false)
        .unwrap();
    let p = conn.read_packet(T);
    assert_eq!(p.len(), 40);
    assert_bytes_eq(
        &s::publish_v5("t", &[b'y'; 32], 1, ok.mid(), false, false, &[]),
        &p,
        "PUBLISH at the limit",
    );
    // 41 bytes is refused.
    assert!(c
        .publish("t", vec![b'y'; 33], QoS::AtLeastOnce, false)
        .is_err());
    conn.expect_silence(Duration::from_millis(100));
}

#[test]
fn maximum_qos_0_refuses_qos1_publish() {
    let broker = ScriptedBroker::bind();
    let c = v5("mq");
    let ev = hook(&c);
    let mut conn = start_v5_with(&broker, &c, &ev, 60, &p_u8(0x24, 0));
    assert!(c.publish("t", "1", QoS::AtLeastOnce, false).is_err());
    assert!(c.publish("t", "2", QoS::ExactlyOnce, false).is_err());
    conn.expect_silence(QUIET);
    c.publish("t", "0", QoS::AtMostOnce, false).unwrap();
    let p = conn.read_packet(T);
    assert_bytes_eq(
        &s::publish_v5("t", b"0", 0, 0, false, false, &[]),
        &p,
        "QoS 0 still allowed",
    );
}

#[test]
fn maximum_qos_1_refuses_qos2_publish() {
    let broker = ScriptedBroker::bind();
    let c = v5("mq1");
    let ev = hook(&c);
    let mut conn = start_v5_with(&broker, &c, &ev, 60, &p_u8(0x24, 1));
    assert!(c.publish("t", "2", QoS::ExactlyOnce, false).is_err());
    conn.expect_silence(QUIET);
    let i = c.publish("t", "1", QoS::AtLeastOnce, false).unwrap();
    conn.expect_packet(&s::publish_v5("t", b"1", 1, i.mid(), false, false, &[]), T);
}

#[test]
fn retain_unavailable_refuses_retained_publish() {
    let broker = ScriptedBroker::bind();
    let c = v5("ra");
    let ev = hook(&c);
    let mut conn = start_v5_with(&broker, &c, &ev, 60, &p_u8(0x25, 0));
    assert!(c.publish("t", "r", QoS::AtMostOnce, true).is_err());
    assert!(c.publish("t", "r", QoS::AtLeastOnce, true).is_err());
    conn.expect_silence(QUIET);
    c.publish("t", "n", QoS::AtMostOnce, false).unwrap();
    conn.expect_packet(&s::publish_v5("t", b"n", 0, 0, false, false, &[]), T);
}

#[test]
fn topic_alias_above_maximum_refused() {
    let broker = ScriptedBroker::bind();
    let c = v5("ta");
    let ev = hook(&c);
    let mut conn = start_v5_with(&broker, &c, &ev, 60, &p_u16(0x22, 2));
    let alias = |a| Properties {
        topic_alias: Some(a),
        ..Default::default()
    };
    assert!(c
        .publish_with_properties("t", "x", QoS::AtMostOnce, false, alias(3))
        .is_err());
    conn.expect_silence(QUIET);
    c.publish_with_properties("t", "x", QoS::AtMostOnce, false, alias(2))
        .unwrap();
    conn.expect_packet(
        &s::publish_v5("t", b"x", 0, 0, false, false, &p_u16(0x23, 2)),
        T,
    );
}

#[test]
fn topic_alias_refused_without_topic_alias_maximum() {
    let broker = ScriptedBroker::bind();
    let c = v5("ta0");
    let ev = hook(&c);
    let mut conn = start_v5_with(&broker, &c, &ev, 60, &[]);
    let p = Properties {
        topic_alias: Some(1),
        ..Default::default()
    };
    assert!(c
        .publish_with_properties("t", "x", QoS::AtMostOnce, false, p)
        .is_err());
    conn.expect_silence(QUIET);
}

#[test]
fn queued_messages_invalidated_by_connack_end_via_on_publish() {
    let broker = ScriptedBroker::bind();
    let c = v5("inval");
    let ev = hook(&c);
    // on_publish on its own channel (waiting for on_connect skips other events).
    let pubs: Events<(u16, u8)> = Events::new();
    let ptx = pubs.sender();
    c.on_publish(move |_c, mid, rc, _p| {
        let _ = ptx.send((mid, rc.value()));
    });
    // Queued before the first connect (offline).
    let ok1 = c.publish("ok", "1", QoS::AtLeastOnce, false).unwrap();
    let big = c
        .publish("big", vec![0u8; 200], QoS::AtLeastOnce, false)
        .unwrap();
    let q2 = c.publish("q2", "2", QoS::ExactlyOnce, false).unwrap();
    let ret = c.publish("ret", "r", QoS::AtLeastOnce, true).unwrap();
    let ali = c
        .publish_with_properties(
            "ali",
            "a",
            QoS::AtLeastOnce,
            false,
            Properties {
                topic_alias: Some(5),
                ..Default::default()
            },
        )
        .unwrap();
    let ok2 = c.publish("ok", "2", QoS::AtLeastOnce, false).unwrap();
    let limits = [
        p_u16(0x22, 2),
        p_u8(0x24, 1),
        p_u8(0x25, 0),
        p_u32(0x27, 100),
    ]
    .concat();
    let mut conn = start_v5_with(&broker, &c, &ev, 60, &limits);
    conn.expect_packet(
        &s::publish_v5("ok", b"1", 1, ok1.mid(), false, false, &[]),
        T,
    );
    conn.expect_packet(
        &s::publish_v5("ok", b"2", 1, ok2.mid(), false, false, &[]),
        T,
    );
    conn.expect_silence(QUIET);
    let mut failed = pubs.drain();
    failed.sort();
    assert_eq!(
        failed,
        vec![
            (big.mid(), 0x95),
            (q2.mid(), 0x9B),
            (ret.mid(), 0x9A),
            (ali.mid(), 0x94)
        ],
        "on_publish for the invalidated messages"
    );
    for i in [&big, &q2, &ret, &ali] {
        assert!(i.wait_for_publish(Some(T)).is_err());
        assert!(!i.is_published());
    }
}

#[test]
fn server_keep_alive_replaces_keepalive() {
    let broker = ScriptedBroker::bind();
    let c = v5("ska");
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 60).unwrap();
    let t0 = Instant::now();
    c.loop_start().unwrap();
    let (mut conn, connect) =
        accept_connack(&broker, &ev, &s::connack_v5(false, 0, &p_u16(0x13, 1)));
    assert_eq!(&connect[10..12], &60u16.to_be_bytes(), "CONNECT keepalive");
    let p = conn.read_packet(Duration::from_secs(3));
    let at = t0.elapsed();
    assert_bytes_eq(&[0xc0, 0x00], &p, "PINGREQ");
    assert!(
        at >= Duration::from_millis(800) && at <= Duration::from_secs(2),
        "PINGREQ after {at:?}"
    );
}

#[test]
fn server_keep_alive_longer_than_requested_delays_ping() {
    let broker = ScriptedBroker::bind();
    let c = v5("ska2");
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 1).unwrap();
    c.loop_start().unwrap();
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack_v5(false, 0, &p_u16(0x13, 3)));
    conn.expect_silence(Duration::from_millis(2000));
}

#[test]
fn assigned_client_identifier_used_on_reconnect() {
    let broker = ScriptedBroker::bind();
    let c = v5("");
    fast_reconnect(&c);
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    let (conn, connect1) = accept_connack(
        &broker,
        &ev,
        &s::connack_v5(false, 0, &p_str(0x12, "assigned-42")),
    );
    // 10 len 00 04 MQTT 05 flags ka ka 00(props) 00 00(id)
    assert_eq!(
        &connect1[12..],
        &[0, 0, 0],
        "first CONNECT [{}]",
        hex(&connect1)
    );
    assert_eq!(c.client_id(), "assigned-42");
    conn.close();
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    let mut conn2 = broker.accept(T);
    let connect2 = conn2.read_packet(T);
    let expected = {
        let mut b = mqtt_str("MQTT");
        b.extend_from_slice(&[5, 0x00, 0, 60, 0]);
        b.extend_from_slice(&mqtt_str("assigned-42"));
        s::packet(0x10, &b)
    };
    assert_bytes_eq(&expected, &connect2, "reconnect CONNECT");
}

#[test]
fn receive_maximum_limits_resend_after_reconnect() {
    let broker = ScriptedBroker::bind();
    let c = v5("rm-resend");
    fast_reconnect(&c);
    let ev = hook(&c);
    c.connect_with(ConnectOptions {
        port: broker.port(),
        clean_start: CleanStart::Never,
        ..ConnectOptions::new(HOST)
    })
    .unwrap();
    c.loop_start().unwrap();
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack_v5(false, 0, &[]));
    for i in 1..=3 {
        c.publish("rr", format!("{i}"), QoS::AtLeastOnce, false)
            .unwrap();
    }
    for i in 1..=3u16 {
        conn.expect_packet(
            &s::publish_v5("rr", format!("{i}").as_bytes(), 1, i, false, false, &[]),
            T,
        );
    }
    conn.close();
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    let mut conn = broker.accept(T);
    conn.read_packet(T);
    conn.send(&s::connack_v5(true, 0, &p_u16(0x21, 1)));
    conn.expect_packet(&s::publish_v5("rr", b"1", 1, 1, false, true, &[]), T);
    conn.expect_silence(QUIET);
    conn.send(&s::puback(1));
    conn.expect_packet(&s::publish_v5("rr", b"2", 1, 2, false, true, &[]), T);
    conn.expect_silence(Duration::from_millis(100));
    conn.send(&s::puback(2));
    conn.expect_packet(&s::publish_v5("rr", b"3", 1, 3, false, true, &[]), T);
}
