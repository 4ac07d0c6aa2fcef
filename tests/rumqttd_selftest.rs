#[macro_use]
mod support;

// The rumqttd harness (tests/support/rumqttd.rs) against the client: connect with MQTT 3.1.1
// and 5, subscribe, publish and receive at QoS 0/1/2, disconnect cleanly; a broker stopped
// and started again on the same ports. The full scenario matrix lives elsewhere; what
// rumqttd does differently from mosquitto is in docs/interop-rumqttd.md.

use mqtt_sync::{Protocol, QoS, ReasonCode};
use support::broker_client::{finish, sub, tag};
use support::rumqttd::started;
use support::{Rumqttd, T};

const QOS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

/// Publish at each QoS to a filter subscribed at that same QoS (rumqttd delivers at the
/// subscription's QoS, not min(publish, subscription)), receive it back, disconnect.
fn pubsub_each_qos(proto: Protocol) {
    let broker = Rumqttd::start();
    let t = tag(proto);
    let (c, p) = started(&broker, proto, &format!("rq-pubsub-{t}"));
    for q in QOS {
        sub(&c, &p, &format!("rq/{t}/q{}", q as u8), q);
    }
    for q in QOS {
        let topic = format!("rq/{t}/q{}", q as u8);
        let payload = format!("payload at qos {}", q as u8);
        let info = c.publish(&topic, &payload, q, false).unwrap();
        info.wait_for_publish(Some(T)).unwrap();
        let m = p.msg();
        assert_eq!(m.topic(), topic);
        assert_eq!(m.payload(), payload.as_bytes());
        assert_eq!(m.qos(), q, "received QoS on {topic}");
        assert!(!m.retain());
        let (mid, rc) = p.pubs.wait_for(T, |(mid, _)| *mid == info.mid());
        assert_eq!((mid, rc), (info.mid(), ReasonCode::SUCCESS));
    }
    c.disconnect().unwrap();
    let (flags, rc) = p.disc.wait(T);
    assert_eq!(rc, ReasonCode::SUCCESS);
    assert!(!flags.is_disconnect_packet_from_server);
    c.loop_stop().unwrap();
    broker.wait_for_log("Disconnecting connection", T);
}
per_protocol!(pubsub_each_qos, no_v31);

/// The broker stopped and started again on the same ports: the client sees the connection
/// drop, reconnects by itself (loop_start), and works again. rumqttd keeps nothing across a
/// restart, so the session is new and the subscription has to be made again.
fn stop_and_start_again(proto: Protocol) {
    let mut broker = Rumqttd::start();
    let t = tag(proto);
    let port = broker.port(proto);
    let (c, p) = started(&broker, proto, &format!("rq-restart-{t}"));
    let topic = format!("rq/{t}/restart");
    sub(&c, &p, &topic, QoS::AtLeastOnce);

    broker.stop();
    assert!(!broker.is_running());
    let (flags, rc) = p.disc.wait(T);
    assert!(
        rc.is_failure(),
        "a lost connection reports a failure, got {rc}"
    );
    assert!(!flags.is_disconnect_packet_from_server);

    broker.start_again();
    assert_eq!(broker.port(proto), port, "same port after start_again");
    let flags = p.connected();
    assert!(
        !flags.session_present,
        "rumqttd keeps no session across a restart"
    );
    sub(&c, &p, &topic, QoS::AtLeastOnce);
    c.publish(&topic, "again", QoS::AtLeastOnce, false)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();
    assert_eq!(p.msg().payload(), b"again");
    finish(&c);
}
per_protocol!(stop_and_start_again, no_v31);
