mod support;

// MQTT 5 features against a real mosquitto (2.0.11): properties, subscription options,
// request/response, disconnect reason codes and the broker limits sent in CONNACK.

use std::time::Duration;

use mqtt_sync::{
    Client, ConnectOptions, Error, Properties, Protocol, QoS, ReasonCode, RetainHandling,
    SubscribeOptions,
};
use support::{Events, Mosquitto, T};

use support::broker_client::{client, finish, started, sub, Probe};

const V5: Protocol = Protocol::V5;

#[test]
fn publish_properties_arrive_intact() {
    let broker = Mosquitto::start();
    let (s, sp) = started(&broker, V5, "pp-sub");
    sub(&s, &sp, "props/#", QoS::ExactlyOnce);
    let (c, _cp) = started(&broker, V5, "pp-pub");
    for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let props = Properties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(3600),
            content_type: Some("application/json; charset=utf-8".into()),
            response_topic: Some("props/reply/ü".into()),
            correlation_data: Some(vec![0, 1, 2, 0xfe, 0xff]),
            user_properties: vec![
                ("k1".into(), "v1".into()),
                ("k1".into(), "v1-again".into()),
                ("ключ".into(), "значение".into()),
                ("empty".into(), String::new()),
            ],
            ..Default::default()
        };
        c.publish_with_properties("props/x", "{\"a\":1}", q, false, props.clone())
            .unwrap()
            .wait_for_publish(Some(T))
            .unwrap();
        let m = sp.msg();
        assert_eq!(m.payload(), b"{\"a\":1}");
        assert_eq!(m.qos(), q);
        let got = m.properties();
        assert_eq!(got.payload_format_indicator, Some(1));
        assert_eq!(got.content_type, props.content_type);
        assert_eq!(got.response_topic, props.response_topic);
        assert_eq!(got.correlation_data, props.correlation_data);
        assert_eq!(
            got.user_properties, props.user_properties,
            "order and duplicates kept"
        );
        // The broker forwards the remaining lifetime.
        let exp = got
            .message_expiry_interval
            .expect("message expiry forwarded");
        assert!((3590..=3600).contains(&exp), "expiry {exp}");
        assert!(got.subscription_identifiers.is_empty());
    }
    finish(&c);
    finish(&s);
}

#[test]
fn messages_without_properties_have_empty_properties() {
    let broker = Mosquitto::start();
    let (c, p) = started(&broker, V5, "np");
    sub(&c, &p, "np/#", QoS::AtLeastOnce);
    c.publish("np/x", "plain", QoS::AtLeastOnce, false).unwrap();
    let m = p.msg();
    assert_eq!(m.properties(), &Properties::default());
    finish(&c);
}

#[test]
fn subscription_identifiers_in_message_properties() {
    let broker = Mosquitto::start();
    let (c, p) = started(&broker, V5, "sid");
    let with_id = |filter: &str, id: u32| {
        let mid = c
            .subscribe_with_options(
                filter,
                SubscribeOptions::qos(QoS::AtLeastOnce),
                Some(Properties {
                    subscription_identifiers: vec![id],
                    ..Default::default()
                }),
            )
            .unwrap();
        assert_eq!(p.suback(mid), vec![ReasonCode::GRANTED_QOS_1]);
    };
    with_id("sid/+/x", 7);
    with_id("sid/#", 268_435_455); // the largest allowed value
    sub(&c, &p, "other/#", QoS::AtLeastOnce);

    c.publish("sid/a/x", "both", QoS::AtLeastOnce, false)
        .unwrap();
    // Two matching subscriptions: the spec allows one PUBLISH carrying both ids or one
    // PUBLISH per subscription with its own id; mosquitto 2.0.11 (allow_duplicate_messages
    // defaults to true) sends two.
    let mut ids = Vec::new();
    while ids.len() < 2 {
        let m = p.msg();
        assert_eq!(m.payload(), b"both");
        let got = &m.properties().subscription_identifiers;
        assert!(
            !got.is_empty(),
            "a message for an identified subscription carries its id"
        );
        ids.extend_from_slice(got);
    }
    ids.sort_unstable();
    assert_eq!(
        ids,
        vec![7, 268_435_455],
        "the id of every matching subscription"
    );

    c.publish("sid/b", "one", QoS::AtLeastOnce, false).unwrap();
    assert_eq!(
        p.msg().properties().subscription_identifiers,
        vec![268_435_455]
    );

    c.publish("other/x", "none", QoS::AtLeastOnce, false)
        .unwrap();
    assert!(p.msg().properties().subscription_identifiers.is_empty());
    finish(&c);
}

#[test]
fn no_local_suppresses_own_messages() {
    let broker = Mosquitto::start();
    let (c, p) = started(&broker, V5, "nl");
    let mid = c
        .subscribe_with_options(
            "nl/#",
            SubscribeOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                ..Default::default()
            },
            None,
        )
        .unwrap();
    p.suback(mid);
    let (other, _op) = started(&broker, V5, "nl-other");
    c.publish("nl/own", "own", QoS::AtLeastOnce, false)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();
    other
        .publish("nl/theirs", "theirs", QoS::AtLeastOnce, false)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();
    let m = p.msg();
    assert_eq!(m.topic(), "nl/theirs");
    p.msgs.assert_none_within(Duration::from_millis(200));
    finish(&other);
    finish(&c);
}

#[test]
fn retain_handling_and_retain_as_published() {
    let broker = Mosquitto::start();
    let (c, p) = started(&broker, V5, "rh");
    c.publish("rh/x", "kept", QoS::AtLeastOnce, true)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();
    let subscribe = |filter: &str, rh: RetainHandling, rap: bool| {
        let mid = c
            .subscribe_with_options(
                filter,
                SubscribeOptions {
                    qos: QoS::AtLeastOnce,
                    retain_handling: rh,
                    retain_as_published: rap,
                    ..Default::default()
                },
                None,
            )
            .unwrap();
        p.suback(mid);
    };
    // DoNotSend: no retained message at subscribe time.
    subscribe("rh/#", RetainHandling::DoNotSend, false);
    p.msgs.assert_none_within(Duration::from_millis(200));
    // SendIfNewSubscription on an existing subscription: nothing either.
    subscribe("rh/#", RetainHandling::SendIfNewSubscription, false);
    p.msgs.assert_none_within(Duration::from_millis(200));
    // SendOnSubscribe: sent, with retain set.
    subscribe("rh/#", RetainHandling::SendOnSubscribe, false);
    let m = p.msg();
    assert_eq!(m.payload(), b"kept");
    assert!(m.retain());
    // SendIfNewSubscription on a new subscription: sent.
    subscribe("rh/+", RetainHandling::SendIfNewSubscription, false);
    let m = p.msg();
    assert!(m.retain());
    let _ = c.unsubscribe("rh/+").unwrap();

    // A live retained publish: retain cleared unless retain_as_published.
    c.publish("rh/x", "live", QoS::AtLeastOnce, true).unwrap();
    assert!(
        !p.msg().retain(),
        "without retain_as_published the flag is cleared"
    );
    // mosquitto 2.0.11 updates only the QoS and identifier of an existing subscription,
    // not its options, so make a new one to change retain_as_published.
    // (The broker handles UNSUBSCRIBE before the SUBSCRIBE that follows it.)
    c.unsubscribe("rh/#").unwrap();
    subscribe("rh/#", RetainHandling::DoNotSend, true);
    c.publish("rh/x", "live2", QoS::AtLeastOnce, true).unwrap();
    let m = p.msg();
    assert_eq!(m.payload(), b"live2");
    assert!(m.retain(), "retain_as_published keeps the flag");
    finish(&c);
}

#[test]
fn request_response_pattern() {
    let broker = Mosquitto::start();
    let (responder, rp) = started(&broker, V5, "rr-responder");
    let replies: Events<bool> = Events::new();
    let tx = replies.sender();
    responder.on_message(move |c, m| {
        let props = m.properties();
        let Some(rt) = props.response_topic.clone() else {
            let _ = tx.send(false);
            return;
        };
        let mut body = b"echo:".to_vec();
        body.extend_from_slice(m.payload());
        let r = c.publish_with_properties(
            &rt,
            body,
            QoS::AtLeastOnce,
            false,
            Properties {
                correlation_data: props.correlation_data.clone(),
                ..Default::default()
            },
        );
        let _ = tx.send(r.is_ok());
    });
    sub(&responder, &rp, "svc/echo", QoS::AtLeastOnce);

    let (requester, qp) = started(&broker, V5, "rr-requester");
    sub(&requester, &qp, "svc/reply/rr-requester", QoS::AtLeastOnce);
    for i in 0..3u8 {
        requester
            .publish_with_properties(
                "svc/echo",
                format!("req{i}"),
                QoS::AtLeastOnce,
                false,
                Properties {
                    response_topic: Some("svc/reply/rr-requester".into()),
                    correlation_data: Some(vec![0xc0, i]),
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(replies.wait(T), "the responder replied");
        let m = qp.msg();
        assert_eq!(m.topic(), "svc/reply/rr-requester");
        assert_eq!(m.payload(), format!("echo:req{i}").as_bytes());
        assert_eq!(m.properties().correlation_data, Some(vec![0xc0, i]));
    }
    finish(&requester);
    finish(&responder);
}

#[test]
fn disconnect_with_will_message_reason_sends_the_will() {
    let broker = Mosquitto::start();
    let (w, wp) = started(&broker, V5, "dw-watch");
    sub(&w, &wp, "dw/#", QoS::AtLeastOnce);
    let c = client(V5, "dw");
    c.will_set("dw/will", "will-by-request", QoS::AtLeastOnce, false)
        .unwrap();
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    let mark = broker.log_mark();
    c.disconnect_with(
        ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
        Properties {
            reason_string: Some("bye with will".into()),
            user_properties: vec![("why".into(), "test".into())],
            ..Default::default()
        },
    )
    .unwrap();
    let (f, _rc) = p.disc.wait(T);
    assert!(!f.is_disconnect_packet_from_server);
    broker.wait_for_log_after(mark, "Received DISCONNECT from dw", T);
    let m = wp.msg();
    assert_eq!(
        (m.topic(), m.payload()),
        ("dw/will", &b"will-by-request"[..])
    );
    c.loop_stop().unwrap();
    finish(&w);
}

#[test]
fn disconnect_with_normal_reason_sends_no_will() {
    let broker = Mosquitto::start();
    let (w, wp) = started(&broker, V5, "dn-watch");
    sub(&w, &wp, "dn/#", QoS::AtLeastOnce);
    let c = client(V5, "dn");
    c.will_set("dn/will", "x", QoS::AtLeastOnce, false).unwrap();
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    let mark = broker.log_mark();
    c.disconnect_with(ReasonCode::NORMAL_DISCONNECTION, Properties::default())
        .unwrap();
    p.disconnected_cleanly();
    broker.wait_for_log_after(mark, "Client dn disconnected", T);
    wp.msgs.assert_none_within(Duration::from_millis(300));
    c.loop_stop().unwrap();
    finish(&w);
}

/// A second client with the same id takes the session over: the first sees one
/// on_disconnect, the second stays connected.
#[test]
fn server_disconnect_session_taken_over() {
    let broker = Mosquitto::start();
    let first = Client::builder()
        .client_id("dup-id")
        .protocol(V5)
        .reconnect_on_failure(false)
        .build()
        .unwrap();
    let p1 = Probe::attach(&first);
    first.connect(broker.host(), broker.port(), 60).unwrap();
    first.loop_start().unwrap();
    p1.connected();
    let second = client(V5, "dup-id");
    let p2 = Probe::attach(&second);
    second.connect(broker.host(), broker.port(), 60).unwrap();
    second.loop_start().unwrap();
    p2.connected();
    let (f, rc) = p1.disc.wait(T);
    // mosquitto 2.0.11 closes the old connection without sending DISCONNECT 0x8E (checked
    // with a raw socket), so the client sees a lost connection.
    assert_eq!(rc, ReasonCode::UNSPECIFIED_ERROR);
    assert!(!f.is_disconnect_packet_from_server);
    assert!(p1.disc.try_recv().is_none(), "on_disconnect once");
    assert!(second.is_connected());
    let _ = first.loop_stop();
    finish(&second);
}

/// mosquitto's max_inflight_messages is sent as CONNACK Receive Maximum; the client keeps
/// at most that many QoS 1/2 messages unacknowledged (mosquitto would disconnect it with
/// 0x93 otherwise), checked also in the broker's log.
#[test]
fn receive_maximum_from_broker_limits_the_window() {
    let broker = Mosquitto::builder()
        .config("max_inflight_messages 2")
        .start();
    let c = client(V5, "rm");
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    let (_, rc, props) = p.conn.wait(T);
    assert_eq!(rc, ReasonCode::SUCCESS);
    assert_eq!(props.receive_maximum, Some(2));
    let infos: Vec<_> = (0..40)
        .map(|i| {
            let q = if i % 2 == 0 {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            c.publish("rm/x", format!("{i}"), q, false).unwrap()
        })
        .collect();
    for i in &infos {
        i.wait_for_publish(Some(T)).unwrap();
    }
    assert!(
        p.disc.try_recv().is_none(),
        "no disconnect (0x93 would mean the window was exceeded)"
    );
    let log = broker.log();
    let mut open: i32 = 0;
    let mut max_open = 0;
    for line in log.lines() {
        if line.contains("Received PUBLISH from rm ") && !line.contains(", q0,") {
            open += 1;
            max_open = max_open.max(open);
        } else if line.contains("Sending PUBACK to rm ") || line.contains("Sending PUBCOMP to rm ")
        {
            open -= 1;
        }
    }
    assert_eq!(open, 0, "every message acknowledged; log:\n{log}");
    assert!(
        max_open <= 2,
        "{max_open} messages in flight at once (Receive Maximum 2)"
    );
    assert!(max_open >= 1);
    finish(&c);
}

/// mosquitto's max_packet_size is sent as CONNACK Maximum Packet Size; a larger publish
/// (or subscribe) is refused by the client with an Error and nothing is sent.
#[test]
fn maximum_packet_size_from_broker_refuses_oversize_publish() {
    let broker = Mosquitto::builder().config("max_packet_size 1000").start();
    let c = client(V5, "mps");
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    let (_, rc, props) = p.conn.wait(T);
    assert_eq!(rc, ReasonCode::SUCCESS);
    assert_eq!(props.maximum_packet_size, Some(1000));
    sub(&c, &p, "mps/#", QoS::AtLeastOnce);
    for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let r = c.publish("mps/big", vec![0u8; 2000], q, false);
        assert!(
            r.is_err(),
            "oversize publish at {q:?} must be refused: {r:?}"
        );
        let r = c.publish("mps/edge", vec![0u8; 990], q, false);
        assert!(
            r.is_err(),
            "a packet of 990 payload bytes + header exceeds 1000: {r:?}"
        );
    }
    let long_filter = format!("mps/{}", "f".repeat(1200));
    assert!(
        c.subscribe(&long_filter, QoS::AtLeastOnce).is_err(),
        "oversize SUBSCRIBE"
    );
    c.publish("mps/ok", vec![1u8; 900], QoS::AtLeastOnce, false)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();
    let m = p.msg();
    assert_eq!(m.topic(), "mps/ok", "nothing oversize was sent");
    assert!(c.is_connected());
    assert!(p.disc.try_recv().is_none());
    finish(&c);
}

/// mosquitto 2.0.11's `max_qos 1`: CONNACK Maximum QoS 1; a QoS 2 publish is refused.
#[test]
fn maximum_qos_from_broker_refuses_qos2_publish() {
    // max_qos is a listener setting in mosquitto 2.0.
    let broker = Mosquitto::builder()
        .default_listener_config("max_qos 1")
        .start();
    let c = client(V5, "mq");
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    let (_, rc, props) = p.conn.wait(T);
    assert_eq!(rc, ReasonCode::SUCCESS);
    assert_eq!(props.maximum_qos, Some(1));
    let r = c.publish("mq/x", "two", QoS::ExactlyOnce, false);
    assert!(
        r.is_err(),
        "QoS 2 above Maximum QoS 1 must be refused: {r:?}"
    );
    c.publish("mq/x", "one", QoS::AtLeastOnce, false)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();
    assert!(c.is_connected());
    finish(&c);
}

/// `retain_available false`: CONNACK Retain Available 0; a retained publish is refused.
#[test]
fn retain_not_available_refuses_retained_publish() {
    let broker = Mosquitto::builder()
        .config("retain_available false")
        .start();
    let c = client(V5, "ra");
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    let (_, _, props) = p.conn.wait(T);
    assert_eq!(props.retain_available, Some(0));
    let r = c.publish("ra/x", "kept", QoS::AtLeastOnce, true);
    assert!(
        r.is_err(),
        "retained publish with Retain Available 0: {r:?}"
    );
    c.publish("ra/x", "plain", QoS::AtLeastOnce, false)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();
    assert!(c.is_connected());
    finish(&c);
}

/// `max_keepalive 10`: CONNACK Server Keep Alive 10 replaces the client's 60.
#[test]
fn server_keep_alive_replaces_keepalive() {
    let broker = Mosquitto::builder().config("max_keepalive 10").start();
    let c = client(V5, "ska");
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    let (_, rc, props) = p.conn.wait(T);
    assert_eq!(rc, ReasonCode::SUCCESS);
    assert_eq!(props.server_keep_alive, Some(10));
    assert_eq!(
        c.keepalive(),
        10,
        "the getter reports the keepalive in force"
    );
    finish(&c);
    assert_eq!(c.keepalive(), 60, "offline: the configured keepalive again");
}

/// An empty client id: the broker assigns one, and the client keeps it for reconnects
/// (the session is then resumed).
#[test]
fn assigned_client_identifier_kept_for_reconnect() {
    let broker = Mosquitto::start();
    let c = client(V5, "");
    let p = Probe::attach(&c);
    c.connect_with(ConnectOptions {
        port: broker.port(),
        properties: Some(Properties {
            session_expiry_interval: Some(60),
            ..Default::default()
        }),
        ..ConnectOptions::new(broker.host())
    })
    .unwrap();
    c.loop_start().unwrap();
    let (f, rc, props) = p.conn.wait(T);
    assert_eq!(rc, ReasonCode::SUCCESS);
    assert!(!f.session_present);
    let assigned = props
        .assigned_client_identifier
        .clone()
        .expect("assigned client identifier");
    assert!(!assigned.is_empty());
    let mark = broker.log_mark();
    c.reconnect().unwrap();
    let (f, rc, _) = p.conn.wait(T);
    assert_eq!(rc, ReasonCode::SUCCESS);
    assert!(
        f.session_present,
        "the reconnect used the assigned id and resumed the session"
    );
    broker.wait_for_log_after(mark, &format!("as {assigned} "), T);
    finish(&c);
}

/// SUBACK / UNSUBACK reason codes as mosquitto sends them.
#[test]
fn suback_and_unsuback_reason_codes() {
    let broker = Mosquitto::builder()
        .default_listener_config("max_qos 1")
        .start();
    let c = client(V5, "codes");
    let p = Probe::attach(&c);
    let unsubs: Events<(u16, Vec<ReasonCode>)> = Events::new();
    let tx = unsubs.sender();
    c.on_unsubscribe(move |_, mid, rcs, _| {
        let _ = tx.send((mid, rcs.to_vec()));
    });
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    let mid = c
        .subscribe_many(&[("c/0", QoS::AtMostOnce), ("c/2", QoS::ExactlyOnce)])
        .unwrap();
    // QoS 2 is downgraded to the broker's maximum.
    assert_eq!(
        p.suback(mid),
        vec![ReasonCode::GRANTED_QOS_0, ReasonCode::GRANTED_QOS_1]
    );
    let mid = c.unsubscribe_many(&["c/0", "never/subscribed"]).unwrap();
    let (umid, rcs) = unsubs.wait(T);
    assert_eq!(umid, mid);
    assert_eq!(
        rcs,
        vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
    );
    finish(&c);
}

/// A v5 publish with no subscriber: mosquitto answers PUBACK 0x10 (no matching
/// subscribers), which is a success: on_publish reports it and wait_for_publish is Ok.
#[test]
fn no_matching_subscribers_is_success() {
    let broker = Mosquitto::start();
    let (c, p) = started(&broker, V5, "nms");
    for q in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let info = c.publish("nobody/listens", "x", q, false).unwrap();
        info.wait_for_publish(Some(T)).unwrap();
        let (mid, rc) = p.pubs.wait(T);
        assert_eq!(mid, info.mid());
        // mosquitto 2.0.11 answers PUBACK 0x10 but PUBREC 0x00 (and PUBCOMP 0x00) for a
        // QoS 2 message nobody receives; on_publish reports the final ack's code.
        let want = if q == QoS::AtLeastOnce {
            ReasonCode::NO_MATCHING_SUBSCRIBERS
        } else {
            ReasonCode::SUCCESS
        };
        assert_eq!(rc, want);
    }
    finish(&c);
}

/// Messages queued offline that the CONNACK's limits make invalid end through on_publish
/// with the matching reason code and are never sent; valid ones are delivered.
#[test]
fn queued_messages_invalidated_by_connack_limits() {
    let broker = Mosquitto::builder()
        .config("max_packet_size 1000")
        .config("retain_available false")
        .default_listener_config("max_qos 1")
        .start();
    let (w, wp) = started(&broker, V5, "ql-watch");
    sub(&w, &wp, "ql/#", QoS::AtLeastOnce);
    let c = client(V5, "ql");
    let p = Probe::attach(&c);
    let too_high = c.publish("ql/qos2", "x", QoS::ExactlyOnce, false).unwrap();
    let too_big = c
        .publish("ql/big", vec![0u8; 2000], QoS::AtLeastOnce, false)
        .unwrap();
    let retained = c.publish("ql/ret", "x", QoS::AtLeastOnce, true).unwrap();
    let fine = c.publish("ql/ok", "ok", QoS::AtLeastOnce, false).unwrap();
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    fine.wait_for_publish(Some(T)).unwrap();
    let mut acks: Vec<(u16, ReasonCode)> = (0..4).map(|_| p.pubs.wait(T)).collect();
    acks.sort_unstable();
    let mut want = vec![
        (too_high.mid(), ReasonCode::QOS_NOT_SUPPORTED),
        (too_big.mid(), ReasonCode::PACKET_TOO_LARGE),
        (retained.mid(), ReasonCode::RETAIN_NOT_SUPPORTED),
        (fine.mid(), ReasonCode::SUCCESS),
    ];
    // (ql/ok has a subscriber, so mosquitto answers 0x00 rather than 0x10.)
    want.sort_unstable();
    assert_eq!(acks, want);
    for (info, rc) in [
        (&too_high, ReasonCode::QOS_NOT_SUPPORTED),
        (&too_big, ReasonCode::PACKET_TOO_LARGE),
        (&retained, ReasonCode::RETAIN_NOT_SUPPORTED),
    ] {
        let r = info.wait_for_publish(Some(T));
        assert!(
            matches!(r, Err(Error::PublishRefused(got)) if got == rc),
            "{r:?}"
        );
    }
    assert_eq!(wp.msg().topic(), "ql/ok");
    wp.msgs.assert_none_within(Duration::from_millis(200));
    assert!(c.is_connected());
    finish(&c);
    finish(&w);
}
