//! Session tests: persistence (the store's records follow the session's state).

use super::*;

/// A session with a store, connected with clean_start false.
fn up_persistent(store: &crate::persistence::MemoryStore) -> (Session, Instant) {
    let now = Instant::now();
    let mut s = session(Protocol::V311, 10);
    s.set_persistence(Box::new(store.clone())).unwrap();
    let mut c = connect_pkt(Protocol::V311, 10);
    c.clean_start = false;
    s.start_connect(&c, 1, now, now + Duration::from_secs(5))
        .unwrap();
    connack_resumed(&mut s, now);
    (s, now)
}

fn qos2_in(pkid: u16, payload: &[u8]) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: "in/t".into(),
        pkid,
        properties: Properties::default(),
        payload: payload.to_vec(),
    })
}

/// The state a crashed session left in its store comes back in a new one: queued messages
/// are re-sent with DUP in publish order, a QoS 2 message past PUBREC is completed with
/// PUBREL only, an incoming QoS 2 message waits for PUBREL and is delivered once; records go
/// when their flows end.
#[test]
fn a_new_session_resumes_what_the_store_holds() {
    use crate::persistence::{Key, MemoryStore};
    let store = MemoryStore::new();
    let (mut s, now) = up_persistent(&store);
    drain(&mut s);
    for i in 0..4u8 {
        let qos = if i % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        s.publish("out/t", &[i], qos, false, None).unwrap();
    }
    assert_eq!(
        pub_mids(&drain(&mut s)),
        [(1, false), (2, false), (3, false), (4, false)]
    );
    s.handle_packet(Packet::PubAck(ack(1)), now).unwrap();
    s.handle_packet(Packet::PubRec(ack(2)), now).unwrap();
    s.handle_packet(qos2_in(7, b"seven"), now).unwrap();
    drain(&mut s);
    assert_eq!(
        store.keys(),
        [
            Key::Outgoing(2),
            Key::Outgoing(3),
            Key::Outgoing(4),
            Key::Incoming(7)
        ]
    );
    // Published while the connection is down: stored too, sent last.
    s.connection_closed(Ended::Quiet);
    s.publish("out/t", &[9], QoS::AtLeastOnce, false, None)
        .unwrap();
    drop(s); // the crash

    let (mut s, now) = up_persistent(&store);
    let pkts = drain(&mut s);
    assert!(
        matches!(pkts[1], Packet::PubRel(ref a) if a.pkid == 2),
        "{pkts:?}"
    );
    assert_eq!(pub_mids(&pkts), [(3, true), (4, true), (5, true)]);
    let payloads: Vec<u8> = pkts
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p.payload[0]),
            _ => None,
        })
        .collect();
    assert_eq!(payloads, [2, 3, 9]);
    // A new publish takes a free id.
    let m = s
        .publish("out/t", &[10], QoS::AtLeastOnce, false, None)
        .unwrap();
    assert_eq!(m.mid(), 6);
    // The incoming QoS 2 message: a re-sent PUBLISH is a duplicate, PUBREL delivers it once.
    s.events.clear();
    s.handle_packet(qos2_in(7, b"seven"), now).unwrap();
    s.handle_packet(Packet::PubRel(ack(7)), now).unwrap();
    s.handle_packet(Packet::PubRel(ack(7)), now).unwrap();
    let msgs: Vec<&Message> = s
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Message { msg, .. } => Some(&**msg),
            _ => None,
        })
        .collect();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].payload, b"seven");
    s.delivered(1, 7, QoS::ExactlyOnce, false);
    // Every flow ends: the store empties.
    s.handle_packet(Packet::PubComp(ack(2)), now).unwrap();
    s.handle_packet(Packet::PubAck(ack(3)), now).unwrap();
    s.handle_packet(Packet::PubRec(ack(4)), now).unwrap();
    s.handle_packet(Packet::PubComp(ack(4)), now).unwrap();
    s.handle_packet(Packet::PubAck(ack(5)), now).unwrap();
    s.handle_packet(Packet::PubAck(ack(6)), now).unwrap();
    assert!(store.is_empty(), "{:?}", store.keys());
}

/// Without a resumed session the stored incoming QoS 2 messages go (as in memory); stored
/// outgoing messages are still sent.
#[test]
fn no_session_present_drops_stored_incoming_state_only() {
    use crate::persistence::{Key, MemoryStore};
    let store = MemoryStore::new();
    let (mut s, now) = up_persistent(&store);
    s.publish("out/t", b"x", QoS::AtLeastOnce, false, None)
        .unwrap();
    s.handle_packet(qos2_in(7, b"seven"), now).unwrap();
    drop(s);
    let mut s = session(Protocol::V311, 10);
    s.set_persistence(Box::new(store.clone())).unwrap();
    start(&mut s, 10, now);
    connack(&mut s, Properties::default(), now);
    assert_eq!(pub_mids(&drain(&mut s)), [(1, true)]);
    assert_eq!(store.keys(), [Key::Outgoing(1)]);
}

/// A store that fails: publish refuses (queues nothing); an incoming QoS 2 message is not
/// acknowledged and the connection closes with the store's error.
#[test]
fn store_failures_are_errors_never_silent() {
    use crate::persistence::{Key, Persistence};
    struct Failing;
    impl Persistence for Failing {
        fn put(&mut self, _: Key, _: &[u8]) -> std::io::Result<()> {
            Err(std::io::Error::other("disk full"))
        }
        fn remove(&mut self, _: Key) -> std::io::Result<()> {
            Err(std::io::Error::other("disk full"))
        }
        fn load(&mut self) -> std::io::Result<Vec<(Key, Vec<u8>)>> {
            Ok(Vec::new())
        }
    }
    let now = Instant::now();
    let mut s = session(Protocol::V311, 10);
    s.set_persistence(Box::new(Failing)).unwrap();
    start(&mut s, 10, now);
    connack(&mut s, Properties::default(), now);
    drain(&mut s);
    let e = s
        .publish("t", b"x", QoS::AtLeastOnce, false, None)
        .unwrap_err();
    assert!(
        matches!(e, Error::Persistence(ref m) if m.contains("disk full")),
        "{e:?}"
    );
    assert_eq!(s.outgoing_len(), 0);
    assert!(!s.ids_exhausted() && s.in_use_count == 0);
    // QoS 0 does not touch the store.
    s.publish("t", b"x", QoS::AtMostOnce, false, None).unwrap();
    drain(&mut s);
    match s.handle_packet(qos2_in(3, b"x"), now) {
        Err(Close::Store(m)) => assert!(m.contains("disk full")),
        other => panic!("{other:?}"),
    }
    assert!(
        !drain(&mut s).iter().any(|p| matches!(p, Packet::PubRec(_))),
        "no PUBREC for a message not stored"
    );
    let err = s.connection_closed(Ended::Session(Close::Store("disk full".into())));
    assert!(matches!(err, Some(Error::Persistence(_))));
}

/// A store is attached before anything is queued, while offline; a record it cannot
/// decode is an error and leaves the session without a store.
#[test]
fn persistence_set_refusals() {
    use crate::persistence::{Key, MemoryStore, Persistence};
    let (mut s, _) = up(Protocol::V311, 10);
    assert!(matches!(
        s.set_persistence(Box::new(MemoryStore::new())),
        Err(Error::InvalidState(_))
    ));
    let mut s = session(Protocol::V311, 10);
    s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
    assert!(matches!(
        s.set_persistence(Box::new(MemoryStore::new())),
        Err(Error::InvalidState(_))
    ));
    let mut bad = MemoryStore::new();
    bad.put(Key::Outgoing(1), &[1, 4, 1, 0]).unwrap();
    let mut s = session(Protocol::V311, 10);
    assert!(matches!(
        s.set_persistence(Box::new(bad.clone())),
        Err(Error::Persistence(_))
    ));
    assert!(!s.persisting());
    // A store written by a client of another protocol version.
    let store = MemoryStore::new();
    let (mut s5, _) = {
        let now = Instant::now();
        let mut s = session(Protocol::V5, 10);
        s.set_persistence(Box::new(store.clone())).unwrap();
        s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
        (s, now)
    };
    drop(s5.take_events());
    let mut s = session(Protocol::V311, 10);
    let e = s.set_persistence(Box::new(store)).unwrap_err();
    assert!(e.to_string().contains("protocol level 5"), "{e}");
}

/// MQTT 5: an incoming QoS 2 message keeps its properties through the store.
#[test]
fn a_stored_incoming_v5_message_keeps_its_properties() {
    use crate::persistence::MemoryStore;
    let store = MemoryStore::new();
    let now = Instant::now();
    let mut s = session(Protocol::V5, 10);
    s.set_persistence(Box::new(store.clone())).unwrap();
    start(&mut s, 10, now);
    connack(&mut s, Properties::default(), now);
    let props = Properties {
        user_properties: vec![("k".into(), "v".into())],
        subscription_identifiers: vec![7],
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    s.handle_packet(
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::ExactlyOnce,
            retain: true,
            topic: "in/v5".into(),
            pkid: 9,
            properties: props.clone(),
            payload: b"five".to_vec(),
        }),
        now,
    )
    .unwrap();
    drop(s);
    let mut s = session(Protocol::V5, 10);
    s.set_persistence(Box::new(store.clone())).unwrap();
    let mut c = connect_pkt(Protocol::V5, 10);
    c.clean_start = false;
    s.start_connect(&c, 1, now, now + Duration::from_secs(5))
        .unwrap();
    connack_resumed(&mut s, now);
    s.events.clear();
    s.handle_packet(Packet::PubRel(ack(9)), now).unwrap();
    let msg = s
        .events
        .iter()
        .find_map(|(_, e)| match e {
            Event::Message { msg, .. } => Some(msg),
            _ => None,
        })
        .expect("delivered at PUBREL");
    assert_eq!(msg.topic, "in/v5");
    assert_eq!(msg.payload, b"five");
    assert!(msg.retain);
    assert_eq!(msg.properties.as_deref(), Some(&props));
}
