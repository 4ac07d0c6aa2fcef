//! The `publish` and `subscribe` helper modules (Python's `paho.mqtt.publish` /
//! `paho.mqtt.subscribe`), against mosquitto and, for the connection cut midway, a scripted
//! broker.
mod support;

use std::thread;

use mqtt_sync::{publish, subscribe, Client, Error, Protocol, QoS, ReasonCode};
use support::scripted::{self, ScriptedBroker};
use support::{Events, Mosquitto, T};

fn pub_opts(b: &Mosquitto) -> publish::Options {
    publish::Options {
        hostname: b.host().to_string(),
        port: b.port(),
        ..Default::default()
    }
}

fn sub_opts(b: &Mosquitto) -> subscribe::Options {
    subscribe::Options {
        hostname: b.host().to_string(),
        port: b.port(),
        ..Default::default()
    }
}

/// A subscriber on its own loop thread that forwards what it receives; returns once SUBACK
/// arrived so publishes that follow are seen.
/// What the listener saw: topic, payload, QoS, retain.
type Seen = (String, Vec<u8>, QoS, bool);

fn listener(b: &Mosquitto, filter: &str) -> (Client, Events<Seen>) {
    let c = Client::new("");
    let ev = Events::new();
    let tx = ev.sender();
    c.on_message(move |_c, m| {
        let _ = tx.send((
            m.topic().to_string(),
            m.payload().to_vec(),
            m.qos(),
            m.retain(),
        ));
    });
    let subs: Events<u16> = Events::new();
    let stx = subs.sender();
    c.on_subscribe(move |_c, mid, _rc, _p| {
        let _ = stx.send(mid);
    });
    c.connect(b.host(), b.port(), 60).unwrap();
    c.subscribe(filter, QoS::ExactlyOnce).unwrap();
    c.loop_start().unwrap();
    subs.wait(T);
    (c, ev)
}

#[test]
fn defaults_match_python_keywords() {
    let p = publish::Options::default();
    assert_eq!(
        (
            p.hostname.as_str(),
            p.port,
            p.keepalive,
            p.client_id.as_str()
        ),
        ("localhost", 1883, 60, "")
    );
    assert_eq!(
        (p.protocol, p.transport),
        (Protocol::V311, mqtt_sync::Transport::Tcp)
    );
    assert!(p.will.is_none() && p.auth.is_none() && p.tls.is_none() && p.proxy.is_none());
    let s = subscribe::Options::default();
    assert!(s.clean_session);
    assert_eq!(
        (s.hostname.as_str(), s.port, s.keepalive),
        ("localhost", 1883, 60)
    );
}

#[test]
fn single_delivers_at_each_qos() {
    let b = Mosquitto::start();
    let (_l, ev) = listener(&b, "helpers/single/#");
    for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let topic = format!("helpers/single/{}", q as u8);
        publish::single(&topic, format!("q{}", q as u8), q, false, &pub_opts(&b)).unwrap();
        let (t, p, rq, _) = ev.wait(T);
        assert_eq!((t, p, rq), (topic, format!("q{}", q as u8).into_bytes(), q));
    }
}

#[test]
fn multiple_sends_every_message_in_order_v5() {
    let b = Mosquitto::start();
    let (_l, ev) = listener(&b, "helpers/multi/#");
    let msgs: Vec<publish::Msg> = (0..20)
        .map(|i| publish::Msg {
            topic: format!("helpers/multi/{i}"),
            payload: vec![i as u8],
            qos: [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][i % 3],
            retain: false,
        })
        .collect();
    let opts = publish::Options {
        protocol: Protocol::V5,
        ..pub_opts(&b)
    };
    publish::multiple(&msgs, &opts).unwrap();
    // Every message arrives once. (The order at a third party is not fixed across QoS
    // levels: a QoS 2 message is delivered at its PUBREL, possibly after a later QoS 0 one.)
    let mut got: Vec<(String, Vec<u8>)> = (0..msgs.len())
        .map(|_| ev.wait(T))
        .map(|(t, p, _, _)| (t, p))
        .collect();
    got.sort_by_key(|(_, p)| p[0]);
    let want: Vec<(String, Vec<u8>)> = msgs
        .iter()
        .map(|m| (m.topic.clone(), m.payload.clone()))
        .collect();
    assert_eq!(got, want);
    ev.assert_none_within(std::time::Duration::from_millis(100));
}

#[test]
fn multiple_with_an_empty_list_is_invalid() {
    let err = publish::multiple(&[], &publish::Options::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
}

#[test]
fn refused_connack_returns_connection_refused_with_connack_string() {
    let b = Mosquitto::builder()
        .allow_anonymous(false)
        .user("u", "right")
        .start();
    let opts = publish::Options {
        auth: Some(mqtt_sync::Auth {
            username: "u".into(),
            password: Some("wrong".into()),
        }),
        ..pub_opts(&b)
    };
    let err = publish::single("t", "x", QoS::AtMostOnce, false, &opts).unwrap_err();
    match &err {
        Error::ConnectionRefused(rc) => {
            assert!(
                *rc == ReasonCode::NOT_AUTHORIZED || *rc == ReasonCode::BAD_USER_NAME_OR_PASSWORD,
                "{rc:?}"
            );
            assert!(
                err.to_string()
                    .contains(mqtt_sync::connack_string(rc.value())),
                "{err}"
            );
        }
        other => panic!("expected ConnectionRefused, got {other:?}"),
    }
    let sopts = subscribe::Options {
        auth: opts.auth.clone(),
        ..sub_opts(&b)
    };
    let err = subscribe::simple(&["t"], QoS::AtMostOnce, 1, true, &sopts).unwrap_err();
    assert!(matches!(err, Error::ConnectionRefused(_)), "{err:?}");
    // With the right password it works.
    let ok = publish::Options {
        auth: Some(mqtt_sync::Auth {
            username: "u".into(),
            password: Some("right".into()),
        }),
        ..pub_opts(&b)
    };
    publish::single("t", "x", QoS::AtLeastOnce, false, &ok).unwrap();
}

/// The connection drops after the first message's PUBACK, with the second unacknowledged:
/// the helper reconnects, re-sends the second with DUP, then sends the third.
#[test]
fn multiple_qos1_resends_after_connection_cut_midway() {
    let broker = ScriptedBroker::bind();
    let port = broker.port();
    let h = thread::spawn(move || {
        let msgs: Vec<publish::Msg> = (1..=3)
            .map(|i| publish::Msg {
                topic: "cut/t".into(),
                payload: format!("m{i}").into_bytes(),
                qos: QoS::AtLeastOnce,
                retain: false,
            })
            .collect();
        publish::multiple(
            &msgs,
            &publish::Options {
                hostname: "127.0.0.1".into(),
                port,
                client_id: "cutter".into(),
                ..Default::default()
            },
        )
    });
    let mut c = broker.accept(T);
    assert_eq!(scripted::parse_client_packet_type(&c.read_packet(T)), 1);
    c.send(&scripted::connack(false, 0));
    let p1 = c.read_packet(T);
    assert_eq!(scripted::publish_topic(&p1), "cut/t");
    c.send(&scripted::puback(scripted::packet_id(&p1).unwrap()));
    let p2 = c.read_packet(T);
    let mid2 = scripted::packet_id(&p2).unwrap();
    assert_eq!(p2[0] & 0x08, 0, "first send of m2 has no DUP");
    drop(c); // cut, m2 unacknowledged
    let mut c = broker.accept(T);
    assert_eq!(scripted::parse_client_packet_type(&c.read_packet(T)), 1);
    c.send(&scripted::connack(false, 0));
    let again = c.read_packet(T);
    assert_eq!(scripted::packet_id(&again), Some(mid2));
    assert_eq!(again[0] & 0x08, 0x08, "the resend carries DUP");
    assert!(again.ends_with(b"m2"));
    c.send(&scripted::puback(mid2));
    let p3 = c.read_packet(T);
    assert!(p3.ends_with(b"m3"));
    c.send(&scripted::puback(scripted::packet_id(&p3).unwrap()));
    assert_eq!(
        c.read_packet(T),
        vec![0xE0, 0x00],
        "DISCONNECT after the last message"
    );
    h.join().unwrap().unwrap();
}

#[test]
fn simple_returns_msg_count_messages_and_skips_retained_when_asked() {
    let b = Mosquitto::start();
    publish::single(
        "helpers/simple/r",
        "old",
        QoS::AtLeastOnce,
        true,
        &pub_opts(&b),
    )
    .unwrap();
    // retained = true: the retained message counts.
    let got = subscribe::simple(
        &["helpers/simple/#"],
        QoS::AtLeastOnce,
        1,
        true,
        &sub_opts(&b),
    )
    .unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].retain());
    assert_eq!(got[0].payload(), b"old");
    // retained = false: skipped; the next two live messages are returned.
    let opts = sub_opts(&b);
    let h = thread::spawn(move || {
        subscribe::simple(&["helpers/simple/#"], QoS::AtLeastOnce, 2, false, &opts)
    });
    // Publish until the subscriber is done (it may not have subscribed yet).
    let mut i = 0;
    while !h.is_finished() {
        i += 1;
        publish::single(
            "helpers/simple/live",
            format!("n{i}"),
            QoS::AtLeastOnce,
            false,
            &pub_opts(&b),
        )
        .unwrap();
        assert!(i < 500, "subscribe::simple did not finish");
    }
    let got = h.join().unwrap().unwrap();
    assert_eq!(got.len(), 2);
    assert!(got
        .iter()
        .all(|m| !m.retain() && m.topic() == "helpers/simple/live"));
}

#[test]
fn simple_with_msg_count_zero_is_invalid() {
    let err = subscribe::simple(
        &["a"],
        QoS::AtMostOnce,
        0,
        true,
        &subscribe::Options::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
}

#[test]
fn callback_runs_until_the_callback_disconnects() {
    let b = Mosquitto::start();
    let opts = subscribe::Options {
        protocol: Protocol::V5,
        ..sub_opts(&b)
    };
    let seen: Events<String> = Events::new();
    let tx = seen.sender();
    let h = thread::spawn(move || {
        let mut n = 0;
        subscribe::callback(
            move |c, m| {
                n += 1;
                let _ = tx.send(String::from_utf8_lossy(m.payload()).into_owned());
                if n == 3 {
                    c.disconnect().unwrap();
                }
            },
            &["helpers/cb/#"],
            QoS::ExactlyOnce,
            &opts,
        )
    });
    let mut i = 0;
    while !h.is_finished() {
        i += 1;
        publish::single(
            "helpers/cb/x",
            format!("n{i}"),
            QoS::ExactlyOnce,
            false,
            &pub_opts(&b),
        )
        .unwrap();
        assert!(i < 500, "subscribe::callback did not return");
    }
    h.join().unwrap().unwrap();
    assert_eq!(seen.drain().len(), 3);
}
