//! A client wired to channels for the transport tests: connect through any transport, then
//! publish to itself at QoS 0/1/2 and check the echo (shared by the `transport_*` files).
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use mqtt_sync::{Client, Error, QoS, ReasonCode, Transport};

use super::{Events, T};

/// How a connection attempt went, as the callbacks report it (fields are read through
/// `Debug` in assertion messages).
#[derive(Debug)]
#[allow(dead_code)]
pub enum Conn {
    /// on_connect.
    Up(ReasonCode),
    /// on_connect_fail.
    Fail(String),
    /// on_disconnect.
    Down(ReasonCode),
}

/// A client with its callbacks wired to channels (one per kind, so that waiting for one
/// kind never discards another).
pub struct TransportProbe {
    pub client: Client,
    pub conn: Events<Conn>,
    pub subs: Events<(u16, Vec<ReasonCode>)>,
    /// (topic, qos, payload) of every message received.
    pub msgs: Events<(String, QoS, Vec<u8>)>,
}

#[allow(dead_code)] // not every file uses every helper
impl TransportProbe {
    pub fn new(client: Client) -> TransportProbe {
        let p = TransportProbe {
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
    pub fn with(id: &str, transport: Transport) -> TransportProbe {
        TransportProbe::new(
            Client::builder()
                .client_id(id)
                .transport(transport)
                .reconnect_on_failure(false)
                .build()
                .unwrap(),
        )
    }

    pub fn tcp(id: &str) -> TransportProbe {
        TransportProbe::with(id, Transport::Tcp)
    }

    /// `connect()`, `loop_start()`, then a successful CONNACK; panics otherwise.
    #[track_caller]
    pub fn connect_ok(&self, host: &str, port: u16) {
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
    pub fn connect_refused(&self, host: &str, port: u16) -> Result<Conn, Error> {
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
    pub fn echo_with(&self, topic: &str, payload: &[u8], qos: &[QoS], timeout: Duration) {
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

    /// [`TransportProbe::echo_with`] at QoS 0, 1 and 2 with the default timeout.
    #[track_caller]
    pub fn echo(&self, topic: &str, payload: &[u8]) {
        self.echo_with(
            topic,
            payload,
            &[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce],
            T,
        );
    }

    /// `disconnect()`, the matching on_disconnect, then `loop_stop()`.
    #[track_caller]
    pub fn close(&self) {
        self.client.disconnect().unwrap();
        match self.conn.recv_timeout(T) {
            Some(Conn::Down(rc)) => assert_eq!(rc, ReasonCode::SUCCESS),
            other => panic!("expected on_disconnect after disconnect(), got {other:?}"),
        }
        self.client.loop_stop().unwrap();
    }
}
