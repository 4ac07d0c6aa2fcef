#![cfg(feature = "websockets")]
//! MQTT over WebSockets end to end through the public `Client` API: pub/sub at QoS 0, 1
//! and 2 over `ws://` and `wss://` against a mosquitto websockets listener, a payload larger
//! than a WebSocket frame, and the upgrade itself (path, headers, ping, close, refusals)
//! against a scripted endpoint.
//!
//! Ported from the stream-level scratch harness (net-harness `tests/transports.rs`).

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mqtt_sync::{Client, Error, QoS, Transport};
use support::{Mosquitto, T};

use support::transport_probe::{Conn, TransportProbe};

// ---------------------------------------------------------------------------------------

/// The size of the large-payload tests: 1 MiB, as in the stream-level harness.
///
/// mosquitto 2.0.11 (libwebsockets) writes a large WebSocket message to a client about
/// 4 KiB per turn of its main loop, and that loop turns on network events or every ~100 ms
/// when idle: measured at client level, 256 KiB broker→client took ~6.3 s and 1 MiB would
/// take ~25 s. The harness kept the broker busy with PINGREQs; here [`Nudge`] publishes a
/// tiny QoS 0 message every millisecond from another thread (exercising concurrent publishes
/// too), which brings 3 × 1 MiB over ws or wss to ~1.2 s.
const BIG: usize = 1 << 20;

fn big_payload() -> Vec<u8> {
    (0..BIG).map(|i| (i * 31 % 251) as u8).collect()
}

/// While alive, publishes a tiny QoS 0 message to an unrelated topic every 1 ms from a
/// thread of its own, so that mosquitto's main loop keeps turning and writes the large
/// message to us at full speed (see [`BIG`]).
struct Nudge {
    stop: mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Nudge {
    fn start(client: &Client) -> Nudge {
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

impl Drop for Nudge {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ws_probe(id: &str) -> TransportProbe {
    TransportProbe::with(id, Transport::WebSockets)
}

#[test]
fn ws_pub_sub_qos_0_1_2() {
    let broker = Mosquitto::builder()
        .listener("ws", &["protocol websockets"])
        .start();
    let p = ws_probe("ws-pubsub");
    p.connect_ok("localhost", broker.port_of("ws"));
    p.echo("ws/echo", b"over websockets");
    p.close();
}

#[test]
fn ws_large_payload_across_frames() {
    let broker = Mosquitto::builder()
        .listener("ws", &["protocol websockets"])
        .start();
    let p = ws_probe("ws-large");
    p.connect_ok("127.0.0.1", broker.port_of("ws"));
    let _nudge = Nudge::start(&p.client);
    let started = Instant::now();
    p.echo("ws/large", &big_payload());
    eprintln!("3 x {BIG} bytes over ws in {:?}", started.elapsed());
    drop(_nudge);
    p.close();
}

/// wss:// once per TLS backend built (`wss::with_native_tls::*`, `wss::with_rustls::*`).
#[cfg(any(feature = "tls", feature = "rustls"))]
mod wss {
    use super::*;
    use mqtt_sync::{TlsBackend, TlsOptions};
    use support::certs::Certs;

    /// TLS trusting `ca` with `backend`.
    fn tls_set(client: &Client, backend: TlsBackend, ca: &std::path::Path) {
        client
            .tls_set_with(TlsOptions {
                ca_certs: Some(ca.to_path_buf()),
                backend,
                ..Default::default()
            })
            .unwrap();
    }

    fn wss_broker() -> Mosquitto {
        let c = Certs::shared();
        let tls = c.mosquitto_tls(false);
        let mut l: Vec<&str> = tls.lines().collect();
        l.push("protocol websockets");
        Mosquitto::builder().listener("wss", &l).start()
    }

    fn wss_pub_sub_qos_0_1_2(backend: TlsBackend) {
        let broker = wss_broker();
        let p = ws_probe("wss-pubsub");
        tls_set(&p.client, backend, &Certs::shared().ca);
        p.connect_ok("localhost", broker.port_of("wss"));
        p.echo("wss/echo", b"over secure websockets");
        p.close();
    }

    fn wss_large_payload_across_frames(backend: TlsBackend) {
        let broker = wss_broker();
        let p = ws_probe("wss-large");
        tls_set(&p.client, backend, &Certs::shared().ca);
        p.connect_ok("localhost", broker.port_of("wss"));
        let _nudge = Nudge::start(&p.client);
        let started = Instant::now();
        p.echo("wss/large", &big_payload());
        eprintln!("3 x {BIG} bytes over wss in {:?}", started.elapsed());
        drop(_nudge);
        p.close();
    }

    fn wss_wrong_ca_is_refused(backend: TlsBackend) {
        let broker = wss_broker();
        let client = Client::builder()
            .transport(Transport::WebSockets)
            .build()
            .unwrap();
        tls_set(&client, backend, &Certs::shared().other_ca);
        let e = client
            .connect("localhost", broker.port_of("wss"), 60)
            .unwrap_err();
        assert!(matches!(e, Error::Tls(_)), "{e:?}");
    }

    per_tls_backend!(
        wss_pub_sub_qos_0_1_2,
        wss_large_payload_across_frames,
        wss_wrong_ca_is_refused,
    );
}

// ---------------------------------------------------------------------------------------
// A scripted WebSocket endpoint.

#[derive(Clone, Copy, PartialEq)]
enum Upgrade {
    Accept,
    /// Accept, CONNACK, then a frame header announcing 256 MiB.
    HugeFrame,
    NoProtocol,
    Forbidden,
}

/// One frame from the client: (first byte, masked?, unmasked payload).
fn read_frame(s: &mut TcpStream) -> (u8, bool, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    let masked = h[1] & 0x80 != 0;
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut mask = [0u8; 4];
    if masked {
        s.read_exact(&mut mask).unwrap();
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    if masked {
        for (i, b) in body.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    (h[0], masked, body)
}

/// What the scripted endpoint saw after an accepted upgrade.
#[derive(Debug)]
struct Seen {
    /// The first frame's payload (the client's CONNECT).
    connect: Vec<u8>,
    /// Whether every client frame was masked (RFC 6455 requires it).
    all_masked: bool,
    /// A pong answered our ping.
    pong: bool,
}

/// Answers one upgrade as told and sends the request text on the channel. After an accepted
/// upgrade: reads the client's CONNECT frame, sends a ping, then the CONNACK split across two
/// binary frames, waits for the pong, then sends a Close frame.
fn scripted_ws(mode: Upgrade) -> (u16, mpsc::Receiver<String>, std::thread::JoinHandle<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 1];
        while !req.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            req.push(b[0]);
        }
        let text = String::from_utf8(req).unwrap();
        tx.send(text.clone()).unwrap();
        let key = text
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_string())
            })
            .expect("Sec-WebSocket-Key");
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let resp = match mode {
            Upgrade::Forbidden => {
                "HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nno way".to_string()
            }
            Upgrade::NoProtocol => format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ),
            Upgrade::Accept | Upgrade::HugeFrame => format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
            ),
        };
        s.write_all(resp.as_bytes()).unwrap();
        if !matches!(mode, Upgrade::Accept | Upgrade::HugeFrame) {
            return Seen {
                connect: Vec::new(),
                all_masked: true,
                pong: false,
            };
        }
        let (op, mut all_masked, connect) = read_frame(&mut s);
        assert_eq!(op, 0x82, "CONNECT in one final binary frame");
        if mode == Upgrade::HugeFrame {
            s.write_all(&[0x82, 0x04, 0x20, 0x02, 0x00, 0x00]).unwrap();
            s.write_all(&[0x82, 0x7F, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x30, 0x30])
                .unwrap();
            // The client closes (EOF), or the read times out (T) if it waits for the frame.
            let mut rest = Vec::new();
            let closed = s.read_to_end(&mut rest).is_ok();
            return Seen {
                connect,
                all_masked,
                pong: closed,
            };
        }
        // Ping, then CONNACK 20 02 00 00 as two frames.
        s.write_all(&[0x89, 0x00, 0x82, 0x02, 0x20, 0x02, 0x82, 0x02, 0x00, 0x00])
            .unwrap();
        let mut pong = false;
        while !pong {
            let (op, masked, _) = read_frame(&mut s);
            all_masked &= masked;
            pong = op & 0x0f == 0x0A;
        }
        s.write_all(&[0x88, 0x00]).unwrap();
        // The client's answer to Close (or EOF).
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        Seen {
            connect,
            all_masked,
            pong,
        }
    });
    (port, rx, h)
}

#[test]
fn ws_custom_path_headers_ping_and_close() {
    let (port, rx, server) = scripted_ws(Upgrade::Accept);
    let p = ws_probe("ws-scripted");
    p.client
        .ws_set_options(
            "/custom/path",
            &[("X-Token", "abc 123"), ("User-Agent", "mqtt-sync-test")],
        )
        .unwrap();
    // The CONNACK arrives split across two frames after a ping.
    p.connect_ok("localhost", port);
    let req = rx.recv_timeout(T).unwrap();
    let lower = req.to_ascii_lowercase();
    assert!(req.starts_with("GET /custom/path HTTP/1.1\r\n"), "{req}");
    assert!(
        lower.contains(&format!("\r\nhost: localhost:{port}\r\n")),
        "{req}"
    );
    assert!(
        lower.contains("\r\nsec-websocket-protocol: mqtt\r\n"),
        "{req}"
    );
    assert!(lower.contains("\r\nx-token: abc 123\r\n"), "{req}");
    assert!(
        lower.contains("\r\nuser-agent: mqtt-sync-test\r\n"),
        "{req}"
    );
    // The server's Close frame ends the connection: on_disconnect, as a lost connection.
    match p.conn.recv_timeout(T) {
        Some(Conn::Down(rc)) => assert!(rc.is_failure(), "{rc:?}"),
        other => panic!("expected on_disconnect after Close, got {other:?}"),
    }
    p.client.loop_stop().unwrap();
    let seen = server.join().unwrap();
    assert_eq!(seen.connect.first(), Some(&0x10), "{seen:?}");
    assert!(seen.pong, "a pong answered the ping");
    assert!(seen.all_masked, "client frames are masked");
}

#[test]
fn ws_default_path_and_refused_upgrade() {
    let (port, rx, server) = scripted_ws(Upgrade::Forbidden);
    let p = ws_probe("ws-forbidden");
    let e = p
        .client
        .connect("127.0.0.1", port, 60)
        .expect_err("403 refused");
    assert!(
        matches!(&e, Error::WebSocket(m) if m.contains("403")),
        "{e:?}"
    );
    assert_eq!(e.code(), mqtt_sync::MQTT_ERR_ERRNO);
    assert!(rx
        .recv_timeout(T)
        .unwrap()
        .starts_with("GET /mqtt HTTP/1.1\r\n"));
    server.join().unwrap();
    assert!(!p.client.is_connected());
}

#[test]
fn ws_upgrade_without_subprotocol_is_refused() {
    let (port, _rx, server) = scripted_ws(Upgrade::NoProtocol);
    let p = ws_probe("ws-no-subprotocol");
    let e = p.client.connect("127.0.0.1", port, 60).unwrap_err();
    assert!(
        matches!(&e, Error::WebSocket(m) if m.contains("subprotocol")),
        "{e:?}"
    );
    server.join().unwrap();
}

#[test]
fn ws_path_must_start_with_a_slash() {
    let client = Client::builder()
        .transport(Transport::WebSockets)
        .build()
        .unwrap();
    assert!(matches!(
        client.ws_set_options("mqtt", &[]),
        Err(Error::InvalidArgument(_))
    ));
}

/// A WebSocket frame header announcing more than the client's incoming packet limit closes
/// the connection at once: nothing is reserved for it (tungstenite reserved the announced
/// length, up to a fixed 512 MiB, whatever the limit) and the client does not wait for it.
#[test]
fn ws_frame_larger_than_the_incoming_limit_closes_the_connection() {
    let (port, _rx, server) = scripted_ws(Upgrade::HugeFrame);
    let p = ws_probe("ws-huge-frame");
    p.client.max_incoming_packet_size_set(64 * 1024).unwrap();
    let (dtx, drx) = mpsc::channel();
    p.client.on_disconnect(move |_c, _f, rc, _p| {
        let _ = dtx.send(rc);
    });
    p.connect_ok("localhost", port);
    let rc = drx
        .recv_timeout(T)
        .expect("the client still waits for the 256 MiB frame");
    assert!(rc.is_failure(), "{rc:?}");
    let seen = server.join().unwrap();
    assert!(seen.pong, "the client closed its socket");
}
