mod support;
// Calling the client from inside its callbacks, panics in callbacks, dropping the client.
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

fn msg_ev(m: &mqtt_sync::Message) -> Ev {
    Ev::Message {
        topic: m.topic().into(),
        payload: m.payload().into(),
        qos: m.qos() as u8,
        dup: m.dup(),
        retain: m.retain(),
        mid: m.mid(),
    }
}

#[test]
fn publish_and_subscribe_from_on_message() {
    let broker = ScriptedBroker::bind();
    let c = v311("cb-pub");
    let ev = hook(&c);
    let results: Events<String> = Events::new();
    let rtx = results.sender();
    c.on_message(move |c, m| {
        let p = c
            .publish("reply", m.payload(), QoS::AtLeastOnce, false)
            .map(|i| i.mid());
        let s = c.subscribe("more/#", QoS::AtMostOnce);
        let _ = rtx.send(format!("{p:?} {s:?}"));
    });
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("in", b"ping", 0, 0, false, false));
    assert_eq!(results.wait(T), "Ok(1) Ok(2)");
    conn.expect_packet(&s::publish("reply", b"ping", 1, 1, false, false), T);
    conn.expect_packet(&subscribe_v3(2, &[("more/#", 0)]), T);
    conn.send(&s::puback(1));
    conn.send(&s::suback(2, &[0]));
    ev.wait_for(T, |e| {
        *e == Ev::Subscribe {
            mid: 2,
            rcs: vec![0],
        }
    });
}

#[test]
fn wait_for_publish_inside_callback_is_invalid_state_but_works_elsewhere() {
    let broker = ScriptedBroker::bind();
    let c = v311("cb-wait");
    let ev = hook(&c);
    let infos: Events<(mqtt_sync::MessageInfo, String, Duration)> = Events::new();
    let itx = infos.sender();
    c.on_message(move |c, _m| {
        let info = c.publish("out", "x", QoS::AtLeastOnce, false).unwrap();
        let t = Instant::now();
        let r = info.wait_for_publish(Some(Duration::from_secs(5)));
        let took = t.elapsed();
        let _ = itx.send((info, format!("{r:?}"), took));
    });
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("in", b"", 0, 0, false, false));
    let (info, r, took) = infos.wait(T);
    assert!(
        r.starts_with("Err(InvalidState"),
        "wait_for_publish in a callback returned {r}"
    );
    assert!(
        took < Duration::from_secs(1),
        "wait_for_publish in a callback blocked {took:?}"
    );
    // From another thread, the same message completes once acknowledged.
    let w = std::thread::spawn(move || info.wait_for_publish(Some(T)));
    let p = conn.read_packet(T);
    conn.send(&s::puback(s::packet_id(&p).unwrap()));
    w.join().unwrap().unwrap();
}

#[test]
fn nested_loops_inside_callback_are_invalid_state() {
    let broker = ScriptedBroker::bind();
    let c = v311("cb-nest");
    let ev = hook(&c);
    let results: Events<String> = Events::new();
    let rtx = results.sender();
    c.on_message(move |c, _m| {
        let once = c.loop_once(Duration::from_millis(10));
        let forever = c.loop_forever();
        let _ = rtx.send(format!("{once:?} | {forever:?}"));
    });
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("in", b"", 0, 0, false, false));
    let r = results.wait(T);
    assert!(r.starts_with("Err(InvalidState"), "nested loop_once: {r}");
    assert!(r.contains("| Err(InvalidState"), "nested loop_forever: {r}");
    // The loop still works.
    conn.send(&s::publish("in", b"", 0, 0, false, false));
    results.wait(T);
}

#[test]
fn disconnect_from_on_message() {
    let broker = ScriptedBroker::bind();
    let c = v311("cb-disc");
    fast_reconnect(&c);
    let ev = hook(&c);
    let tx = ev.sender();
    c.on_message(move |c, m| {
        let _ = tx.send(msg_ev(m));
        c.disconnect().unwrap();
    });
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("in", b"", 0, 0, false, false));
    conn.expect_packet(&[0xe0, 0x00], T);
    conn.expect_closed(T);
    let e = ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    assert_eq!(
        e,
        Ev::Disconnect {
            rc: 0,
            from_server: false,
            props: Properties::default()
        }
    );
    broker.expect_no_connection(QUIET);
    c.loop_stop().unwrap();
}

#[test]
fn loop_stop_from_on_message() {
    let broker = ScriptedBroker::bind();
    let c = v311("cb-stop");
    let ev = hook(&c);
    let tx = ev.sender();
    c.on_message(move |c, m| {
        let _ = tx.send(msg_ev(m));
        c.loop_stop().unwrap();
    });
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("in", b"1", 0, 0, false, false));
    assert!(matches!(ev.wait(T), Ev::Message { .. }));
    // The thread ends without disconnecting: no DISCONNECT, no more deliveries.
    conn.send(&s::publish("in", b"2", 0, 0, false, false));
    ev.assert_none_within(QUIET);
    conn.expect_silence(Duration::from_millis(100));
    // loop_stop from outside returns (joins the finished thread).
    let (tx, rx) = std::sync::mpsc::channel();
    let c2 = c.clone();
    std::thread::spawn(move || {
        let _ = tx.send(c2.loop_stop());
    });
    let r = rx.recv_timeout(T).expect("loop_stop from outside hangs");
    let _ = r;
}

#[test]
fn loop_stop_from_on_disconnect_stops_reconnects() {
    let broker = ScriptedBroker::bind();
    let c = v311("cb-stop2");
    fast_reconnect(&c);
    let ev = hook(&c);
    let tx = ev.sender();
    c.on_disconnect(move |c, f, rc, p| {
        let _ = tx.send(Ev::Disconnect {
            rc: rc.value(),
            from_server: f.is_disconnect_packet_from_server,
            props: p.clone(),
        });
        c.loop_stop().unwrap();
    });
    let conn = start(&broker, &c, &ev, 60);
    conn.close();
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    broker.expect_no_connection(Duration::from_millis(600));
}

#[test]
fn disconnect_from_on_disconnect_stops_reconnects() {
    let broker = ScriptedBroker::bind();
    let c = v311("cb-disc2");
    c.reconnect_delay_set(Duration::from_millis(100), Duration::from_millis(200))
        .unwrap();
    let ev = hook(&c);
    let tx = ev.sender();
    c.on_disconnect(move |c, f, rc, p| {
        let _ = tx.send(Ev::Disconnect {
            rc: rc.value(),
            from_server: f.is_disconnect_packet_from_server,
            props: p.clone(),
        });
        let _ = c.disconnect();
    });
    let conn = start(&broker, &c, &ev, 60);
    conn.close();
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    broker.expect_no_connection(Duration::from_millis(800));
    c.loop_stop().unwrap();
}

#[test]
fn publish_from_on_disconnect_is_queued_and_sent_after_reconnect() {
    let broker = ScriptedBroker::bind();
    let c = Client::builder()
        .client_id("cb-pub2")
        .clean_session(false)
        .build()
        .unwrap();
    fast_reconnect(&c);
    let ev = hook(&c);
    let results: Events<String> = Events::new();
    let rtx = results.sender();
    c.on_disconnect(move |c, _f, _rc, _p| {
        let r = c
            .publish("after", "drop", QoS::AtLeastOnce, false)
            .map(|i| i.mid());
        let r0 = c
            .publish("after", "zero", QoS::AtMostOnce, false)
            .map(|i| i.mid());
        let _ = rtx.send(format!("{r:?} {}", matches!(r0, Err(Error::NoConnection))));
    });
    let conn = start(&broker, &c, &ev, 60);
    conn.close();
    assert_eq!(results.wait(T), "Ok(1) true");
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack(true, 0));
    conn.expect_packet(&s::publish("after", b"drop", 1, 1, false, false), T);
}

#[test]
fn panicking_callback_is_caught_and_logged_loop_goes_on() {
    let broker = ScriptedBroker::bind();
    let c = v311("cb-panic");
    let ev = hook(&c);
    let logs = capture_logs(&c);
    let tx = ev.sender();
    c.on_message(move |_c, m| {
        if m.payload() == b"boom" {
            panic!("test panic in on_message");
        }
        let _ = tx.send(msg_ev(m));
    });
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("in", b"boom", 1, 1, false, false));
    // The message is still acknowledged after the panic.
    conn.expect_packet(&s::puback(1), T);
    conn.send(&s::publish("in", b"after", 0, 0, false, false));
    match ev.wait(T) {
        Ev::Message { payload, .. } => assert_eq!(payload, b"after"),
        other => panic!("{other:?}"),
    }
    let logs = logs.lock().unwrap().clone();
    assert!(
        logs.iter().any(|(l, s)| *l == LogLevel::Error && (s.contains("panic") || s.contains("exception"))),
        "no Error-level log line about the panic: {logs:#?}"
    );
    // A panicking on_log does not break anything either.
    c.on_log(|_c, _l, _s| panic!("panic in on_log"));
    conn.send(&s::publish("in", b"again", 0, 0, false, false));
    assert!(matches!(ev.wait(T), Ev::Message { .. }));
}

#[test]
fn setter_inside_own_callback_takes_effect_next_call() {
    let broker = ScriptedBroker::bind();
    let c = v311("cb-set");
    let ev = hook(&c);
    let results: Events<String> = Events::new();
    let rtx = results.sender();
    c.on_message(move |c, _m| {
        let _ = rtx.send("first".into());
        let rtx2 = rtx.clone();
        c.on_message(move |_c, _m| {
            let _ = rtx2.send("second".into());
        });
    });
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("in", b"", 0, 0, false, false));
    assert_eq!(results.wait(T), "first");
    conn.send(&s::publish("in", b"", 0, 0, false, false));
    assert_eq!(results.wait(T), "second");
    conn.send(&s::publish("in", b"", 0, 0, false, false));
    assert_eq!(results.wait(T), "second");
}

#[test]
fn message_callback_remove_inside_own_callback() {
    let broker = ScriptedBroker::bind();
    let c = v311("cb-rm");
    let ev = hook(&c);
    let results: Events<String> = Events::new();
    let rtx = results.sender();
    c.message_callback_add("f/#", move |c, _m| {
        let _ = rtx.send("filter".into());
        c.message_callback_remove("f/#");
    })
    .unwrap();
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("f/1", b"", 0, 0, false, false));
    assert_eq!(results.wait(T), "filter");
    conn.send(&s::publish("f/2", b"", 0, 0, false, false));
    assert!(
        matches!(ev.wait(T), Ev::Message { .. }),
        "on_message after the filter was removed"
    );
    results.assert_none_within(Duration::from_millis(100));
}

#[test]
fn dropping_last_handle_closes_socket_without_disconnect() {
    let broker = ScriptedBroker::bind();
    let c = v311("cb-drop");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let weak = c.downgrade();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(c);
        let _ = tx.send(());
    });
    rx.recv_timeout(T).expect("dropping the last Client hangs");
    conn.expect_closed(T);
    assert!(weak.upgrade().is_none());
    broker.expect_no_connection(QUIET);
}

#[test]
fn weak_client_in_closure_does_not_keep_client_alive() {
    let broker = ScriptedBroker::bind();
    let c = v311("cb-weak");
    let ev = hook(&c);
    let weak = c.downgrade();
    let tx = ev.sender();
    c.on_message(move |_c, m| {
        if let Some(cl) = weak.upgrade() {
            let _ = cl.publish("echo", m.payload(), QoS::AtMostOnce, false);
        }
        let _ = tx.send(msg_ev(m));
    });
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("in", b"e", 0, 0, false, false));
    conn.expect_packet(&s::publish("echo", b"e", 0, 0, false, false), T);
    let weak2 = c.downgrade();
    drop(c);
    conn.expect_closed(T);
    assert!(
        weak2.upgrade().is_none(),
        "a WeakClient in a callback kept the client alive"
    );
}

#[test]
fn dropping_last_handle_inside_callback_does_not_deadlock() {
    let broker = ScriptedBroker::bind();
    let c = v311("cb-drop-in");
    let ev = hook(&c);
    let holder: Arc<Mutex<Option<Client>>> = Arc::new(Mutex::new(None));
    let h = holder.clone();
    let tx = ev.sender();
    c.on_message(move |_c, m| {
        let _ = tx.send(msg_ev(m));
        // Drop the last user handle on the loop's own thread.
        drop(h.lock().unwrap().take());
    });
    let mut conn = start(&broker, &c, &ev, 60);
    *holder.lock().unwrap() = Some(c);
    conn.send(&s::publish("in", b"", 0, 0, false, false));
    assert!(matches!(ev.wait(T), Ev::Message { .. }));
    conn.expect_closed(T);
}
