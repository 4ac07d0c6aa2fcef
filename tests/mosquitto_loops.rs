#[macro_use]
mod support;

// Every loop style against a real mosquitto: loop_once on the test thread, loop_start /
// loop_stop, loop_forever on a spawned thread, an external loop (socket, want_write,
// loop_read, loop_write, loop_misc), connect_async, and loop_start before connect.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use mqtt_sync::{Client, Error, Protocol, QoS, ReasonCode};
use support::{wait_until, Events, Mosquitto, T};

use support::broker_client::{client, finish, started, sub, tag, Probe};

/// Runs `loop_once` on this thread until `cond` holds (or panics after T).
#[track_caller]
fn pump_once(c: &Client, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {T:?} of loop_once"
        );
        let _ = c.loop_once(Duration::from_millis(20));
    }
}

/// Drives the client as an external event loop would: loop_read, loop_write when
/// want_write(), loop_misc, until `cond` holds. No poller is available without libc, so
/// it spins (yielding) until a deadline.
#[track_caller]
fn pump_external(c: &Client, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {T:?} of the external loop"
        );
        if c.socket().is_some() {
            let _ = c.loop_read();
            if c.want_write() {
                let _ = c.loop_write();
            }
            let _ = c.loop_misc();
        }
        std::thread::yield_now();
    }
}

/// Pub/sub at every QoS on a client whose loop runs elsewhere (loop_start/loop_forever).
#[track_caller]
fn exchange_threaded(c: &Client, p: &Probe, topic: &str) {
    sub(c, p, topic, QoS::ExactlyOnce);
    for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let payload = format!("{topic}-{}", q as u8);
        let info = c.publish(topic, &payload, q, false).unwrap();
        info.wait_for_publish(Some(T)).unwrap();
        let m = p.msg();
        assert_eq!(
            (m.topic(), m.payload(), m.qos()),
            (topic, payload.as_bytes(), q)
        );
        let (mid, _) = p.pubs.wait(T);
        assert_eq!(mid, info.mid());
    }
}

/// Pub/sub at every QoS on a client driven by `pump` from this thread.
#[track_caller]
fn exchange_pumped(
    c: &Client,
    p: &Probe,
    topic: &str,
    pump: fn(&Client, &str, &mut dyn FnMut() -> bool),
) {
    let mid = c.subscribe(topic, QoS::ExactlyOnce).unwrap();
    let mut granted = None;
    pump(c, "SUBACK", &mut || {
        if let Some((m, rcs)) = p.subs.try_recv() {
            assert_eq!(m, mid);
            granted = Some(rcs);
        }
        granted.is_some()
    });
    assert_eq!(granted.unwrap(), vec![ReasonCode::GRANTED_QOS_2]);
    for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let payload = format!("{topic}-{}", q as u8);
        let info = c.publish(topic, &payload, q, false).unwrap();
        let mut got = None;
        let mut acked = None;
        pump(c, "publish round trip", &mut || {
            if got.is_none() {
                got = p.msgs.try_recv();
            }
            if acked.is_none() {
                acked = p.pubs.try_recv();
            }
            got.is_some() && acked.is_some() && info.is_published()
        });
        let m = got.unwrap();
        assert_eq!(
            (m.topic(), m.payload(), m.qos()),
            (topic, payload.as_bytes(), q)
        );
        assert_eq!(acked.unwrap().0, info.mid());
        // Already published: returns at once even though nobody runs the loop now.
        info.wait_for_publish(Some(Duration::from_millis(1)))
            .unwrap();
    }
}

fn pump_once_dyn(c: &Client, what: &str, cond: &mut dyn FnMut() -> bool) {
    pump_once(c, what, cond)
}

fn pump_external_dyn(c: &Client, what: &str, cond: &mut dyn FnMut() -> bool) {
    pump_external(c, what, cond)
}

// loop_once -------------------------------------------------------------------------------

fn loop_once_on_test_thread(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let c = client(proto, &format!("lo-{t}"));
    let p = Probe::attach(&c);
    assert!(matches!(
        c.loop_once(Duration::from_millis(1)),
        Err(Error::NoConnection)
    ));
    c.connect(broker.host(), broker.port(), 60).unwrap();
    let mut conn = None;
    pump_once(&c, "CONNACK", || {
        conn = conn.take().or_else(|| p.conn.try_recv());
        conn.is_some()
    });
    assert_eq!(conn.unwrap().1, ReasonCode::SUCCESS);
    assert!(c.is_connected());
    exchange_pumped(&c, &p, &format!("lo/{t}"), pump_once_dyn);
    c.disconnect().unwrap();
    let mut disc = None;
    pump_once(&c, "on_disconnect", || {
        disc = disc.take().or_else(|| p.disc.try_recv());
        disc.is_some()
    });
    assert_eq!(disc.unwrap().1, ReasonCode::SUCCESS);
    assert!(!c.is_connected());
    assert!(matches!(
        c.loop_once(Duration::from_millis(1)),
        Err(Error::NoConnection)
    ));
}
per_protocol!(loop_once_on_test_thread);

/// loop_once performs a pending connect_async.
fn loop_once_with_connect_async(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let c = client(proto, &format!("loa-{t}"));
    let p = Probe::attach(&c);
    c.connect_async(broker.host(), broker.port(), 60).unwrap();
    let mut conn = None;
    pump_once(&c, "CONNACK after connect_async", || {
        conn = conn.take().or_else(|| p.conn.try_recv());
        conn.is_some()
    });
    assert_eq!(conn.unwrap().1, ReasonCode::SUCCESS);
    exchange_pumped(&c, &p, &format!("loa/{t}"), pump_once_dyn);
    c.disconnect().unwrap();
}
per_protocol!(loop_once_with_connect_async);

// loop_start / loop_stop --------------------------------------------------------------------

fn loop_start_and_stop(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let (watcher, wp) = started(&broker, proto, &format!("lsw-{t}"));
    sub(&watcher, &wp, &format!("ls/{t}/q/#"), QoS::ExactlyOnce);

    let (c, p) = started(&broker, proto, &format!("ls-{t}"));
    assert!(
        matches!(c.loop_start(), Err(Error::InvalidState(_))),
        "second loop_start"
    );
    exchange_threaded(&c, &p, &format!("ls/{t}/self"));
    // publish then loop_stop at once: loop_stop writes and waits for the acks.
    let i1 = c
        .publish(&format!("ls/{t}/q/1"), "q1", QoS::AtLeastOnce, false)
        .unwrap();
    let i2 = c
        .publish(&format!("ls/{t}/q/2"), "q2", QoS::ExactlyOnce, false)
        .unwrap();
    c.loop_stop().unwrap();
    assert!(
        i1.is_published(),
        "QoS 1 acknowledged before loop_stop returns"
    );
    assert!(
        i2.is_published(),
        "QoS 2 completed before loop_stop returns"
    );
    let mut got: Vec<Vec<u8>> = (0..2).map(|_| wp.msg().payload().to_vec()).collect();
    got.sort();
    assert_eq!(got, vec![b"q1".to_vec(), b"q2".to_vec()]);
    // loop_stop does not disconnect.
    assert!(p.disc.try_recv().is_none());
    assert!(c.is_connected(), "loop_stop must not disconnect");
    // A second loop_stop is refused; the loop can be started again.
    assert!(c.loop_stop().is_err());
    c.loop_start().unwrap();
    c.publish(&format!("ls/{t}/q/again"), "again", QoS::AtLeastOnce, false)
        .unwrap()
        .wait_for_publish(Some(T))
        .unwrap();
    assert_eq!(wp.msg().payload(), b"again");
    finish(&c);
    finish(&watcher);
}
per_protocol!(loop_start_and_stop);

fn connect_async_then_loop_start(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let c = client(proto, &format!("cal-{t}"));
    let p = Probe::attach(&c);
    c.connect_async(broker.host(), broker.port(), 60).unwrap();
    assert!(!c.is_connected());
    c.loop_start().unwrap();
    p.connected();
    assert!(c.is_connected());
    exchange_threaded(&c, &p, &format!("cal/{t}"));
    finish(&c);
}
per_protocol!(connect_async_then_loop_start);

fn loop_start_then_connect(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let c = client(proto, &format!("lsc-{t}"));
    let p = Probe::attach(&c);
    c.loop_start().unwrap();
    c.connect(broker.host(), broker.port(), 60).unwrap();
    p.connected();
    exchange_threaded(&c, &p, &format!("lsc/{t}"));
    finish(&c);
}
// Racy while the bug below exists (passes when connect wins the race with the thread).
mod loop_start_then_connect {
    use super::*;
    #[test]

    fn v31() {
        super::loop_start_then_connect(Protocol::V31)
    }
    #[test]

    fn v311() {
        super::loop_start_then_connect(Protocol::V311)
    }
    #[test]

    fn v5() {
        super::loop_start_then_connect(Protocol::V5)
    }
}

/// With loop_start first, connect_async connects at once: the reconnect delay is set long
/// here so a backoff would show as a timeout.
fn loop_start_then_connect_async(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let c = client(proto, &format!("lsa-{t}"));
    c.reconnect_delay_set(Duration::from_secs(30), Duration::from_secs(60))
        .unwrap();
    let p = Probe::attach(&c);
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let l2 = log.clone();
    c.on_log(move |_, lvl, line| l2.lock().unwrap().push(format!("{lvl:?} {line}")));
    let fails: Events<String> = Events::new();
    let ftx = fails.sender();
    c.on_connect_fail(move |_, e| {
        let _ = ftx.send(e.to_string());
    });
    c.loop_start().unwrap();
    c.connect_async(broker.host(), broker.port(), 60).unwrap();
    if p.conn.recv_timeout(T).is_none() {
        panic!(
            "no CONNACK within {T:?}; connect failures: {:?}; client log:\n{}\nbroker log:\n{}",
            fails.drain(),
            log.lock().unwrap().join("\n"),
            broker.log()
        );
    }
    exchange_threaded(&c, &p, &format!("lsa/{t}"));
    finish(&c);
}
mod loop_start_then_connect_async {
    use super::*;
    #[test]

    fn v31() {
        super::loop_start_then_connect_async(Protocol::V31)
    }
    #[test]

    fn v311() {
        super::loop_start_then_connect_async(Protocol::V311)
    }
    #[test]

    fn v5() {
        super::loop_start_then_connect_async(Protocol::V5)
    }
}

/// loop_start, then the application connects a little later (the loop thread has surely
/// reached its idle state by then): connect_async / connect must still work.
fn loop_start_idle_then_connect(proto: Protocol, asynchronous: bool) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let c = client(proto, &format!("lsi-{t}-{}", u8::from(asynchronous)));
    let p = Probe::attach(&c);
    c.loop_start().unwrap();
    // An absence check that also gives the loop thread time to run its first passes.
    p.conn.assert_none_within(Duration::from_millis(200));
    if asynchronous {
        c.connect_async(broker.host(), broker.port(), 60).unwrap();
    } else {
        c.connect(broker.host(), broker.port(), 60).unwrap();
    }
    p.connected();
    exchange_threaded(&c, &p, &format!("lsi/{t}"));
    finish(&c);
}

#[test]

fn loop_start_idle_then_connect_async_v311() {
    loop_start_idle_then_connect(Protocol::V311, true)
}

#[test]

fn loop_start_idle_then_connect_async_v5() {
    loop_start_idle_then_connect(Protocol::V5, true)
}

#[test]

fn loop_start_idle_then_connect_v311() {
    loop_start_idle_then_connect(Protocol::V311, false)
}

// loop_forever ------------------------------------------------------------------------------

fn loop_forever_on_thread(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let c = client(proto, &format!("lf-{t}"));
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60).unwrap();
    let runner = c.clone();
    let th = std::thread::spawn(move || runner.loop_forever());
    p.connected();
    assert!(matches!(
        c.loop_once(Duration::from_millis(1)),
        Err(Error::InvalidState(_))
    ));
    exchange_threaded(&c, &p, &format!("lf/{t}"));
    c.disconnect().unwrap();
    p.disconnected_cleanly();
    wait_until(T, || th.is_finished());
    th.join()
        .unwrap()
        .expect("loop_forever returns Ok after disconnect()");
}
per_protocol!(loop_forever_on_thread);

/// loop_forever with connect_async and a callback-driven flow: on_connect subscribes,
/// on_message publishes the reply and disconnects when it sees "stop".
fn loop_forever_callback_driven(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let (peer, pp) = started(&broker, proto, &format!("lfp-{t}"));
    sub(&peer, &pp, &format!("lfc/{t}/out"), QoS::AtLeastOnce);

    let c = client(proto, &format!("lfc-{t}"));
    let subscribed: Events<u16> = Events::new();
    let tx = subscribed.sender();
    let topic_in = format!("lfc/{t}/in");
    let topic_out = format!("lfc/{t}/out");
    c.on_connect(move |c, _, rc, _| {
        assert_eq!(rc, ReasonCode::SUCCESS);
        c.subscribe(&topic_in, QoS::AtLeastOnce).unwrap();
    });
    c.on_subscribe(move |_, mid, _, _| {
        let _ = tx.send(mid);
    });
    let waits: Events<bool> = Events::new();
    let wtx = waits.sender();
    c.on_message(move |c, m| {
        if m.payload() == b"stop" {
            c.disconnect().unwrap();
        } else {
            let mut reply = b"re:".to_vec();
            reply.extend_from_slice(m.payload());
            let info = c
                .publish(&topic_out, reply, QoS::AtLeastOnce, false)
                .unwrap();
            // Waiting on the network thread itself is refused instead of hanging (a panic
            // here would be caught by the client, so the result goes to the test thread).
            let r = info.wait_for_publish(Some(Duration::from_secs(1)));
            let _ = wtx.send(matches!(r, Err(Error::InvalidState(_))));
        }
    });
    c.connect_async(broker.host(), broker.port(), 60).unwrap();
    let runner = c.clone();
    let th = std::thread::spawn(move || runner.loop_forever());
    subscribed.wait(T);
    for i in 0..5 {
        peer.publish(
            &format!("lfc/{t}/in"),
            format!("{i}"),
            QoS::AtLeastOnce,
            false,
        )
        .unwrap();
        assert_eq!(pp.msg().payload(), format!("re:{i}").as_bytes());
        assert!(
            waits.wait(T),
            "wait_for_publish inside a callback must be InvalidState"
        );
    }
    peer.publish(&format!("lfc/{t}/in"), "stop", QoS::AtLeastOnce, false)
        .unwrap();
    wait_until(T, || th.is_finished());
    th.join()
        .unwrap()
        .expect("loop_forever ends Ok after disconnect() in a callback");
    finish(&peer);
}
per_protocol!(loop_forever_callback_driven);

// external loop -------------------------------------------------------------------------------

fn external_loop(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let c = client(proto, &format!("ext-{t}"));
    let p = Probe::attach(&c);
    let sock: Events<(&'static str, RawFd)> = Events::new();
    for (name, kind) in [("open", 0), ("close", 1), ("reg", 2), ("unreg", 3)] {
        let tx = sock.sender();
        let f = move |_: &Client, fd: RawFd| {
            let _ = tx.send((name, fd));
        };
        match kind {
            0 => c.on_socket_open(f),
            1 => c.on_socket_close(f),
            2 => c.on_socket_register_write(f),
            _ => c.on_socket_unregister_write(f),
        }
    }
    assert_eq!(c.socket(), None);
    assert!(matches!(c.loop_read(), Err(Error::NoConnection)));
    assert!(matches!(c.loop_write(), Err(Error::NoConnection)));
    assert!(matches!(c.loop_misc(), Err(Error::NoConnection)));
    c.connect(broker.host(), broker.port(), 60).unwrap();
    let fd = c.socket().expect("socket() after connect");
    let (name, open_fd) = sock.wait_for(T, |(n, _)| *n == "open");
    assert_eq!((name, open_fd), ("open", fd));
    let mut conn = None;
    pump_external(&c, "CONNACK", || {
        conn = conn.take().or_else(|| p.conn.try_recv());
        conn.is_some()
    });
    assert_eq!(conn.unwrap().1, ReasonCode::SUCCESS);
    exchange_pumped(&c, &p, &format!("ext/{t}"), pump_external_dyn);

    // A large publish does not fit in one write: want_write() stays true until loop_write
    // has written it all.
    let big = vec![0x5a; 4 * 1024 * 1024];
    let info = c
        .publish(&format!("ext/{t}"), &big, QoS::AtLeastOnce, false)
        .unwrap();
    let mut got = None;
    pump_external(&c, "4 MiB round trip", || {
        got = got.take().or_else(|| p.msgs.try_recv());
        got.is_some() && info.is_published()
    });
    assert_eq!(got.unwrap().payload().len(), big.len());
    assert!(!c.want_write());

    c.disconnect().unwrap();
    pump_external(&c, "socket closed after disconnect", || {
        c.socket().is_none()
    });
    p.disconnected_cleanly();
    let events = sock.drain();
    assert!(
        events.contains(&("close", fd)),
        "on_socket_close: {events:?}"
    );
}
per_protocol!(external_loop);

/// The external loop over TLS, once per TLS backend built: loop_read drains the records TLS
/// has buffered, want_write() stays true while encrypted bytes wait inside the TLS stream.
#[cfg(any(feature = "tls", feature = "rustls"))]
fn external_loop_over_tls(backend: mqtt_sync::TlsBackend) {
    let certs = support::certs::Certs::shared();
    let broker = Mosquitto::builder()
        .tls_listener("tls", certs, false)
        .start();
    let c = client(Protocol::V311, "ext-tls");
    let p = Probe::attach(&c);
    c.tls_set_with(mqtt_sync::TlsOptions {
        ca_certs: Some(certs.ca.clone()),
        backend,
        ..Default::default()
    })
    .unwrap();
    c.connect("localhost", broker.port_of("tls"), 60).unwrap();
    let mut conn = None;
    pump_external(&c, "CONNACK over TLS", || {
        conn = conn.take().or_else(|| p.conn.try_recv());
        conn.is_some()
    });
    assert_eq!(conn.unwrap().1, ReasonCode::SUCCESS);
    exchange_pumped(&c, &p, "ext/tls", pump_external_dyn);

    let big = vec![0xa5; 4 * 1024 * 1024];
    let info = c.publish("ext/tls", &big, QoS::AtLeastOnce, false).unwrap();
    let mut got = None;
    pump_external(&c, "4 MiB round trip over TLS", || {
        got = got.take().or_else(|| p.msgs.try_recv());
        got.is_some() && info.is_published()
    });
    assert_eq!(got.unwrap().payload(), &big[..]);
    assert!(!c.want_write());

    c.disconnect().unwrap();
    pump_external(&c, "socket closed after disconnect", || {
        c.socket().is_none()
    });
    p.disconnected_cleanly();
}
#[cfg(any(feature = "tls", feature = "rustls"))]
per_tls_backend!(external_loop_over_tls);
