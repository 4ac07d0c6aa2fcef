mod support;

// Outgoing topic aliases the client assigns itself (auto_topic_alias_set, MQTT 5): the exact
// bytes against the scripted broker, and the full topics at a subscriber of mosquitto.

use mqtt_sync::{Error, Protocol, QoS};
use support::broker_client::{client, finish, started, sub, Probe};
use support::scripted_client::*;
use support::Mosquitto;

const ALIAS_1: [u8; 3] = [0x23, 0, 1];
const ALIAS_2: [u8; 3] = [0x23, 0, 2];

#[test]
fn aliases_are_set_used_bounded_and_reset_per_connection() {
    let broker = ScriptedBroker::bind();
    let c = v5("ta");
    fast_reconnect(&c);
    c.auto_topic_alias_set(2).unwrap();
    assert_eq!(c.auto_topic_alias(), 2);
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    // The broker allows 5 aliases; the client uses at most its own 2.
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack_v5(false, 0, &p_u16(0x22, 5)));

    c.publish("a/b", "1", QoS::AtMostOnce, false).unwrap();
    conn.expect_packet(&s::publish_v5("a/b", b"1", 0, 0, false, false, &ALIAS_1), T);
    c.publish("a/b", "2", QoS::AtMostOnce, false).unwrap();
    conn.expect_packet(&s::publish_v5("", b"2", 0, 0, false, false, &ALIAS_1), T);
    let m3 = c.publish("c", "3", QoS::AtLeastOnce, false).unwrap();
    conn.expect_packet(
        &s::publish_v5("c", b"3", 1, m3.mid(), false, false, &ALIAS_2),
        T,
    );
    conn.send(&s::puback(m3.mid()));
    // Both aliases taken: a third topic goes out as it is.
    c.publish("d", "4", QoS::AtMostOnce, false).unwrap();
    conn.expect_packet(&s::publish_v5("d", b"4", 0, 0, false, false, &[]), T);
    let m5 = c.publish("c", "5", QoS::ExactlyOnce, false).unwrap();
    conn.expect_packet(
        &s::publish_v5("", b"5", 2, m5.mid(), false, false, &ALIAS_2),
        T,
    );
    m3.wait_for_publish(Some(T)).unwrap();

    // A new connection starts without aliases: the unacknowledged message is re-sent with
    // its topic, setting alias 1 of the new connection.
    conn.close();
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack_v5(true, 0, &p_u16(0x22, 5)));
    conn.expect_packet(
        &s::publish_v5("c", b"5", 2, m5.mid(), false, true, &ALIAS_1),
        T,
    );
    conn.send(&s::pubrec(m5.mid()));
    conn.expect_packet(&s::pubrel(m5.mid()), T);
    conn.send(&s::pubcomp(m5.mid()));
    m5.wait_for_publish(Some(T)).unwrap();
    c.publish("c", "6", QoS::AtMostOnce, false).unwrap();
    conn.expect_packet(&s::publish_v5("", b"6", 0, 0, false, false, &ALIAS_1), T);
    c.publish("a/b", "7", QoS::AtMostOnce, false).unwrap();
    conn.expect_packet(&s::publish_v5("a/b", b"7", 0, 0, false, false, &ALIAS_2), T);
    finish_scripted(&c, &mut conn);
}

#[test]
fn no_alias_when_the_broker_allows_none() {
    let broker = ScriptedBroker::bind();
    let c = v5("ta0");
    c.auto_topic_alias_set(10).unwrap();
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    // No Topic Alias Maximum in CONNACK: 0, aliases not allowed.
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack_v5(false, 0, &[]));
    for p in ["1", "2"] {
        c.publish("a/b", p, QoS::AtMostOnce, false).unwrap();
        conn.expect_packet(
            &s::publish_v5("a/b", p.as_bytes(), 0, 0, false, false, &[]),
            T,
        );
    }
    finish_scripted(&c, &mut conn);
}

#[test]
fn own_alias_refused_while_automatic_and_v3_not_supported() {
    let c = v5("ta-own");
    c.auto_topic_alias_set(4).unwrap();
    let props = mqtt_sync::Properties {
        topic_alias: Some(1),
        ..Default::default()
    };
    let e = c
        .publish_with_properties("t", "x", QoS::AtMostOnce, false, props)
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let c3 = v311("ta-v3");
    let e = c3.auto_topic_alias_set(4).unwrap_err();
    assert!(matches!(e, Error::NotSupported(_)), "{e:?}");
    c3.auto_topic_alias_set(0).unwrap();
}

/// Against mosquitto (its default Topic Alias Maximum, 10): a subscriber gets every
/// message with its full topic, in order, at each QoS; the publisher's bytes shrink.
#[test]
fn mosquitto_subscriber_gets_full_topics() {
    let broker = Mosquitto::start();
    let (s, sp) = started(&broker, Protocol::V5, "ta-sub");
    sub(&s, &sp, "plant/#", QoS::ExactlyOnce);
    let topics = [
        "plant/hall-3/line-2/sensor-7/temperature",
        "plant/hall-3/line-2/sensor-7/humidity",
    ];
    let run = |auto: u16| -> u64 {
        let c = client(Protocol::V5, &format!("ta-pub-{auto}"));
        let p = Probe::attach(&c);
        c.auto_topic_alias_set(auto).unwrap();
        c.connect(broker.host(), broker.port(), 60).unwrap();
        c.loop_start().unwrap();
        p.connected();
        let before = c.stats().bytes_sent;
        for i in 0..30 {
            let q = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][i % 3];
            c.publish(topics[i % 2], format!("{auto}-{i}"), q, false)
                .unwrap()
                .wait_for_publish(Some(T))
                .unwrap();
        }
        let sent = c.stats().bytes_sent - before;
        // QoS 2 messages reach on_message at PUBREL (as in Paho), so a later QoS 0 one may
        // overtake them: compare by payload.
        let mut got: Vec<(String, String)> = (0..30)
            .map(|_| {
                let m = sp.msg();
                assert_eq!(m.properties().topic_alias, None);
                (
                    String::from_utf8_lossy(m.payload()).into_owned(),
                    m.topic().to_string(),
                )
            })
            .collect();
        got.sort_by_key(|(p, _)| p.split('-').nth(1).and_then(|n| n.parse::<usize>().ok()));
        for (i, (payload, topic)) in got.iter().enumerate() {
            assert_eq!(payload, &format!("{auto}-{i}"));
            assert_eq!(topic, topics[i % 2], "message {payload}");
        }
        finish(&c);
        sent
    };
    let plain = run(0);
    let aliased = run(10);
    // 28 of the 30 PUBLISHes carry 2 bytes of alias (plus 3 of property) instead of the
    // 37 to 40 bytes of topic: about 30 bytes less each.
    assert!(
        aliased + 28 * 25 < plain,
        "aliases saved too little: {aliased} bytes with, {plain} without"
    );
    finish(&s);
}

/// Disconnects and checks the DISCONNECT the scripted broker receives.
fn finish_scripted(c: &mqtt_sync::Client, conn: &mut ScriptedConn) {
    c.disconnect().unwrap();
    let d = conn.read_packet(T);
    assert_eq!(d[0], 0xE0, "expected DISCONNECT, got [{}]", hex(&d));
    c.loop_stop().unwrap();
}
