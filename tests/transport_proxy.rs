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

use mqtt_sync::{Client, Error, ProxyOptions, ProxyType, Transport};
use support::proxies::{Kind, Proxy, ProxySpec};
use support::Mosquitto;

use support::transport_probe::TransportProbe;

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
fn via(id: &str, transport: Transport, spec: &ProxySpec, rdns: bool) -> TransportProbe {
    let p = TransportProbe::with(id, transport);
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
            m.to_string()
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

/// Paho's `tls_set(ca)` with `backend`.
#[cfg(any(feature = "tls", feature = "rustls"))]
fn tls_set_ca(client: &mqtt_sync::Client, backend: mqtt_sync::TlsBackend, ca: &std::path::Path) {
    client
        .tls_set_with(mqtt_sync::TlsOptions {
            ca_certs: Some(ca.to_path_buf()),
            backend,
            ..Default::default()
        })
        .unwrap();
}

#[cfg(any(feature = "tls", feature = "rustls"))]
fn tls_through_socks5(backend: mqtt_sync::TlsBackend) {
    let c = support::certs::Certs::shared();
    let broker = Mosquitto::builder().tls_listener("tls", c, false).start();
    let px = Proxy::microsocks(None);
    for rdns in [true, false] {
        let p = via(&format!("tls-socks-{rdns}"), Transport::Tcp, &px.spec, rdns);
        tls_set_ca(&p.client, backend, &c.ca);
        // The certificate is checked against the broker's name, not the proxy's.
        p.connect_ok("localhost", broker.port_of("tls"));
        p.echo(&format!("tls/socks/{rdns}"), b"tls in socks");
        p.close();
    }
}

#[cfg(any(feature = "tls", feature = "rustls"))]
fn tls_through_http_connect(backend: mqtt_sync::TlsBackend) {
    let c = support::certs::Certs::shared();
    let broker = Mosquitto::builder().tls_listener("tls", c, false).start();
    let px = Proxy::tinyproxy(Some(("bob", "pa55")));
    let p = via("tls-http", Transport::Tcp, &px.spec, false);
    tls_set_ca(&p.client, backend, &c.ca);
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
                rx.recv_timeout(std::time::Duration::from_millis(1))
            {
                let _ = client.publish(
                    "nudge/nobody-listens",
                    "",
                    mqtt_sync::QoS::AtMostOnce,
                    false,
                );
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

/// With `TlsBackend::Auto` (native-tls when built, else rustls).
#[cfg(all(feature = "websockets", any(feature = "tls", feature = "rustls")))]
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

#[cfg(any(feature = "tls", feature = "rustls"))]
per_tls_backend!(tls_through_socks5, tls_through_http_connect);
