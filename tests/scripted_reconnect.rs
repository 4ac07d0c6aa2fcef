mod support;
// Lost connections, reconnect with backoff, resend after CONNACK, offline rules, DISCONNECT.
use support::scripted_client::*;

fn persistent_v311(id: &str) -> Client {
    let c = Client::builder()
        .client_id(id)
        .clean_session(false)
        .build()
        .unwrap();
    fast_reconnect(&c);
    c
}

fn count_disconnects(evs: &[Ev]) -> usize {
    evs.iter()
        .filter(|e| matches!(e, Ev::Disconnect { .. }))
        .count()
}

#[test]
fn drop_with_unacked_messages_resends_dup_and_pubrel_in_order() {
    let broker = ScriptedBroker::bind();
    let c = persistent_v311("resend");
    c.reconnect_delay_set(Duration::from_millis(200), Duration::from_millis(400))
        .unwrap();
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let i1 = c.publish("r/1", "one", QoS::AtLeastOnce, false).unwrap();
    let i2 = c.publish("r/2", "two", QoS::ExactlyOnce, false).unwrap();
    let i3 = c.publish("r/3", "three", QoS::ExactlyOnce, true).unwrap();
    conn.expect_packet(&s::publish("r/1", b"one", 1, 1, false, false), T);
    conn.expect_packet(&s::publish("r/2", b"two", 2, 2, false, false), T);
    conn.expect_packet(&s::publish("r/3", b"three", 2, 3, true, false), T);
    conn.send(&s::pubrec(3));
    conn.expect_packet(&s::pubrel(3), T);
    conn.close();
    let dropped = Instant::now();
    let e = ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    assert_eq!(
        e,
        Ev::Disconnect {
            rc: 0x80,
            from_server: false,
            props: Properties::default()
        }
    );
    let mut conn = broker.accept(T);
    let waited = dropped.elapsed();
    assert!(
        waited >= Duration::from_millis(150),
        "reconnected after {waited:?}, before the minimum delay"
    );
    let connect = conn.read_packet(T);
    assert_eq!(connect[0], 0x10);
    conn.send(&s::connack(true, 0));
    conn.expect_packet(&s::publish("r/1", b"one", 1, 1, false, true), T);
    conn.expect_packet(&s::publish("r/2", b"two", 2, 2, false, true), T);
    conn.expect_packet(&s::pubrel(3), T);
    conn.expect_silence(QUIET);
    conn.send(&s::puback(1));
    conn.send(&s::pubrec(2));
    conn.expect_packet(&s::pubrel(2), T);
    conn.send(&s::pubcomp(2));
    conn.send(&s::pubcomp(3));
    for i in [&i1, &i2, &i3] {
        i.wait_for_publish(Some(T)).unwrap();
    }
    // on_publish runs on the loop thread after the MessageInfo completes: collect them.
    let mut evs = Vec::new();
    while evs
        .iter()
        .filter(|e| matches!(e, Ev::Publish { .. }))
        .count()
        < 3
    {
        evs.push(ev.wait(T));
    }
    evs.extend(ev.drain());
    assert_eq!(
        count_disconnects(&evs),
        0,
        "on_disconnect reported more than once: {evs:?}"
    );
    let pubs: Vec<_> = evs
        .iter()
        .filter(|e| matches!(e, Ev::Publish { .. }))
        .cloned()
        .collect();
    assert_eq!(
        pubs,
        vec![
            Ev::Publish { mid: 1, rc: 0 },
            Ev::Publish { mid: 2, rc: 0 },
            Ev::Publish { mid: 3, rc: 0 }
        ]
    );
}

#[test]
fn resend_respects_inflight_window_and_drops_nothing() {
    let broker = ScriptedBroker::bind();
    let c = persistent_v311("resend-win");
    c.max_inflight_messages_set(2).unwrap();
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let infos: Vec<_> = (1..=4)
        .map(|i| {
            c.publish("w", format!("{i}"), QoS::AtLeastOnce, false)
                .unwrap()
        })
        .collect();
    conn.expect_packet(&s::publish("w", b"1", 1, 1, false, false), T);
    conn.expect_packet(&s::publish("w", b"2", 1, 2, false, false), T);
    conn.expect_silence(Duration::from_millis(100));
    conn.close();
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    // Published while offline: queued behind the others.
    let i5 = c.publish("w", "5", QoS::AtLeastOnce, false).unwrap();
    let mut conn = broker.accept(T);
    conn.read_packet(T);
    conn.send(&s::connack(true, 0));
    conn.expect_packet(&s::publish("w", b"1", 1, 1, false, true), T);
    conn.expect_packet(&s::publish("w", b"2", 1, 2, false, true), T);
    conn.expect_silence(QUIET);
    conn.send(&s::puback(1));
    conn.expect_packet(&s::publish("w", b"3", 1, 3, false, false), T);
    conn.send(&s::puback(2));
    conn.expect_packet(&s::publish("w", b"4", 1, 4, false, false), T);
    conn.send(&s::puback(3));
    conn.expect_packet(&s::publish("w", b"5", 1, i5.mid(), false, false), T);
    conn.send(&s::puback(4));
    conn.send(&s::puback(i5.mid()));
    for i in infos.iter().chain([&i5]) {
        i.wait_for_publish(Some(T)).unwrap();
    }
}

#[test]
fn offline_before_first_connect_rules() {
    let broker = ScriptedBroker::bind();
    let c = v311("offline1");
    let ev = hook(&c);
    let i1 = c.publish("o", "q1", QoS::AtLeastOnce, false).unwrap();
    let i2 = c.publish("o", "q2", QoS::ExactlyOnce, false).unwrap();
    assert!(matches!(
        c.publish("o", "q0", QoS::AtMostOnce, false),
        Err(Error::NoConnection)
    ));
    assert!(matches!(
        c.subscribe("o", QoS::AtMostOnce),
        Err(Error::NoConnection)
    ));
    assert!(matches!(c.unsubscribe("o"), Err(Error::NoConnection)));
    assert!(!i1.is_published());
    // Another thread waits for the queued message.
    let w = {
        let i1 = i1.clone();
        std::thread::spawn(move || i1.wait_for_publish(Some(T)))
    };
    let mut conn = start(&broker, &c, &ev, 60);
    conn.expect_packet(&s::publish("o", b"q1", 1, i1.mid(), false, false), T);
    conn.expect_packet(&s::publish("o", b"q2", 2, i2.mid(), false, false), T);
    conn.send(&s::puback(i1.mid()));
    w.join().unwrap().unwrap();
    conn.send(&s::pubrec(i2.mid()));
    conn.expect_packet(&s::pubrel(i2.mid()), T);
    conn.send(&s::pubcomp(i2.mid()));
    i2.wait_for_publish(Some(T)).unwrap();
}

#[test]
fn offline_after_drop_queues_and_sends_after_connack() {
    let broker = ScriptedBroker::bind();
    let c = persistent_v311("offline2");
    c.reconnect_delay_set(Duration::from_millis(300), Duration::from_millis(600))
        .unwrap();
    let ev = hook(&c);
    let conn = start(&broker, &c, &ev, 60);
    conn.close();
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    assert!(!c.is_connected());
    let info = c.publish("o", "later", QoS::AtLeastOnce, false).unwrap();
    assert!(matches!(
        c.publish("o", "q0", QoS::AtMostOnce, false),
        Err(Error::NoConnection)
    ));
    assert!(matches!(
        c.subscribe("o", QoS::AtMostOnce),
        Err(Error::NoConnection)
    ));
    assert!(matches!(c.unsubscribe("o"), Err(Error::NoConnection)));
    let w = {
        let info = info.clone();
        std::thread::spawn(move || info.wait_for_publish(Some(T)))
    };
    let mut conn = broker.accept(T);
    conn.read_packet(T);
    // Nothing before CONNACK.
    conn.expect_silence(Duration::from_millis(100));
    conn.send(&s::connack(true, 0));
    conn.expect_packet(&s::publish("o", b"later", 1, info.mid(), false, false), T);
    conn.send(&s::puback(info.mid()));
    w.join().unwrap().unwrap();
}

#[test]
fn connack_timeout_reports_connect_fail_and_retries() {
    let broker = ScriptedBroker::bind();
    let c = v311("cto");
    fast_reconnect(&c);
    c.connect_timeout_set(Duration::from_millis(400)).unwrap();
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    let mut conn1 = broker.accept(T);
    assert_eq!(conn1.read_packet(T)[0], 0x10);
    let e = ev.wait(T);
    assert!(
        matches!(e, Ev::ConnectFail(_)),
        "expected on_connect_fail first, got {e:?}"
    );
    conn1.expect_closed(T);
    let (_conn2, _) = accept_connack(&broker, &ev, &s::connack(false, 0));
    let evs = ev.drain();
    assert_eq!(
        count_disconnects(&evs),
        0,
        "on_disconnect after a CONNACK timeout: {evs:?}"
    );
}

#[test]
fn broker_v5_disconnect_reported_with_reason_and_properties() {
    let broker = ScriptedBroker::bind();
    let c = v5("srvdisc");
    fast_reconnect(&c);
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::disconnect_v5(0x8B, &p_str(0x1F, "going down")));
    let e = ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    let expected_props = Properties {
        reason_string: Some("going down".into()),
        ..Default::default()
    };
    assert_eq!(
        e,
        Ev::Disconnect {
            rc: 0x8B,
            from_server: true,
            props: expected_props
        }
    );
    conn.expect_closed(T);
    // The loop reconnects.
    let _conn2 = broker.accept(T);
    let evs = ev.drain();
    assert_eq!(count_disconnects(&evs), 0, "{evs:?}");
}

#[test]
fn user_disconnect_sends_disconnect_and_reports_success() {
    let broker = ScriptedBroker::bind();
    let c = v311("udisc");
    fast_reconnect(&c);
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    c.disconnect().unwrap();
    conn.expect_packet(&[0xe0, 0x00], T);
    conn.expect_closed(T);
    expect_clean_disconnect(&ev);
    broker.expect_no_connection(QUIET);
    c.loop_stop().unwrap();
}

#[test]
fn user_disconnect_v5_sends_short_disconnect() {
    let broker = ScriptedBroker::bind();
    let c = v5("udisc5");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    c.disconnect().unwrap();
    let p = conn.read_packet(T);
    // Reason 0 without properties may be sent short (e0 00) or as e0 01 00.
    assert!(
        p == [0xe0, 0x00] || p == [0xe0, 0x01, 0x00],
        "DISCONNECT [{}]",
        hex(&p)
    );
    expect_clean_disconnect(&ev);
}

#[test]
fn disconnect_while_offline_stops_reconnect_attempts() {
    let broker = ScriptedBroker::bind();
    let c = v311("stop-reco");
    c.reconnect_delay_set(Duration::from_millis(400), Duration::from_millis(400))
        .unwrap();
    let ev = hook(&c);
    let conn = start(&broker, &c, &ev, 60);
    conn.close();
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    let _ = c.disconnect();
    broker.expect_no_connection(Duration::from_millis(1200));
    c.loop_stop().unwrap();
}

#[test]
fn reconnect_backoff_grows_while_connections_fail() {
    // Each attempt is accepted and closed before CONNACK: on_connect_fail, then a longer wait.
    let broker = ScriptedBroker::bind();
    let c = v311("backoff");
    c.reconnect_delay_set(Duration::from_millis(100), Duration::from_millis(400))
        .unwrap();
    let ev = hook(&c);
    let conn = start(&broker, &c, &ev, 60);
    conn.close();
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    let mut last = Instant::now();
    let mut gaps = Vec::new();
    for _ in 0..4 {
        let mut conn = broker.accept(T);
        gaps.push(last.elapsed());
        conn.read_packet(T);
        conn.close();
        ev.wait_for(T, |e| matches!(e, Ev::ConnectFail(_)));
        last = Instant::now();
    }
    // 100, 200, 400, 400 ms (the first gap is measured from the drop)
    assert!(gaps[0] >= Duration::from_millis(80), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(170), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(350), "{gaps:?}");
    assert!(
        gaps[3] >= Duration::from_millis(350) && gaps[3] < Duration::from_millis(1500),
        "{gaps:?}"
    );
    let (_conn, _) = accept_connack(&broker, &ev, &s::connack(false, 0));
}

#[test]
fn backoff_resets_after_successful_connack() {
    let broker = ScriptedBroker::bind();
    let c = v311("backoff-reset");
    c.reconnect_delay_set(Duration::from_millis(100), Duration::from_secs(2))
        .unwrap();
    let ev = hook(&c);
    let conn = start(&broker, &c, &ev, 60);
    conn.close();
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    // Two failed attempts: the delay grows to 400 ms.
    for _ in 0..2 {
        let mut conn = broker.accept(T);
        conn.read_packet(T);
        conn.close();
        ev.wait_for(T, |e| matches!(e, Ev::ConnectFail(_)));
    }
    let (conn, _) = accept_connack(&broker, &ev, &s::connack(false, 0));
    conn.close();
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    let t = Instant::now();
    let _conn = broker.accept(T);
    let gap = t.elapsed();
    assert!(
        gap < Duration::from_millis(350),
        "backoff not reset after CONNACK: reconnected after {gap:?}"
    );
}

#[test]

fn loop_start_then_connect_async_connects_at_once() {
    let broker = ScriptedBroker::bind();
    let c = v311("async");
    c.reconnect_delay_set(Duration::from_secs(5), Duration::from_secs(10))
        .unwrap();
    let ev = hook(&c);
    c.loop_start().unwrap();
    c.connect_async(HOST, broker.port(), 60).unwrap();
    let t = Instant::now();
    let (_conn, _) = accept_connack(&broker, &ev, &s::connack(false, 0));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "connect_async waited {:?}",
        t.elapsed()
    );
    assert!(c.is_connected());
    c.loop_stop().unwrap();
}

#[test]

fn loop_start_then_connect_works() {
    let broker = ScriptedBroker::bind();
    let c = v311("start-first");
    c.reconnect_delay_set(Duration::from_secs(5), Duration::from_secs(10))
        .unwrap();
    let ev = hook(&c);
    c.loop_start().unwrap();
    c.connect(HOST, broker.port(), 60).unwrap();
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack(false, 0));
    let i = c.publish("t", "x", QoS::AtLeastOnce, false).unwrap();
    conn.expect_packet(&s::publish("t", b"x", 1, i.mid(), false, false), T);
    c.loop_stop().unwrap();
}

#[test]
fn session_present_reported_in_connect_flags() {
    let broker = ScriptedBroker::bind();
    let c = persistent_v311("sp");
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    let mut conn = broker.accept(T);
    conn.read_packet(T);
    conn.send(&s::connack(true, 0));
    assert_eq!(
        wait_connect(&ev),
        Ev::Connect {
            rc: 0,
            session_present: true
        }
    );
}

/// An inbound QoS 2 message received (PUBREC sent) before a drop; after the reconnect the
/// broker sends PUBREL. Returns whether on_message ran.
fn inbound_qos2_across_reconnect(session_present: bool) -> bool {
    let broker = ScriptedBroker::bind();
    let c = persistent_v311("in-q2");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("in", b"kept", 2, 11, false, false));
    conn.expect_packet(&s::pubrec(11), T);
    conn.close();
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    let mut conn = broker.accept(T);
    conn.read_packet(T);
    conn.send(&s::connack(session_present, 0));
    wait_connect(&ev);
    conn.send(&s::pubrel(11));
    conn.expect_packet(&s::pubcomp(11), T);
    let delivered = ev.recv_timeout(QUIET);
    matches!(delivered, Some(Ev::Message { .. }))
}

#[test]
fn inbound_qos2_store_kept_when_session_resumed() {
    assert!(
        inbound_qos2_across_reconnect(true),
        "message lost although the session was resumed"
    );
}

#[test]
fn inbound_qos2_store_cleared_when_session_not_resumed() {
    assert!(
        !inbound_qos2_across_reconnect(false),
        "message delivered from a session that was not resumed"
    );
}

#[test]
fn wait_for_publish_times_out() {
    let broker = ScriptedBroker::bind();
    let c = v311("wto");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let i = c.publish("t", "x", QoS::AtLeastOnce, false).unwrap();
    conn.read_packet(T);
    let t = Instant::now();
    assert!(matches!(
        i.wait_for_publish(Some(Duration::from_millis(200))),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(190));
    conn.send(&s::puback(i.mid()));
    i.wait_for_publish(Some(T)).unwrap();
}
