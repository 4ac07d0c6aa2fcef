mod support;
// Keepalive: PINGREQ timing and the missing PINGRESP, with loop_start and loop_once.
/// Helpers shared (by copy) between the scripted_* test files.
#[allow(dead_code, unused_imports)]
mod h {
    // ---------------------------------------------------------------------------------------
    // Helpers shared (by copy) between the scripted_* test files.

    pub(crate) use std::sync::{Arc, Mutex};
    pub(crate) use std::time::{Duration, Instant};

    pub(crate) use crate::support::bytes::{
        assert_bytes_eq, encode_varint, hex, mqtt_bin, mqtt_str,
    };
    pub(crate) use crate::support::scripted::{self as s, ScriptedBroker, ScriptedConn};
    pub(crate) use crate::support::{Events, T};
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
            let _ = tx.send(Ev::Disconnect {
                rc: rc.value(),
                from_server: f.is_disconnect_packet_from_server,
                props: p.clone(),
            });
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
            let _ = tx.send(Ev::Message {
                topic: m.topic().to_string(),
                payload: m.payload().to_vec(),
                qos: m.qos() as u8,
                dup: m.dup(),
                retain: m.retain(),
                mid: m.mid(),
            });
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
}
use h::*;

/// Reads the next packet and checks it is a PINGREQ arriving `lo..hi` after `since`.
#[track_caller]
fn expect_pingreq_between(conn: &mut ScriptedConn, since: Instant, lo: Duration, hi: Duration) {
    let p = conn.read_packet(hi + Duration::from_secs(1));
    let at = since.elapsed();
    assert_bytes_eq(&[0xc0, 0x00], &p, "PINGREQ");
    assert!(
        at >= lo && at <= hi,
        "PINGREQ after {at:?}, expected between {lo:?} and {hi:?}"
    );
}

#[test]
fn pingreq_after_keepalive_of_silence() {
    let broker = ScriptedBroker::bind();
    let c = v311("ka1");
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 1).unwrap();
    let t0 = Instant::now();
    c.loop_start().unwrap();
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack(false, 0));
    expect_pingreq_between(
        &mut conn,
        t0,
        Duration::from_millis(800),
        Duration::from_secs(2),
    );
    conn.send(&s::pingresp());
    let t1 = Instant::now();
    expect_pingreq_between(
        &mut conn,
        t1,
        Duration::from_millis(800),
        Duration::from_secs(2),
    );
    conn.send(&s::pingresp());
    // Still connected, no disconnect reported.
    assert!(c.is_connected());
    assert!(ev
        .drain()
        .iter()
        .all(|e| !matches!(e, Ev::Disconnect { .. })));
}

#[test]
fn keepalive_encoded_in_connect_and_zero_disables_ping() {
    let broker = ScriptedBroker::bind();
    let c = v311("ka0");
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 0).unwrap();
    c.loop_start().unwrap();
    let (mut conn, connect) = accept_connack(&broker, &ev, &s::connack(false, 0));
    assert_eq!(
        &connect[10..12],
        &[0, 0],
        "keepalive bytes in [{}]",
        hex(&connect)
    );
    conn.expect_silence(Duration::from_millis(1500));
}

#[test]
fn no_pingresp_closes_with_keep_alive_timeout() {
    let broker = ScriptedBroker::bind();
    let c = v311("ka2");
    fast_reconnect(&c);
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 1).unwrap();
    let t0 = Instant::now();
    c.loop_start().unwrap();
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack(false, 0));
    expect_pingreq_between(
        &mut conn,
        t0,
        Duration::from_millis(800),
        Duration::from_secs(2),
    );
    let t1 = Instant::now();
    conn.expect_closed(Duration::from_secs(4));
    let closed_after = t1.elapsed();
    assert!(
        closed_after <= Duration::from_millis(2500),
        "closed {closed_after:?} after PINGREQ"
    );
    let e = ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    assert_eq!(
        e,
        Ev::Disconnect {
            rc: 0x8D,
            from_server: false,
            props: Properties::default()
        }
    );
    // Exactly once, and the loop reconnects.
    let _conn2 = broker.accept(T);
    assert!(
        ev.drain()
            .iter()
            .all(|e| !matches!(e, Ev::Disconnect { .. })),
        "on_disconnect reported twice"
    );
}

#[test]
fn no_pingresp_closes_with_keep_alive_timeout_v5() {
    let broker = ScriptedBroker::bind();
    let c = v5("ka5");
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 1).unwrap();
    c.loop_start().unwrap();
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack_v5(false, 0, &[]));
    let p = conn.read_packet(Duration::from_secs(3));
    assert_bytes_eq(&[0xc0, 0x00], &p, "PINGREQ");
    // MQTT 5 may send DISCONNECT 0x8D before closing; accept either that or a bare close.
    match conn.try_read_packet(Duration::from_secs(4)) {
        Ok(p) => {
            assert_eq!(p[0], 0xe0, "unexpected packet [{}]", hex(&p));
            conn.expect_closed(T);
        }
        Err(s::ReadError::Closed { partial, .. }) => assert!(partial.is_empty()),
        Err(e) => panic!("client neither closed nor sent DISCONNECT: {e:?}"),
    }
    let e = ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    assert!(
        matches!(
            e,
            Ev::Disconnect {
                rc: 0x8D,
                from_server: false,
                ..
            }
        ),
        "{e:?}"
    );
}

/// Runs `loop_once` on another thread until `stop` is set.
fn drive_loop_once(
    c: &Client,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st = stop.clone();
    let c = c.clone();
    let h = std::thread::spawn(move || {
        while !st.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = c.loop_once(Duration::from_millis(50));
        }
    });
    (stop, h)
}

#[test]
fn loop_once_pingreq_and_keepalive_timeout() {
    let broker = ScriptedBroker::bind();
    let c = v311("ka-once");
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 1).unwrap();
    let t0 = Instant::now();
    let (stop, h) = drive_loop_once(&c);
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack(false, 0));
    expect_pingreq_between(
        &mut conn,
        t0,
        Duration::from_millis(800),
        Duration::from_secs(2),
    );
    conn.send(&s::pingresp());
    let t1 = Instant::now();
    expect_pingreq_between(
        &mut conn,
        t1,
        Duration::from_millis(800),
        Duration::from_secs(2),
    );
    // No answer this time.
    conn.expect_closed(Duration::from_secs(4));
    let e = ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    assert_eq!(
        e,
        Ev::Disconnect {
            rc: 0x8D,
            from_server: false,
            props: Properties::default()
        }
    );
    // loop_once does not reconnect by itself.
    broker.expect_no_connection(QUIET);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    h.join().unwrap();
}

#[test]
fn pingreq_sent_even_while_publishing_qos0() {
    // Outgoing traffic alone does not prove the broker is alive: with nothing coming in,
    // a PINGREQ still goes out within about the keepalive.
    let broker = ScriptedBroker::bind();
    let c = v311("ka-pub");
    let ev = hook(&c);
    c.connect(HOST, broker.port(), 1).unwrap();
    let t0 = Instant::now();
    c.loop_start().unwrap();
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack(false, 0));
    let deadline = t0 + Duration::from_secs(3);
    let mut got_ping = false;
    while Instant::now() < deadline {
        let _ = c.publish("t", "x", QoS::AtMostOnce, false);
        match conn.try_read_packet(Duration::from_millis(200)) {
            Ok(p) if p == [0xc0, 0x00] => {
                got_ping = true;
                assert!(
                    t0.elapsed() <= Duration::from_millis(2200),
                    "PINGREQ after {:?}",
                    t0.elapsed()
                );
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(got_ping, "no PINGREQ while only sending");
}
