//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not a public API).
//!
//! Thin wrappers that feed untrusted bytes to crate-private parsers over in-memory streams:
//! the SOCKS5 and HTTP CONNECT reply parsers, the `mqtt_proxy` URL and `no_proxy` parsers,
//! and (with `websockets`) the WebSocket read path after the upgrade. None of them touches
//! the network or the clock: host names are such that no name is ever resolved.

use std::io::{self, Cursor, Read, Write};

use crate::network::proxy;
use crate::{ProxyOptions, ProxyType, Result};

/// What the fuzz target's option byte turns into: the proxy credentials and the broker host
/// of a proxy handshake. SOCKS5 always lets the proxy resolve names (`rdns`), so no DNS
/// look-up happens.
fn handshake_setup(opts: u8, proxy_type: ProxyType) -> (ProxyOptions, &'static str) {
    let username = (opts & 0x01 != 0).then(|| "user".to_string());
    let password = (opts & 0x03 == 0x03).then(|| "pass".to_string());
    let host = match (opts >> 2) & 0x03 {
        0 => "broker.example",
        1 => "192.0.2.1",
        2 => "2001:db8::1",
        _ => "b",
    };
    let px = ProxyOptions {
        proxy_type,
        addr: "proxy.example".into(),
        port: 1080,
        username,
        password,
        rdns: true,
    };
    (px, host)
}

/// A proxy peer that replays `input` and swallows what is written. At the end of the input
/// it reads as end of stream, or (`would_block`) as a socket whose timeout expired.
struct Peer<'a> {
    input: Cursor<&'a [u8]>,
    would_block: bool,
}

impl Read for Peer<'_> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(b)?;
        if n == 0 && !b.is_empty() && self.would_block {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}

impl Write for Peer<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs the client side of a SOCKS5 handshake against a proxy that answers `reply`.
/// `opts` picks credentials (bit 0: user name, bit 1: and password), the broker host (bits
/// 2-3: a name, an IPv4 or an IPv6 address) and what the end of `reply` looks like (bit 4:
/// a timeout instead of end of stream). Returns the handshake's result and how many bytes of
/// `reply` it consumed.
pub fn socks5_reply(opts: u8, reply: &[u8]) -> (Result<()>, usize) {
    let (px, host) = handshake_setup(opts, ProxyType::Socks5);
    let mut peer = Peer {
        input: Cursor::new(reply),
        would_block: opts & 0x10 != 0,
    };
    let r = proxy::socks5(&mut peer, &px, host, 1883);
    (r, peer.input.position() as usize)
}

/// Runs the client side of an HTTP CONNECT handshake against a proxy that answers `reply`;
/// `opts` as for [`socks5_reply`]. Returns the result and how many bytes were consumed.
pub fn http_connect_reply(opts: u8, reply: &[u8]) -> (Result<()>, usize) {
    let (px, host) = handshake_setup(opts, ProxyType::Http);
    let mut peer = Peer {
        input: Cursor::new(reply),
        would_block: opts & 0x10 != 0,
    };
    let r = proxy::http_connect(&mut peer, &px, host, 1883);
    (r, peer.input.position() as usize)
}

/// Parses a proxy URL as the `mqtt_proxy` environment variable is read.
pub fn parse_proxy_url(url: &str) -> Result<ProxyOptions> {
    proxy::parse_proxy_url(url)
}

/// The proxy for `host` given the values of `mqtt_proxy` and `no_proxy` (no environment).
pub fn proxy_from_env(
    host: &str,
    mqtt_proxy: Option<&str>,
    no_proxy: Option<&str>,
) -> Option<ProxyOptions> {
    proxy::proxy_from_env(host, mqtt_proxy, no_proxy)
}

/// Whether `host` is listed in the `no_proxy` value.
pub fn bypass(host: &str, no_proxy: &str) -> bool {
    proxy::bypass(host, no_proxy)
}

/// Checks `proxy_set`'s argument.
pub fn validate_proxy(px: &ProxyOptions) -> Result<()> {
    proxy::validate(px)
}

#[cfg(feature = "websockets")]
pub use ws::{ws_read, WsReadOutcome};

#[cfg(feature = "websockets")]
mod ws {
    use std::io::{self, Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use crate::network::NetStream;

    /// A non-blocking socket replaying the broker's bytes in chunks.
    struct Socket {
        input: Vec<u8>,
        pos: usize,
        /// Bytes handed out per `read` (at least 1).
        chunk: usize,
        /// Alternate data and `WouldBlock`, as a non-blocking socket between segments.
        stutter: bool,
        stalled: bool,
        /// At the end of the input: end of stream (`true`) or `WouldBlock` (`false`).
        eof: bool,
        /// Set once a read found the input exhausted.
        drained: Arc<AtomicBool>,
    }

    impl Read for Socket {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            if b.is_empty() {
                return Ok(0);
            }
            if self.pos >= self.input.len() {
                self.drained.store(true, Ordering::Relaxed);
                return if self.eof {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            if self.stutter {
                self.stalled = !self.stalled;
                if self.stalled {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
            }
            let n = b.len().min(self.chunk).min(self.input.len() - self.pos);
            b[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    impl Write for Socket {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl NetStream for Socket {
        fn raw_fd(&self) -> std::os::fd::RawFd {
            -1
        }
        fn set_nonblocking(&mut self, _nonblocking: bool) -> io::Result<()> {
            Ok(())
        }
    }

    /// What [`ws_read`] saw.
    #[derive(Debug, Default)]
    pub struct WsReadOutcome {
        /// The MQTT bytes read (binary frame payloads, in order).
        pub data: Vec<u8>,
        /// The stream ended (Close frame or end of stream): `read` returned 0.
        pub closed: bool,
        /// The error that ended the reading, if any (not `WouldBlock` at the end of input).
        pub error: Option<io::Error>,
        /// `read` kept returning without consuming input or producing output (a bug).
        pub livelock: bool,
    }

    /// Feeds `frames` (what the broker sends after the upgrade) to the client's WebSocket
    /// read path, with the limits of the default maximum incoming packet size, as the network
    /// loop reads it: `read` until it returns 0, an error, or
    /// `WouldBlock` with nothing left. `opts` shapes the delivery: bits 0-3 the bytes per
    /// socket read (1..=16, 15 meaning 64 KiB), bit 4 a `WouldBlock` between reads, bit 5
    /// end of stream (rather than `WouldBlock`) at the end, bits 6-7 the caller's buffer size
    /// (1, 7, 4096 or 64 KiB).
    pub fn ws_read(opts: u8, frames: &[u8]) -> WsReadOutcome {
        let chunk = match opts & 0x0F {
            15 => 64 << 10,
            c => usize::from(c) + 1,
        };
        let drained = Arc::new(AtomicBool::new(false));
        let sock = Socket {
            input: frames.to_vec(),
            pos: 0,
            chunk,
            stutter: opts & 0x10 != 0,
            stalled: false,
            eof: opts & 0x20 != 0,
            drained: drained.clone(),
        };
        let mut ws =
            crate::network::ws::after_upgrade(Box::new(sock), crate::DEFAULT_MAX_INCOMING_PACKET);
        let mut buf = vec![0u8; [1, 7, 4096, 64 << 10][usize::from(opts >> 6)]];
        let mut out = WsReadOutcome::default();
        // Each round either ends the loop, returns data or consumes input (a stuttering
        // socket blocks at most every other read), so this bound is never reached unless
        // `read` spins.
        let limit = 4 * (frames.len() + 4);
        for _ in 0..limit {
            match ws.read(&mut buf) {
                Ok(0) => {
                    out.closed = true;
                    return out;
                }
                Ok(n) => out.data.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if drained.load(Ordering::Relaxed) {
                        return out;
                    }
                }
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
            }
        }
        out.livelock = true;
        out
    }
}

pub use session::{session, SessionOutcome};

/// The `session` target: the real sans-I/O `Session` (`src/session`) receiving
/// what a broker sends after a CONNACK, driven as the client's loop drives it.
mod session {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::codec::{self, ConnAck, Connect, Packet};
    use crate::completion::Notify;
    use crate::session::{Close, Ended, Event, Phase, Session, SessionConfig};
    use crate::types::SubscribeOptions;
    use crate::{Error, Properties, Protocol, QoS};

    /// Connections opened after the first one ends (each with a new CONNACK).
    const RECONNECTS: u32 = 3;

    /// What [`session`] saw.
    #[derive(Debug, Default)]
    pub struct SessionOutcome {
        /// Successful CONNACKs (one per connection).
        pub connections: u32,
        /// Why each connection ended (the session's `Close`, formatted).
        pub closes: Vec<String>,
        /// `Message` events (deliveries to `on_message`).
        pub messages: usize,
        /// `Published` events for the messages the client published.
        pub published: usize,
        /// Packets the client wrote (all of them decode).
        pub packets_out: usize,
        /// Broker bytes fed to `receive` (CONNACKs included).
        pub bytes_in: usize,
    }

    struct Driver {
        s: Session,
        protocol: Protocol,
        /// Picks the CONNACK (see [`session`]).
        variant: u8,
        manual: bool,
        /// The socket accepts nothing: the output stays pending.
        stuck: bool,
        max_in: usize,
        now: Instant,
        conn: u64,
        /// What was read and not yet used by `receive`, as the client's read buffer.
        rbuf: Vec<u8>,
        /// Broker bytes of the current connection and of the whole run.
        conn_in: usize,
        total_in: usize,
        /// The largest output backlog seen.
        peak_out: usize,
        /// `Published` events per mid of the QoS 1/2 messages published.
        published: HashMap<u16, u32>,
        out: SessionOutcome,
    }

    /// Feeds `data` to a `Session` after a valid CONNACK, as the client's read loop does,
    /// and panics if the session breaks an invariant.
    ///
    /// Byte 0 shapes the session: bits 0-1 the protocol (value % 3: 3.1, 3.1.1, 5); bits 2-3
    /// the CONNACK (plain; Session Present on reconnects; MQTT 5 limits: Receive Maximum 1,
    /// Maximum Packet Size 128, Topic Alias Maximum 2, Maximum QoS 1, no retain; a Server
    /// Keep Alive of 1 s and an Assigned Client Identifier); bits 4-5 the client's maximum
    /// incoming packet size (none, 48, 256, 4096 bytes; every CONNACK here fits); bit 6 manual
    /// acks; bit 7 a socket that accepts nothing (the output piles up). Byte 1 shapes the
    /// delivery: bits 0-2 the bytes per read (1, 2, 3, 7, 16, 64, 512, all), bits 3-7 how far
    /// the clock moves between reads (in 250 ms steps; keepalive 5 s). The rest is what the
    /// broker sends.
    ///
    /// Right after the first CONNACK the client publishes four QoS 1/2 messages (two in
    /// flight), a QoS 0 one, a SUBSCRIBE and an UNSUBSCRIBE (mids 1 to 7), so that acks in
    /// the input find something to acknowledge. When the session ends a connection (protocol
    /// error, DISCONNECT, keepalive), the client reconnects with a CONNACK and goes on with
    /// the rest of the input, up to three times.
    ///
    /// Invariants, after every read and timer run:
    /// - `receive` uses at most what it was given, and what it leaves is shorter than the
    ///   maximum incoming packet size (or than 5 bytes): the read buffer is bounded;
    /// - what the session holds is bounded by what the broker sent: the output backlog
    ///   (at most 4 bytes per byte received plus the stored messages plus 1 KiB), its
    ///   capacity, incoming QoS 1/2 state and topic aliases (at most the Topic Alias
    ///   Maximum the client announced), queued events and log lines; the stored outgoing
    ///   messages never exceed the ones published;
    /// - every byte the client writes decodes as a whole sequence of packets;
    /// - no `Published` event twice for one QoS 1/2 message; delivered messages have a topic;
    /// - after `handle_timeout` succeeds, the next deadline is in the future (no busy loop).
    pub fn session(data: &[u8]) -> SessionOutcome {
        let (Some(&opts), Some(&shape)) = (data.first(), data.get(1)) else {
            return SessionOutcome::default();
        };
        let stream = &data[2..];
        let protocol = [Protocol::V31, Protocol::V311, Protocol::V5][usize::from(opts & 3) % 3];
        let max_in = [codec::MAX_REMAINING_LENGTH + 5, 48, 256, 4096][usize::from(opts >> 4) & 3];
        let chunk = [1, 2, 3, 7, 16, 64, 512, usize::MAX][usize::from(shape & 7)];
        let step = Duration::from_millis(250 * u64::from(shape >> 3));
        let cfg = SessionConfig {
            protocol,
            max_inflight: 2,
            max_queued: 0,
            max_incoming_packet: max_in,
            log: true,
            logger: false,
            publish_events: true,
            // Anything added later (e.g. resubscribe) at its default.
            ..SessionConfig::default()
        };
        let mut d = Driver {
            s: Session::new(cfg, Arc::new(Notify::default())),
            protocol,
            variant: (opts >> 2) & 3,
            manual: opts & 0x40 != 0,
            stuck: opts & 0x80 != 0,
            max_in,
            now: Instant::now(),
            conn: 0,
            rbuf: Vec::new(),
            conn_in: 0,
            total_in: 0,
            peak_out: 0,
            published: HashMap::new(),
            out: SessionOutcome::default(),
        };
        d.connect();
        d.preload();
        let mut rest = stream;
        while !rest.is_empty() {
            let (now_in, later) = rest.split_at(chunk.min(rest.len()));
            rest = later;
            let mut res = d.feed(now_in);
            if res.is_ok() {
                d.now += step;
                res = d.s.handle_timeout(d.now);
                if res.is_ok() {
                    if let Some(next) = d.s.next_deadline() {
                        assert!(next > d.now, "handle_timeout left a deadline in the past");
                    }
                }
                d.check(0);
            }
            d.write();
            if let Err(close) = res {
                d.out.closes.push(format!("{close:?}"));
                d.s.connection_closed(Ended::Session(close));
                d.events();
                if d.conn > u64::from(RECONNECTS) {
                    break;
                }
                d.connect();
            }
        }
        d.s.connection_closed(Ended::Lost(Error::ConnectionLost));
        d.events();
        d.s.abandon_all();
        d.check(0);
        d.out.bytes_in = d.total_in;
        d.out
    }

    impl Driver {
        /// Opens the next connection: CONNECT written, a successful CONNACK received.
        fn connect(&mut self) {
            self.conn += 1;
            self.rbuf.clear();
            self.conn_in = 0;
            let v5 = self.protocol.is_v5();
            let assigned = v5 && self.variant == 3;
            let mut props = Properties::default();
            if v5 {
                props.topic_alias_maximum = Some(4);
                props.session_expiry_interval = Some(60);
                props.receive_maximum = Some(8);
            }
            let connect = Connect {
                protocol: self.protocol,
                clean_start: self.conn == 1,
                keep_alive: 5,
                client_id: if assigned {
                    String::new()
                } else {
                    "fuzz".into()
                },
                will: None,
                username: None,
                password: None,
                properties: props,
                bridge: false,
            };
            let deadline = self.now + Duration::from_secs(10);
            if let Err(e) = self
                .s
                .start_connect(&connect, self.conn, self.now, deadline)
            {
                panic!("start_connect refused {connect:?}: {e}");
            }
            self.write();
            let mut props = Properties::default();
            match self.variant {
                2 if v5 => {
                    props.receive_maximum = Some(1);
                    props.maximum_packet_size = Some(128);
                    props.topic_alias_maximum = Some(2);
                    props.maximum_qos = Some(1);
                    props.retain_available = Some(0);
                    props.reason_string = Some("limits".into());
                    props.user_properties.push(("k".into(), "v".into()));
                }
                3 if v5 => {
                    props.server_keep_alive = Some(1);
                    props.assigned_client_identifier = Some("assigned".into());
                }
                _ => {}
            }
            let connack = Packet::ConnAck(ConnAck {
                session_present: self.conn > 1 && self.variant == 1,
                code: 0,
                properties: props,
            });
            let mut bytes = Vec::new();
            if let Err(e) = connack.encode(self.protocol, &mut bytes) {
                panic!("CONNACK {connack:?} does not encode: {e}");
            }
            let res = self.feed(&bytes);
            assert!(
                res.is_ok() && self.s.phase() == Phase::Connected,
                "the session did not accept {connack:?}: {res:?}"
            );
            self.out.connections += 1;
            self.write();
        }

        /// Application traffic on the first connection: mids 1 to 7.
        fn preload(&mut self) {
            let v5 = self.protocol.is_v5();
            let props = v5.then(|| Properties {
                message_expiry_interval: Some(30),
                ..Properties::default()
            });
            for (i, qos) in [
                QoS::AtLeastOnce,
                QoS::ExactlyOnce,
                QoS::AtLeastOnce,
                QoS::ExactlyOnce,
            ]
            .into_iter()
            .enumerate()
            {
                let topic = format!("fuzz/{i}");
                let retain = i == 2;
                if let Ok(c) = self
                    .s
                    .publish(&topic, b"payload", qos, retain, props.as_ref())
                {
                    self.published.insert(c.mid(), 0);
                }
            }
            let _ = self
                .s
                .publish("fuzz/0", b"qos0", QoS::AtMostOnce, false, None);
            let filters = vec![
                (
                    "fuzz/#".to_string(),
                    SubscribeOptions::qos(QoS::ExactlyOnce),
                ),
                ("+/x".to_string(), SubscribeOptions::qos(QoS::AtMostOnce)),
            ];
            let _ = self.s.subscribe(filters, Properties::default());
            let _ = self
                .s
                .unsubscribe(vec!["old/#".into()], Properties::default());
            self.write();
        }

        /// One read: `bytes` join the read buffer, `receive` takes the whole packets.
        fn feed(&mut self, bytes: &[u8]) -> Result<(), Close> {
            self.rbuf.extend_from_slice(bytes);
            self.conn_in += bytes.len();
            self.total_in += bytes.len();
            let had = self.rbuf.len();
            let (used, res) = match self.s.receive(&self.rbuf, self.now) {
                Ok(used) => (used, Ok(())),
                Err((used, close)) => (used, Err(close)),
            };
            assert!(used <= had, "receive used {used} of {had} bytes");
            self.rbuf.drain(..used);
            if res.is_ok() {
                assert!(
                    self.rbuf.len() < self.max_in.max(5),
                    "receive left {} bytes waiting for a packet, with a maximum packet size \
                     of {}",
                    self.rbuf.len(),
                    self.max_in
                );
            }
            self.check(had);
            self.events();
            res
        }

        /// Runs the callbacks' side: deliveries acknowledged as the dispatcher does.
        fn events(&mut self) {
            for (conn, ev) in self.s.take_events() {
                match ev {
                    Event::Message { msg, ack } => {
                        self.out.messages += 1;
                        assert!(!msg.topic.is_empty(), "a message without a topic: {msg:?}");
                        if let Some((mid, qos)) = ack {
                            self.s.delivered(conn, mid, qos, self.manual);
                            // With manual acks the application acknowledges every other one.
                            if self.manual && mid % 2 == 0 {
                                let _ = self.s.ack_manual(mid, qos);
                            }
                        }
                    }
                    Event::Published { mid, .. } => {
                        self.out.published += 1;
                        if let Some(n) = self.published.get_mut(&mid) {
                            *n += 1;
                            assert!(*n == 1, "on_publish twice for mid {mid}");
                        }
                    }
                    _ => {}
                }
            }
            let logs = self.s.take_logs();
            assert!(logs.len() <= self.total_in + 64, "{} log lines", logs.len());
        }

        /// Writes the output (unless the socket is stuck), checking that it decodes.
        fn write(&mut self) {
            let pending = self.s.pending_out();
            self.peak_out = self.peak_out.max(pending.len());
            if self.stuck || pending.is_empty() {
                return;
            }
            let mut at = 0;
            while at < pending.len() {
                match codec::decode(&pending[at..], self.protocol, usize::MAX) {
                    Ok(Some((_, n))) => {
                        at += n;
                        self.out.packets_out += 1;
                    }
                    other => panic!(
                        "the client wrote bytes that do not decode ({other:?}): {:02X?}",
                        &pending[at..]
                    ),
                }
            }
            let n = pending.len();
            self.s.written(n, self.now);
        }

        /// The memory bounds; `buffered` is what the last `receive` was given (0: none).
        fn check(&mut self, buffered: usize) {
            let f = self.s.footprint();
            self.peak_out = self.peak_out.max(f.pending_out);
            let bound_out = 4 * self.conn_in + f.outgoing_bytes + 1024;
            assert!(
                f.pending_out <= bound_out,
                "{} bytes of output pending after {} bytes received: {f:?}",
                f.pending_out,
                self.conn_in
            );
            assert!(
                f.out_capacity <= (2 * self.peak_out).max(8 * 1024),
                "output capacity {} for at most {} pending bytes",
                f.out_capacity,
                self.peak_out
            );
            assert!(
                f.events <= buffered / 2 + 8,
                "{} events queued by {buffered} bytes",
                f.events
            );
            assert!(
                f.inbound_qos2 <= 65535 && f.inbound_qos2_bytes <= self.total_in,
                "incoming QoS 2 state {f:?} after {} bytes",
                self.total_in
            );
            assert!(
                f.inbound_qos1 <= 65535 && f.inbound_qos1 <= self.conn_in / 2,
                "incoming QoS 1 state {f:?} after {} bytes",
                self.conn_in
            );
            assert!(
                f.aliases <= f.alias_max && f.alias_bytes <= self.total_in,
                "topic aliases {f:?}"
            );
            assert!(
                f.outgoing <= self.published.len() && f.pending_acks <= 2,
                "stored messages {f:?}"
            );
            assert!(f.logs <= self.total_in + 64, "log lines {f:?}");
        }
    }
}
