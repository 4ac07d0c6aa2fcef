//! Clients wired to channels for the suites against a real broker (the `mosquitto_*` files):
//! a `Probe` of every callback event, client makers (`client`, `started`, `persistent`,
//! `persistent_started`), subscribe/finish helpers, and `per_protocol!`, which turns
//! `fn name(proto: Protocol)` into one test per protocol version.
#![allow(dead_code)]

use std::time::Duration;

use mqtt_sync::{
    CleanStart, Client, ConnectFlags, ConnectOptions, DisconnectFlags, Message, Properties,
    Protocol, QoS, ReasonCode,
};

use super::{Events, Mosquitto, T};

/// Every event a test may wait for, one channel per kind so waiting for one kind never
/// discards another.
pub struct Probe {
    pub conn: Events<(ConnectFlags, ReasonCode, Properties)>,
    pub disc: Events<(DisconnectFlags, ReasonCode)>,
    pub msgs: Events<Message>,
    pub pubs: Events<(u16, ReasonCode)>,
    pub subs: Events<(u16, Vec<ReasonCode>)>,
}

impl Probe {
    /// Installs on_connect / on_disconnect / on_message / on_publish / on_subscribe on `c`.
    pub fn attach(c: &Client) -> Probe {
        let p = Probe {
            conn: Events::new(),
            disc: Events::new(),
            msgs: Events::new(),
            pubs: Events::new(),
            subs: Events::new(),
        };
        let tx = p.conn.sender();
        c.on_connect(move |_, f, rc, props| {
            let _ = tx.send((f, rc, props.clone()));
        });
        let tx = p.disc.sender();
        c.on_disconnect(move |_, f, rc, _| {
            let _ = tx.send((f, rc));
        });
        let tx = p.msgs.sender();
        c.on_message(move |_, m| {
            let _ = tx.send(m.clone());
        });
        let tx = p.pubs.sender();
        c.on_publish(move |_, mid, rc, _| {
            let _ = tx.send((mid, rc));
        });
        let tx = p.subs.sender();
        c.on_subscribe(move |_, mid, rcs, _| {
            let _ = tx.send((mid, rcs.to_vec()));
        });
        p
    }

    /// Waits for a successful CONNACK; returns its flags.
    #[track_caller]
    pub fn connected(&self) -> ConnectFlags {
        let (f, rc, _) = self.conn.wait(T);
        assert_eq!(rc, ReasonCode::SUCCESS, "connection refused: {rc}");
        f
    }

    /// Waits for `on_disconnect` and asserts it reports a clean end: `SUCCESS`, not from a
    /// broker's DISCONNECT (what `disconnect()` produces).
    #[track_caller]
    pub fn disconnected_cleanly(&self) {
        let (f, rc) = self.disc.wait(T);
        assert_eq!(rc, ReasonCode::SUCCESS, "on_disconnect after disconnect()");
        assert!(
            !f.is_disconnect_packet_from_server,
            "on_disconnect after disconnect() is not from the server"
        );
    }

    /// Waits for the SUBACK of `mid`; returns its reason codes.
    #[track_caller]
    pub fn suback(&self, mid: u16) -> Vec<ReasonCode> {
        self.subs.wait_for(T, |(m, _)| *m == mid).1
    }

    /// The next message.
    #[track_caller]
    pub fn msg(&self) -> Message {
        self.msgs.wait(T)
    }
}

pub fn client(proto: Protocol, id: &str) -> Client {
    let c = Client::builder()
        .client_id(id)
        .protocol(proto)
        .build()
        .expect("build client");
    c.reconnect_delay_set(Duration::from_millis(50), Duration::from_millis(500))
        .unwrap();
    c
}

/// A client with a probe, connected with `loop_start`.
#[track_caller]
pub fn started(broker: &Mosquitto, proto: Protocol, id: &str) -> (Client, Probe) {
    let c = client(proto, id);
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60)
        .expect("connect");
    c.loop_start().expect("loop_start");
    p.connected();
    (c, p)
}

/// A persistent-session client for `proto`: clean_session(false) for MQTT 3.x,
/// CleanStart::Never plus a Session Expiry Interval for MQTT 5. Returns the client and the
/// ConnectOptions to (re)connect with.
pub fn persistent(broker: &Mosquitto, proto: Protocol, id: &str) -> (Client, ConnectOptions) {
    let c = if proto == Protocol::V5 {
        client(proto, id)
    } else {
        let c = Client::builder()
            .client_id(id)
            .protocol(proto)
            .clean_session(false)
            .build()
            .expect("build client");
        c.reconnect_delay_set(Duration::from_millis(50), Duration::from_millis(500))
            .unwrap();
        c
    };
    let mut opts = ConnectOptions {
        port: broker.port(),
        ..ConnectOptions::new(broker.host())
    };
    if proto == Protocol::V5 {
        opts.clean_start = CleanStart::Never;
        opts.properties = Some(Properties {
            session_expiry_interval: Some(600),
            ..Default::default()
        });
    }
    (c, opts)
}

/// A persistent-session client with its probe, connected with loop_start.
#[track_caller]
pub fn persistent_started(broker: &Mosquitto, proto: Protocol, id: &str) -> (Client, Probe) {
    let (c, opts) = persistent(broker, proto, id);
    let p = Probe::attach(&c);
    trace_if_asked(&c, id);
    c.connect_with(opts).unwrap();
    c.loop_start().unwrap();
    p.connected();
    (c, p)
}

/// With `MQTT_TRACE` set, prints the client's log lines (timestamped) on stderr.
pub fn trace_if_asked(c: &Client, id: &str) {
    if std::env::var_os("MQTT_TRACE").is_some() {
        let tag = id.to_string();
        let t0 = std::time::Instant::now();
        c.on_log(move |_c, level, line| {
            eprintln!(
                "[{:>8.3} ms {tag} {level:?}] {line}",
                t0.elapsed().as_secs_f64() * 1e3
            )
        });
    }
}

/// MQTT 3.1's CONNACK has no session-present flag (mosquitto logs "Sending CONNACK to id
/// (0, 0)" for a resumed 3.1 session): the session is still resumed, only the flag is absent.
pub fn has_session_flag(proto: Protocol) -> bool {
    proto != Protocol::V31
}

/// Subscribes and waits for the SUBACK, asserting it granted `qos`.
#[track_caller]
pub fn sub(c: &Client, p: &Probe, filter: &str, qos: QoS) {
    let mid = c.subscribe(filter, qos).expect("subscribe");
    let rcs = p.suback(mid);
    assert_eq!(rcs, vec![ReasonCode(qos as u8)], "SUBACK for {filter}");
}

/// Disconnects cleanly and stops the loop.
pub fn finish(c: &Client) {
    let _ = c.disconnect();
    let _ = c.loop_stop();
}

/// One `#[test]` per protocol version for a fn taking a `Protocol`.
#[allow(unused_macros)]
macro_rules! per_protocol {
    ($name:ident: $($v:ident => $p:expr),+) => {
        mod $name {
            use super::*;
            $( #[test] fn $v() { super::$name($p) } )+
        }
    };
    ($name:ident) => {
        per_protocol!($name: v31 => Protocol::V31, v311 => Protocol::V311, v5 => Protocol::V5);
    };
    ($name:ident, no_v31) => {
        per_protocol!($name: v311 => Protocol::V311, v5 => Protocol::V5);
    };
}

/// A short tag for ids and topics (MQTT 3.1 ids must be at most 23 characters).
pub fn tag(proto: Protocol) -> &'static str {
    match proto {
        Protocol::V31 => "31",
        Protocol::V311 => "311",
        Protocol::V5 => "5",
    }
}
