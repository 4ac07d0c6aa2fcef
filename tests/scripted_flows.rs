mod support;
// SUBSCRIBE/UNSUBSCRIBE, QoS 1/2 flows both ways, message ids and the in-flight window.
use support::scripted_client::*;

// ----- SUBSCRIBE / UNSUBSCRIBE

#[test]
fn subscribe_single_v311_and_suback_failure_code() {
    let broker = ScriptedBroker::bind();
    let c = v311("sub1");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let mid = c.subscribe("a/b", QoS::AtLeastOnce).unwrap();
    assert_eq!(mid, 1);
    conn.expect_packet(&subscribe_v3(1, &[("a/b", 1)]), T);
    conn.send(&s::suback(1, &[0x80]));
    assert_eq!(
        ev.wait_for(T, |e| matches!(e, Ev::Subscribe { .. })),
        Ev::Subscribe {
            mid: 1,
            rcs: vec![0x80]
        }
    );
}

#[test]
fn subscribe_many_v311() {
    let broker = ScriptedBroker::bind();
    let c = v311("sub2");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let mid = c
        .subscribe_many(&[
            ("x/#", QoS::AtMostOnce),
            ("y/+", QoS::ExactlyOnce),
            ("z", QoS::AtLeastOnce),
        ])
        .unwrap();
    conn.expect_packet(&subscribe_v3(mid, &[("x/#", 0), ("y/+", 2), ("z", 1)]), T);
    conn.send(&s::suback(mid, &[0, 2, 1]));
    assert_eq!(
        ev.wait_for(T, |e| matches!(e, Ev::Subscribe { .. })),
        Ev::Subscribe {
            mid,
            rcs: vec![0, 2, 1]
        }
    );
}

#[test]
fn subscribe_v5_options_byte_and_properties() {
    let broker = ScriptedBroker::bind();
    let c = v5("sub5");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let o1 = SubscribeOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::DoNotSend,
    };
    let o2 = SubscribeOptions {
        qos: QoS::ExactlyOnce,
        retain_handling: RetainHandling::SendIfNewSubscription,
        ..Default::default()
    };
    let p = Properties {
        subscription_identifiers: vec![200],
        user_properties: vec![("a".into(), "b".into())],
        ..Default::default()
    };
    let mid = c
        .subscribe_many_with_options(&[("s/1", o1), ("s/2", o2)], Some(p))
        .unwrap();
    let pb = props(&[p_var(0x0B, 200), p_pair("a", "b")]);
    // o1: qos 1 | no_local 0x04 | rap 0x08 | rh 2 << 4 = 0x2D; o2: qos 2 | rh 1 << 4 = 0x12
    conn.expect_packet(&subscribe_v5(mid, &pb, &[("s/1", 0x2D), ("s/2", 0x12)]), T);
    conn.send(&s::suback_v5(mid, &[], &[0x01, 0xA2]));
    assert_eq!(
        ev.wait_for(T, |e| matches!(e, Ev::Subscribe { .. })),
        Ev::Subscribe {
            mid,
            rcs: vec![0x01, 0xA2]
        }
    );
}

#[test]
fn subscribe_v5_single_without_properties() {
    let broker = ScriptedBroker::bind();
    let c = v5("sub5b");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let mid = c.subscribe("one", QoS::ExactlyOnce).unwrap();
    conn.expect_packet(&subscribe_v5(mid, &[0], &[("one", 2)]), T);
}

#[test]
fn unsubscribe_v311_and_unsuback() {
    let broker = ScriptedBroker::bind();
    let c = v311("unsub");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let mid = c.unsubscribe("a/b").unwrap();
    conn.expect_packet(&unsubscribe_v3(mid, &["a/b"]), T);
    conn.send(&s::unsuback(mid));
    assert_eq!(
        ev.wait_for(T, |e| matches!(e, Ev::Unsubscribe { .. })),
        Ev::Unsubscribe { mid, rcs: vec![] }
    );
    let mid2 = c.unsubscribe_many(&["c", "d/#"]).unwrap();
    assert_eq!(mid2, mid + 1);
    conn.expect_packet(&unsubscribe_v3(mid2, &["c", "d/#"]), T);
}

#[test]
fn unsubscribe_v5_with_properties_and_reason_codes() {
    let broker = ScriptedBroker::bind();
    let c = v5("unsub5");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let p = Properties {
        user_properties: vec![("u".into(), "1".into())],
        ..Default::default()
    };
    let mid = c.unsubscribe_with_properties(&["a", "b"], p).unwrap();
    conn.expect_packet(
        &unsubscribe_v5(mid, &props(&[p_pair("u", "1")]), &["a", "b"]),
        T,
    );
    conn.send(&s::unsuback_v5(mid, &[], &[0x00, 0x11]));
    assert_eq!(
        ev.wait_for(T, |e| matches!(e, Ev::Unsubscribe { .. })),
        Ev::Unsubscribe {
            mid,
            rcs: vec![0x00, 0x11]
        }
    );
}

// ----- outgoing QoS 1 / 2

#[test]
fn publish_qos1_puback_on_publish() {
    let broker = ScriptedBroker::bind();
    let c = v311("q1");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let info = c.publish("t/1", "hello", QoS::AtLeastOnce, false).unwrap();
    assert_eq!(info.mid(), 1);
    conn.expect_packet(&s::publish("t/1", b"hello", 1, 1, false, false), T);
    assert!(!info.is_published());
    ev.assert_none_within(Duration::from_millis(100));
    conn.send(&s::puback(1));
    assert_eq!(ev.wait(T), Ev::Publish { mid: 1, rc: 0 });
    assert!(info.is_published());
    info.wait_for_publish(Some(T)).unwrap();
}

#[test]
fn publish_qos1_retained_v5_with_properties() {
    let broker = ScriptedBroker::bind();
    let c = v5("q1r");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let p = Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(30),
        content_type: Some("text/plain".into()),
        response_topic: Some("r/t".into()),
        correlation_data: Some(vec![1, 2]),
        user_properties: vec![("k".into(), "v".into())],
        ..Default::default()
    };
    let info = c
        .publish_with_properties("t", "p", QoS::AtLeastOnce, true, p)
        .unwrap();
    let mut pl = vec![0x09];
    pl.extend_from_slice(&mqtt_bin(&[1, 2]));
    let pb = [
        p_u8(0x01, 1),
        p_u32(0x02, 30),
        p_str(0x03, "text/plain"),
        p_str(0x08, "r/t"),
        pl,
        p_pair("k", "v"),
    ]
    .concat();
    conn.expect_packet(
        &s::publish_v5("t", b"p", 1, info.mid(), true, false, &pb),
        T,
    );
    conn.send(&s::ack_v5(0x40, info.mid(), 0x10, &[]));
    // 0x10 No matching subscribers is a success code
    assert_eq!(
        ev.wait(T),
        Ev::Publish {
            mid: info.mid(),
            rc: 0x10
        }
    );
    info.wait_for_publish(Some(T)).unwrap();
}

#[test]
fn publish_qos2_pubrec_pubrel_pubcomp() {
    let broker = ScriptedBroker::bind();
    let c = v311("q2");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let info = c
        .publish("t/2", [0u8, 1, 2], QoS::ExactlyOnce, false)
        .unwrap();
    let mid = info.mid();
    conn.expect_packet(&s::publish("t/2", &[0, 1, 2], 2, mid, false, false), T);
    conn.send(&s::pubrec(mid));
    conn.expect_packet(&s::pubrel(mid), T);
    ev.assert_none_within(Duration::from_millis(100));
    assert!(!info.is_published(), "published before PUBCOMP");
    conn.send(&s::pubcomp(mid));
    assert_eq!(ev.wait(T), Ev::Publish { mid, rc: 0 });
    assert!(info.is_published());
    info.wait_for_publish(Some(T)).unwrap();
}

/// A broker that downgrades a QoS 2 publish to QoS 1 answers PUBACK (RabbitMQ's MQTT
/// plugin before 3.13 does): the flow ends there, as in Paho (on_publish once, no PUBREL),
/// instead of waiting forever for a PUBREC. A PUBACK after PUBREC is still ignored.
#[test]
fn publish_qos2_answered_with_puback_ends_flow() {
    let broker = ScriptedBroker::bind();
    let c = v311("q2ack");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let info = c.publish("t/2", "x", QoS::ExactlyOnce, false).unwrap();
    let mid = info.mid();
    conn.expect_packet(&s::publish("t/2", b"x", 2, mid, false, false), T);
    conn.send(&s::puback(mid));
    assert_eq!(ev.wait(T), Ev::Publish { mid, rc: 0 });
    info.wait_for_publish(Some(T)).unwrap();
    conn.expect_silence(QUIET);

    let info = c.publish("t/2", "y", QoS::ExactlyOnce, false).unwrap();
    let mid = info.mid();
    conn.expect_packet(&s::publish("t/2", b"y", 2, mid, false, false), T);
    conn.send(&s::pubrec(mid));
    conn.expect_packet(&s::pubrel(mid), T);
    conn.send(&s::puback(mid));
    ev.assert_none_within(Duration::from_millis(100));
    assert!(
        !info.is_published(),
        "a PUBACK after PUBREC does not end the flow"
    );
    conn.send(&s::pubcomp(mid));
    assert_eq!(ev.wait(T), Ev::Publish { mid, rc: 0 });
    assert!(info.is_published());
}

#[test]
fn publish_qos0_gets_mid_and_on_publish() {
    let broker = ScriptedBroker::bind();
    let c = v311("q0");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let info = c.publish("t/0", "zero", QoS::AtMostOnce, true).unwrap();
    assert_eq!(info.mid(), 1);
    conn.expect_packet(&s::publish("t/0", b"zero", 0, 0, true, false), T);
    assert_eq!(ev.wait(T), Ev::Publish { mid: 1, rc: 0 });
    info.wait_for_publish(Some(T)).unwrap();
    assert!(info.is_published());
}

#[test]
fn v5_puback_failure_reason_ends_flow() {
    let broker = ScriptedBroker::bind();
    let c = v5("q1f");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let info = c.publish("t", "x", QoS::AtLeastOnce, false).unwrap();
    let mid = info.mid();
    conn.expect_packet(&s::publish_v5("t", b"x", 1, mid, false, false, &[]), T);
    conn.send(&s::ack_v5(0x40, mid, 0x87, &p_str(0x1F, "nope")));
    assert_eq!(ev.wait(T), Ev::Publish { mid, rc: 0x87 });
    assert!(!info.is_published());
    assert!(info.wait_for_publish(Some(T)).is_err());
    conn.expect_silence(QUIET);
}

#[test]
fn v5_pubrec_failure_reason_ends_flow_without_pubrel() {
    let broker = ScriptedBroker::bind();
    let c = v5("q2f");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let info = c.publish("t", "x", QoS::ExactlyOnce, false).unwrap();
    let mid = info.mid();
    conn.expect_packet(&s::publish_v5("t", b"x", 2, mid, false, false, &[]), T);
    conn.send(&s::ack_v5(0x50, mid, 0x97, &[]));
    assert_eq!(ev.wait(T), Ev::Publish { mid, rc: 0x97 });
    match info.wait_for_publish(Some(T)) {
        Err(Error::PublishRefused(rc)) => assert_eq!(rc, ReasonCode(0x97)),
        other => panic!("expected an error, got {other:?}"),
    }
    conn.expect_silence(QUIET);
    // The id is free again and the next message flows normally.
    let info2 = c.publish("t", "y", QoS::AtLeastOnce, false).unwrap();
    conn.expect_packet(
        &s::publish_v5("t", b"y", 1, info2.mid(), false, false, &[]),
        T,
    );
}

// ----- incoming QoS 1 / 2

#[test]
fn incoming_qos1_on_message_then_puback() {
    let broker = ScriptedBroker::bind();
    let c = v311("in1");
    let ev = hook(&c);
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let tx = ev.sender();
    c.on_message(move |_c, m| {
        let _ = tx.send(Ev::message(m));
        let _ = release_rx.lock().unwrap().recv_timeout(T);
    });
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("in/1", b"data", 1, 77, true, false));
    let e = ev.wait(T);
    assert_eq!(
        e,
        Ev::Message {
            topic: "in/1".into(),
            payload: b"data".to_vec(),
            qos: 1,
            dup: false,
            retain: true,
            mid: 77
        }
    );
    // on_message has not returned yet: no PUBACK.
    conn.expect_silence(QUIET);
    release_tx.send(()).unwrap();
    conn.expect_packet(&s::puback(77), T);
}

#[test]
fn incoming_qos2_pubrec_at_once_message_at_pubrel_once() {
    let broker = ScriptedBroker::bind();
    let c = v311("in2");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("in/2", b"two", 2, 9, false, false));
    conn.expect_packet(&s::pubrec(9), T);
    ev.assert_none_within(QUIET);
    // The broker re-sends with DUP before PUBREL: PUBREC again, still no delivery.
    conn.send(&s::publish("in/2", b"two", 2, 9, false, true));
    conn.expect_packet(&s::pubrec(9), T);
    ev.assert_none_within(Duration::from_millis(100));
    conn.send(&s::pubrel(9));
    match ev.wait(T) {
        Ev::Message {
            topic,
            payload,
            qos,
            mid,
            ..
        } => {
            assert_eq!(
                (topic.as_str(), payload.as_slice(), qos, mid),
                ("in/2", &b"two"[..], 2, 9)
            );
        }
        other => panic!("expected on_message, got {other:?}"),
    }
    conn.expect_packet(&s::pubcomp(9), T);
    // A repeated PUBREL is answered with PUBCOMP and delivers nothing.
    conn.send(&s::pubrel(9));
    conn.expect_packet(&s::pubcomp(9), T);
    ev.assert_none_within(QUIET);
}

#[test]
fn incoming_qos0_v5_message_properties() {
    let broker = ScriptedBroker::bind();
    let c = v5("in0");
    let got = Arc::new(Mutex::new(None));
    let g = got.clone();
    let ev = hook(&c);
    let tx = ev.sender();
    c.on_message(move |_c, m| {
        *g.lock().unwrap() = Some(m.properties().clone());
        let _ = tx.send(Ev::message(m));
    });
    let mut conn = start(&broker, &c, &ev, 60);
    let pb = [p_str(0x03, "ct"), p_pair("x", "y")].concat();
    conn.send(&s::publish_v5("in/0", b"z", 0, 0, false, false, &pb));
    assert_eq!(
        ev.wait(T),
        Ev::Message {
            topic: "in/0".into(),
            payload: b"z".to_vec(),
            qos: 0,
            dup: false,
            retain: false,
            mid: 0
        }
    );
    let p = got.lock().unwrap().clone().unwrap();
    assert_eq!(p.content_type.as_deref(), Some("ct"));
    assert_eq!(p.user_properties, vec![("x".to_string(), "y".to_string())]);
    conn.expect_silence(Duration::from_millis(100));
}

#[test]
fn manual_ack_qos1_waits_for_ack() {
    let broker = ScriptedBroker::bind();
    let c = Client::builder()
        .client_id("man1")
        .manual_ack(true)
        .build()
        .unwrap();
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("m", b"1", 1, 5, false, false));
    assert!(matches!(ev.wait(T), Ev::Message { mid: 5, qos: 1, .. }));
    conn.expect_silence(QUIET);
    c.ack(5, QoS::AtLeastOnce).unwrap();
    conn.expect_packet(&s::puback(5), T);
}

#[test]
fn manual_ack_qos2_pubcomp_waits_for_ack() {
    let broker = ScriptedBroker::bind();
    let c = Client::builder()
        .client_id("man2")
        .manual_ack(true)
        .build()
        .unwrap();
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("m", b"2", 2, 6, false, false));
    conn.expect_packet(&s::pubrec(6), T);
    conn.send(&s::pubrel(6));
    assert!(matches!(ev.wait(T), Ev::Message { mid: 6, qos: 2, .. }));
    conn.expect_silence(QUIET);
    c.ack(6, QoS::ExactlyOnce).unwrap();
    conn.expect_packet(&s::pubcomp(6), T);
}

// ----- message ids

#[test]
fn mids_shared_counter_starting_at_1() {
    let broker = ScriptedBroker::bind();
    let c = v311("mids");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let i0 = c.publish("t", "a", QoS::AtMostOnce, false).unwrap();
    assert_eq!(i0.mid(), 1);
    conn.expect_packet(&s::publish("t", b"a", 0, 0, false, false), T);
    assert_eq!(c.subscribe("s", QoS::AtMostOnce).unwrap(), 2);
    conn.expect_packet(&subscribe_v3(2, &[("s", 0)]), T);
    assert_eq!(c.unsubscribe("s").unwrap(), 3);
    conn.expect_packet(&unsubscribe_v3(3, &["s"]), T);
    let i1 = c.publish("t", "b", QoS::AtLeastOnce, false).unwrap();
    assert_eq!(i1.mid(), 4);
    conn.expect_packet(&s::publish("t", b"b", 1, 4, false, false), T);
    let i2 = c.publish("t", "c", QoS::ExactlyOnce, false).unwrap();
    assert_eq!(i2.mid(), 5);
    conn.expect_packet(&s::publish("t", b"c", 2, 5, false, false), T);
}

#[test]
fn mid_in_flight_is_never_reused_after_wrap() {
    let broker = ScriptedBroker::bind();
    let c = v311("wrap");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let held = c.publish("held", "h", QoS::AtLeastOnce, false).unwrap();
    assert_eq!(held.mid(), 1);
    conn.expect_packet(&s::publish("held", b"h", 1, 1, false, false), T);
    // Drain everything the client sends on another thread; report QoS > 0 PUBLISH ids.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut count0 = 0usize;
        loop {
            let p = conn.read_packet(Duration::from_secs(30));
            if p[0] >> 4 == 3 && s::publish_qos(&p) == 0 {
                count0 += 1;
                continue;
            }
            let _ = tx.send(p);
            return (conn, count0);
        }
    });
    for i in 2..=65535u32 {
        let info = c.publish("q0", "", QoS::AtMostOnce, false).unwrap();
        assert_eq!(u32::from(info.mid()), i, "QoS 0 mid");
    }
    // The counter wraps to 1, which is still in flight: it must be skipped.
    let next = c.publish("next", "n", QoS::AtLeastOnce, false).unwrap();
    assert_ne!(next.mid(), 1, "mid 1 is still in flight and was reused");
    let p = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("no QoS 1 PUBLISH after the wrap");
    let (mut conn, count0) = reader.join().unwrap();
    assert_eq!(count0, 65534);
    assert_bytes_eq(
        &s::publish("next", b"n", 1, next.mid(), false, false),
        &p,
        "PUBLISH after wrap",
    );
    conn.send(&s::puback(1));
    conn.send(&s::puback(next.mid()));
    held.wait_for_publish(Some(T)).unwrap();
    next.wait_for_publish(Some(T)).unwrap();
}

// ----- in-flight window and queue limit

#[test]
fn inflight_window_two_of_five_in_order() {
    let broker = ScriptedBroker::bind();
    let c = v311("win");
    c.max_inflight_messages_set(2).unwrap();
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let infos: Vec<_> = (1..=5)
        .map(|i| {
            c.publish("w", format!("m{i}"), QoS::AtLeastOnce, false)
                .unwrap()
        })
        .collect();
    for (i, info) in infos.iter().enumerate() {
        assert_eq!(info.mid() as usize, i + 1);
    }
    conn.expect_packet(&s::publish("w", b"m1", 1, 1, false, false), T);
    conn.expect_packet(&s::publish("w", b"m2", 1, 2, false, false), T);
    conn.expect_silence(QUIET);
    conn.send(&s::puback(1));
    conn.expect_packet(&s::publish("w", b"m3", 1, 3, false, false), T);
    conn.expect_silence(Duration::from_millis(100));
    conn.send(&s::puback(2));
    conn.expect_packet(&s::publish("w", b"m4", 1, 4, false, false), T);
    conn.send(&s::puback(3));
    conn.expect_packet(&s::publish("w", b"m5", 1, 5, false, false), T);
    conn.send(&s::puback(4));
    conn.send(&s::puback(5));
    for info in &infos {
        info.wait_for_publish(Some(T)).unwrap();
    }
}

#[test]
fn inflight_setters_locked_while_connected() {
    let broker = ScriptedBroker::bind();
    let c = v311("lock");
    let ev = hook(&c);
    let _conn = start(&broker, &c, &ev, 60);
    assert!(matches!(
        c.max_inflight_messages_set(3),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(
        c.max_queued_messages_set(3),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(
        c.connect_timeout_set(Duration::from_secs(1)),
        Err(Error::InvalidState(_))
    ));
}

#[test]
fn max_queued_messages_refuses_with_queue_size() {
    let broker = ScriptedBroker::bind();
    let c = v311("queue");
    c.max_queued_messages_set(3).unwrap();
    c.max_inflight_messages_set(1).unwrap();
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    for i in 1..=3 {
        c.publish("q", format!("{i}"), QoS::AtLeastOnce, false)
            .unwrap();
    }
    assert!(matches!(
        c.publish("q", "4", QoS::AtLeastOnce, false),
        Err(Error::QueueSize)
    ));
    // QoS 0 does not count.
    c.publish("q", "zero", QoS::AtMostOnce, false).unwrap();
    conn.expect_packet(&s::publish("q", b"1", 1, 1, false, false), T);
    conn.expect_packet(&s::publish("q", b"zero", 0, 0, false, false), T);
    conn.expect_silence(Duration::from_millis(100));
    conn.send(&s::puback(1));
    conn.expect_packet(&s::publish("q", b"2", 1, 2, false, false), T);
    ev.wait_for(T, |e| matches!(e, Ev::Publish { mid: 1, .. }));
    // One slot is free again.
    let i5 = c.publish("q", "5", QoS::AtLeastOnce, false).unwrap();
    conn.send(&s::puback(2));
    conn.expect_packet(&s::publish("q", b"3", 1, 3, false, false), T);
    conn.send(&s::puback(3));
    conn.expect_packet(&s::publish("q", b"5", 1, i5.mid(), false, false), T);
}

#[test]
fn inflight_zero_is_unlimited() {
    let broker = ScriptedBroker::bind();
    let c = v311("unl");
    c.max_inflight_messages_set(0).unwrap();
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    for i in 1..=30u16 {
        c.publish("u", "", QoS::AtLeastOnce, false).unwrap();
        let _ = i;
    }
    for i in 1..=30u16 {
        conn.expect_packet(&s::publish("u", b"", 1, i, false, false), T);
    }
}

#[test]
fn default_inflight_window_is_20() {
    let broker = ScriptedBroker::bind();
    let c = v311("def20");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    for _ in 1..=21u16 {
        c.publish("d", "", QoS::AtLeastOnce, false).unwrap();
    }
    for i in 1..=20u16 {
        conn.expect_packet(&s::publish("d", b"", 1, i, false, false), T);
    }
    conn.expect_silence(QUIET);
    conn.send(&s::puback(1));
    conn.expect_packet(&s::publish("d", b"", 1, 21, false, false), T);
}

// ----- Backpressure

/// A broker that stops reading: with `loop_start`, `publish` blocks once `max_outgoing_bytes`
/// are waiting (memory stays bounded), resumes as the broker reads again, and the broker gets
/// every message once, in order, intact.
#[test]
fn qos0_flood_blocks_at_max_outgoing_bytes_and_loses_nothing() {
    use std::sync::atomic::{AtomicU32, Ordering};
    const N: u32 = 40_000;
    let broker = ScriptedBroker::bind();
    let c = v311("flood");
    let ev = hook(&c);
    c.max_outgoing_bytes_set(64 * 1024).unwrap();
    let mut conn = start(&broker, &c, &ev, 60);
    let published = Arc::new(AtomicU32::new(0));
    let finished: Events<()> = Events::new();
    let (pubc, count, fin) = (c.clone(), published.clone(), finished.sender());
    let publisher = std::thread::spawn(move || {
        let mut payload = vec![0x5a; 1024];
        for i in 0..N {
            payload[..4].copy_from_slice(&i.to_be_bytes());
            pubc.publish("flood", &payload[..], QoS::AtMostOnce, false)
                .expect("publish");
            count.store(i + 1, Ordering::SeqCst);
        }
        let _ = fin.send(());
    });
    // 40 MB do not fit into the loopback socket buffers plus 64 KiB: the publisher is held.
    finished.assert_none_within(Duration::from_millis(500));
    assert!(published.load(Ordering::SeqCst) < N);
    for i in 0..N {
        let p = conn.read_packet(T);
        assert_eq!(s::publish_qos(&p), 0);
        let at = s::body_offset(&p) + 2 + "flood".len();
        assert_eq!(p.len() - at, 1024, "payload of message {i}");
        assert_eq!(
            p[at..at + 4],
            i.to_be_bytes(),
            "message {i} lost or out of order"
        );
    }
    finished.wait(T);
    publisher.join().unwrap();
    conn.expect_silence(QUIET);
}
