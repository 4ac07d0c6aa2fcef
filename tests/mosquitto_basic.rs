#[macro_use]
mod support;

// Basic behaviour against a real mosquitto: publish/subscribe at every QoS, payloads,
// retained messages, wills, message_callback_add dispatch, offline rules, authentication.

use std::time::Duration;

use mqtt_sync::{Client, Error, Protocol, QoS, ReasonCode};
use support::{Events, Mosquitto, T};

use support::broker_client::{client, finish, started, sub, tag, Probe};

// 1. publish / subscribe / receive ------------------------------------------------------

/// Every (publish QoS, subscription QoS) pair: payload and topic exact, received QoS =
/// min(pub, sub); wait_for_publish completes; on_publish once per message with its mid.
fn pubsub_qos_matrix(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let (c, p) = started(&broker, proto, &format!("qm-{t}"));
    for s in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        sub(&c, &p, &format!("qm/{t}/s{}", s as u8), s);
    }
    let mut infos = Vec::new();
    for s in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let topic = format!("qm/{t}/s{}", s as u8);
            let payload = format!("pub{}-sub{}", q as u8, s as u8);
            let info = c.publish(&topic, &payload, q, false).unwrap();
            info.wait_for_publish(Some(T)).unwrap();
            assert!(info.is_published());
            let m = p.msg();
            assert_eq!(m.topic(), topic);
            assert_eq!(m.payload(), payload.as_bytes());
            assert_eq!(m.qos(), q.min(s), "received QoS for {payload}");
            assert!(!m.retain());
            if m.qos() == QoS::AtMostOnce {
                assert_eq!(m.mid(), 0);
            }
            infos.push(info);
        }
    }
    // on_publish: exactly once per message, with the MessageInfo's mid.
    let mut mids: Vec<u16> = infos.iter().map(|i| i.mid()).collect();
    let mut seen: Vec<u16> = (0..infos.len())
        .map(|_| {
            let (mid, rc) = p.pubs.wait(T);
            assert!(!rc.is_failure(), "on_publish rc {rc}");
            mid
        })
        .collect();
    mids.sort_unstable();
    seen.sort_unstable();
    assert_eq!(seen, mids);
    let mut uniq = mids.clone();
    uniq.dedup();
    assert_eq!(uniq.len(), mids.len(), "mids must be distinct");
    p.pubs.assert_none_within(Duration::from_millis(200));
    p.msgs.assert_none_within(Duration::from_millis(50));
    finish(&c);
}
per_protocol!(pubsub_qos_matrix);

/// Binary (every byte value), empty and 1 MiB payloads, and UTF-8 topics, at every QoS.
fn payloads_and_utf8_topics(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let (c, p) = started(&broker, proto, &format!("pl-{t}"));
    sub(&c, &p, &format!("pl{t}/#"), QoS::ExactlyOnce);
    let binary: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let cases: Vec<(String, Vec<u8>)> = vec![
        (format!("pl{t}/bin"), binary),
        (format!("pl{t}/empty"), Vec::new()),
        (format!("pl{t}/big"), big),
        (format!("pl{t}/ünïcødé/日本語/🦀"), b"utf8".to_vec()),
        (
            format!("pl{t}/ sp ace /"),
            b"spaces and trailing slash".to_vec(),
        ),
    ];
    for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for (topic, payload) in &cases {
            let info = c.publish(topic, payload, q, false).unwrap();
            info.wait_for_publish(Some(T)).unwrap();
            let m = p.msg();
            assert_eq!(m.topic(), topic);
            assert_eq!(m.payload().len(), payload.len(), "length on {topic}");
            assert!(m.payload() == &payload[..], "payload differs on {topic}");
            assert_eq!(m.qos(), q);
        }
    }
    finish(&c);
}
per_protocol!(payloads_and_utf8_topics);

// 2. retained messages --------------------------------------------------------------------

fn retained_delivery_and_clearing(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let topic = format!("ret/{t}/x");
    let (publisher, _pp) = started(&broker, proto, &format!("rp-{t}"));
    publisher
        .publish(&topic, "kept", QoS::AtLeastOnce, true)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();

    // A later subscriber gets it with retain set.
    let (s1, p1) = started(&broker, proto, &format!("rs1-{t}"));
    sub(&s1, &p1, &format!("ret/{t}/#"), QoS::AtLeastOnce);
    let m = p1.msg();
    assert_eq!((m.topic(), m.payload()), (topic.as_str(), &b"kept"[..]));
    assert!(
        m.retain(),
        "a retained message sent on subscribe has retain set"
    );
    assert_eq!(m.qos(), QoS::AtLeastOnce);

    // A live (non-retained) publish to an existing subscriber arrives with retain false.
    publisher
        .publish(&topic, "live", QoS::AtLeastOnce, false)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();
    let m = p1.msg();
    assert_eq!(m.payload(), b"live");
    assert!(!m.retain());

    // Clearing: an empty retained payload removes it (and reaches current subscribers).
    publisher
        .publish(&topic, "", QoS::AtLeastOnce, true)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();
    let m = p1.msg();
    assert_eq!(m.payload(), b"");
    let (s2, p2) = started(&broker, proto, &format!("rs2-{t}"));
    sub(&s2, &p2, &format!("ret/{t}/#"), QoS::AtLeastOnce);
    p2.msgs.assert_none_within(Duration::from_millis(300));
    finish(&s2);
    finish(&s1);
    finish(&publisher);
}
per_protocol!(retained_delivery_and_clearing);

// 3. will -------------------------------------------------------------------------------

fn will_sent_when_connection_cut(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let (watcher, wp) = started(&broker, proto, &format!("ww-{t}"));
    sub(&watcher, &wp, &format!("will/{t}/#"), QoS::AtLeastOnce);

    let doomed = client(proto, &format!("wd-{t}"));
    doomed
        .will_set(&format!("will/{t}/d"), "gone", QoS::AtLeastOnce, false)
        .unwrap();
    let dp = Probe::attach(&doomed);
    doomed.connect(broker.host(), broker.port(), 60).unwrap();
    doomed.loop_start().unwrap();
    dp.connected();
    // Dropping the last handle closes the socket without DISCONNECT (a crash).
    drop(doomed);
    let m = wp.msg();
    assert_eq!(m.topic(), format!("will/{t}/d"));
    assert_eq!(m.payload(), b"gone");
    assert_eq!(m.qos(), QoS::AtLeastOnce);
    assert!(!m.retain());
    finish(&watcher);
}
per_protocol!(will_sent_when_connection_cut);

fn will_retained_flag_kept(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let doomed = client(proto, &format!("wr-{t}"));
    doomed
        .will_set(&format!("willr/{t}"), "bye", QoS::ExactlyOnce, true)
        .unwrap();
    let dp = Probe::attach(&doomed);
    doomed.connect(broker.host(), broker.port(), 60).unwrap();
    doomed.loop_start().unwrap();
    dp.connected();
    let mark = broker.log_mark();
    drop(doomed);
    broker.wait_for_log_after(mark, &format!("Client wr-{t}"), T);
    // Subscribe afterwards: the will was retained.
    let (w, wp) = started(&broker, proto, &format!("wrw-{t}"));
    sub(&w, &wp, &format!("willr/{t}"), QoS::ExactlyOnce);
    let m = wp.msg();
    assert_eq!(m.payload(), b"bye");
    assert!(m.retain());
    assert_eq!(m.qos(), QoS::ExactlyOnce);
    finish(&w);
}
per_protocol!(will_retained_flag_kept);

fn no_will_after_clean_disconnect(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let (watcher, wp) = started(&broker, proto, &format!("nw-{t}"));
    sub(&watcher, &wp, &format!("nwill/{t}/#"), QoS::AtLeastOnce);

    let polite = client(proto, &format!("np-{t}"));
    polite
        .will_set(&format!("nwill/{t}/p"), "gone", QoS::AtLeastOnce, false)
        .unwrap();
    let pp = Probe::attach(&polite);
    polite.connect(broker.host(), broker.port(), 60).unwrap();
    polite.loop_start().unwrap();
    pp.connected();
    let mark = broker.log_mark();
    polite.disconnect().unwrap();
    pp.disconnected_cleanly();
    broker.wait_for_log_after(mark, &format!("Client np-{t} disconnected."), T);
    polite.loop_stop().unwrap();
    drop(polite);
    wp.msgs.assert_none_within(Duration::from_millis(300));
    pp.disc.assert_none_within(Duration::from_millis(10));
    finish(&watcher);
}
per_protocol!(no_will_after_clean_disconnect);

// 7. message_callback_add dispatch ----------------------------------------------------------

#[derive(Debug, PartialEq, Eq, Clone)]
enum Hit {
    Plus(String),
    Hash(String),
    OnMessage(String),
}

fn message_callback_dispatch(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let c = client(proto, &format!("cb-{t}"));
    let p = Probe::attach(&c);
    let hits: Events<Hit> = Events::new();
    let tx = hits.sender();
    c.on_message(move |_, m| {
        let _ = tx.send(Hit::OnMessage(m.topic().to_string()));
    });
    let tx = hits.sender();
    c.message_callback_add("a/+", move |_, m| {
        let _ = tx.send(Hit::Plus(m.topic().to_string()));
    })
    .unwrap();
    let tx = hits.sender();
    c.message_callback_add("a/#", move |_, m| {
        let _ = tx.send(Hit::Hash(m.topic().to_string()));
    })
    .unwrap();
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    let mid = c
        .subscribe_many(&[("a/#", QoS::AtLeastOnce), ("x/#", QoS::AtLeastOnce)])
        .unwrap();
    assert_eq!(p.suback(mid).len(), 2);

    // Sends one message and returns the callbacks it hit (collected until a marker on x/end).
    let send = |topic: &str| -> Vec<Hit> {
        c.publish(topic, "m", QoS::AtLeastOnce, false)
            .unwrap()
            .wait_for_publish(Some(T))
            .unwrap();
        c.publish("x/end", "", QoS::AtLeastOnce, false)
            .unwrap()
            .wait_for_publish(Some(T))
            .unwrap();
        let mut got = Vec::new();
        loop {
            let h = hits.wait(T);
            if h == Hit::OnMessage("x/end".into()) {
                break;
            }
            got.push(h);
        }
        got.sort_by_key(|h| format!("{h:?}"));
        got
    };
    assert_eq!(
        send("a/b"),
        vec![Hit::Hash("a/b".into()), Hit::Plus("a/b".into())]
    );
    assert_eq!(send("a/b/c"), vec![Hit::Hash("a/b/c".into())]);
    assert_eq!(send("x/y"), vec![Hit::OnMessage("x/y".into())]);

    c.message_callback_remove("a/#");
    assert_eq!(send("a/b"), vec![Hit::Plus("a/b".into())]);
    assert_eq!(send("a/b/c"), vec![Hit::OnMessage("a/b/c".into())]);
    c.message_callback_remove("a/+");
    assert_eq!(send("a/b"), vec![Hit::OnMessage("a/b".into())]);
    finish(&c);
}
per_protocol!(message_callback_dispatch);

// 8. offline behaviour --------------------------------------------------------------------

fn offline_publish_before_connect(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let (watcher, wp) = started(&broker, proto, &format!("ow-{t}"));
    sub(&watcher, &wp, &format!("off/{t}/#"), QoS::ExactlyOnce);

    let c = client(proto, &format!("oc-{t}"));
    let p = Probe::attach(&c);
    let q1 = c
        .publish(&format!("off/{t}/q1"), "queued1", QoS::AtLeastOnce, false)
        .expect("QoS 1 publish while offline is queued");
    let q2 = c
        .publish(&format!("off/{t}/q2"), "queued2", QoS::ExactlyOnce, false)
        .expect("QoS 2 publish while offline is queued");
    assert!(!q1.is_published());
    assert!(matches!(
        q1.wait_for_publish(Some(Duration::from_millis(50))),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        c.publish(&format!("off/{t}/q0"), "x", QoS::AtMostOnce, false),
        Err(Error::NoConnection)
    ));
    assert!(matches!(
        c.subscribe("off/#", QoS::AtMostOnce),
        Err(Error::NoConnection)
    ));
    assert!(matches!(c.unsubscribe("off/#"), Err(Error::NoConnection)));
    assert!(!c.is_connected());

    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    q1.wait_for_publish(Some(T)).unwrap();
    q2.wait_for_publish(Some(T)).unwrap();
    let mut got: Vec<(String, Vec<u8>)> = (0..2)
        .map(|_| {
            let m = wp.msg();
            (m.topic().to_string(), m.payload().to_vec())
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (format!("off/{t}/q1"), b"queued1".to_vec()),
            (format!("off/{t}/q2"), b"queued2".to_vec())
        ]
    );
    wp.msgs.assert_none_within(Duration::from_millis(200));
    finish(&c);
    finish(&watcher);
}
per_protocol!(offline_publish_before_connect);

// 10. authentication ----------------------------------------------------------------------

fn auth_broker() -> Mosquitto {
    Mosquitto::builder()
        .user("alice", "s3cret")
        .user("bob", "hunter2")
        .allow_anonymous(false)
        .start()
}

/// The reason code on_connect reports for these credentials (None = connect() failed).
fn connect_rc(
    broker: &Mosquitto,
    proto: Protocol,
    id: &str,
    user: Option<(&str, &str)>,
) -> ReasonCode {
    let c = Client::builder()
        .client_id(id)
        .protocol(proto)
        .reconnect_on_failure(false)
        .build()
        .unwrap();
    if let Some((u, pw)) = user {
        c.username_pw_set(u, Some(pw)).unwrap();
    }
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    let (_, rc, _) = p.conn.wait(T);
    if rc == ReasonCode::SUCCESS {
        assert!(c.is_connected());
        c.disconnect().unwrap();
    } else {
        assert!(!c.is_connected());
    }
    c.loop_stop().unwrap();
    rc
}

fn auth_password_file(proto: Protocol) {
    let broker = auth_broker();
    let t = tag(proto);
    assert_eq!(
        connect_rc(
            &broker,
            proto,
            &format!("au1-{t}"),
            Some(("alice", "s3cret"))
        ),
        ReasonCode::SUCCESS
    );
    assert_eq!(
        connect_rc(
            &broker,
            proto,
            &format!("au2-{t}"),
            Some(("bob", "hunter2"))
        ),
        ReasonCode::SUCCESS
    );
    // mosquitto 2.0.11 answers a wrong password with "not authorised" (v3 rc 5 -> 0x87, v5
    // 0x87) in some configurations and "bad user name or password" (v3 rc 4 -> 0x86) in
    // others; either is a correct refusal, anything else is a mapping bug.
    let refused = [
        ReasonCode::BAD_USER_NAME_OR_PASSWORD,
        ReasonCode::NOT_AUTHORIZED,
    ];
    let rc = connect_rc(
        &broker,
        proto,
        &format!("au3-{t}"),
        Some(("alice", "wrong")),
    );
    assert!(
        refused.contains(&rc),
        "wrong password: {rc} ({:#x})",
        rc.value()
    );
    let rc = connect_rc(&broker, proto, &format!("au4-{t}"), Some(("mallory", "x")));
    assert!(
        refused.contains(&rc),
        "unknown user: {rc} ({:#x})",
        rc.value()
    );
    let rc = connect_rc(&broker, proto, &format!("au5-{t}"), None);
    assert!(refused.contains(&rc), "anonymous: {rc} ({:#x})", rc.value());
}
per_protocol!(auth_password_file);

/// The refusal is also reported to loop_forever's caller and the loop does not spin.
#[test]
fn auth_refused_ends_loop_forever_without_reconnect() {
    let broker = auth_broker();
    let c = Client::builder()
        .client_id("au-lf")
        .reconnect_on_failure(false)
        .build()
        .unwrap();
    c.username_pw_set("alice", Some("nope")).unwrap();
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60).unwrap();
    let r = c.loop_forever();
    assert!(r.is_err(), "loop_forever after a refused CONNACK: {r:?}");
    let (_, rc, _) = p.conn.wait(T);
    assert!(rc.is_failure());
}

/// An ACL that forbids publishing: v3.1.1 silently drops it (the PUBACK still comes);
/// v5 mosquitto answers PUBACK "not authorized" which ends the flow via on_publish.
fn acl_denied_publish(proto: Protocol) {
    let broker = Mosquitto::builder()
        .user("alice", "pw")
        .allow_anonymous(false)
        .acl("user alice\ntopic read ro/#\ntopic readwrite rw/#\n")
        .start();
    let t = tag(proto);
    let c = client(proto, &format!("acl-{t}"));
    c.username_pw_set("alice", Some("pw")).unwrap();
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    sub(&c, &p, "ro/#", QoS::AtLeastOnce);
    sub(&c, &p, "rw/#", QoS::AtLeastOnce);
    let denied = c.publish("ro/x", "no", QoS::AtLeastOnce, false).unwrap();
    let r = denied.wait_for_publish(Some(T));
    let (mid, rc) = p.pubs.wait(T);
    assert_eq!(mid, denied.mid());
    if proto == Protocol::V5 {
        assert_eq!(rc, ReasonCode::NOT_AUTHORIZED);
        assert!(
            matches!(r, Err(Error::PublishRefused(rc)) if rc == ReasonCode::NOT_AUTHORIZED),
            "{r:?}"
        );
    } else {
        assert_eq!(rc, ReasonCode::SUCCESS);
        r.unwrap();
    }
    c.publish("rw/x", "yes", QoS::AtLeastOnce, false)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();
    let m = p.msg();
    assert_eq!(
        m.topic(),
        "rw/x",
        "the denied message must not be delivered"
    );
    finish(&c);
}
per_protocol!(acl_denied_publish);
