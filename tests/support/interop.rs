//! Client-level interop scenarios, written once and run against every real broker: mosquitto
//! (`tests/interop_mosquitto.rs`), rumqttd (`tests/interop_rumqttd.rs`) and RabbitMQ
//! (`tests/interop_rabbitmq.rs`, opt-in). Each scenario is a function
//! `fn(&dyn Broker, Protocol)`; a broker file lists the scenarios and protocols it runs
//! (with [`interop_tests!`] for one `#[test]` each). Where a broker differs from the spec or
//! from mosquitto, the scenario asserts what that broker does, as told by its [`Quirks`];
//! docs/interop.md has the table and the reasons.
//!
//! Every scenario makes its own client ids and topics ([`uid`]), so scenarios may share a
//! broker (RabbitMQ: one node for the whole file) and run in parallel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mqtt_sync::{
    CleanStart, Client, ConnectOptions, Properties, Protocol, QoS, ReasonCode, RetainHandling,
    SubscribeOptions,
};

use super::broker_client::{has_session_flag, tag, Probe};
use super::rabbitmq::{RabbitCluster, A};
use super::scripted::{self as s, ScriptedBroker};
use super::{Events, Mosquitto, Rumqttd, T};

const QOS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

/// What a broker does where brokers differ. Each field names the scenario that checks it.
#[derive(Clone, Copy, Debug)]
pub struct Quirks {
    /// `connect`: the protocol versions the broker speaks. Every broker here closes the
    /// connection without a CONNACK on the others.
    pub protocols: &'static [Protocol],
    /// `qos_matrix`: the highest QoS a SUBSCRIBE is granted.
    pub max_granted_qos: QoS,
    /// `qos_matrix`: the QoS a message is delivered with, from its publish QoS and the
    /// granted subscription QoS (MQTT: the minimum of both).
    pub delivered_qos: fn(QoS, QoS) -> QoS,
    /// `v5_subscription_options`: whether No Local and Retain Handling are honoured.
    pub subscription_options: bool,
    /// `v5_limits`: whether the broker announces its packet size limit in CONNACK (so the
    /// client refuses an oversize publish) or only drops the connection when it gets one.
    pub announces_maximum_packet_size: bool,
}

/// MQTT's rule: a message is delivered at min(publish QoS, granted QoS).
pub fn min_qos(publish: QoS, granted: QoS) -> QoS {
    publish.min(granted)
}

/// rumqttd 0.20's rule: the subscription's QoS, whatever the publish QoS.
pub fn subscription_qos(_publish: QoS, granted: QoS) -> QoS {
    granted
}

/// A broker under test.
pub trait Broker {
    /// "mosquitto", "rumqttd", "RabbitMQ".
    fn name(&self) -> &'static str;
    fn host(&self) -> &str {
        "127.0.0.1"
    }
    /// The port of the listener for `proto`.
    fn port(&self, proto: Protocol) -> u16;
    /// Username and password for every client, if the broker needs them.
    fn credentials(&self) -> Option<(&'static str, &'static str)> {
        None
    }
    fn quirks(&self) -> Quirks;
    /// A new broker of the same kind whose packet size limit is `bytes` (`v5_limits`).
    fn with_max_packet_size(&self, bytes: u32) -> Box<dyn Broker>;
    /// The broker's log, for assertion messages.
    fn log(&self) -> String {
        String::new()
    }
}

// --- the brokers ------------------------------------------------------------------------------

pub struct MosquittoBroker(pub Mosquitto);

impl Broker for MosquittoBroker {
    fn name(&self) -> &'static str {
        "mosquitto"
    }
    fn port(&self, _proto: Protocol) -> u16 {
        self.0.port()
    }
    fn quirks(&self) -> Quirks {
        Quirks {
            protocols: &[Protocol::V31, Protocol::V311, Protocol::V5],
            max_granted_qos: QoS::ExactlyOnce,
            delivered_qos: min_qos,
            subscription_options: true,
            announces_maximum_packet_size: true,
        }
    }
    fn with_max_packet_size(&self, bytes: u32) -> Box<dyn Broker> {
        let m = Mosquitto::builder()
            .config(&format!("max_packet_size {bytes}"))
            .start();
        Box::new(MosquittoBroker(m))
    }
    fn log(&self) -> String {
        self.0.log()
    }
}

/// A mosquitto with the default test config.
pub fn mosquitto() -> Box<dyn Broker> {
    Box::new(MosquittoBroker(Mosquitto::start()))
}

pub struct RumqttdBroker(pub Rumqttd);

impl Broker for RumqttdBroker {
    fn name(&self) -> &'static str {
        "rumqttd"
    }
    fn port(&self, proto: Protocol) -> u16 {
        self.0.port(proto)
    }
    fn quirks(&self) -> Quirks {
        Quirks {
            protocols: &[Protocol::V311, Protocol::V5],
            max_granted_qos: QoS::ExactlyOnce,
            delivered_qos: subscription_qos,
            subscription_options: false,
            announces_maximum_packet_size: false,
        }
    }
    fn with_max_packet_size(&self, bytes: u32) -> Box<dyn Broker> {
        // rumqttd's max_payload_size bounds an incoming packet's remaining length.
        let r = Rumqttd::builder().max_payload_size(bytes as usize).start();
        Box::new(RumqttdBroker(r))
    }
    fn log(&self) -> String {
        self.0.log()
    }
}

/// A rumqttd with a v4 (3.1.1) and a v5 listener.
pub fn rumqttd() -> Box<dyn Broker> {
    Box::new(RumqttdBroker(Rumqttd::start()))
}

/// Node [`A`] of a (one-node) RabbitMQ cluster; the cluster is owned by the test.
pub struct RabbitBroker {
    pub port: u16,
}

impl RabbitBroker {
    pub fn new(cluster: &RabbitCluster) -> RabbitBroker {
        RabbitBroker {
            port: cluster.mqtt_port(A),
        }
    }
}

impl Broker for RabbitBroker {
    fn name(&self) -> &'static str {
        "RabbitMQ"
    }
    fn port(&self, _proto: Protocol) -> u16 {
        self.port
    }
    fn credentials(&self) -> Option<(&'static str, &'static str)> {
        Some(("guest", "guest"))
    }
    fn quirks(&self) -> Quirks {
        Quirks {
            protocols: &[Protocol::V31, Protocol::V311],
            max_granted_qos: QoS::AtLeastOnce,
            delivered_qos: min_qos,
            subscription_options: false,
            announces_maximum_packet_size: false,
        }
    }
    fn with_max_packet_size(&self, _bytes: u32) -> Box<dyn Broker> {
        panic!("RabbitMQ 3.10 has no MQTT 5: v5_limits does not apply")
    }
}

// --- helpers ----------------------------------------------------------------------------------

/// A client id (at most 23 characters, for MQTT 3.1) unique in this process, which also
/// names the scenario's topics: `it/<id>/...`.
pub fn uid(kind: &str, proto: Protocol) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let id = format!(
        "{kind}{}-{}-{}",
        tag(proto),
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    );
    assert!(id.len() <= 23, "client id {id} too long for MQTT 3.1");
    id
}

/// A built client for `b` (credentials set, fast reconnects), not connected.
pub fn new_client(b: &dyn Broker, proto: Protocol, id: &str, clean_session: bool) -> Client {
    let mut builder = Client::builder().client_id(id).protocol(proto);
    if !proto.is_v5() {
        builder = builder.clean_session(clean_session);
    }
    let c = builder.build().expect("build client");
    c.reconnect_delay_set(Duration::from_millis(50), Duration::from_millis(500))
        .unwrap();
    if let Some((u, p)) = b.credentials() {
        c.username_pw_set(u, Some(p)).unwrap();
    }
    super::broker_client::trace_if_asked(&c, id);
    c
}

/// A connected client with its probe (loop_start).
#[track_caller]
pub fn started(b: &dyn Broker, proto: Protocol, id: &str) -> (Client, Probe) {
    let c = new_client(b, proto, id, true);
    let p = Probe::attach(&c);
    c.connect(b.host(), b.port(proto), 60).expect("connect");
    c.loop_start().expect("loop_start");
    let (_, rc, _) = p.conn.wait(T);
    assert_eq!(rc, ReasonCode::SUCCESS, "{}: connection refused", b.name());
    (c, p)
}

/// Subscribes, waits for the SUBACK and returns the granted QoS (a failure code panics).
#[track_caller]
pub fn subscribe(c: &Client, p: &Probe, filter: &str, qos: QoS) -> QoS {
    let mid = c.subscribe(filter, qos).expect("subscribe");
    let rcs = p.suback(mid);
    assert_eq!(rcs.len(), 1, "SUBACK for {filter}: {rcs:?}");
    QoS::try_from(rcs[0].value())
        .unwrap_or_else(|_| panic!("SUBACK for {filter} refused it: {}", rcs[0]))
}

/// Publishes and waits until the flow is complete (on_publish).
#[track_caller]
pub fn publish_done(c: &Client, topic: &str, payload: &str, qos: QoS, retain: bool) {
    c.publish(topic, payload, qos, retain)
        .unwrap_or_else(|e| panic!("publish to {topic}: {e}"))
        .wait_for_publish(Some(T))
        .unwrap_or_else(|e| panic!("publish to {topic} not completed: {e}"));
}

/// Publishes a marker from `c` to `topic` and asserts that the next message `p` gets is
/// that marker: nothing else (retained, will, own message) came before it. The broker
/// handles one connection's packets in order, and the marker's publisher subscribed or
/// acted first, so waiting for the marker replaces waiting for an absence.
#[track_caller]
pub fn next_is_marker(c: &Client, p: &Probe, topic: &str, what: &str) {
    publish_done(c, topic, "marker", QoS::AtLeastOnce, false);
    let m = p.msg();
    assert_eq!(
        (m.topic(), m.payload()),
        (topic, &b"marker"[..]),
        "{what}: a message came before the marker"
    );
}

/// Disconnects cleanly and waits for on_disconnect, then stops the loop.
#[track_caller]
pub fn finish(c: &Client, p: &Probe) {
    c.disconnect().expect("disconnect");
    p.disconnected_cleanly();
    c.loop_stop().expect("loop_stop");
}

// --- scenarios --------------------------------------------------------------------------------

/// Connect with `proto`: a broker that speaks it answers CONNACK success (no session
/// present for a new id) and a clean disconnect follows; one that does not closes the
/// connection without CONNACK, and the client reports on_connect_fail (not on_connect).
pub fn connect(b: &dyn Broker, proto: Protocol) {
    let q = b.quirks();
    let id = uid("cn", proto);
    let c = new_client(b, proto, &id, true);
    let p = Probe::attach(&c);
    let fails: Events<String> = Events::new();
    let tx = fails.sender();
    c.on_connect_fail(move |_, e| {
        let _ = tx.send(e.to_string());
    });
    if q.protocols.contains(&proto) {
        c.connect(b.host(), b.port(proto), 60).unwrap();
        c.loop_start().unwrap();
        let (flags, rc, _) = p.conn.wait(T);
        assert_eq!(rc, ReasonCode::SUCCESS, "{} {proto:?}", b.name());
        assert!(!flags.session_present);
        assert!(c.is_connected());
        finish(&c, &p);
        return;
    }
    c.reconnect_delay_set(Duration::from_secs(30), Duration::from_secs(30))
        .unwrap();
    // connect() returns once CONNECT is written (or fails at once if the broker closed).
    let _ = c.connect(b.host(), b.port(proto), 60);
    c.loop_start().unwrap();
    let why = fails.wait(T);
    assert!(
        p.conn.try_recv().is_none(),
        "{}: {proto:?} has no CONNACK, on_connect must not run",
        b.name()
    );
    eprintln!("{} refuses {proto:?} without CONNACK: {why}", b.name());
    assert!(!c.is_connected());
    let _ = c.disconnect();
    c.loop_stop().unwrap();
}

/// QoS both ways: the subscriber subscribes at 0, 1 and 2 (granted up to the broker's
/// maximum), the publisher publishes at 0, 1 and 2 to each filter, one message at a time;
/// every message arrives once, with the topic, payload and the QoS of the broker's rule,
/// retain 0; on_publish and wait_for_publish complete for each publish.
pub fn qos_matrix(b: &dyn Broker, proto: Protocol) {
    let q = b.quirks();
    let id = uid("qm", proto);
    let (sc, sp) = started(b, proto, &format!("{id}s"));
    let (pc, pp) = started(b, proto, &format!("{id}p"));
    let mut granted = Vec::new();
    for s in QOS {
        let g = subscribe(&sc, &sp, &format!("it/{id}/s{}", s as u8), s);
        assert_eq!(g, s.min(q.max_granted_qos), "{}: granted QoS", b.name());
        granted.push(g);
    }
    for (s, g) in QOS.into_iter().zip(granted) {
        for pq in QOS {
            let topic = format!("it/{id}/s{}", s as u8);
            let payload = format!("p{} s{}", pq as u8, s as u8);
            let info = pc.publish(&topic, &payload, pq, false).unwrap();
            info.wait_for_publish(Some(T))
                .unwrap_or_else(|e| panic!("{}: publish at {pq:?}: {e}", b.name()));
            let (_, rc) = pp.pubs.wait_for(T, |(mid, _)| *mid == info.mid());
            assert!(!rc.is_failure(), "{}: on_publish {rc}", b.name());
            let m = sp.msg();
            assert_eq!(m.topic(), topic);
            assert_eq!(m.payload(), payload.as_bytes());
            assert_eq!(
                m.qos(),
                (q.delivered_qos)(pq, g),
                "{}: delivered QoS of a QoS {} publish to a QoS {} subscription",
                b.name(),
                pq as u8,
                g as u8
            );
            assert!(!m.retain());
        }
    }
    next_is_marker(&pc, &sp, &format!("it/{id}/s1"), "no duplicates");
    finish(&pc, &pp);
    finish(&sc, &sp);
}

/// Retained: a new subscriber gets the retained message with retain 1; an empty retained
/// payload clears it, and a later subscriber gets nothing.
pub fn retained(b: &dyn Broker, proto: Protocol) {
    let id = uid("rt", proto);
    let topic = format!("it/{id}/r");
    let (pc, pp) = started(b, proto, &format!("{id}p"));
    publish_done(&pc, &topic, "kept", QoS::AtLeastOnce, true);

    let (s1, p1) = started(b, proto, &format!("{id}a"));
    subscribe(&s1, &p1, &topic, QoS::AtLeastOnce);
    let m = p1.msg();
    assert_eq!((m.topic(), m.payload()), (topic.as_str(), &b"kept"[..]));
    assert!(m.retain(), "{}: a stored message has retain 1", b.name());
    finish(&s1, &p1);

    publish_done(&pc, &topic, "", QoS::AtLeastOnce, true);
    let (s2, p2) = started(b, proto, &format!("{id}b"));
    subscribe(&s2, &p2, &topic, QoS::AtLeastOnce);
    next_is_marker(&pc, &p2, &topic, "cleared retained message");
    finish(&s2, &p2);
    finish(&pc, &pp);
}

/// Will: sent (QoS 1, payload intact) when the client's connection ends without DISCONNECT
/// (the last handle dropped); not sent after a clean disconnect().
pub fn will(b: &dyn Broker, proto: Protocol) {
    let id = uid("wl", proto);
    let topic = format!("it/{id}/will");
    let (sc, sp) = started(b, proto, &format!("{id}s"));
    subscribe(&sc, &sp, &topic, QoS::AtLeastOnce);

    let w = new_client(b, proto, &format!("{id}w"), true);
    w.will_set(&topic, "gone", QoS::AtLeastOnce, false).unwrap();
    let wp = Probe::attach(&w);
    w.connect(b.host(), b.port(proto), 60).unwrap();
    w.loop_start().unwrap();
    wp.connected();
    drop(w); // no DISCONNECT: as a crashed process
    let m = sp.msg();
    assert_eq!((m.topic(), m.payload()), (topic.as_str(), &b"gone"[..]));
    assert_eq!(m.qos(), QoS::AtLeastOnce);

    let w = new_client(b, proto, &format!("{id}c"), true);
    w.will_set(&topic, "unexpected will", QoS::AtLeastOnce, false)
        .unwrap();
    let wp = Probe::attach(&w);
    w.connect(b.host(), b.port(proto), 60).unwrap();
    w.loop_start().unwrap();
    wp.connected();
    finish(&w, &wp);
    drop(w);
    next_is_marker(&sc, &sp, &topic, "no will after disconnect()");
    finish(&sc, &sp);
}

/// Persistent session: subscribe at QoS 1 with a persistent session, disconnect, three
/// QoS 1 messages are published meanwhile; the same client object reconnects, the broker
/// reports session present, and the three arrive (at least once) without a new subscribe.
pub fn session_resume(b: &dyn Broker, proto: Protocol) {
    let id = uid("ss", proto);
    let topic = format!("it/{id}/offline");
    let c = new_client(b, proto, &format!("{id}s"), false);
    let mut opts = ConnectOptions {
        port: b.port(proto),
        ..ConnectOptions::new(b.host())
    };
    if proto.is_v5() {
        opts.clean_start = CleanStart::Never;
        opts.properties = Some(Properties {
            session_expiry_interval: Some(600),
            ..Default::default()
        });
    }
    let p = Probe::attach(&c);
    c.connect_with(opts.clone()).unwrap();
    c.loop_start().unwrap();
    let (flags, rc, _) = p.conn.wait(T);
    assert_eq!(rc, ReasonCode::SUCCESS);
    assert!(!flags.session_present, "a new id has no session");
    subscribe(&c, &p, &topic, QoS::AtLeastOnce);
    finish(&c, &p);

    let (pc, pp) = started(b, proto, &format!("{id}p"));
    for i in 0..3 {
        publish_done(&pc, &topic, &format!("off{i}"), QoS::AtLeastOnce, false);
    }

    c.connect_with(opts).unwrap();
    c.loop_start().unwrap();
    let (flags, rc, _) = p.conn.wait(T);
    assert_eq!(rc, ReasonCode::SUCCESS);
    // MQTT 3.1's CONNACK has no session-present flag (the session is resumed all the same).
    if has_session_flag(proto) {
        assert!(flags.session_present, "{}: session resumed", b.name());
    }
    let mut seen = [false; 3];
    while !seen.iter().all(|s| *s) {
        let m = p.msg();
        assert_eq!(m.topic(), topic);
        let i = m
            .payload_str()
            .and_then(|s| s.strip_prefix("off"))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|i| *i < 3)
            .unwrap_or_else(|| panic!("unexpected payload {:?}", m.payload()));
        seen[i] = true;
    }
    finish(&c, &p);
    finish(&pc, &pp);
}

/// MQTT 5 PUBLISH properties reach the subscriber intact.
pub fn v5_properties(b: &dyn Broker, proto: Protocol) {
    assert!(proto.is_v5());
    let id = uid("pr", proto);
    let topic = format!("it/{id}/props");
    let (sc, sp) = started(b, proto, &format!("{id}s"));
    subscribe(&sc, &sp, &topic, QoS::AtLeastOnce);
    let (pc, pp) = started(b, proto, &format!("{id}p"));
    let sent = Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(300),
        content_type: Some("text/plain; charset=utf-8".into()),
        response_topic: Some(format!("it/{id}/reply")),
        correlation_data: Some(vec![0, 1, 0xfe, 0xff]),
        user_properties: vec![
            ("a".into(), "1".into()),
            ("b".into(), "2".into()),
            ("a".into(), "3".into()),
        ],
        ..Default::default()
    };
    pc.publish_with_properties(&topic, "héllo", QoS::AtLeastOnce, false, sent.clone())
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();
    let m = sp.msg();
    let got = m.properties();
    assert_eq!(got.payload_format_indicator, Some(1));
    let expiry = got.message_expiry_interval.expect("message expiry kept");
    assert!(
        (295..=300).contains(&expiry),
        "expiry {expiry} (300 less the time stored)"
    );
    assert_eq!(got.content_type, sent.content_type);
    assert_eq!(got.response_topic, sent.response_topic);
    assert_eq!(got.correlation_data, sent.correlation_data);
    assert_eq!(
        got.user_properties, sent.user_properties,
        "order and repeats"
    );
    assert_eq!(m.payload_str(), Some("héllo"));
    finish(&pc, &pp);
    finish(&sc, &sp);
}

/// MQTT 5 request/response with the client's own `request` and `respond`.
pub fn v5_request_response(b: &dyn Broker, proto: Protocol) {
    assert!(proto.is_v5());
    let id = uid("rr", proto);
    let service = format!("it/{id}/svc");
    let (rc, rp) = started(b, proto, &format!("{id}r"));
    rc.on_message(|c, m| {
        let mut body = b"echo:".to_vec();
        body.extend_from_slice(m.payload());
        let _ = c.respond(m, body, QoS::AtLeastOnce);
    });
    subscribe(&rc, &rp, &service, QoS::AtLeastOnce);
    let (qc, qp) = started(b, proto, &format!("{id}q"));
    for i in 0..3 {
        let reply = qc
            .request(&service, format!("req{i}"), QoS::AtLeastOnce, T)
            .unwrap_or_else(|e| panic!("{}: request {i}: {e}", b.name()));
        assert_eq!(reply.payload(), format!("echo:req{i}").as_bytes());
    }
    finish(&qc, &qp);
    finish(&rc, &rp);
}

/// MQTT 5 subscription options No Local and Retain Handling 2 (do not send): honoured by a
/// broker whose quirks say so, ignored (own message and retained message delivered) by one
/// that does not.
pub fn v5_subscription_options(b: &dyn Broker, proto: Protocol) {
    assert!(proto.is_v5());
    let honoured = b.quirks().subscription_options;
    let id = uid("so", proto);
    let (c, p) = started(b, proto, &format!("{id}s"));
    let (other, op) = started(b, proto, &format!("{id}o"));

    let own = format!("it/{id}/nolocal");
    let opts = SubscribeOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        ..Default::default()
    };
    let mid = c.subscribe_with_options(&own, opts, None).unwrap();
    assert_eq!(p.suback(mid), vec![ReasonCode::GRANTED_QOS_1]);
    publish_done(&c, &own, "own", QoS::AtLeastOnce, false);
    if honoured {
        next_is_marker(&other, &p, &own, "No Local");
    } else {
        assert_eq!(p.msg().payload(), b"own", "{}: No Local ignored", b.name());
        next_is_marker(&other, &p, &own, "own message once");
    }

    let kept = format!("it/{id}/rh");
    publish_done(&other, &kept, "retained", QoS::AtLeastOnce, true);
    let opts = SubscribeOptions {
        qos: QoS::AtLeastOnce,
        retain_handling: RetainHandling::DoNotSend,
        ..Default::default()
    };
    let mid = c.subscribe_with_options(&kept, opts, None).unwrap();
    assert_eq!(p.suback(mid), vec![ReasonCode::GRANTED_QOS_1]);
    if honoured {
        next_is_marker(&other, &p, &kept, "Retain Handling 2");
    } else {
        let m = p.msg();
        assert_eq!(
            m.payload(),
            b"retained",
            "{}: Retain Handling ignored",
            b.name()
        );
        next_is_marker(&other, &p, &kept, "retained message once");
    }
    publish_done(&other, &kept, "", QoS::AtLeastOnce, true);
    finish(&other, &op);
    finish(&c, &p);
}

/// A broker limited to 1000-byte packets: when it announces Maximum Packet Size the client
/// refuses a 2000-byte publish with an error and stays connected; when it does not, the
/// publish goes out and the broker drops the connection (on_disconnect with a failure, then
/// the client reconnects). Either way a small publish works afterwards.
///
/// The oversize publish is QoS 0: at QoS 1/2 a message that the broker answers by dropping
/// the connection is unacknowledged, so the client sends it again after every reconnect
/// (MQTT-4.4.0-1, as Paho does), and a broker that drops it each time keeps the client in
/// a reconnect loop — nothing a client can avoid without knowing the limit.
pub fn v5_limits(b: &dyn Broker, proto: Protocol) {
    assert!(proto.is_v5());
    let limited = b.with_max_packet_size(1000);
    let b = &*limited;
    let id = uid("lm", proto);
    let topic = format!("it/{id}/big");
    let (c, p) = started(b, proto, &format!("{id}c"));
    subscribe(&c, &p, &topic, QoS::AtLeastOnce);
    let r = c.publish(&topic, vec![0u8; 2000], QoS::AtMostOnce, false);
    if b.quirks().announces_maximum_packet_size {
        assert!(
            r.is_err(),
            "{}: oversize publish refused by the client: {r:?}",
            b.name()
        );
        assert!(c.is_connected());
        assert!(p.disc.try_recv().is_none());
    } else {
        r.unwrap_or_else(|e| panic!("{}: not announced, so sent: {e}", b.name()));
        let (flags, rc) = p.disc.wait(T);
        assert!(rc.is_failure(), "{}: dropped, got {rc}", b.name());
        assert!(
            !flags.is_disconnect_packet_from_server,
            "{}: no DISCONNECT 0x95",
            b.name()
        );
        // No Session Expiry Interval: the session ended with the connection (MQTT 5), so
        // the subscription is made again.
        let flags = p.connected();
        assert!(!flags.session_present, "{}: no session kept", b.name());
        subscribe(&c, &p, &topic, QoS::AtLeastOnce);
    }
    publish_done(&c, &topic, "small", QoS::AtLeastOnce, false);
    let m = p.msg();
    assert_eq!(
        m.payload(),
        b"small",
        "{}: nothing oversize arrived",
        b.name()
    );
    finish(&c, &p);
}

/// MQTT 5 redirect: a (scripted) server answers CONNACK 0x9C Use Another Server with a
/// Server Reference naming this broker; with follow_redirects_set(true) the client's next
/// attempt reaches the broker, and QoS 1 works there.
pub fn v5_redirect(b: &dyn Broker, proto: Protocol) {
    assert!(proto.is_v5());
    const SERVER_REFERENCE: u8 = 0x1C;
    let id = uid("rd", proto);
    let first = ScriptedBroker::bind();
    let c = new_client(b, proto, &format!("{id}c"), true);
    c.follow_redirects_set(true).unwrap();
    let p = Probe::attach(&c);
    c.connect_async("127.0.0.1", first.port(), 60).unwrap();
    c.loop_start().unwrap();
    let mut conn = first.accept(T);
    let _connect = conn.read_packet(T);
    let reference = format!("{}:{}", b.host(), b.port(proto));
    let mut prop = vec![SERVER_REFERENCE];
    prop.extend_from_slice(&super::bytes::mqtt_str(&reference));
    conn.send(&s::connack_v5(false, 0x9C, &prop));
    let (_, rc, props) = p.conn.wait(T);
    assert_eq!(rc, ReasonCode(0x9C));
    assert_eq!(props.server_reference.as_deref(), Some(reference.as_str()));
    // The refused connection ends (on_disconnect with the CONNACK's code), then the next
    // attempt goes to the reference.
    let (_, rc) = p.disc.wait(T);
    assert_eq!(rc, ReasonCode(0x9C));
    let (_, rc, _) = p.conn.wait(T);
    assert_eq!(rc, ReasonCode::SUCCESS, "{}: redirected here", b.name());
    assert_eq!(c.port(), b.port(proto));
    let topic = format!("it/{id}/here");
    subscribe(&c, &p, &topic, QoS::AtLeastOnce);
    publish_done(&c, &topic, "here", QoS::AtLeastOnce, false);
    assert_eq!(p.msg().payload(), b"here");
    finish(&c, &p);
}

/// The protocol named by a module name of [`interop_tests!`].
pub fn protocol(name: &str) -> Protocol {
    match name {
        "v31" => Protocol::V31,
        "v311" => Protocol::V311,
        "v5" => Protocol::V5,
        other => panic!("no protocol {other}"),
    }
}

/// One `#[test]` per scenario and protocol, each with its own broker from `$start`
/// (`fn() -> Box<dyn Broker>`):
///
/// ```ignore
/// interop_tests! { start: support::interop::rumqttd,
///     v311: [connect, qos_matrix],
///     v5: [connect, qos_matrix, v5_properties],
/// }
/// ```
#[allow(unused_macros)]
macro_rules! interop_tests {
    (start: $start:path, $($proto:ident: [$($scenario:ident),* $(,)?]),* $(,)?) => {
        $(
            mod $proto {
                $(
                    #[test]
                    fn $scenario() {
                        let broker = $start();
                        $crate::support::interop::$scenario(
                            &*broker,
                            $crate::support::interop::protocol(stringify!($proto)),
                        );
                    }
                )*
            }
        )*
    };
}
