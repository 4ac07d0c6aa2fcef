#[macro_use]
mod support;

// Regression tests for the defects of the "Reliability I" review: each one failed before its
// fix. Named after the behaviour they guarantee.

use std::time::Instant;
use support::broker_client::{client, finish, sub, tag, Probe};
use support::scripted_client::*;
use support::{wait_until, Mosquitto};

/// Connect, disconnect, loop_stop, reinitialise, connect again: messages of the new connection
/// reach on_message and are acknowledged (the marker that drops the messages of a connection
/// the user disconnected must not match the new connection).
fn reinitialise_then_reconnect_delivers(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let id = format!("reinit-{t}");
    let c = client(proto, &id);
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    c.disconnect().unwrap();
    p.disc.wait(T);
    c.loop_stop().unwrap();

    c.reinitialise(id.as_str(), true).unwrap();
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    let topic = format!("reinit/{t}");
    sub(&c, &p, &topic, QoS::AtLeastOnce);
    for i in 0..3 {
        c.publish(&topic, format!("m{i}"), QoS::AtLeastOnce, false)
            .unwrap();
    }
    for i in 0..3 {
        let m = p.msg();
        assert_eq!(m.payload(), format!("m{i}").as_bytes());
    }
    finish(&c);
}
per_protocol!(reinitialise_then_reconnect_delivers);

fn scripted_client(proto: Protocol, id: &str) -> Client {
    if proto == Protocol::V5 {
        v5(id)
    } else {
        Client::builder()
            .client_id(id)
            .protocol(proto)
            .build()
            .unwrap()
    }
}

/// PUBACK, PUBREC and PUBCOMP for ids the client never used are ignored (a PUBREC is answered
/// with PUBREL so the broker can free the id), as Paho and libmosquitto do: the connection
/// stays up and goes on working.
fn unexpected_acks_are_ignored(proto: Protocol) {
    let broker = ScriptedBroker::bind();
    let c = scripted_client(proto, "unexp");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::puback(4711));
    conn.send(&s::pubcomp(4713));
    conn.send(&s::pubrec(4712));
    // MQTT 5: PUBREL 0x92 (Packet Identifier not found), in its short form (no properties).
    let [hi, lo] = 4712u16.to_be_bytes();
    let pubrel = if proto == Protocol::V5 {
        vec![0x62, 0x03, hi, lo, 0x92]
    } else {
        s::pubrel(4712)
    };
    conn.expect_packet(&pubrel, T);
    // Acks of the wrong kind for messages in flight are ignored too; the right ones complete
    // the flows. (One exception, as in Paho: a PUBACK for a QoS 2 message still waiting for
    // its PUBREC ends its flow — a broker that took it at QoS 1 answers so; see
    // publish_qos2_answered_with_puback_ends_flow in tests/scripted_flows.rs.)
    let q1 = c.publish("t", "x", QoS::AtLeastOnce, false).unwrap();
    let p = conn.read_packet(T);
    assert_eq!(p[0] & 0xF6, 0x32, "QoS 1 PUBLISH expected, got {}", hex(&p));
    let q2 = c.publish("t", "y", QoS::ExactlyOnce, false).unwrap();
    let p = conn.read_packet(T);
    assert_eq!(p[0] & 0xF6, 0x34, "QoS 2 PUBLISH expected, got {}", hex(&p));
    conn.send(&s::pubcomp(q1.mid()));
    conn.send(&s::pubcomp(q2.mid()));
    conn.send(&s::puback(q1.mid()));
    q1.wait_for_publish(Some(T)).unwrap();
    conn.send(&s::pubrec(q2.mid()));
    conn.expect_packet(&s::pubrel(q2.mid()), T);
    conn.send(&s::puback(q2.mid()));
    conn.send(&s::pubcomp(q2.mid()));
    q2.wait_for_publish(Some(T)).unwrap();
    assert!(c.is_connected());
    assert!(
        !ev.drain()
            .iter()
            .any(|e| matches!(e, Ev::Disconnect { .. })),
        "no on_disconnect"
    );
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
}
per_protocol!(unexpected_acks_are_ignored);

/// `message_callback_add` with a shared-subscription filter (`$share/<group>/<filter>`) runs
/// for messages on topics matching `<filter>` (Paho Python #472 has the bug; fixed here).
#[test]
fn shared_subscription_filters_reach_their_callback() {
    let broker = ScriptedBroker::bind();
    let c = v311("share");
    let ev = hook(&c);
    let tx = ev.sender();
    c.message_callback_add("$share/g/a/+", move |_c, m| {
        let _ = tx.send(Ev::Message {
            topic: format!("shared:{}", m.topic()),
            payload: m.payload().to_vec(),
            qos: 0,
            dup: false,
            retain: false,
            mid: 0,
        });
    })
    .unwrap();
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("a/x", b"1", 0, 0, false, false));
    let e = ev.wait_for(T, |e| matches!(e, Ev::Message { .. }));
    assert!(
        matches!(&e, Ev::Message { topic, .. } if topic == "shared:a/x"),
        "the $share callback runs, not on_message: {e:?}"
    );
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
}

/// `ack()` acts only with manual acks on and for a message that is waiting for its ack;
/// otherwise it returns an error and sends nothing.
#[test]
fn ack_is_checked() {
    let broker = ScriptedBroker::bind();
    // Offline: an error.
    let c = Client::builder()
        .client_id("ackchk")
        .manual_ack(true)
        .build()
        .unwrap();
    assert!(c.ack(1, QoS::AtLeastOnce).is_err(), "ack offline");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    // Not pending: an error, nothing sent.
    assert!(c.ack(5, QoS::AtLeastOnce).is_err(), "ack of an unknown mid");
    assert!(c.ack(5, QoS::ExactlyOnce).is_err(), "ack of an unknown mid");
    conn.expect_silence(QUIET);
    conn.send(&s::publish("m", b"1", 1, 5, false, false));
    assert!(matches!(ev.wait(T), Ev::Message { mid: 5, qos: 1, .. }));
    c.ack(5, QoS::AtLeastOnce).unwrap();
    conn.expect_packet(&s::puback(5), T);
    // Twice: an error, nothing sent.
    assert!(c.ack(5, QoS::AtLeastOnce).is_err(), "second ack");
    conn.expect_silence(QUIET);
    c.disconnect().unwrap();
    c.loop_stop().unwrap();

    // Without manual acks, the client acks by itself: ack() is an error and sends nothing.
    let c = v311("ackauto");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("m", b"1", 1, 6, false, false));
    assert!(matches!(ev.wait(T), Ev::Message { mid: 6, .. }));
    conn.expect_packet(&s::puback(6), T);
    assert!(
        c.ack(6, QoS::AtLeastOnce).is_err(),
        "ack without manual_ack"
    );
    conn.expect_silence(QUIET);
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
}

/// A QoS 2 message whose PUBREL arrived in the same read as a message whose callback calls
/// `disconnect()` (as `subscribe::simple` does) is not delivered on that connection, and not
/// lost either: when the session resumes and the broker re-sends PUBREL, it is delivered
/// once, then PUBCOMP goes out.
#[test]
fn qos2_message_released_before_disconnect_is_delivered_after_resume() {
    let broker = ScriptedBroker::bind();
    let c = Client::builder()
        .client_id("q2disc")
        .clean_session(false)
        .build()
        .unwrap();
    let ev = hook(&c);
    let tx = ev.sender();
    let q2_seen = Arc::new(Mutex::new(0usize));
    let seen = q2_seen.clone();
    c.on_message(move |c, m| {
        let _ = tx.send(Ev::message(m));
        match m.topic() {
            "stop" => {
                let _ = c.disconnect();
            }
            "q2" => *seen.lock().unwrap() += 1,
            _ => {}
        }
    });
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("q2", b"keep", 2, 7, false, false));
    conn.expect_packet(&s::pubrec(7), T);
    // One write: a message whose callback disconnects, then the PUBREL of the QoS 2 message.
    let mut bytes = s::publish("stop", b"", 0, 0, false, false);
    bytes.extend_from_slice(&s::pubrel(7));
    conn.send(&bytes);
    conn.expect_packet(&s::disconnect(), T);
    conn.expect_closed(T);
    expect_clean_disconnect(&ev);
    assert_eq!(
        *q2_seen.lock().unwrap(),
        0,
        "not delivered after disconnect()"
    );

    // The session resumes: the broker re-sends PUBREL.
    c.connect(HOST, broker.port(), 60).unwrap();
    let mut conn = broker.accept(T);
    conn.read_packet(T);
    conn.send(&s::connack(true, 0));
    conn.send(&s::pubrel(7));
    let e = ev.wait_for(T, |e| matches!(e, Ev::Message { .. }));
    assert!(
        matches!(&e, Ev::Message { topic, payload, mid: 7, .. } if topic == "q2" && payload == b"keep"),
        "{e:?}"
    );
    conn.expect_packet(&s::pubcomp(7), T);
    ev.assert_none_within(QUIET);
    assert_eq!(*q2_seen.lock().unwrap(), 1, "delivered once");
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
}

/// `Duration::MAX` wherever a duration is taken (connect timeout, reconnect delay,
/// `loop_once`, `wait_for_publish`) saturates instead of panicking.
#[test]
fn huge_durations_saturate_instead_of_panicking() {
    let broker = ScriptedBroker::bind();
    let c = v311("huge");
    c.connect_timeout_set(Duration::MAX).unwrap();
    c.reconnect_delay_set(Duration::MAX, Duration::MAX).unwrap();
    let ev = hook(&c);
    // loop_once(MAX) performs the pending connect_async and returns.
    c.connect_async(HOST, broker.port(), 60).unwrap();
    c.loop_once(Duration::MAX).unwrap();
    let mut conn = broker.accept(T);
    conn.read_packet(T);
    conn.send(&s::connack(false, 0));
    // ... and returns once the CONNACK is handled.
    c.loop_once(Duration::MAX).unwrap();
    assert!(matches!(wait_connect(&ev), Ev::Connect { rc: 0, .. }));
    c.loop_start().unwrap();
    let info = c.publish("t", "x", QoS::AtLeastOnce, false).unwrap();
    let waiter = std::thread::spawn(move || info.wait_for_publish(Some(Duration::MAX)));
    let p = conn.read_packet(T);
    conn.send(&s::puback(s::packet_id(&p).unwrap()));
    waiter.join().unwrap().unwrap();
    // A lost connection schedules a reconnect MAX away: the loop thread lives on.
    conn.close();
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    c.loop_stop().unwrap();
    c.loop_start().unwrap();
    c.loop_stop().unwrap();
}

/// Panics in a value a callback owns when it is dropped (a callback that replaces itself)
/// happen on the loop thread outside the callback: the loop thread stops, the client stays
/// usable (loop_stop, loop_start, and the traffic go on).
#[test]
fn a_panic_on_the_loop_thread_leaves_the_client_usable() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("dropped on purpose");
        }
    }
    let broker = ScriptedBroker::bind();
    let c = v311("panicky");
    let ev = hook(&c);
    let bomb = PanicOnDrop;
    let tx = ev.sender();
    c.on_message(move |c, m| {
        let _ = &bomb;
        let _ = tx.send(Ev::message(m));
        let tx = tx.clone();
        // Replacing the running callback drops this closure, and the bomb with it, after
        // the callback returns.
        c.on_message(move |_c, m| {
            let _ = tx.send(Ev::message(m));
        });
    });
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("a", b"1", 0, 0, false, false));
    ev.wait_for(T, |e| matches!(e, Ev::Message { .. }));
    // Whether or not the loop thread died, the client stays usable.
    let _ = c.loop_stop();
    c.loop_start().unwrap();
    conn.send(&s::publish("a", b"2", 0, 0, false, false));
    let e = ev.wait_for(T, |e| matches!(e, Ev::Message { .. }));
    assert!(
        matches!(&e, Ev::Message { payload, .. } if payload == b"2"),
        "{e:?}"
    );
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
}

/// `Debug` never prints a password: ProxyOptions, and the helpers' options that hold it.
#[test]
fn debug_output_hides_passwords() {
    use mqtt_sync::{publish, subscribe, Auth, ProxyOptions};
    let proxy = ProxyOptions {
        addr: "proxy".into(),
        port: 1080,
        username: Some("u".into()),
        password: Some("s3cret".into()),
        ..Default::default()
    };
    assert!(!format!("{proxy:?}").contains("s3cret"), "{proxy:?}");
    let auth = Some(Auth {
        username: "u".into(),
        password: Some("s3cret".into()),
    });
    let p = publish::Options {
        proxy: Some(proxy.clone()),
        auth: auth.clone(),
        ..Default::default()
    };
    assert!(!format!("{p:?}").contains("s3cret"), "{p:?}");
    let s = subscribe::Options {
        proxy: Some(proxy),
        auth,
        ..Default::default()
    };
    assert!(!format!("{s:?}").contains("s3cret"), "{s:?}");
}

/// Without a loop thread, while one thread drives the loop with loop_once and another
/// publishes and subscribes, callbacks never run on two threads at once, and each kind runs
/// in order.
#[test]
fn callbacks_never_run_concurrently_with_loop_once_and_a_publishing_thread() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let broker = ScriptedBroker::bind();
    let c = v311("oneatatime");
    let active = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let published = Arc::new(Mutex::new(Vec::new()));
    let received = Arc::new(AtomicUsize::new(0));
    let enter = {
        let (active, overlaps) = (active.clone(), overlaps.clone());
        move || {
            if active.fetch_add(1, Ordering::SeqCst) != 0 {
                overlaps.fetch_add(1, Ordering::SeqCst);
            }
            // Stay a little inside the callback, so that an overlap shows.
            std::thread::sleep(Duration::from_micros(300));
            active.fetch_sub(1, Ordering::SeqCst);
        }
    };
    {
        let (enter, published) = (enter.clone(), published.clone());
        c.on_publish(move |_, mid, _, _| {
            enter();
            published.lock().unwrap().push(mid);
        });
    }
    {
        let (enter, received) = (enter.clone(), received.clone());
        c.on_message(move |_, _| {
            enter();
            received.fetch_add(1, Ordering::SeqCst);
        });
    }
    let (connected_tx, connected_rx) = std::sync::mpsc::channel();
    c.on_connect(move |_, _, _, _| {
        let _ = connected_tx.send(());
    });
    c.connect(HOST, broker.port(), 60).unwrap();
    let mut conn = broker.accept(T);
    conn.read_packet(T);
    conn.send(&s::connack(false, 0));
    let stop = Arc::new(AtomicBool::new(false));
    let driver = {
        let (c, stop) = (c.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let _ = c.loop_once(Duration::from_millis(50));
            }
        })
    };
    connected_rx.recv_timeout(T).unwrap();
    let n = 200;
    let feeder = std::thread::spawn(move || {
        for i in 0..n {
            conn.send(&s::publish(
                "in",
                format!("{i}").as_bytes(),
                0,
                0,
                false,
                false,
            ));
            std::thread::sleep(Duration::from_micros(200));
        }
        conn
    });
    let mut mids = Vec::new();
    for i in 0..n {
        mids.push(
            c.publish("out", format!("{i}"), QoS::AtMostOnce, false)
                .unwrap()
                .mid(),
        );
    }
    let conn = feeder.join().unwrap();
    wait_until(T, || {
        received.load(Ordering::SeqCst) == n && published.lock().unwrap().len() == n
    });
    stop.store(true, Ordering::SeqCst);
    driver.join().unwrap();
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "callbacks overlapped");
    assert_eq!(*published.lock().unwrap(), mids, "on_publish in order");
    drop(conn);
}

/// What /proc says a descriptor of this process is ("socket:[inode]"), if it is open.
fn fd_target(fd: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .ok()
        .map(|p| p.display().to_string())
}

/// on_socket_close (and on_socket_unregister_write) run while the descriptor they get is
/// still the client's socket, so an external select/epoll loop can unregister it.
#[test]
fn socket_close_callbacks_run_before_the_socket_is_closed() {
    let broker = ScriptedBroker::bind();
    let c = v311("sockclose");
    let ev = hook(&c);
    let opened: Events<(i32, Option<String>)> = Events::new();
    let closed: Events<(&'static str, i32, Option<String>)> = Events::new();
    let tx = opened.sender();
    c.on_socket_open(move |_, fd| {
        let _ = tx.send((fd, fd_target(fd)));
    });
    let tx = closed.sender();
    c.on_socket_close(move |_, fd| {
        let _ = tx.send(("close", fd, fd_target(fd)));
    });
    let tx = closed.sender();
    c.on_socket_unregister_write(move |_, fd| {
        let _ = tx.send(("unregister_write", fd, fd_target(fd)));
    });
    c.on_socket_register_write(|_, _| {});
    let conn = start(&broker, &c, &ev, 60);
    let (fd, target) = opened.wait(T);
    let target = target.expect("the socket is open at on_socket_open");
    assert!(target.starts_with("socket:"), "{target}");
    // The broker goes away: every close-side socket callback still sees the same socket.
    conn.close();
    loop {
        let (what, cfd, now) = closed.wait(T);
        assert_eq!(cfd, fd);
        assert_eq!(
            now.as_deref(),
            Some(target.as_str()),
            "{what}: descriptor {fd} is no longer the client's socket"
        );
        if what == "close" {
            break;
        }
    }
    c.loop_stop().unwrap();
}

/// What `on_pre_connect` changes (here the proxy and the credentials) applies to the attempt
/// it runs for, as in Paho.
#[test]
fn on_pre_connect_changes_apply_to_that_attempt() {
    use mqtt_sync::{ProxyOptions, ProxyType};
    use std::io::{Read, Write};
    let proxy = ScriptedBroker::bind();
    let port = proxy.port();
    let c = v311("prec");
    c.on_pre_connect(move |c| {
        c.proxy_set(ProxyOptions {
            proxy_type: ProxyType::Http,
            addr: HOST.into(),
            port,
            ..Default::default()
        })
        .unwrap();
        c.username_pw_set("late", None).unwrap();
    });
    let c2 = c.clone();
    let connector = std::thread::spawn(move || c2.connect("broker.invalid", 1883, 60));
    let mut conn = proxy.accept(T);
    let mut stream = conn.stream().try_clone().unwrap();
    stream.set_read_timeout(Some(T)).unwrap();
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "request cut short");
        request.push(byte[0]);
    }
    let request = String::from_utf8_lossy(&request).into_owned();
    assert!(
        request.starts_with("CONNECT broker.invalid:1883 HTTP/1.1\r\n"),
        "{request}"
    );
    stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
    let connect = conn.read_packet(T);
    assert!(
        connect.windows(4).any(|w| w == b"late"),
        "CONNECT carries the user name set in on_pre_connect: {}",
        hex(&connect)
    );
    connector.join().unwrap().unwrap();
}

/// With the default reconnect_on_failure, loop_forever retries a refused CONNACK, as Paho
/// does (it returns only after disconnect()).
#[test]
fn loop_forever_retries_a_refused_connack() {
    let broker = ScriptedBroker::bind();
    let c = v311("lfretry");
    fast_reconnect(&c);
    let ev = hook(&c);
    c.on_connect(|c, _, rc, _| {
        if !rc.is_failure() {
            c.disconnect().unwrap();
        }
    });
    c.connect(HOST, broker.port(), 60).unwrap();
    let c2 = c.clone();
    let forever = std::thread::spawn(move || c2.loop_forever());
    let mut conn = broker.accept(T);
    conn.read_packet(T);
    conn.send(&s::connack(false, 5));
    let mut conn = broker.accept(T);
    conn.read_packet(T);
    conn.send(&s::connack(false, 0));
    conn.expect_packet(&s::disconnect(), T);
    forever.join().unwrap().unwrap();
    drop(ev);
}

/// A thread that publishes 1 KiB QoS 0 messages until `stop` or an error; reports each
/// published count and, at the end, how it ended. 40 MB do not fit into the loopback
/// socket buffers plus 64 KiB, so against a broker that does not read it ends up blocked.
struct Flood {
    stop: Arc<std::sync::atomic::AtomicBool>,
    ended: Events<std::result::Result<u32, String>>,
    thread: std::thread::JoinHandle<()>,
}

const FLOOD_N: u32 = 40_000;

fn flood(c: &Client) -> Flood {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let ended = Events::new();
    let (c, st, tx) = (c.clone(), stop.clone(), ended.sender());
    let thread = std::thread::spawn(move || {
        let mut payload = vec![0x5a; 1024];
        for i in 0..FLOOD_N {
            if st.load(Ordering::SeqCst) {
                let _ = tx.send(Ok(i));
                return;
            }
            payload[..4].copy_from_slice(&i.to_be_bytes());
            if let Err(e) = c.publish("flood", &payload[..], QoS::AtMostOnce, false) {
                let _ = tx.send(Err(format!("{e:?}")));
                return;
            }
        }
        let _ = tx.send(Ok(FLOOD_N));
    });
    Flood {
        stop,
        ended,
        thread,
    }
}

fn flooded_client(id: &str) -> (ScriptedBroker, Client, Events<Ev>, ScriptedConn, Flood) {
    let broker = ScriptedBroker::bind();
    let c = v311(id);
    let ev = hook(&c);
    c.max_outgoing_bytes_set(64 * 1024).unwrap();
    let t00 = Instant::now();
    c.on_log(move |_c, _l, m| {
        if !m.contains("Received PUBLISH") && !m.contains("Sending PUBACK") {
            eprintln!("LOG {:?} {m}", t00.elapsed());
        }
    });
    let conn = start(&broker, &c, &ev, 60);
    let f = flood(&c);
    // The broker reads nothing: the publisher is held.
    f.ended.assert_none_within(Duration::from_millis(500));
    (broker, c, ev, conn, f)
}

/// A publisher held by backpressure writes what the socket takes itself: when the loop
/// thread is inside a callback that waits for the publisher, the flood still goes through
/// as soon as the broker reads, whole and in order.
#[test]
fn a_held_publisher_writes_itself_while_the_loop_thread_waits_in_a_callback() {
    let broker = ScriptedBroker::bind();
    let c = v311("heldwrite");
    let ev = hook(&c);
    c.max_outgoing_bytes_set(64 * 1024).unwrap();
    let t00 = Instant::now();
    c.on_log(move |_c, _l, m| {
        if !m.contains("Received PUBLISH") && !m.contains("Sending PUBACK") {
            eprintln!("LOG {:?} {m}", t00.elapsed());
        }
    });
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let in_callback: Events<()> = Events::new();
    let tx = in_callback.sender();
    c.on_message(move |_, _| {
        let _ = tx.send(());
        // The application waits for its publisher (within a bound, for the test's sake).
        let _ = release_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(30));
    });
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::publish("wait", b"", 0, 0, false, false));
    in_callback.wait(T);
    let f = flood(&c);
    f.ended.assert_none_within(Duration::from_millis(500));
    // The broker reads: the held publisher gets through on its own, although the loop thread
    // stays in the callback until the publisher is done (then the loop thread writes what a
    // burst left behind).
    let mut ended = None;
    for i in 0..FLOOD_N {
        if ended.is_none() {
            ended = f.ended.try_recv();
            if ended.is_some() {
                release_tx.send(()).unwrap();
            }
        }
        let p = conn.read_packet(T);
        let at = s::body_offset(&p) + 2 + "flood".len();
        assert_eq!(
            p[at..at + 4],
            i.to_be_bytes(),
            "message {i} lost or out of order"
        );
    }
    let ended = ended.or_else(|| f.ended.try_recv());
    assert_eq!(ended, Some(Ok(FLOOD_N)), "the publisher finished");
    f.thread.join().unwrap();
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
}

/// loop_stop() releases a publisher held by backpressure (nothing drains any more, so
/// publish no longer waits).
#[test]
fn loop_stop_releases_a_held_publisher() {
    use std::sync::atomic::Ordering;
    let (_broker, c, _ev, _conn, f) = flooded_client("heldstop");
    f.stop.store(true, Ordering::SeqCst);
    c.loop_stop().unwrap();
    assert!(f.ended.wait(T).is_ok());
    f.thread.join().unwrap();
}

/// disconnect() releases a publisher held by backpressure.
#[test]
fn disconnect_releases_a_held_publisher() {
    let (_broker, c, _ev, _conn, f) = flooded_client("helddisc");
    let _ = c.disconnect();
    assert!(
        f.ended.wait(T).is_err(),
        "QoS 0 publish after disconnect() fails"
    );
    f.thread.join().unwrap();
    c.loop_stop().unwrap();
}

/// A lost connection releases a publisher held by backpressure.
#[test]
fn a_lost_connection_releases_a_held_publisher() {
    let (_broker, c, _ev, conn, f) = flooded_client("heldlost");
    conn.close();
    assert!(
        f.ended.wait(T).is_err(),
        "QoS 0 publish without a connection fails"
    );
    f.thread.join().unwrap();
    c.loop_stop().unwrap();
}

/// With the default max_queued_messages (0: unlimited) and a loop thread draining, more
/// QoS 1 messages than there are packet ids can be published from many threads at once:
/// publish waits for a free id instead of failing with QueueSize.
#[test]
fn unlimited_queue_is_not_limited_by_packet_ids() {
    const THREADS: usize = 8;
    const EACH: usize = 9_000;
    let broker = Mosquitto::start();
    let c = client(Protocol::V311, "manyids");
    let p = Probe::attach(&c);
    c.max_inflight_messages_set(100).unwrap();
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                let mut infos = Vec::with_capacity(EACH);
                for i in 0..EACH {
                    match c.publish("ids", format!("{t}-{i}"), QoS::AtLeastOnce, false) {
                        Ok(info) => infos.push(info),
                        Err(e) => return Err(format!("publish {t}-{i}: {e:?}")),
                    }
                }
                Ok(infos)
            })
        })
        .collect();
    let mut total = 0;
    for th in threads {
        let infos = th.join().unwrap().unwrap();
        for info in infos {
            info.wait_for_publish(Some(Duration::from_secs(60)))
                .unwrap();
            total += 1;
        }
    }
    assert_eq!(total, THREADS * EACH);
    finish(&c);
}

// ----- one deadline for a connection attempt (defect 8)

use support::drip::Drip;

/// Runs `connect` on a thread and returns what it returned and how long it took; panics if
/// it does not return within `within`.
fn timed_connect(
    within: Duration,
    connect: impl FnOnce() -> mqtt_sync::Result<()> + Send + 'static,
) -> (mqtt_sync::Result<()>, Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let start = Instant::now();
        let r = connect();
        let _ = tx.send((r, start.elapsed()));
    });
    rx.recv_timeout(within)
        .unwrap_or_else(|_| panic!("connect did not return within {within:?}"))
}

fn via_http_proxy(c: &Client, port: u16) {
    c.proxy_set(mqtt_sync::ProxyOptions {
        proxy_type: mqtt_sync::ProxyType::Http,
        addr: HOST.into(),
        port,
        ..Default::default()
    })
    .unwrap();
}

/// An HTTP CONNECT proxy that answers one byte every 100 ms cannot hold connect() past the
/// connect timeout (each read's timeout restarted at every byte before).
#[test]
fn a_dripping_http_proxy_cannot_hold_connect() {
    let proxy = Drip::start(b"HTTP/1.1 200 OK\r\nX-Slow: ", b'a');
    let c = v311("dripproxy");
    c.connect_timeout_set(Duration::from_secs(1)).unwrap();
    via_http_proxy(&c, proxy.port);
    let (r, took) = timed_connect(T, move || c.connect("broker.invalid", 1883, 60));
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// A TLS server whose handshake drips cannot hold connect() past the connect timeout.
/// Once per TLS backend built (`with_native_tls::`, `with_rustls::`).
#[cfg(any(feature = "tls", feature = "rustls"))]
fn a_dripping_tls_handshake_cannot_hold_connect(backend: mqtt_sync::TlsBackend) {
    // A handshake record announcing 16 KiB, then one byte at a time.
    let server = Drip::start(&[0x16, 0x03, 0x03, 0x40, 0x00], 0);
    let c = v311("driptls");
    c.connect_timeout_set(Duration::from_secs(1)).unwrap();
    c.tls_set_with(mqtt_sync::TlsOptions {
        backend,
        ..Default::default()
    })
    .unwrap();
    let (r, took) = timed_connect(T, move || c.connect(HOST, server.port, 60));
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// A WebSocket endpoint whose upgrade answer drips cannot hold connect() past the connect
/// timeout.
#[cfg(feature = "websockets")]
#[test]
fn a_dripping_websocket_upgrade_cannot_hold_connect() {
    let server = Drip::start(b"HTTP/1.1 101 Switching Protocols\r\nX-Slow: ", b'a');
    let c = Client::builder()
        .client_id("dripws")
        .transport(mqtt_sync::Transport::WebSockets)
        .build()
        .unwrap();
    c.connect_timeout_set(Duration::from_secs(1)).unwrap();
    let (r, took) = timed_connect(T, move || c.connect(HOST, server.port, 60));
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// disconnect() from another thread stops a connect() in progress at once.
#[test]
fn disconnect_stops_a_connect_in_progress() {
    let proxy = Drip::start(b"HTTP/1.1 200 OK\r\nX-Slow: ", b'a');
    let c = v311("dripdisc");
    c.connect_timeout_set(Duration::from_secs(60)).unwrap();
    via_http_proxy(&c, proxy.port);
    let c2 = c.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(c2.connect("broker.invalid", 1883, 60));
    });
    proxy.accepted.recv_timeout(T).unwrap();
    let _ = c.disconnect();
    let r = rx
        .recv_timeout(T)
        .expect("connect() still blocked after disconnect()");
    assert!(r.is_err(), "{r:?}");
}

/// loop_stop() stops the loop thread's connection attempt instead of waiting for it.
#[test]
fn loop_stop_stops_the_loop_threads_attempt() {
    let proxy = Drip::start(b"HTTP/1.1 200 OK\r\nX-Slow: ", b'a');
    let c = v311("dripstop");
    c.connect_timeout_set(Duration::from_secs(60)).unwrap();
    via_http_proxy(&c, proxy.port);
    c.connect_async("broker.invalid", 1883, 60).unwrap();
    c.loop_start().unwrap();
    proxy.accepted.recv_timeout(T).unwrap();
    let (r, _) = timed_connect(T, move || c.loop_stop());
    r.unwrap();
}

/// After the last handle is dropped, an attempt the loop thread is making ends by its
/// deadline (the loop thread holds the client while it connects): the socket is closed.
#[test]
fn an_attempt_of_a_dropped_client_ends_by_its_deadline() {
    let proxy = Drip::start(b"HTTP/1.1 200 OK\r\nX-Slow: ", b'a');
    let c = v311("dripdrop");
    c.connect_timeout_set(Duration::from_secs(1)).unwrap();
    via_http_proxy(&c, proxy.port);
    c.connect_async("broker.invalid", 1883, 60).unwrap();
    c.loop_start().unwrap();
    proxy.accepted.recv_timeout(T).unwrap();
    drop(c);
    proxy
        .closed
        .recv_timeout(T)
        .expect("the attempt still holds its socket");
}

/// Defect 13: mosquitto with its default configuration (Nagle on) holds the echo of the next
/// PUBLISH until its PUBACK of the previous one is acknowledged by TCP; the client's kernel
/// delayed that ACK by 40 ms because the client had nothing to send back. Round trips
/// publish -> own on_message at QoS 1 must not stall (before the fix a quarter of them took
/// 40-50 ms).
#[test]
fn qos1_round_trips_do_not_stall_against_a_broker_with_nagle_on() {
    let b = Mosquitto::start();
    assert!(
        !b.config_text().contains("set_tcp_nodelay"),
        "the broker must run with mosquitto's default (Nagle on)"
    );
    let c = Client::new("nagle-rtt");
    let (tx, rx) = std::sync::mpsc::channel::<Instant>();
    let (stx, srx) = std::sync::mpsc::channel::<()>();
    c.on_subscribe(move |_c, _m, _r, _p| {
        let _ = stx.send(());
    });
    c.on_message(move |_c, _m| {
        let _ = tx.send(Instant::now());
    });
    c.connect(b.host(), b.port(), 60).unwrap();
    c.loop_start().unwrap();
    c.subscribe("nagle/rtt", QoS::AtLeastOnce).unwrap();
    srx.recv_timeout(T).expect("SUBACK");
    let n = 500;
    let mut stalls = 0;
    let mut worst = Duration::ZERO;
    for _ in 0..n {
        let t = Instant::now();
        c.publish("nagle/rtt", &b"x"[..], QoS::AtLeastOnce, false)
            .unwrap();
        let got = rx.recv_timeout(T).expect("echo");
        let rtt = got - t;
        worst = worst.max(rtt);
        // A delayed ACK is 40 ms; scheduling noise on a busy machine is rarely that long.
        if rtt >= Duration::from_millis(35) {
            stalls += 1;
        }
    }
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
    assert!(
        stalls <= n / 50,
        "{stalls} of {n} round trips took 35 ms or more (worst {worst:?})"
    );
}

// ----- Defect 7: memory a broker can make the client hold is bounded

fn connect_v5_with(broker: &ScriptedBroker, c: &Client, props: Properties) {
    let mut o = ConnectOptions::new(HOST);
    o.port = broker.port();
    o.keepalive = 60;
    o.properties = Some(props);
    c.connect_with(o).unwrap();
    c.loop_start().unwrap();
}

/// More unacknowledged QoS 1/2 messages than the Receive Maximum the client announced: the
/// client answers DISCONNECT 0x93 (Receive Maximum exceeded) and closes.
#[test]
fn more_messages_than_our_receive_maximum_get_disconnect_0x93() {
    let broker = ScriptedBroker::bind();
    let c = v5("rxmax");
    let ev = hook(&c);
    connect_v5_with(
        &broker,
        &c,
        Properties {
            receive_maximum: Some(3),
            ..Default::default()
        },
    );
    let (mut conn, _) = accept_connack(&broker, &ev, &s::connack_v5(false, 0, &[]));
    for mid in 1..=3u16 {
        conn.send(&s::publish_v5("rx/t", b"x", 2, mid, false, false, &[]));
        conn.expect_packet(&s::pubrec(mid), T);
    }
    conn.send(&s::publish_v5("rx/t", b"x", 2, 4, false, false, &[]));
    let d = conn.read_packet(T);
    assert_eq!(d[0], 0xE0, "DISCONNECT expected, got {}", hex(&d));
    assert_eq!(
        d.get(2),
        Some(&0x93),
        "reason 0x93 expected, got {}",
        hex(&d)
    );
    conn.expect_closed(T);
    let e = ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    assert!(matches!(e, Ev::Disconnect { rc, .. } if rc != 0), "{e:?}");
    c.loop_stop().unwrap();
}

/// QoS 2 messages the broker never releases (no PUBREL) are held for exactly-once delivery;
/// past 64 MiB of them the connection is closed instead of growing (MQTT 3.1.1, where no
/// Receive Maximum exists).
#[test]
fn unreleased_qos2_messages_are_bounded() {
    let broker = ScriptedBroker::bind();
    let c = v311("q2bound");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let payload = vec![0x55u8; 1 << 20];
    let mut writer = conn.stream().try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        for mid in 1..=80u16 {
            let p = s::publish("q2/t", &payload, 2, mid, false, false);
            if writer.write_all(&p).is_err() {
                return;
            }
        }
    });
    let mut pubrecs = 0;
    loop {
        match conn.try_read_packet(T) {
            Ok(p) if p[0] == 0x50 => pubrecs += 1,
            Ok(p) => panic!("unexpected packet {}", hex(&p)),
            Err(support::scripted::ReadError::Closed { .. }) => break,
            Err(e) => panic!("the client neither acknowledged nor closed: {e:?}"),
        }
    }
    assert!(
        (60..=64).contains(&pubrecs),
        "{pubrecs} PUBRECs before the close (64 MiB hold 64 of the 1 MiB messages)"
    );
    let e = ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    assert!(matches!(e, Ev::Disconnect { rc, .. } if rc != 0), "{e:?}");
    c.loop_stop().unwrap();
    let _ = sender.join();
}

/// `max_incoming_packet_size_set` is announced as Maximum Packet Size in the MQTT 5 CONNECT
/// (so the broker drops a larger message instead of sending it after every reconnect); without
/// the setter the CONNECT carries no such property.
#[test]
fn max_incoming_packet_size_is_announced_in_the_v5_connect() {
    for set in [true, false] {
        let broker = ScriptedBroker::bind();
        let c = v5("maxpkt");
        let ev = hook(&c);
        if set {
            c.max_incoming_packet_size_set(1000).unwrap();
        }
        c.connect(HOST, broker.port(), 60).unwrap();
        c.loop_start().unwrap();
        let (_conn, connect) = accept_connack(&broker, &ev, &s::connack_v5(false, 0, &[]));
        let announced = connect
            .windows(5)
            .any(|w| w == [0x27, 0x00, 0x00, 0x03, 0xE8]);
        assert_eq!(announced, set, "CONNECT {}", hex(&connect));
        c.disconnect().unwrap();
        c.loop_stop().unwrap();
    }
}

/// The default incoming limit is 16 MiB, not MQTT's 256 MiB: a header announcing more closes
/// the connection before anything is buffered.
#[test]
fn the_default_incoming_limit_refuses_a_packet_over_16_mib() {
    assert_eq!(mqtt_sync::DEFAULT_MAX_INCOMING_PACKET, 16 << 20);
    let broker = ScriptedBroker::bind();
    let c = v311("deflimit");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    // PUBLISH QoS 0 whose remaining length is 16 MiB + 1: 0x30, varint 0x01 0x80 0x80 0x08.
    let mut head = vec![0x30];
    encode_varint((16 << 20) + 1, &mut head);
    head.extend_from_slice(&mqtt_str("big"));
    conn.send(&head);
    conn.expect_closed(T);
    let e = ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    assert!(matches!(e, Ev::Disconnect { rc, .. } if rc != 0), "{e:?}");
    c.loop_stop().unwrap();
}

/// A packet whose decoded form would be many times its wire size (50,000 empty user
/// properties: 250 KB on the wire, 2.4 MB decoded) is refused as malformed (0x81).
#[test]
fn a_packet_that_inflates_when_decoded_is_refused() {
    let broker = ScriptedBroker::bind();
    let c = v5("inflate");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    let mut props = Vec::with_capacity(250_000);
    for _ in 0..50_000 {
        props.extend_from_slice(&[0x26, 0, 0, 0, 0]);
    }
    conn.send(&s::publish_v5("inf/t", b"x", 0, 0, false, false, &props));
    let d = conn.read_packet(T);
    assert_eq!(d[0], 0xE0, "DISCONNECT expected, got {}", hex(&d));
    assert_eq!(
        d.get(2),
        Some(&0x81),
        "reason 0x81 expected, got {}",
        hex(&d)
    );
    conn.expect_closed(T);
    c.loop_stop().unwrap();
}

/// A broker that never reads while it keeps sending (QoS 1 messages, so the client owes
/// PUBACKs, and PINGRESPs so the keepalive looks satisfied) cannot make the client queue
/// acknowledgements without bound: the client stops reading once its output is full and
/// closes the connection after a keepalive without progress.
#[test]
fn a_broker_that_never_reads_is_cut_off_after_the_keepalive() {
    let broker = ScriptedBroker::bind();
    let c = v311("noread");
    c.max_outgoing_bytes_set(64 * 1024).unwrap();
    // Only on_disconnect: recording every message would slow the client down and keep the
    // kernel buffers busy for long.
    let (dtx, drx) = std::sync::mpsc::channel();
    c.on_disconnect(move |_c, _f, rc, _p| {
        let _ = dtx.send(rc.value());
    });
    let (ctx, crx) = std::sync::mpsc::channel();
    c.on_connect(move |_c, _f, rc, _p| {
        let _ = ctx.send(rc.value());
    });
    c.connect(HOST, broker.port(), 2).unwrap();
    c.loop_start().unwrap();
    let mut conn = broker.accept(T);
    let _connect = conn.read_packet(T);
    conn.send(&s::connack(false, 0));
    assert_eq!(crx.recv_timeout(T).unwrap(), 0);
    // Small kernel buffers on both sides: the client's output soon waits in the client.
    socket2::SockRef::from(conn.stream())
        .set_recv_buffer_size(4096)
        .unwrap();
    let fd = c.socket().expect("socket");
    // SAFETY: the client's socket stays open while it is connected (this test's lifetime).
    let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    socket2::SockRef::from(&bfd)
        .set_send_buffer_size(4096)
        .unwrap();
    let mut writer = conn.stream().try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        let mut mid = 0u16;
        let mut sent = 0usize;
        let mut last_ping = Instant::now();
        // Whole packets only: a partial write's rest goes first next time.
        let mut batch: Vec<u8> = Vec::new();
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            if batch.is_empty() {
                for _ in 0..256 {
                    mid = mid % 65535 + 1;
                    batch.extend_from_slice(&s::publish("nr/t", b"", 1, mid, false, false));
                }
                if last_ping.elapsed() > Duration::from_millis(300) {
                    batch.extend_from_slice(&s::pingresp());
                    last_ping = Instant::now();
                }
            }
            match writer.write(&batch) {
                Ok(n) => {
                    sent += n;
                    batch.drain(..n);
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
        sent
    });
    // Cut off within a few keepalives (2 s), not kept for ever.
    let rc = drx
        .recv_timeout(Duration::from_secs(15))
        .expect("the connection was not closed");
    assert_eq!(rc, ReasonCode::KEEP_ALIVE_TIMEOUT.value());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = sender.join().unwrap();
    // The client stopped reading: the broker could not push an unbounded stream into it.
    assert!(sent < 256 << 20, "the broker wrote {sent} bytes");
    c.loop_stop().unwrap();
}

#[cfg(any(feature = "tls", feature = "rustls"))]
per_tls_backend!(a_dripping_tls_handshake_cannot_hold_connect);
