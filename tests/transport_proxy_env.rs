//! The `mqtt_proxy` / `no_proxy` environment variables (as Paho) end to end through the
//! public `Client` API. Environment variables are process-wide and tests of one binary run
//! in parallel, so this file holds exactly one test, which restores the variables it
//! changes. Needs no feature: runs with `--no-default-features` too.

mod support;

use std::time::Duration;

use mqtt_sync::{Client, Error, ProxyOptions, ProxyType, QoS, ReasonCode, Transport};
use support::proxies::Proxy;
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

const VARS: [&str; 4] = ["mqtt_proxy", "MQTT_PROXY", "no_proxy", "NO_PROXY"];

/// Restores the proxy variables as they were, also when the test panics.
struct RestoreEnv(Vec<(&'static str, Option<std::ffi::OsString>)>);

impl RestoreEnv {
    fn save() -> RestoreEnv {
        let saved = VARS.iter().map(|v| (*v, std::env::var_os(v))).collect();
        for v in VARS {
            std::env::remove_var(v);
        }
        RestoreEnv(saved)
    }
}

impl Drop for RestoreEnv {
    fn drop(&mut self) {
        for (k, v) in &self.0 {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
    }
}

/// Runs one connection with the current environment: Ok after a full QoS 0/1/2 echo, or the
/// error of `connect()`.
fn attempt(id: &str, broker: &Mosquitto, proxy: Option<ProxyOptions>) -> Result<(), Error> {
    let p = Probe::tcp(id);
    if let Some(px) = proxy {
        p.client.proxy_set(px).unwrap();
    }
    p.client.connect("localhost", broker.port(), 60)?;
    p.client.loop_start().unwrap();
    match p.conn.recv_timeout(T) {
        Some(Conn::Up(rc)) if rc == ReasonCode::SUCCESS => {}
        other => panic!("{id}: expected a successful CONNACK, got {other:?}"),
    }
    p.echo(&format!("env/{id}"), id.as_bytes());
    p.close();
    Ok(())
}

#[test]
fn mqtt_proxy_environment_variable() {
    let _restore = RestoreEnv::save();
    let broker = Mosquitto::start();
    // Both proxies require credentials, so a wrong password in the variable proves that the
    // connection went through the proxy it names.
    let socks = Proxy::microsocks(Some(("alice", "s3cret")));
    let http = Proxy::tinyproxy(Some(("bob", "pa55")));

    // socks5h:// with credentials: through microsocks.
    std::env::set_var(
        "mqtt_proxy",
        format!("socks5h://alice:s3cret@127.0.0.1:{}", socks.port()),
    );
    attempt("env-socks", &broker, None).expect("through the SOCKS5 proxy of mqtt_proxy");
    std::env::set_var(
        "mqtt_proxy",
        format!("socks5h://alice:wrong@127.0.0.1:{}", socks.port()),
    );
    let e = attempt("env-socks-wrong", &broker, None).unwrap_err();
    assert!(matches!(e, Error::Proxy(_)), "{e:?}");

    // no_proxy lists the broker: connect directly, the (wrong) proxy is not asked.
    std::env::set_var("no_proxy", "example.com, localhost");
    attempt("env-no-proxy", &broker, None).expect("no_proxy bypasses mqtt_proxy");
    std::env::remove_var("no_proxy");

    // An explicit proxy_set wins over the variable.
    attempt(
        "env-explicit",
        &broker,
        Some(ProxyOptions {
            proxy_type: ProxyType::Socks5,
            addr: "127.0.0.1".into(),
            port: socks.port(),
            username: Some("alice".into()),
            password: Some("s3cret".into()),
            rdns: true,
        }),
    )
    .expect("proxy_set wins over mqtt_proxy");

    // http:// with basic authentication: through tinyproxy (percent-encoded user info).
    std::env::set_var(
        "mqtt_proxy",
        format!("http://b%6Fb:pa55@127.0.0.1:{}", http.port()),
    );
    attempt("env-http", &broker, None).expect("through the HTTP proxy of mqtt_proxy");
    std::env::set_var(
        "mqtt_proxy",
        format!("http://bob:nope@127.0.0.1:{}", http.port()),
    );
    let e = attempt("env-http-wrong", &broker, None).unwrap_err();
    assert!(matches!(e, Error::Proxy(_)), "{e:?}");

    // The upper-case spelling is honoured too.
    std::env::remove_var("mqtt_proxy");
    std::env::set_var(
        "MQTT_PROXY",
        format!("socks://alice:wrong@127.0.0.1:{}", socks.port()),
    );
    let e = attempt("env-upper", &broker, None).unwrap_err();
    assert!(matches!(e, Error::Proxy(_)), "{e:?}");
    std::env::remove_var("MQTT_PROXY");

    // A Unix socket never goes through a proxy.
    let unix_broker = Mosquitto::builder().unix_listener().start();
    std::env::set_var(
        "mqtt_proxy",
        format!("socks5h://alice:wrong@127.0.0.1:{}", socks.port()),
    );
    let p = Probe::with("env-unix", Transport::Unix);
    p.connect_ok(unix_broker.unix_path().to_str().unwrap(), 0);
    p.echo_with("env/unix", b"direct", &[QoS::AtLeastOnce], T);
    p.close();

    // Unset: direct again.
    std::env::remove_var("mqtt_proxy");
    attempt("env-unset", &broker, None).expect("direct without mqtt_proxy");
}
