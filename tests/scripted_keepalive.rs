mod support;
// Keepalive: PINGREQ timing and the missing PINGRESP, with loop_start and loop_once.
use support::scripted_client::*;

/// Reads the next packet and checks it is a PINGREQ arriving `lo..hi` after `since`.
#[track_caller]
fn expect_pingreq_between(conn: &mut ScriptedConn, since: Instant, lo: Duration, hi: Duration) {
    let p = conn.read_packet(hi + Duration::from_secs(1));
    let at = since.elapsed();
    assert_bytes_eq(&[0xc0, 0x00], &p, "PINGREQ");
    assert!(
        at >= lo && at <= hi,
        "PINGREQ after {at:?}, expected between {lo:?} and {hi:?}"
    );
}

#[test]
fn pingreq_after_keepalive_of_silence() {
    let broker = ScriptedBroker::bind();
    let c = v311("ka1");
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 1).unwrap();
    let t0 = Instant::now();
    c.loop_start().unwrap();
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack(false, 0));
    expect_pingreq_between(
        &mut conn,
        t0,
        Duration::from_millis(800),
        Duration::from_secs(2),
    );
    conn.send(&s::pingresp());
    let t1 = Instant::now();
    expect_pingreq_between(
        &mut conn,
        t1,
        Duration::from_millis(800),
        Duration::from_secs(2),
    );
    conn.send(&s::pingresp());
    // Still connected, no disconnect reported.
    assert!(c.is_connected());
    assert!(ev
        .drain()
        .iter()
        .all(|e| !matches!(e, Ev::Disconnect { .. })));
}

#[test]
fn keepalive_encoded_in_connect_and_zero_disables_ping() {
    let broker = ScriptedBroker::bind();
    let c = v311("ka0");
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 0).unwrap();
    c.loop_start().unwrap();
    let (mut conn, connect) = accept_connack(&broker, &ev, &s::connack(false, 0));
    assert_eq!(
        &connect[10..12],
        &[0, 0],
        "keepalive bytes in [{}]",
        hex(&connect)
    );
    conn.expect_silence(Duration::from_millis(1500));
}

#[test]
fn no_pingresp_closes_with_keep_alive_timeout() {
    let broker = ScriptedBroker::bind();
    let c = v311("ka2");
    fast_reconnect(&c);
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 1).unwrap();
    let t0 = Instant::now();
    c.loop_start().unwrap();
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack(false, 0));
    expect_pingreq_between(
        &mut conn,
        t0,
        Duration::from_millis(800),
        Duration::from_secs(2),
    );
    let t1 = Instant::now();
    conn.expect_closed(Duration::from_secs(4));
    let closed_after = t1.elapsed();
    assert!(
        closed_after <= Duration::from_millis(2500),
        "closed {closed_after:?} after PINGREQ"
    );
    let e = ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    assert_eq!(
        e,
        Ev::Disconnect {
            rc: 0x8D,
            from_server: false,
            props: Properties::default()
        }
    );
    // Exactly once, and the loop reconnects.
    let _conn2 = broker.accept(T);
    assert!(
        ev.drain()
            .iter()
            .all(|e| !matches!(e, Ev::Disconnect { .. })),
        "on_disconnect reported twice"
    );
}

#[test]
fn no_pingresp_closes_with_keep_alive_timeout_v5() {
    let broker = ScriptedBroker::bind();
    let c = v5("ka5");
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 1).unwrap();
    c.loop_start().unwrap();
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack_v5(false, 0, &[]));
    let p = conn.read_packet(Duration::from_secs(3));
    assert_bytes_eq(&[0xc0, 0x00], &p, "PINGREQ");
    // MQTT 5 may send DISCONNECT 0x8D before closing; accept either that or a bare close.
    match conn.try_read_packet(Duration::from_secs(4)) {
        Ok(p) => {
            assert_eq!(p[0], 0xe0, "unexpected packet [{}]", hex(&p));
            conn.expect_closed(T);
        }
        Err(s::ReadError::Closed { partial, .. }) => assert!(partial.is_empty()),
        Err(e) => panic!("client neither closed nor sent DISCONNECT: {e:?}"),
    }
    let e = ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    assert!(
        matches!(
            e,
            Ev::Disconnect {
                rc: 0x8D,
                from_server: false,
                ..
            }
        ),
        "{e:?}"
    );
}

/// Runs `loop_once` on another thread until `stop` is set.
fn drive_loop_once(
    c: &Client,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st = stop.clone();
    let c = c.clone();
    let h = std::thread::spawn(move || {
        while !st.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = c.loop_once(Duration::from_millis(50));
        }
    });
    (stop, h)
}

#[test]
fn loop_once_pingreq_and_keepalive_timeout() {
    let broker = ScriptedBroker::bind();
    let c = v311("ka-once");
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 1).unwrap();
    let t0 = Instant::now();
    let (stop, h) = drive_loop_once(&c);
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack(false, 0));
    expect_pingreq_between(
        &mut conn,
        t0,
        Duration::from_millis(800),
        Duration::from_secs(2),
    );
    conn.send(&s::pingresp());
    let t1 = Instant::now();
    expect_pingreq_between(
        &mut conn,
        t1,
        Duration::from_millis(800),
        Duration::from_secs(2),
    );
    // No answer this time.
    conn.expect_closed(Duration::from_secs(4));
    let e = ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    assert_eq!(
        e,
        Ev::Disconnect {
            rc: 0x8D,
            from_server: false,
            props: Properties::default()
        }
    );
    // loop_once does not reconnect by itself.
    broker.expect_no_connection(QUIET);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    h.join().unwrap();
}

#[test]
fn pingreq_sent_even_while_publishing_qos0() {
    // Outgoing traffic alone does not prove the broker is alive: with nothing coming in,
    // a PINGREQ still goes out within about the keepalive.
    let broker = ScriptedBroker::bind();
    let c = v311("ka-pub");
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 1).unwrap();
    let t0 = Instant::now();
    c.loop_start().unwrap();
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack(false, 0));
    let deadline = t0 + Duration::from_secs(3);
    let mut got_ping = false;
    while Instant::now() < deadline {
        let _ = c.publish("t", "x", QoS::AtMostOnce, false);
        match conn.try_read_packet(Duration::from_millis(200)) {
            Ok(p) if p == [0xc0, 0x00] => {
                got_ping = true;
                assert!(
                    t0.elapsed() <= Duration::from_millis(2200),
                    "PINGREQ after {:?}",
                    t0.elapsed()
                );
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(got_ping, "no PINGREQ while only sending");
}
