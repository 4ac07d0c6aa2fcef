//! Unit tests of the session: ids, the window, resend order, QoS 2, keepalive with
//! injected time, the broker's limits, the output buffer.

use super::*;
use crate::codec::{decode, Ack, ConnAck, Connect, Publish};
use crate::completion::Completion;
use crate::types::SubscribeOptions;

mod persist;

fn connect_pkt(protocol: Protocol, keep_alive: u16) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive,
        client_id: "t".into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
        bridge: false,
    }
}

fn session(protocol: Protocol, max_inflight: u16) -> Session {
    Session::new(
        SessionConfig {
            protocol,
            max_inflight,
            ..Default::default()
        },
        Arc::new(Notify::default()),
    )
}

/// Decodes every packet in `out` and clears it (as if written).
fn drain(s: &mut Session) -> Vec<Packet> {
    let proto = s.cfg.protocol;
    let bytes = s.out[s.out_pos..].to_vec();
    let n = bytes.len();
    s.written(n, Instant::now());
    let mut pkts = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        // CONNECT decodes with the protocol it carries.
        let (p, used) = decode(&bytes[at..], proto, usize::MAX)
            .expect("valid")
            .expect("whole");
        pkts.push(p);
        at += used;
    }
    pkts
}

fn connack(s: &mut Session, props: Properties, now: Instant) {
    s.handle_packet(
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: 0,
            properties: props,
        }),
        now,
    )
    .expect("connack accepted");
}

/// Starts a connection with the session's protocol and `keep_alive`.
fn start(s: &mut Session, keep_alive: u16, now: Instant) {
    let connect = connect_pkt(s.cfg.protocol, keep_alive);
    s.start_connect(&connect, 1, now, now + Duration::from_secs(5))
        .unwrap();
}

fn up(protocol: Protocol, max_inflight: u16) -> (Session, Instant) {
    let now = Instant::now();
    let mut s = session(protocol, max_inflight);
    start(&mut s, 10, now);
    connack(&mut s, Properties::default(), now);
    drain(&mut s);
    s.events.clear();
    (s, now)
}

fn pub_mids(pkts: &[Packet]) -> Vec<(u16, bool)> {
    pkts.iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((p.pkid, p.dup)),
            _ => None,
        })
        .collect()
}

/// CONNACK 0 with session present.
fn connack_resumed(s: &mut Session, now: Instant) {
    s.handle_packet(
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: 0,
            properties: Properties::default(),
        }),
        now,
    )
    .expect("connack accepted");
}

fn ack(pkid: u16) -> Ack {
    Ack {
        pkid,
        reason: ReasonCode::SUCCESS,
        properties: Properties::default(),
    }
}

#[test]
fn written_qos0_messages_queue_one_run_per_batch_across_the_mid_wrap() {
    let (mut s, _) = up(Protocol::V311, 0);
    s.cfg.publish_events = true;
    s.next_mid = 65533;
    for _ in 0..4 {
        s.publish("t", b"x", QoS::AtMostOnce, false, None).unwrap();
    }
    drain(&mut s);
    assert_eq!(s.events.len(), 1, "{:?}", s.events);
    assert!(matches!(
        s.events[0].1,
        Event::PublishedRun {
            first: 65534,
            count: 4
        }
    ));
    // A QoS 1 message in flight keeps its mid: the QoS 0 mids after it skip it, so the
    // run breaks there.
    s.events.clear();
    s.next_mid = 9;
    s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
    s.next_mid = 7;
    for _ in 0..3 {
        s.publish("t", b"x", QoS::AtMostOnce, false, None).unwrap();
    }
    drain(&mut s);
    let runs: Vec<(u16, u32)> = s
        .events
        .iter()
        .map(|(_, e)| e)
        .filter_map(|e| match e {
            Event::PublishedRun { first, count } => Some((*first, *count)),
            _ => None,
        })
        .collect();
    assert_eq!(runs, vec![(8, 2), (11, 1)]);
}

#[test]
fn qos0_infos_complete_in_order_and_fail_only_what_the_connection_lost() {
    let info = |c: &Completion| crate::MessageInfo {
        shared: c.clone(),
        loop_thread: std::sync::Weak::new(),
    };
    let (mut s, now) = up(Protocol::V311, 0);
    let a: Vec<Completion> = (0..4)
        .map(|_| s.publish("t", b"x", QoS::AtMostOnce, false, None).unwrap())
        .collect();
    let one = s.pending_bytes() / 4;
    s.written(one + 1, now); // the first and one byte of the second
    let st: Vec<bool> = a.iter().map(|c| info(c).is_published()).collect();
    assert_eq!(st, vec![true, false, false, false]);
    s.written(one, now); // the second
    s.connection_closed(Ended::Quiet); // the third and fourth are lost
    let rc: Vec<(bool, i32)> = a
        .iter()
        .map(|c| (info(c).is_published(), info(c).rc()))
        .collect();
    let lost = Error::ConnectionLost.code();
    assert_eq!(rc, vec![(true, 0), (true, 0), (false, lost), (false, lost)]);
    assert_eq!(
        info(&a[3]).wait_for_publish(None).unwrap_err().code(),
        lost,
        "a lost message ends its wait at once"
    );
    // A new connection: written messages after a loss are published, and a second loss
    // right after the first merges with it.
    start(&mut s, 10, now);
    connack(&mut s, Properties::default(), now);
    drain(&mut s);
    let b = s.publish("t", b"x", QoS::AtMostOnce, false, None).unwrap();
    drain(&mut s);
    let c = s.publish("t", b"x", QoS::AtMostOnce, false, None).unwrap();
    s.connection_closed(Ended::Quiet);
    assert!(info(&b).is_published());
    assert_eq!(info(&c).rc(), lost);
    assert!(info(&a[1]).is_published() && info(&a[2]).rc() == lost);
    assert_eq!(
        info(&b).wait_for_publish(Some(Duration::ZERO)).ok(),
        Some(())
    );
}

#[test]
fn output_that_never_drains_completely_stays_bounded_and_in_order() {
    // A socket that takes a bit less than what is queued each time: without compaction the
    // buffer grows at its end forever although the unwritten part stays small.
    let (mut s, now) = up(Protocol::V311, 0);
    let mut wire = Vec::new();
    let mut max_cap = 0;
    for i in 0..100_000u32 {
        s.publish("t", &i.to_be_bytes(), QoS::AtMostOnce, false, None)
            .unwrap();
        let pending = s.pending_bytes();
        let take = pending.saturating_sub(50);
        wire.extend_from_slice(&s.out[s.out_pos..s.out_pos + take]);
        s.written(take, now);
        max_cap = max_cap.max(s.out.capacity());
    }
    wire.extend_from_slice(&s.out[s.out_pos..]);
    assert!(
        max_cap <= 128 * 1024,
        "output buffer grew to {max_cap} bytes"
    );
    let mut at = 0;
    let mut next = 0u32;
    while at < wire.len() {
        let (p, used) = decode(&wire[at..], Protocol::V311, usize::MAX)
            .expect("valid")
            .expect("whole");
        let Packet::Publish(p) = p else {
            panic!("not a PUBLISH")
        };
        assert_eq!(
            p.payload[..],
            next.to_be_bytes()[..],
            "bytes lost or reordered"
        );
        next += 1;
        at += used;
    }
    assert_eq!(next, 100_000);
}

#[test]
fn mids_start_at_one_are_shared_and_skip_ids_in_flight() {
    let (mut s, _) = up(Protocol::V311, 0);
    let a = s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
    let b = s.publish("t", b"x", QoS::AtMostOnce, false, None).unwrap();
    let c = s
        .subscribe(
            vec![("t".into(), SubscribeOptions::default())],
            Properties::default(),
        )
        .unwrap();
    assert_eq!((a.mid(), b.mid(), c), (1, 2, 3));
    // QoS 0 mid 2 is freed once written; mid 1 (unacked) and 3 (no SUBACK) stay in use.
    drain(&mut s);
    s.next_mid = 65535;
    let d = s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
    assert_eq!(
        d.mid(),
        2,
        "wraps to 1 (in flight, skipped), then 2 (free again)"
    );
    let e = s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
    assert_eq!(e.mid(), 4, "3 waits for its SUBACK");
}

#[test]
fn window_limits_inflight_and_keeps_order() {
    let (mut s, now) = up(Protocol::V311, 2);
    for _ in 0..5 {
        s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
    }
    assert_eq!(pub_mids(&drain(&mut s)), vec![(1, false), (2, false)]);
    s.handle_packet(Packet::PubAck(ack(1)), now).unwrap();
    assert_eq!(pub_mids(&drain(&mut s)), vec![(3, false)]);
    s.handle_packet(Packet::PubAck(ack(3)), now).unwrap();
    s.handle_packet(Packet::PubAck(ack(2)), now).unwrap();
    assert_eq!(pub_mids(&drain(&mut s)), vec![(4, false), (5, false)]);
    let published: Vec<u16> = s
        .events
        .iter()
        .map(|(_, e)| e)
        .filter_map(|e| match e {
            Event::Published { mid, .. } => Some(*mid),
            _ => None,
        })
        .collect();
    assert_eq!(published, vec![1, 3, 2]);
}

#[test]
fn reconnect_resends_with_dup_in_order_and_pubrel_within_window() {
    let (mut s, now) = up(Protocol::V311, 3);
    for q in [
        QoS::ExactlyOnce,
        QoS::AtLeastOnce,
        QoS::AtLeastOnce,
        QoS::AtLeastOnce,
        QoS::AtLeastOnce,
    ] {
        s.publish("t", b"x", q, false, None).unwrap();
    }
    drain(&mut s);
    // mid 1 (QoS 2) gets PUBREC: PUBREL sent.
    s.handle_packet(Packet::PubRec(ack(1)), now).unwrap();
    assert!(matches!(drain(&mut s)[..], [Packet::PubRel(ref a)] if a.pkid == 1));
    s.connection_closed(Ended::Quiet);
    start(&mut s, 10, now);
    drain(&mut s);
    connack(&mut s, Properties::default(), now);
    let pkts = drain(&mut s);
    // Window 3: PUBREL 1, then PUBLISH 2 and 3 with DUP; 4 and 5 wait.
    assert!(
        matches!(pkts[0], Packet::PubRel(ref a) if a.pkid == 1),
        "{pkts:?}"
    );
    assert_eq!(pub_mids(&pkts), vec![(2, true), (3, true)]);
    s.handle_packet(Packet::PubComp(ack(1)), now).unwrap();
    // 4 was never sent: no DUP.
    assert_eq!(pub_mids(&drain(&mut s)), vec![(4, false)]);
}

#[test]
fn inbound_qos2_is_delivered_once_at_pubrel() {
    let (mut s, now) = up(Protocol::V311, 0);
    let p = Publish {
        dup: false,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: "a".into(),
        pkid: 7,
        properties: Properties::default(),
        payload: b"p".to_vec(),
    };
    s.handle_packet(Packet::Publish(p.clone()), now).unwrap();
    s.handle_packet(Packet::Publish(Publish { dup: true, ..p }), now)
        .unwrap();
    assert!(s.events.is_empty(), "nothing delivered before PUBREL");
    let pkts = drain(&mut s);
    assert_eq!(pkts.len(), 2);
    assert!(pkts
        .iter()
        .all(|p| matches!(p, Packet::PubRec(a) if a.pkid == 7)));
    s.handle_packet(Packet::PubRel(ack(7)), now).unwrap();
    s.handle_packet(Packet::PubRel(ack(7)), now).unwrap();
    let delivered = s
        .events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| matches!(e, Event::Message { .. }))
        .count();
    assert_eq!(delivered, 1);
    // No PUBCOMP before the callback has run, not even for the repeated PUBREL: the broker
    // would end the flow while the message could still be lost (disconnect() before it is
    // dispatched). One PUBCOMP after the callback; a later PUBREL is answered at once.
    assert!(drain(&mut s).is_empty());
    s.delivered(1, 7, QoS::ExactlyOnce, false);
    assert!(matches!(drain(&mut s)[..], [Packet::PubComp(ref a)] if a.pkid == 7));
    s.handle_packet(Packet::PubRel(ack(7)), now).unwrap();
    assert!(matches!(drain(&mut s)[..], [Packet::PubComp(ref a)] if a.pkid == 7));
}

#[test]
fn inbound_qos2_not_dispatched_waits_for_the_next_pubrel() {
    let (mut s, now) = up(Protocol::V311, 0);
    let p = Publish {
        dup: false,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: "a".into(),
        pkid: 3,
        properties: Properties::default(),
        payload: b"p".to_vec(),
    };
    s.handle_packet(Packet::Publish(p), now).unwrap();
    s.handle_packet(Packet::PubRel(ack(3)), now).unwrap();
    drain(&mut s);
    let msg = match s.take_events().pop_front() {
        Some((_, Event::Message { msg, .. })) => msg,
        other => panic!("expected the message, got {other:?}"),
    };
    // The application never saw it (disconnect()): back to waiting for PUBREL.
    s.undelivered_qos2(3, msg);
    s.connection_closed(Ended::Quiet);
    let resume = Connect {
        clean_start: false,
        ..connect_pkt(Protocol::V311, 10)
    };
    s.start_connect(&resume, 2, now, now + Duration::from_secs(5))
        .unwrap();
    connack_resumed(&mut s, now);
    drain(&mut s);
    s.take_events();
    s.handle_packet(Packet::PubRel(ack(3)), now).unwrap();
    assert!(drain(&mut s).is_empty(), "no PUBCOMP before delivery");
    let events = s.take_events();
    assert!(
        matches!(events.front(), Some((_, Event::Message { msg, .. })) if msg.payload == b"p"),
        "{events:?}"
    );
}

#[test]
fn keepalive_pings_then_times_out() {
    let (mut s, t0) = up(Protocol::V311, 0);
    assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(10)));
    s.handle_timeout(t0 + Duration::from_secs(9)).unwrap();
    assert!(drain(&mut s).is_empty());
    s.handle_timeout(t0 + Duration::from_secs(10)).unwrap();
    assert!(matches!(drain(&mut s)[..], [Packet::PingReq]));
    assert!(s.handle_timeout(t0 + Duration::from_secs(19)).is_ok());
    assert!(matches!(
        s.handle_timeout(t0 + Duration::from_secs(20)),
        Err(Close::Keepalive)
    ));
}

#[test]
fn connack_limits_refuse_or_end_queued_messages() {
    let now = Instant::now();
    let mut s = session(Protocol::V5, 0);
    let too_big = s
        .publish("t", &[0u8; 100], QoS::AtLeastOnce, false, None)
        .unwrap();
    let qos2 = s.publish("t", b"x", QoS::ExactlyOnce, false, None).unwrap();
    let retained = s.publish("t", b"x", QoS::AtLeastOnce, true, None).unwrap();
    let ok = s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
    start(&mut s, 0, now);
    drain(&mut s);
    connack(
        &mut s,
        Properties {
            maximum_packet_size: Some(50),
            maximum_qos: Some(1),
            retain_available: Some(0),
            receive_maximum: Some(1),
            ..Default::default()
        },
        now,
    );
    let ended: Vec<(u16, u8)> = s
        .events
        .iter()
        .map(|(_, e)| e)
        .filter_map(|e| match e {
            Event::Published { mid, rc, .. } => Some((*mid, rc.0)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ended,
        vec![
            (too_big.mid(), 0x95),
            (qos2.mid(), 0x9B),
            (retained.mid(), 0x9A)
        ]
    );
    assert_eq!(pub_mids(&drain(&mut s)), vec![(ok.mid(), false)]);
    // While connected the same publishes are refused up front.
    assert!(matches!(
        s.publish("t", b"x", QoS::ExactlyOnce, false, None),
        Err(Error::NotSupported(_))
    ));
    assert!(matches!(
        s.publish("t", &[0u8; 100], QoS::AtMostOnce, false, None),
        Err(Error::PayloadSize(_))
    ));
    assert!(s.out.is_empty(), "a refused call sends nothing");
}

#[test]
fn offline_qos0_and_subscribe_are_refused() {
    let mut s = session(Protocol::V311, 0);
    assert!(matches!(
        s.publish("t", b"x", QoS::AtMostOnce, false, None),
        Err(Error::NoConnection)
    ));
    assert!(matches!(
        s.subscribe(
            vec![("t".into(), SubscribeOptions::default())],
            Properties::default()
        ),
        Err(Error::NoConnection)
    ));
    s.cfg.max_queued = 1;
    s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
    assert!(matches!(
        s.publish("t", b"x", QoS::AtLeastOnce, false, None),
        Err(Error::QueueSize)
    ));
}

// ----------------------------------------------------------------------- enhanced auth

fn auth_in(reason: ReasonCode, method: Option<&str>) -> Packet {
    Packet::Auth(codec::Auth {
        reason,
        properties: Properties {
            authentication_method: method.map(Into::into),
            authentication_data: Some(b"d".to_vec()),
            ..Properties::default()
        },
    })
}

/// A v5 session whose connection `id` used method "M" and reached CONNACK.
fn auth_up(id: u64, s: &mut Session, now: Instant) {
    let mut c = connect_pkt(Protocol::V5, 10);
    c.properties.authentication_method = Some("M".into());
    s.start_connect(&c, id, now, now + Duration::from_secs(5))
        .unwrap();
    connack(s, Properties::default(), now);
    drain(s);
    s.events.clear();
}

#[test]
fn reauthentication_state_ends_with_success_and_with_the_connection() {
    let now = Instant::now();
    let mut s = session(Protocol::V5, 0);
    auth_up(1, &mut s, now);
    s.auth(ReasonCode::RE_AUTHENTICATE, Properties::default())
        .unwrap();
    let sent = drain(&mut s);
    assert!(matches!(&sent[..], [Packet::Auth(a)]
        if a.reason == ReasonCode::RE_AUTHENTICATE
            && a.properties.authentication_method.as_deref() == Some("M")));
    s.handle_packet(auth_in(ReasonCode::CONTINUE_AUTHENTICATION, Some("M")), now)
        .unwrap();
    assert!(s.auth_continue(1, b"r".to_vec()).unwrap());
    // An answer for another connection is dropped.
    assert!(!s.auth_continue(7, b"r".to_vec()).unwrap());
    assert_eq!(drain(&mut s).len(), 1);
    s.handle_packet(auth_in(ReasonCode::SUCCESS, Some("M")), now)
        .unwrap();
    let evs: Vec<_> = s.take_events().into_iter().map(|(_, e)| e).collect();
    assert!(matches!(
        &evs[..],
        [
            Event::Auth {
                rc: ReasonCode::CONTINUE_AUTHENTICATION,
                ..
            },
            Event::Auth {
                rc: ReasonCode::SUCCESS,
                ..
            }
        ]
    ));
    // Over: another AUTH is a protocol error with DISCONNECT 0x82.
    let r = s.handle_packet(auth_in(ReasonCode::CONTINUE_AUTHENTICATION, Some("M")), now);
    assert!(matches!(
        r,
        Err(Close::Protocol(ReasonCode::PROTOCOL_ERROR, _))
    ));
    assert!(
        matches!(&drain(&mut s)[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::PROTOCOL_ERROR)
    );
    s.connection_closed(Ended::Lost(Error::ConnectionLost));
    // A re-authentication cut by a lost connection does not outlive it.
    auth_up(2, &mut s, now);
    s.auth(ReasonCode::RE_AUTHENTICATE, Properties::default())
        .unwrap();
    s.connection_closed(Ended::Lost(Error::ConnectionLost));
    auth_up(3, &mut s, now);
    s.auth(ReasonCode::RE_AUTHENTICATE, Properties::default())
        .unwrap();
}
