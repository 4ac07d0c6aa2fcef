#[macro_use]
mod support;

// Reconnects against a real mosquitto that is restarted (persistence on, sessions kept)
// or killed: no loss of QoS 1/2 messages, QoS 2 exactly once, on_disconnect once per drop.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mqtt_sync::{Protocol, QoS, ReasonCode};
use support::{Events, Mosquitto, T};

use support::broker_client::{
    client, finish, has_session_flag, persistent_started, started, sub, tag, Probe,
};

/// Receives until every payload of `want` has arrived (QoS 1 may repeat), then checks that
/// nothing more comes; returns how many times each payload arrived.
#[track_caller]
fn collect_all(p: &Probe, want: &[String]) -> HashMap<String, (usize, QoS)> {
    let mut seen: HashMap<String, (usize, QoS)> = HashMap::new();
    let deadline = Instant::now() + T;
    while want.iter().any(|w| !seen.contains_key(w)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(m) = p.msgs.recv_timeout(left) else {
            let missing: Vec<_> = want.iter().filter(|w| !seen.contains_key(*w)).collect();
            panic!("messages lost: {missing:?}");
        };
        let e = seen
            .entry(String::from_utf8(m.payload().to_vec()).unwrap())
            .or_insert((0, m.qos()));
        e.0 += 1;
    }
    while let Some(m) = p.msgs.recv_timeout(Duration::from_millis(300)) {
        let e = seen
            .entry(String::from_utf8(m.payload().to_vec()).unwrap())
            .or_insert((0, m.qos()));
        e.0 += 1;
    }
    seen
}

#[track_caller]
fn check_counts(seen: &HashMap<String, (usize, QoS)>, want: &[String]) {
    for w in want {
        let (n, q) = seen[w];
        match q {
            QoS::ExactlyOnce => assert_eq!(n, 1, "QoS 2 message {w} delivered {n} times"),
            _ => assert!(n >= 1),
        }
    }
    let extra: Vec<_> = seen.keys().filter(|k| !want.contains(k)).collect();
    assert!(extra.is_empty(), "unexpected messages {extra:?}");
}

/// Graceful broker restart (persistence on): QoS 1 and 2 messages published before, during
/// and after the outage all arrive (QoS 2 exactly once) at a persistent QoS 2 subscriber;
/// each client sees one on_disconnect and one on_connect (session resumed).
fn broker_stop_and_start_again_no_loss(proto: Protocol) {
    let mut broker = Mosquitto::builder().persistence(true).start();
    let t = tag(proto);
    let (s, sp) = persistent_started(&broker, proto, &format!("rss-{t}"));
    sub(&s, &sp, &format!("rs/{t}/#"), QoS::ExactlyOnce);
    let (pc, pp) = persistent_started(&broker, proto, &format!("rsp-{t}"));

    let n = 60;
    let mut want = Vec::new();
    let mut infos = Vec::new();
    let mut publish = |i: usize| {
        for q in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let payload = format!("q{}-{i}", q as u8);
            let info = pc
                .publish(&format!("rs/{t}/q{}", q as u8), &payload, q, false)
                .unwrap_or_else(|e| panic!("publish {payload}: {e}"));
            want.push(payload);
            infos.push(info);
        }
    };
    for i in 0..n / 3 {
        publish(i);
    }
    // Stop while some of those are still in flight, publish more while it is down.
    broker.stop();
    let (f, rc) = pp.disc.wait(T);
    assert!(
        rc.is_failure(),
        "on_disconnect after the broker went away: {rc}"
    );
    if f.is_disconnect_packet_from_server {
        assert_eq!(proto, Protocol::V5);
    }
    sp.disc.wait(T);
    for i in n / 3..2 * n / 3 {
        publish(i);
    }
    broker.start_again();
    assert_eq!(pp.connected().session_present, has_session_flag(proto));
    assert_eq!(sp.connected().session_present, has_session_flag(proto));
    for i in 2 * n / 3..n {
        publish(i);
    }
    for (i, info) in infos.iter().enumerate() {
        info.wait_for_publish(Some(T))
            .unwrap_or_else(|e| panic!("message {} not acknowledged: {e}", want[i]));
    }
    let seen = collect_all(&sp, &want);
    check_counts(&seen, &want);
    // Exactly one drop and one reconnect each.
    assert!(pp.disc.try_recv().is_none() && sp.disc.try_recv().is_none());
    assert!(pp.conn.try_recv().is_none() && sp.conn.try_recv().is_none());
    finish(&pc);
    finish(&s);
}
per_protocol!(broker_stop_and_start_again_no_loss);

/// `restart()` while another thread keeps publishing with loop_start running.
fn broker_restart_during_publishing(proto: Protocol) {
    // mosquitto drops QoS 1/2 messages past max_queued_messages (default 1000) for a client
    // that is offline or slow: lift the limit so only the client can lose messages.
    let mut broker = Mosquitto::builder()
        .persistence(true)
        .config("max_queued_messages 0")
        .start();
    let t = tag(proto);
    let (s, sp) = persistent_started(&broker, proto, &format!("rrs-{t}"));
    sub(&s, &sp, &format!("rr/{t}/#"), QoS::ExactlyOnce);
    let (pc, pp) = persistent_started(&broker, proto, &format!("rrp-{t}"));

    let publisher = pc.clone();
    let topic = format!("rr/{t}");
    let restarted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = restarted.clone();
    // Publishes until the restart is over (at most 4000 messages), then 20 more, so
    // publishing spans the whole outage. Every 10 messages a short bounded wait on the last
    // one paces it (at once while connected, 20 ms while the broker is down).
    let th = std::thread::spawn(move || {
        let mut infos = Vec::new();
        let mut after = 0;
        let mut i = 0;
        while after < 20 && i < 4000 {
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                after += 1;
            }
            let q = if i % 2 == 0 {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            infos.push(
                publisher
                    .publish(&topic, format!("m{i}"), q, false)
                    .unwrap(),
            );
            i += 1;
            if i % 10 == 0 {
                let _ = infos
                    .last()
                    .unwrap()
                    .wait_for_publish(Some(Duration::from_millis(20)));
            }
        }
        infos
    });
    // Restart once the subscriber has seen a message.
    let first = sp.msg();
    broker.restart();
    restarted.store(true, std::sync::atomic::Ordering::SeqCst);
    let infos = th.join().unwrap();
    let n = infos.len();
    assert!(n < 4000, "publishing did not span the restart");
    for info in &infos {
        info.wait_for_publish(Some(T)).unwrap();
    }
    let want: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    // Put the first message back so it is counted with the others.
    sp.msgs.sender().send(first).unwrap();
    let seen = collect_all(&sp, &want);
    check_counts(&seen, &want);
    // One drop each, then one reconnect with the session resumed.
    for p in [&pp, &sp] {
        let (_, rc) = p.disc.wait(T);
        assert!(rc.is_failure());
        assert!(p.disc.try_recv().is_none(), "on_disconnect more than once");
        assert_eq!(p.connected().session_present, has_session_flag(proto));
        assert!(p.conn.try_recv().is_none());
    }
    finish(&pc);
    finish(&s);
}
per_protocol!(broker_restart_during_publishing);

/// A broker crash (SIGKILL, no persistence): on_disconnect once with UNSPECIFIED_ERROR; after
/// start_again both reconnect (no session); the subscriber re-subscribes from on_connect;
/// QoS 1/2 messages queued during the outage are sent after the reconnect.
fn broker_kill_and_start_again(proto: Protocol) {
    let mut broker = Mosquitto::start();
    let t = tag(proto);
    let topic = format!("rk/{t}/#");
    let s = client(proto, &format!("rks-{t}"));
    let sp = Probe::attach(&s);
    let conn_tx = sp.conn.sender();
    s.on_connect(move |c, f, rc, props| {
        if !rc.is_failure() {
            c.subscribe(&topic, QoS::ExactlyOnce).unwrap();
        }
        let _ = conn_tx.send((f, rc, props.clone()));
    });
    s.connect(broker.host(), broker.port(), 60).unwrap();
    s.loop_start().unwrap();
    sp.connected();
    sp.subs.wait(T);
    let (pc, pp) = started(&broker, proto, &format!("rkp-{t}"));

    pc.publish(&format!("rk/{t}/before"), "before", QoS::AtLeastOnce, false)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();
    assert_eq!(sp.msg().payload(), b"before");

    broker.kill();
    for p in [&pp, &sp] {
        let (f, rc) = p.disc.wait(T);
        assert_eq!(
            rc,
            ReasonCode::UNSPECIFIED_ERROR,
            "a lost connection reports 0x80"
        );
        assert!(!f.is_disconnect_packet_from_server);
    }
    assert!(!pc.is_connected());
    let q1 = pc
        .publish(&format!("rk/{t}/q1"), "down1", QoS::AtLeastOnce, false)
        .unwrap();
    let q2 = pc
        .publish(&format!("rk/{t}/q2"), "down2", QoS::ExactlyOnce, false)
        .unwrap();
    broker.start_again();
    assert!(!sp.connected().session_present);
    assert!(!pp.connected().session_present);
    // The queued messages are sent after the reconnect (to a broker that may not yet have
    // the subscriber's new subscription, so only their acknowledgement is checked).
    q1.wait_for_publish(Some(T)).unwrap();
    q2.wait_for_publish(Some(T)).unwrap();
    sp.subs.wait(T);
    pc.publish(&format!("rk/{t}/after"), "after", QoS::ExactlyOnce, false)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();
    let m = sp.msgs.wait_for(T, |m| m.payload() == b"after");
    assert_eq!(m.qos(), QoS::ExactlyOnce);
    assert!(pp.disc.try_recv().is_none() && sp.disc.try_recv().is_none());
    finish(&pc);
    finish(&s);
}
per_protocol!(broker_kill_and_start_again);

/// Reconnect backoff keeps trying while the broker stays down for a while (several failed
/// attempts, reported through on_connect_fail, not on_disconnect).
fn reconnect_attempts_while_broker_down(proto: Protocol) {
    let mut broker = Mosquitto::start();
    let t = tag(proto);
    let c = client(proto, &format!("rb-{t}"));
    let p = Probe::attach(&c);
    let fails: Events<String> = Events::new();
    let tx = fails.sender();
    c.on_connect_fail(move |_, e| {
        let _ = tx.send(e.to_string());
    });
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    broker.kill();
    p.disc.wait(T);
    for _ in 0..3 {
        fails.wait(T);
    }
    broker.start_again();
    p.connected();
    assert!(
        p.disc.try_recv().is_none(),
        "failed attempts must not call on_disconnect"
    );
    finish(&c);
}
per_protocol!(reconnect_attempts_while_broker_down);

/// reconnect() called from inside on_disconnect under loop_once.
fn reconnect_from_on_disconnect_under_loop_once(proto: Protocol) {
    let mut broker = Mosquitto::start();
    let t = tag(proto);
    let c = client(proto, &format!("rod-{t}"));
    let p = Probe::attach(&c);
    let tx = p.disc.sender();
    let tries: Events<bool> = Events::new();
    let ttx = tries.sender();
    c.on_disconnect(move |c, f, rc, _| {
        let _ = tx.send((f, rc));
        let _ = ttx.send(c.reconnect().is_ok());
    });
    c.connect(broker.host(), broker.port(), 60).unwrap();
    let deadline = Instant::now() + T;
    let pump = |what: &str, cond: &mut dyn FnMut() -> bool| {
        while !cond() {
            assert!(Instant::now() < deadline, "{what}");
            let _ = c.loop_once(Duration::from_millis(20));
        }
    };
    let mut ok = false;
    pump("first CONNACK", &mut || {
        ok = ok || p.conn.try_recv().is_some();
        ok
    });
    broker.restart();
    // The reconnect inside on_disconnect may run before the broker is back; retry from the
    // test thread (what a loop_once user does) until it succeeds.
    let mut reconnected = false;
    pump("reconnect", &mut || {
        if let Some((_, rc, _)) = p.conn.try_recv() {
            assert_eq!(rc, ReasonCode::SUCCESS);
            reconnected = true;
        } else if !c.is_connected() && c.socket().is_none() && tries.try_recv() == Some(false) {
            let _ = c.reconnect();
        }
        reconnected
    });
    let (_, rc) = p.disc.wait(T);
    assert!(rc.is_failure());
}
per_protocol!(reconnect_from_on_disconnect_under_loop_once);

/// `reconnect()` on an open connection closes the old socket as Paho's does (its
/// `_reset_sockets`): `on_socket_close` for the old descriptor, then `on_socket_open` for
/// the new one, and no `on_disconnect`, so an external loop never watches a closed socket.
fn reconnect_reports_the_old_socket_closed(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let c = client(proto, &format!("rsock-{t}"));
    let p = Probe::attach(&c);
    let socks: Events<(&'static str, std::os::fd::RawFd)> = Events::new();
    let tx = socks.sender();
    c.on_socket_open(move |_, fd| {
        let _ = tx.send(("open", fd));
    });
    let tx = socks.sender();
    c.on_socket_close(move |_, fd| {
        let _ = tx.send(("close", fd));
    });
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    let old = c.socket().expect("connected");
    assert_eq!(socks.wait(T), ("open", old));
    c.reconnect().unwrap();
    p.connected();
    let new = c.socket().expect("connected again");
    // (The descriptor number may be the same: the old one is closed once its callback ran.)
    assert_eq!(socks.wait(T), ("close", old));
    assert_eq!(socks.wait(T), ("open", new));
    assert!(
        p.disc.try_recv().is_none(),
        "reconnect() calls no on_disconnect"
    );
    finish(&c);
}
per_protocol!(reconnect_reports_the_old_socket_closed);
