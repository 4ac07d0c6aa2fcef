//! Proxies end to end through the public `Client` API, against real proxies on 127.0.0.1:
//! SOCKS5 without authentication (dante) and with username/password (microsocks), HTTP
//! CONNECT with basic authentication (tinyproxy), refusals (`Error::Proxy`), and TLS and
//! WebSockets through a proxy. Each accepted connection subscribes, publishes and receives at
//! QoS 0, 1 and 2 with `loop_start()` and callbacks. The `mqtt_proxy` environment variable is
//! tested in `transport_proxy_env.rs` (its own process: environment variables are
//! process-wide and tests run in parallel).
//!
//! Plain-TCP proxy tests need no feature and run with `--no-default-features`.
//!
//! Ported from the stream-level scratch harness (net-harness `tests/transports.rs`).

mod support;

use std::net::TcpListener;
use std::time::Duration;

use mqtt_sync::{Client, Error, ProxyOptions, ProxyType, QoS, ReasonCode, Transport};
use support::proxies::{Kind, Proxy, ProxySpec};
use support::{Events, Mosquitto, T};

// ---- shared helpers (each test file is its own crate, so they are repeated per file) ----

/// How a connection attempt went, as the callbacks report it (fields are read through
/// `Debug` in assertion messages).
#[derive(Debug)]
#[allow(dead_code)]
enum Conn {
    /// on_connect.
    Up(ReasonCode),
    /// on_connect_fail.
    Fail(String),
    /// on_disconnect.
    Down(ReasonCode),
}

/// A client with its callbacks wired to channels (one per kind, so that waiting for one
/// kind never discards another).
struct Probe {
    client: Client,
    conn: Events<Conn>,
    subs: Events<(u16, Vec<ReasonCode>)>,
    /// (topic, qos, payload) of every message received.
    msgs: Events<(String, QoS, Vec<u8>)>,
}

#[allow(dead_code)] // not every file uses every helper
impl Probe {
    fn new(client: Client) -> Probe {
        let p = Probe {
            client,
            conn: Events::new(),
            subs: Events::new(),
            msgs: Events::new(),
        };
        let tx = p.conn.sender();
        p.client.on_connect(move |_, _, rc, _| {
            let _ = tx.send(Conn::Up(rc));
        });
        let tx = p.conn.sender();
        p.client.on_connect_fail(move |_, e| {
            let _ = tx.send(Conn::Fail(format!("{e:?}")));
        });
        let tx = p.conn.sender();
        p.client.on_disconnect(move |_, _, rc, _| {
            let _ = tx.send(Conn::Down(rc));
        });
        let tx = p.subs.sender();
        p.client.on_subscribe(move |_, mid, rcs, _| {
            let _ = tx.send((mid, rcs.to_vec()));
        });
        let tx = p.msgs.sender();
        p.client.on_message(move |_, m| {
            let _ = tx.send((m.topic().to_string(), m.qos(), m.payload().to_vec()));
        });
        p
    }

    /// A client with `transport` that does not retry on its own (a refusal stays one event).
    fn with(id: &str, transport: Transport) -> Probe {
        Probe::new(
            Client::builder()
                .client_id(id)
                .transport(transport)
                .reconnect_on_failure(false)
                .build()
                .unwrap(),
        )
    }

    fn tcp(id: &str) -> Probe {
        Probe::with(id, Transport::Tcp)
    }

    /// `connect()`, `loop_start()`, then a successful CONNACK; panics otherwise.
    #[track_caller]
    fn connect_ok(&self, host: &str, port: u16) {
        if let Err(e) = self.client.connect(host, port, 60) {
            panic!("connect({host}, {port}) failed: {e:?} / {e}");
        }
        self.client.loop_start().unwrap();
        match self.conn.recv_timeout(T) {
            Some(Conn::Up(rc)) if rc == ReasonCode::SUCCESS => {}
            other => panic!("expected a successful CONNACK from {host}:{port}, got {other:?}"),
        }
    }

    /// The connection must fail: `connect()` returns the error, or (a TLS 1.3 server checks
    /// the client certificate after the client finished its handshake) the connection is
    /// lost before any CONNACK. Returns the callback event in the second case.
    #[track_caller]
    fn connect_refused(&self, host: &str, port: u16) -> Result<Conn, Error> {
        self.client.connect(host, port, 60)?;
        self.client.loop_start().unwrap();
        let ev = self.conn.recv_timeout(T);
        self.client.loop_stop().unwrap();
        match ev {
            Some(Conn::Up(rc)) if !rc.is_failure() => {
                panic!("connection to {host}:{port} accepted, expected a refusal")
            }
            Some(ev) => Ok(ev),
            None => panic!("connection to {host}:{port}: no callback within {T:?}"),
        }
    }

    /// Subscribes to `topic` at QoS 2, then publishes `payload` at each of `qos` and receives
    /// it back at that QoS (through the broker), each within `timeout`.
    #[track_caller]
    fn echo_with(&self, topic: &str, payload: &[u8], qos: &[QoS], timeout: Duration) {
        let mid = self.client.subscribe(topic, QoS::ExactlyOnce).unwrap();
        match self.subs.recv_timeout(T) {
            Some((m, rcs)) => {
                assert_eq!(m, mid, "SUBACK mid");
                assert_eq!(rcs, [ReasonCode::GRANTED_QOS_2], "SUBACK codes");
            }
            None => panic!("no SUBACK within {T:?}"),
        }
        for &q in qos {
            let info = self.client.publish(topic, payload, q, false).unwrap();
            info.wait_for_publish(Some(timeout))
                .unwrap_or_else(|e| panic!("publish at {q:?} not completed: {e}"));
            let Some((t, got_q, got)) = self.msgs.recv_timeout(timeout) else {
                panic!(
                    "message at {q:?} ({} bytes) not received within {timeout:?}",
                    payload.len()
                );
            };
            assert_eq!(t, topic);
            assert_eq!(got_q, q, "delivered QoS");
            assert!(
                got == payload,
                "payload at {q:?} differs: {} bytes back, {} sent",
                got.len(),
                payload.len()
            );
        }
    }

    /// [`Probe::echo_with`] at QoS 0, 1 and 2 with the default timeout.
    #[track_caller]
    fn echo(&self, topic: &str, payload: &[u8]) {
        self.echo_with(
            topic,
            payload,
            &[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce],
            T,
        );
    }

    /// `disconnect()`, the matching on_disconnect, then `loop_stop()`.
    #[track_caller]
    fn close(&self) {
        self.client.disconnect().unwrap();
        match self.conn.recv_timeout(T) {
            Some(Conn::Down(rc)) => assert_eq!(rc, ReasonCode::SUCCESS),
            other => panic!("expected on_disconnect after disconnect(), got {other:?}"),
        }
        self.client.loop_stop().unwrap();
    }
}

// ---------------------------------------------------------------------------------------

fn proxy_options(spec: &ProxySpec, rdns: bool) -> ProxyOptions {
    ProxyOptions {
        proxy_type: match spec.kind {
            Kind::Socks5 => ProxyType::Socks5,
            Kind::Http => ProxyType::Http,
        },
        addr: spec.addr.clone(),
        port: spec.port,
        username: spec.username.clone(),
        password: spec.password.clone(),
        rdns,
    }
}

/// A client with `transport` going through the proxy `spec`.
fn via(id: &str, transport: Transport, spec: &ProxySpec, rdns: bool) -> Probe {
    let p = Probe::with(id, transport);
    p.client.proxy_set(proxy_options(spec, rdns)).unwrap();
    p
}

/// `connect()` through a proxy that must refuse: `Err(Proxy(..))`, returned for checks.
#[track_caller]
fn refused(id: &str, spec: &ProxySpec, host: &str, port: u16) -> String {
    let p = via(id, Transport::Tcp, spec, true);
    match p.client.connect(host, port, 60) {
        Err(Error::Proxy(m)) => {
            assert!(!p.client.is_connected());
            m
        }
        Err(e) => panic!("expected Err(Proxy(..)), got {e:?}"),
        Ok(()) => panic!("connection through {spec:?} accepted, expected a refusal"),
    }
}

#[test]
fn socks5_without_auth_dante() {
    let broker = Mosquitto::start();
    let px = Proxy::dante();
    for rdns in [true, false] {
        let p = via(&format!("dante-{rdns}"), Transport::Tcp, &px.spec, rdns);
        p.connect_ok("localhost", broker.port());
        p.echo(&format!("dante/{rdns}"), b"through dante");
        p.close();
    }
}

#[test]
fn socks5_with_auth_microsocks() {
    let broker = Mosquitto::start();
    let px = Proxy::microsocks(Some(("alice", "s3cret")));
    for rdns in [true, false] {
        let p = via(
            &format!("microsocks-{rdns}"),
            Transport::Tcp,
            &px.spec,
            rdns,
        );
        p.connect_ok("localhost", broker.port());
        p.echo(&format!("microsocks/{rdns}"), b"through microsocks");
        p.close();
    }
    let wrong = px.spec_with_auth(Some(("alice", "wrong")));
    let m = refused("socks-wrong", &wrong, "localhost", broker.port());
    eprintln!("wrong SOCKS5 password: {m}");
    let none = px.spec_with_auth(None);
    let m = refused("socks-none", &none, "localhost", broker.port());
    assert!(m.contains("requires authentication"), "{m}");
}

#[test]
fn socks5_target_refused() {
    let px = Proxy::microsocks(None);
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let m = refused("socks-target", &px.spec, "127.0.0.1", closed);
    eprintln!("closed target behind SOCKS5: {m}");
}

#[test]
fn http_connect_with_basic_auth_tinyproxy() {
    let broker = Mosquitto::start();
    let px = Proxy::tinyproxy(Some(("bob", "pa55")));
    let p = via("tinyproxy", Transport::Tcp, &px.spec, false);
    p.connect_ok("localhost", broker.port());
    p.echo("tinyproxy/echo", b"through tinyproxy");
    p.close();
    let wrong = px.spec_with_auth(Some(("bob", "nope")));
    let m = refused("http-wrong", &wrong, "localhost", broker.port());
    // tinyproxy answers 401 (not 407) to bad credentials.
    assert!(
        m.contains("401") || m.contains("407"),
        "{m}\n{}",
        px.output()
    );
    let none = px.spec_with_auth(None);
    refused("http-none", &none, "localhost", broker.port());
}

#[test]
fn proxy_refusal_and_invalid_options() {
    let px = Proxy::microsocks(Some(("alice", "s3cret")));
    let p = via(
        "proxy-code",
        Transport::Tcp,
        &px.spec_with_auth(Some(("alice", "wrong"))),
        true,
    );
    let e = p.client.connect("localhost", 1, 60).unwrap_err();
    assert!(matches!(e, Error::Proxy(_)), "{e:?}");
    // Bad options are refused by proxy_set itself.
    let c = Client::new("proxy-invalid");
    for bad in [
        ProxyOptions {
            addr: String::new(),
            port: 1080,
            ..Default::default()
        },
        ProxyOptions {
            addr: "127.0.0.1".into(),
            port: 0,
            ..Default::default()
        },
        ProxyOptions {
            addr: "127.0.0.1".into(),
            port: 1080,
            password: Some("no user".into()),
            ..Default::default()
        },
    ] {
        assert!(
            matches!(c.proxy_set(bad.clone()), Err(Error::InvalidArgument(_))),
            "{bad:?}"
        );
    }
}

#[cfg(feature = "tls")]
#[test]
fn tls_through_socks5() {
    let c = support::certs::Certs::shared();
    let broker = Mosquitto::builder().tls_listener("tls", c, false).start();
    let px = Proxy::microsocks(None);
    for rdns in [true, false] {
        let p = via(&format!("tls-socks-{rdns}"), Transport::Tcp, &px.spec, rdns);
        p.client.tls_set(Some(&c.ca), None, None).unwrap();
        // The certificate is checked against the broker's name, not the proxy's.
        p.connect_ok("localhost", broker.port_of("tls"));
        p.echo(&format!("tls/socks/{rdns}"), b"tls in socks");
        p.close();
    }
}

#[cfg(feature = "tls")]
#[test]
fn tls_through_http_connect() {
    let c = support::certs::Certs::shared();
    let broker = Mosquitto::builder().tls_listener("tls", c, false).start();
    let px = Proxy::tinyproxy(Some(("bob", "pa55")));
    let p = via("tls-http", Transport::Tcp, &px.spec, false);
    p.client.tls_set(Some(&c.ca), None, None).unwrap();
    p.connect_ok("localhost", broker.port_of("tls"));
    p.echo("tls/http", b"tls in http connect");
    p.close();
}

/// While alive, publishes a tiny QoS 0 message to an unrelated topic every 1 ms from a
/// thread of its own, so that mosquitto 2.0.11, which writes a large WebSocket message about
/// 4 KiB per turn of its main loop (a turn every ~100 ms when idle), keeps turning.
#[cfg(feature = "websockets")]
struct Nudge {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(feature = "websockets")]
impl Nudge {
    fn start(client: &Client) -> Nudge {
        use std::sync::mpsc;
        let client = client.clone();
        let (stop, rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(Duration::from_millis(1))
            {
                let _ = client.publish("nudge/nobody-listens", "", QoS::AtMostOnce, false);
            }
        });
        Nudge {
            stop,
            thread: Some(thread),
        }
    }
}

#[cfg(feature = "websockets")]
impl Drop for Nudge {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(feature = "websockets")]
#[test]
fn websockets_through_http_proxy() {
    let broker = Mosquitto::builder()
        .listener("ws", &["protocol websockets"])
        .start();
    let px = Proxy::tinyproxy(Some(("bob", "pa55")));
    let p = via("ws-http", Transport::WebSockets, &px.spec, false);
    p.connect_ok("localhost", broker.port_of("ws"));
    // 1 MiB, as the harness: many WebSocket frames each way, through the tunnel. Nudge keeps
    // mosquitto 2.0.11 writing it at full speed (see transport_ws.rs, BIG).
    let big: Vec<u8> = (0..1usize << 20).map(|i| (i * 7 % 253) as u8).collect();
    let _nudge = Nudge::start(&p.client);
    p.echo("ws/http", &big);
    drop(_nudge);
    p.close();
}

#[cfg(feature = "websockets")]
#[test]
fn websockets_through_socks5() {
    let broker = Mosquitto::builder()
        .listener("ws", &["protocol websockets"])
        .start();
    let px = Proxy::dante();
    let p = via("ws-socks", Transport::WebSockets, &px.spec, true);
    p.connect_ok("localhost", broker.port_of("ws"));
    p.echo("ws/socks", b"ws in socks");
    p.close();
}

#[cfg(all(feature = "websockets", feature = "tls"))]
#[test]
fn secure_websockets_through_http_proxy() {
    let c = support::certs::Certs::shared();
    let tls = c.mosquitto_tls(false);
    let mut l: Vec<&str> = tls.lines().collect();
    l.push("protocol websockets");
    let broker = Mosquitto::builder().listener("wss", &l).start();
    let px = Proxy::tinyproxy(Some(("bob", "pa55")));
    let p = via("wss-http", Transport::WebSockets, &px.spec, false);
    p.client.tls_set(Some(&c.ca), None, None).unwrap();
    p.connect_ok("localhost", broker.port_of("wss"));
    p.echo("wss/http", b"wss in http connect");
    p.close();
}
