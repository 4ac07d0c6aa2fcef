mod support;
// Calling the client from inside its callbacks, panics in callbacks, dropping the client.
use support::scripted_client::*;

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
        let _ = tx.send(Ev::message(m));
        c.disconnect().unwrap();
    });
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("in", b"", 0, 0, false, false));
    conn.expect_packet(&[0xe0, 0x00], T);
    conn.expect_closed(T);
    expect_clean_disconnect(&ev);
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
        let _ = tx.send(Ev::message(m));
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
        let _ = tx.send(Ev::disconnect(f, rc, p));
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
        let _ = tx.send(Ev::disconnect(f, rc, p));
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
        let _ = tx.send(Ev::message(m));
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

/// QoS 0 messages written together complete as one batch; a callback that replaces itself
/// still takes effect from the next message on, as Paho looks the callback up each time.
#[test]
fn on_publish_replaced_inside_itself_during_a_batch_of_qos0_completions() {
    let broker = ScriptedBroker::bind();
    let c = v311("cb-pubrun");
    let ev = hook(&c);
    let results: Events<(&'static str, u16)> = Events::new();
    let rtx = results.sender();
    c.on_publish(move |c, mid, _rc, _p| {
        let _ = rtx.send(("first", mid));
        let rtx2 = rtx.clone();
        c.on_publish(move |_c, mid, _rc, _p| {
            let _ = rtx2.send(("second", mid));
        });
    });
    // Published inside a callback, each message is written at once; their completions are
    // dispatched together after on_message returns.
    c.on_message(|c, _m| {
        for _ in 0..5 {
            c.publish("out", "x", QoS::AtMostOnce, false).unwrap();
        }
    });
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("in", b"", 0, 0, false, false));
    let got: Vec<(&str, u16)> = (0..5).map(|_| results.wait(T)).collect();
    let first = got[0].1;
    let want: Vec<(&str, u16)> = (0..5)
        .map(|i| (if i == 0 { "first" } else { "second" }, first + i))
        .collect();
    assert_eq!(got, want);
    results.assert_none_within(QUIET);
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
        let _ = tx.send(Ev::message(m));
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
        let _ = tx.send(Ev::message(m));
        // Drop the last user handle on the loop's own thread.
        drop(h.lock().unwrap().take());
    });
    let mut conn = start(&broker, &c, &ev, 60);
    *holder.lock().unwrap() = Some(c);
    conn.send(&s::publish("in", b"", 0, 0, false, false));
    assert!(matches!(ev.wait(T), Ev::Message { .. }));
    conn.expect_closed(T);
}
