//! Beyond Paho: monitoring (queued_messages, inflight_messages, pending_bytes, stats) and opt-in resubscription.

#[macro_use]
mod support;

use mqtt_sync::{Protocol, QoS};
use support::broker_client::{client, finish, started, sub, Probe};
use support::{wait_until, Mosquitto, T};

/// Offline QoS 1/2 publishes count as queued (none in flight, nothing for the socket); after
/// the connect they are sent, acknowledged, and counted in `stats`.
#[test]
fn queued_inflight_and_pending_follow_the_messages() {
    let b = Mosquitto::start();
    let c = client(Protocol::V311, "intro-queue");
    let p = Probe::attach(&c);
    for i in 0..3 {
        c.publish("intro/q", format!("m{i}"), QoS::AtLeastOnce, false)
            .unwrap();
    }
    assert_eq!(c.queued_messages(), 3);
    assert_eq!(c.inflight_messages(), 0);
    assert_eq!(c.pending_bytes(), 0);
    assert_eq!(c.stats().messages_sent, [0, 0, 0]);
    c.connect(b.host(), b.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    for _ in 0..3 {
        p.pubs.wait(T);
    }
    wait_until(T, || c.queued_messages() == 0 && c.inflight_messages() == 0);
    assert_eq!(c.pending_bytes(), 0);
    let s = c.stats();
    assert_eq!(s.messages_sent, [0, 3, 0]);
    assert_eq!(s.connections, 1);
    assert_eq!(s.reconnects(), 0);
    assert!(s.bytes_sent > 0 && s.bytes_received > 0, "{s:?}");
    finish(&c);
}

/// Messages sent and received are counted per QoS; a reconnect is counted.
#[test]
fn stats_count_messages_per_qos_and_reconnects() {
    let b = Mosquitto::start();
    let (c, p) = started(&b, Protocol::V5, "intro-stats");
    sub(&c, &p, "intro/s", QoS::ExactlyOnce);
    let mut expect = 0;
    for (qos, n) in [
        (QoS::AtMostOnce, 3),
        (QoS::AtLeastOnce, 2),
        (QoS::ExactlyOnce, 1),
    ] {
        for _ in 0..n {
            c.publish("intro/s", "x", qos, false).unwrap();
            expect += 1;
        }
    }
    for _ in 0..expect {
        p.msg();
    }
    let s = c.stats();
    assert_eq!(s.messages_sent, [3, 2, 1]);
    assert_eq!(s.messages_received, [3, 2, 1]);
    c.reconnect().unwrap();
    p.connected();
    wait_until(T, || c.stats().connections == 2);
    assert_eq!(c.stats().reconnects(), 1);
    finish(&c);
}

/// `resubscribe_set(true)`: after mosquitto restarts without persistence (a CONNACK without a
/// session), the client subscribes again by itself — minus what it unsubscribed — and
/// messages flow again; `on_subscribe` reports the renewal. Off (the default), nothing is
/// renewed.
fn resubscribe_after_a_broker_restart(proto: Protocol) {
    for on in [true, false] {
        let mut b = Mosquitto::start();
        let (c, p) = started(&b, proto, &format!("resub-{on}"));
        c.resubscribe_set(on).unwrap();
        sub(&c, &p, "resub/a", QoS::AtLeastOnce);
        sub(&c, &p, "resub/b", QoS::AtLeastOnce);
        c.unsubscribe("resub/b").unwrap();
        b.restart();
        p.connected();
        if on {
            let (_, rcs) = p.subs.wait(T);
            assert_eq!(rcs.len(), 1, "only resub/a is renewed");
        }
        // A second client publishes to both topics.
        let other = client(proto, &format!("resub-pub-{on}"));
        other.connect(b.host(), b.port(), 60).unwrap();
        other.loop_start().unwrap();
        for t in ["resub/b", "resub/a"] {
            other
                .publish(t, t, QoS::AtLeastOnce, false)
                .unwrap()
                .wait_for_publish(Some(T))
                .unwrap();
        }
        if on {
            let m = p.msg();
            assert_eq!(m.topic(), "resub/a");
        }
        p.msgs
            .assert_none_within(std::time::Duration::from_millis(300));
        finish(&other);
        finish(&c);
    }
}
per_protocol!(resubscribe_after_a_broker_restart);

/// `message_channel`: messages arrive in order, `recv_timeout` times out on an empty channel,
/// and the iteration ends after `disconnect()`.
#[test]
fn message_channel_receives_and_ends_at_disconnect() {
    let b = Mosquitto::start();
    let (c, p) = started(&b, Protocol::V311, "chan-basic");
    let rx = c.message_channel(100).unwrap();
    assert!(c.message_channel(0).is_err());
    let rx = {
        // A second call replaces and closes the first channel.
        let newer = c.message_channel(100).unwrap();
        assert!(rx.is_closed());
        assert!(rx.recv().is_none());
        newer
    };
    sub(&c, &p, "chan/b", QoS::AtLeastOnce);
    assert!(rx
        .recv_timeout(std::time::Duration::from_millis(50))
        .is_none());
    for i in 0..20 {
        c.publish("chan/b", format!("m{i}"), QoS::AtLeastOnce, false)
            .unwrap();
    }
    let got: Vec<String> = rx
        .iter()
        .take(20)
        .map(|m| m.payload_str().unwrap().to_string())
        .collect();
    assert_eq!(got, (0..20).map(|i| format!("m{i}")).collect::<Vec<_>>());
    // on_message ran too (the channel is beside the callbacks).
    for _ in 0..20 {
        p.msg();
    }
    c.disconnect().unwrap();
    assert!(
        rx.iter().next().is_none(),
        "the iteration ends after disconnect()"
    );
    c.loop_stop().unwrap();
}

/// A full channel stops the loop from reading (at most one read batch goes past the
/// capacity); taking the messages resumes it; nothing is lost or reordered.
#[test]
fn a_full_message_channel_holds_the_loop_back_without_loss() {
    let b = Mosquitto::start();
    let c = client(Protocol::V311, "chan-full");
    let p = Probe::attach(&c);
    let rx = c.message_channel(10).unwrap();
    c.connect(b.host(), b.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    sub(&c, &p, "chan/full", QoS::AtLeastOnce);
    let n = 300;
    let payload = vec![0x42u8; 16 * 1024];
    let other = client(Protocol::V311, "chan-full-pub");
    other.connect(b.host(), b.port(), 60).unwrap();
    other.loop_start().unwrap();
    for i in 0..n {
        let mut m = payload.clone();
        m[..4].copy_from_slice(&(i as u32).to_be_bytes());
        other
            .publish("chan/full", m, QoS::AtLeastOnce, false)
            .unwrap();
    }
    wait_until(T, || rx.len() >= 10);
    // The loop holds back: what waits stays near the capacity (one read batch of at most
    // 1 MiB, 64 of these messages, may go past it).
    let overflow =
        support::wait::poll_until(std::time::Duration::from_millis(300), || rx.len() > 10 + 64);
    assert!(!overflow, "{} messages waiting", rx.len());
    for i in 0..n {
        let m = rx.recv_timeout(T).expect("message");
        assert_eq!(&m.payload()[..4], &(i as u32).to_be_bytes(), "message {i}");
    }
    finish(&other);
    finish(&c);
}
