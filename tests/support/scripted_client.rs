#![allow(dead_code, unused_imports)]
// ---------------------------------------------------------------------------------------
// Helpers shared by the scripted_* and callbacks_safety test files: a recorder of callback
// events, connect/CONNACK helpers, MQTT 5 property encoders, packet builders, log capture.

pub(crate) use std::sync::{Arc, Mutex};
pub(crate) use std::time::{Duration, Instant};

pub(crate) use super::bytes::{assert_bytes_eq, encode_varint, hex, mqtt_bin, mqtt_str};
pub(crate) use super::scripted::{self as s, ScriptedBroker, ScriptedConn};
pub(crate) use super::{Events, T};
pub(crate) use mqtt_sync::{
    CleanStart, Client, ConnectOptions, Error, LogLevel, Properties, Protocol, QoS, ReasonCode,
    RetainHandling, SubscribeOptions,
};

pub(crate) const HOST: &str = "127.0.0.1";
/// How long an absence is checked for.
pub(crate) const QUIET: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Ev {
    Connect {
        rc: u8,
        session_present: bool,
    },
    ConnectFail(String),
    Disconnect {
        rc: u8,
        from_server: bool,
        props: Properties,
    },
    Publish {
        mid: u16,
        rc: u8,
    },
    Subscribe {
        mid: u16,
        rcs: Vec<u8>,
    },
    Unsubscribe {
        mid: u16,
        rcs: Vec<u8>,
    },
    Message {
        topic: String,
        payload: Vec<u8>,
        qos: u8,
        dup: bool,
        retain: bool,
        mid: u16,
    },
}

impl Ev {
    /// The event `on_message` reports for `m`.
    pub(crate) fn message(m: &mqtt_sync::Message) -> Ev {
        Ev::Message {
            topic: m.topic().into(),
            payload: m.payload().into(),
            qos: m.qos() as u8,
            dup: m.dup(),
            retain: m.retain(),
            mid: m.mid(),
        }
    }

    /// The event `on_disconnect` reports.
    pub(crate) fn disconnect(f: mqtt_sync::DisconnectFlags, rc: ReasonCode, p: &Properties) -> Ev {
        Ev::Disconnect {
            rc: rc.value(),
            from_server: f.is_disconnect_packet_from_server,
            props: p.clone(),
        }
    }
}

/// Waits for `on_disconnect` and asserts it reports a clean end: `SUCCESS`, not from a
/// broker's DISCONNECT, no properties (what `disconnect()` produces).
#[track_caller]
pub(crate) fn expect_clean_disconnect(ev: &Events<Ev>) {
    let e = ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    assert_eq!(
        e,
        Ev::Disconnect {
            rc: 0,
            from_server: false,
            props: Properties::default()
        }
    );
}

/// Installs every callback of interest, reporting to one event channel.
pub(crate) fn hook(c: &Client) -> Events<Ev> {
    let ev = Events::new();
    let tx = ev.sender();
    c.on_connect(move |_c, f, rc, _p| {
        let _ = tx.send(Ev::Connect {
            rc: rc.value(),
            session_present: f.session_present,
        });
    });
    let tx = ev.sender();
    c.on_connect_fail(move |_c, e| {
        let _ = tx.send(Ev::ConnectFail(format!("{e:?}")));
    });
    let tx = ev.sender();
    c.on_disconnect(move |_c, f, rc, p| {
        let _ = tx.send(Ev::disconnect(f, rc, p));
    });
    let tx = ev.sender();
    c.on_publish(move |_c, mid, rc, _p| {
        let _ = tx.send(Ev::Publish {
            mid,
            rc: rc.value(),
        });
    });
    let tx = ev.sender();
    c.on_subscribe(move |_c, mid, rcs, _p| {
        let _ = tx.send(Ev::Subscribe {
            mid,
            rcs: rcs.iter().map(|r| r.value()).collect(),
        });
    });
    let tx = ev.sender();
    c.on_unsubscribe(move |_c, mid, rcs, _p| {
        let _ = tx.send(Ev::Unsubscribe {
            mid,
            rcs: rcs.iter().map(|r| r.value()).collect(),
        });
    });
    let tx = ev.sender();
    c.on_message(move |_c, m| {
        let _ = tx.send(Ev::message(m));
    });
    ev
}

pub(crate) fn v311(id: &str) -> Client {
    Client::new(id)
}

pub(crate) fn v5(id: &str) -> Client {
    Client::builder()
        .client_id(id)
        .protocol(Protocol::V5)
        .build()
        .unwrap()
}

pub(crate) fn fast_reconnect(c: &Client) {
    c.reconnect_delay_set(Duration::from_millis(50), Duration::from_millis(200))
        .unwrap();
}

/// The next on_connect event.
#[track_caller]
pub(crate) fn wait_connect(ev: &Events<Ev>) -> Ev {
    ev.wait_for(T, |e| matches!(e, Ev::Connect { .. }))
}

/// Accepts a connection, reads CONNECT (returned), answers `connack`, waits for on_connect.
#[track_caller]
pub(crate) fn accept_connack(
    broker: &ScriptedBroker,
    ev: &Events<Ev>,
    connack: &[u8],
) -> (ScriptedConn, Vec<u8>) {
    let mut conn = broker.accept(T);
    let connect = conn.read_packet(T);
    assert_eq!(
        connect[0],
        0x10,
        "expected CONNECT, got [{}]",
        hex(&connect)
    );
    conn.send(connack);
    let e = wait_connect(ev);
    assert!(matches!(e, Ev::Connect { rc: 0, .. }), "{e:?}");
    (conn, connect)
}

pub(crate) fn ok_connack(c: &Client) -> Vec<u8> {
    if c.protocol() == Protocol::V5 {
        s::connack_v5(false, 0, &[])
    } else {
        s::connack(false, 0)
    }
}

/// connect() + loop_start(), CONNACK success; returns the broker side.
#[track_caller]
pub(crate) fn start(
    broker: &ScriptedBroker,
    c: &Client,
    ev: &Events<Ev>,
    keepalive: u16,
) -> ScriptedConn {
    c.connect(HOST, broker.port(), keepalive).unwrap();
    c.loop_start().unwrap();
    accept_connack(broker, ev, &ok_connack(c)).0
}

// ----- MQTT 5 property encoders (the property list without its length)
pub(crate) fn p_u8(id: u8, v: u8) -> Vec<u8> {
    vec![id, v]
}
pub(crate) fn p_u16(id: u8, v: u16) -> Vec<u8> {
    let mut b = vec![id];
    b.extend_from_slice(&v.to_be_bytes());
    b
}
pub(crate) fn p_u32(id: u8, v: u32) -> Vec<u8> {
    let mut b = vec![id];
    b.extend_from_slice(&v.to_be_bytes());
    b
}
pub(crate) fn p_var(id: u8, v: u64) -> Vec<u8> {
    let mut b = vec![id];
    encode_varint(v, &mut b);
    b
}
pub(crate) fn p_str(id: u8, v: &str) -> Vec<u8> {
    let mut b = vec![id];
    b.extend_from_slice(&mqtt_str(v));
    b
}
pub(crate) fn p_pair(k: &str, v: &str) -> Vec<u8> {
    let mut b = vec![0x26];
    b.extend_from_slice(&mqtt_str(k));
    b.extend_from_slice(&mqtt_str(v));
    b
}
/// A property block with its length prefix.
pub(crate) fn props(parts: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = parts.concat();
    let mut b = Vec::new();
    encode_varint(body.len() as u64, &mut b);
    b.extend_from_slice(&body);
    b
}

// ----- client packets, built by hand
pub(crate) fn subscribe_v3(pkid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    for (f, q) in filters {
        body.extend_from_slice(&mqtt_str(f));
        body.push(*q);
    }
    s::packet(0x82, &body)
}
pub(crate) fn subscribe_v5(pkid: u16, prop_block: &[u8], filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    body.extend_from_slice(prop_block);
    for (f, o) in filters {
        body.extend_from_slice(&mqtt_str(f));
        body.push(*o);
    }
    s::packet(0x82, &body)
}
pub(crate) fn unsubscribe_v3(pkid: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    for f in filters {
        body.extend_from_slice(&mqtt_str(f));
    }
    s::packet(0xa2, &body)
}
pub(crate) fn unsubscribe_v5(pkid: u16, prop_block: &[u8], filters: &[&str]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    body.extend_from_slice(prop_block);
    for f in filters {
        body.extend_from_slice(&mqtt_str(f));
    }
    s::packet(0xa2, &body)
}

/// A shared log of (level, line) from on_log.
pub(crate) fn capture_logs(c: &Client) -> Arc<Mutex<Vec<(LogLevel, String)>>> {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let l = logs.clone();
    c.on_log(move |_c, level, line| l.lock().unwrap().push((level, line.to_string())));
    logs
}

// ---------------------------------------------------------------------------------------
