#[macro_use]
mod support;

// Persistent sessions against a real mosquitto: clean_session(false) for MQTT 3.x,
// CleanStart::Never plus Session Expiry Interval for MQTT 5.

use std::time::Duration;

use mqtt_sync::{CleanStart, ConnectOptions, Properties, Protocol, QoS};
use support::{Mosquitto, T};

use support::broker_client::{
    client, finish, has_session_flag, persistent, started, sub, tag, Probe,
};

/// Ensures no session is left from anything before (a clean first connection), then
/// subscribes at QoS 1/2, disconnects, has messages published while offline, reconnects
/// with the same client object: session_present is true and every message arrives.
fn persistent_session_same_client(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let id = format!("ps-{t}");
    let (c, opts) = persistent(&broker, proto, &id);
    let p = Probe::attach(&c);
    c.connect_with(opts.clone()).unwrap();
    c.loop_start().unwrap();
    let flags = p.connected();
    assert!(!flags.session_present, "first connection has no session");
    sub(&c, &p, &format!("ps/{t}/q1"), QoS::AtLeastOnce);
    sub(&c, &p, &format!("ps/{t}/q2"), QoS::ExactlyOnce);
    let mark = broker.log_mark();
    c.disconnect().unwrap();
    p.disc.wait(T);
    c.loop_stop().unwrap();
    broker.wait_for_log_after(mark, &format!("Client {id} disconnected"), T);

    let (publisher, _pp) = started(&broker, proto, &format!("pp-{t}"));
    let n = 10;
    for i in 0..n {
        publisher
            .publish(
                &format!("ps/{t}/q1"),
                format!("a{i}"),
                QoS::AtLeastOnce,
                false,
            )
            .unwrap();
        publisher
            .publish(
                &format!("ps/{t}/q2"),
                format!("b{i}"),
                QoS::ExactlyOnce,
                false,
            )
            .unwrap()
            .wait_for_publish(Some(T))
            .unwrap();
    }
    // QoS 0 to a QoS 1 subscription of an offline client is not queued by mosquitto
    // (queue_qos0_messages false): published only to check it is not delivered later.
    publisher
        .publish(&format!("ps/{t}/q1"), "zero", QoS::AtMostOnce, false)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();

    c.connect_with(opts).unwrap();
    c.loop_start().unwrap();
    let flags = p.connected();
    assert_eq!(
        flags.session_present,
        has_session_flag(proto),
        "the session must be resumed"
    );
    let mut q1 = Vec::new();
    let mut q2 = Vec::new();
    while q1.len() + q2.len() < 2 * n {
        let m = p.msg();
        let s = String::from_utf8(m.payload().to_vec()).unwrap();
        match m.qos() {
            QoS::AtLeastOnce => q1.push(s),
            QoS::ExactlyOnce => q2.push(s),
            QoS::AtMostOnce => panic!("unexpected QoS 0 message {s}"),
        }
    }
    let want = |p: &str| (0..n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    assert_eq!(q1, want("a"), "QoS 1 in order, none lost");
    assert_eq!(q2, want("b"), "QoS 2 in order, exactly once");
    p.msgs.assert_none_within(Duration::from_millis(200));
    finish(&publisher);
    finish(&c);
}
per_protocol!(persistent_session_same_client);

/// The same with a brand-new Client object (a restarted process) on the same id, and the
/// subscription made once only: the resumed session keeps it.
fn persistent_session_new_client_object(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let id = format!("pn-{t}");
    {
        let (c, opts) = persistent(&broker, proto, &id);
        let p = Probe::attach(&c);
        c.connect_with(opts).unwrap();
        c.loop_start().unwrap();
        assert!(!p.connected().session_present);
        sub(&c, &p, &format!("pn/{t}/#"), QoS::ExactlyOnce);
        c.disconnect().unwrap();
        c.loop_stop().unwrap();
    }
    let (publisher, _pp) = started(&broker, proto, &format!("pnp-{t}"));
    publisher
        .publish(&format!("pn/{t}/x"), "while away", QoS::ExactlyOnce, false)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();

    let (c, opts) = persistent(&broker, proto, &id);
    let p = Probe::attach(&c);
    c.connect_with(opts).unwrap();
    c.loop_start().unwrap();
    assert_eq!(p.connected().session_present, has_session_flag(proto));
    let m = p.msg();
    assert_eq!(m.topic(), format!("pn/{t}/x"));
    assert_eq!(m.payload(), b"while away");
    assert_eq!(m.qos(), QoS::ExactlyOnce);
    // Live messages keep flowing on the resumed subscription.
    publisher
        .publish(&format!("pn/{t}/y"), "live", QoS::AtLeastOnce, false)
        .unwrap();
    assert_eq!(p.msg().payload(), b"live");
    finish(&publisher);
    finish(&c);
}
per_protocol!(persistent_session_new_client_object);

/// A clean session (the default) discards the subscription: after reconnecting,
/// session_present is false and offline messages are not delivered.
fn clean_session_discards(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let id = format!("cs-{t}");
    let (c, p) = started(&broker, proto, &id);
    sub(&c, &p, &format!("cs/{t}/#"), QoS::AtLeastOnce);
    c.disconnect().unwrap();
    p.disc.wait(T);
    c.loop_stop().unwrap();
    let (publisher, _pp) = started(&broker, proto, &format!("csp-{t}"));
    publisher
        .publish(&format!("cs/{t}/x"), "lost", QoS::AtLeastOnce, false)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();
    if proto == Protocol::V5 {
        // CleanStart::FirstOnly: only the first connect of this client object is clean, so
        // make a fresh one (default session expiry 0: the session ended at disconnect).
        drop(c);
        let (c2, p2) = started(&broker, proto, &id);
        let _ = p2.conn.try_recv();
        p2.msgs.assert_none_within(Duration::from_millis(300));
        finish(&c2);
    } else {
        c.connect(broker.host(), broker.port(), 60).unwrap();
        c.loop_start().unwrap();
        assert!(!p.connected().session_present);
        p.msgs.assert_none_within(Duration::from_millis(300));
        finish(&c);
    }
    finish(&publisher);
}
per_protocol!(clean_session_discards);

/// v5: Session Expiry Interval 0 with CleanStart::Never: the session ends at disconnect, so
/// the next connection has no session.
#[test]
fn v5_session_expiry_zero_ends_session() {
    let broker = Mosquitto::start();
    let c = client(Protocol::V5, "se0");
    let p = Probe::attach(&c);
    let opts = ConnectOptions {
        port: broker.port(),
        clean_start: CleanStart::Never,
        ..ConnectOptions::new(broker.host())
    };
    c.connect_with(opts.clone()).unwrap();
    c.loop_start().unwrap();
    assert!(!p.connected().session_present);
    sub(&c, &p, "se0/#", QoS::AtLeastOnce);
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
    c.connect_with(opts).unwrap();
    c.loop_start().unwrap();
    assert!(!p.connected().session_present);
    finish(&c);
}

/// v5: CleanStart::FirstOnly (the default) with a session expiry: the first connection is
/// clean, a reconnect of the same object resumes the session.
#[test]
fn v5_clean_start_first_only_resumes_on_reconnect() {
    let broker = Mosquitto::start();
    let c = client(Protocol::V5, "fo");
    let p = Probe::attach(&c);
    let opts = ConnectOptions {
        port: broker.port(),
        properties: Some(Properties {
            session_expiry_interval: Some(60),
            ..Default::default()
        }),
        ..ConnectOptions::new(broker.host())
    };
    c.connect_with(opts).unwrap();
    c.loop_start().unwrap();
    assert!(!p.connected().session_present);
    sub(&c, &p, "fo/#", QoS::AtLeastOnce);
    // reconnect() from outside: the loop thread sees the new connection.
    c.reconnect().unwrap();
    assert!(
        p.connected().session_present,
        "FirstOnly: only the first connect is clean"
    );
    finish(&c);
}
