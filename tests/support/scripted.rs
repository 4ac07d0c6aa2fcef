//! A scripted fake broker for exact-byte tests of the client: the test accepts the client's
//! connection, reads its packets one by one and answers with hand-built bytes.
//!
//! The packet builders here are written by hand with a local varint encoder, independent of
//! the library's codec, so that the library is checked against a second encoding.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::bytes::{decode_varint, encode_varint, hex, hex_diff, mqtt_str};

/// A listening socket on 127.0.0.1 with a free port.
pub struct ScriptedBroker {
    listener: TcpListener,
}

impl ScriptedBroker {
    /// Binds 127.0.0.1:0.
    pub fn bind() -> ScriptedBroker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("set_nonblocking");
        ScriptedBroker { listener }
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("local_addr")
    }

    /// Accepts the next connection; panics if none comes within `timeout`.
    #[track_caller]
    pub fn accept(&self, timeout: Duration) -> ScriptedConn {
        match self.try_accept(timeout) {
            Some(c) => c,
            None => panic!(
                "scripted broker on port {}: no client connected within {timeout:?}",
                self.port()
            ),
        }
    }

    /// Accepts the next connection, or `None` if none comes within `timeout`.
    pub fn try_accept(&self, timeout: Duration) -> Option<ScriptedConn> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream
                        .set_nonblocking(false)
                        .expect("set_nonblocking(false)");
                    stream.set_nodelay(true).ok();
                    return Some(ScriptedConn {
                        stream,
                        buf: Vec::new(),
                    });
                }
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted =>
                {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("accept failed: {e}"),
            }
        }
    }

    /// Asserts that no client connects within `duration`.
    #[track_caller]
    pub fn expect_no_connection(&self, duration: Duration) {
        if let Some(c) = self.try_accept(duration) {
            panic!(
                "expected no connection within {duration:?}, but a client connected from port {}",
                c.peer_port()
            );
        }
    }
}

/// Why [`ScriptedConn::try_read_packet`] returned no packet.
#[derive(Debug)]
pub enum ReadError {
    /// Nothing complete arrived in time; `partial` holds the bytes of an incomplete packet.
    Timeout {
        partial: Vec<u8>,
    },
    /// The peer closed (EOF or reset); `partial` holds the bytes of an incomplete packet.
    Closed {
        partial: Vec<u8>,
        reset: bool,
    },
    /// The bytes can't be a packet (remaining length longer than 4 bytes).
    Malformed {
        bytes: Vec<u8>,
        why: String,
    },
    Io(io::Error),
}

/// One accepted client connection.
pub struct ScriptedConn {
    stream: TcpStream,
    /// Bytes read but not yet returned as a packet.
    buf: Vec<u8>,
}

impl ScriptedConn {
    /// The client's port: lets a test tell connections apart.
    pub fn peer_port(&self) -> u16 {
        self.stream.peer_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The underlying socket, for anything not covered here.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Reads exactly one MQTT packet (fixed header, remaining length, body) and returns all
    /// its bytes. Panics on timeout, close or malformed data.
    #[track_caller]
    pub fn read_packet(&mut self, timeout: Duration) -> Vec<u8> {
        match self.try_read_packet(timeout) {
            Ok(p) => p,
            Err(ReadError::Timeout { partial }) => {
                panic!("no complete packet from the client within {timeout:?} (partial bytes: [{}])", hex(&partial))
            }
            Err(ReadError::Closed { partial, reset }) => panic!(
                "client closed the connection ({}) while a packet was expected (partial bytes: [{}])",
                if reset { "reset" } else { "EOF" },
                hex(&partial)
            ),
            Err(ReadError::Malformed { bytes, why }) => panic!("malformed packet from the client: {why}: [{}]", hex(&bytes)),
            Err(ReadError::Io(e)) => panic!("read error while a packet was expected: {e}"),
        }
    }

    /// Reads exactly one MQTT packet, or says why not.
    pub fn try_read_packet(&mut self, timeout: Duration) -> Result<Vec<u8>, ReadError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(n) = complete_packet_len(&self.buf)? {
                return Ok(self.buf.drain(..n).collect());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ReadError::Timeout {
                    partial: self.buf.clone(),
                });
            }
            match self.fill(left) {
                Ok(0) => {
                    return Err(ReadError::Closed {
                        partial: self.buf.clone(),
                        reset: false,
                    })
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(e) if is_reset(&e) => {
                    return Err(ReadError::Closed {
                        partial: self.buf.clone(),
                        reset: true,
                    })
                }
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }

    /// Reads one packet and asserts it equals `expected`, with a hex diff on mismatch.
    #[track_caller]
    pub fn expect_packet(&mut self, expected: &[u8], timeout: Duration) {
        let got = self.read_packet(timeout);
        if got != expected {
            panic!(
                "client sent an unexpected packet\n{}",
                hex_diff(expected, &got)
            );
        }
    }

    /// Sends raw bytes (any number of packets, or part of one).
    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send of [{}] failed: {e}", hex(bytes)));
    }

    /// Sends raw bytes, returning the error instead of panicking (the client may have closed).
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Asserts that the client closes the connection (EOF or reset) within `timeout`, without
    /// sending anything more first.
    #[track_caller]
    pub fn expect_closed(&mut self, timeout: Duration) {
        match self.try_read_packet(timeout) {
            Err(ReadError::Closed { partial, .. }) if partial.is_empty() => {}
            Err(ReadError::Closed { partial, .. }) => {
                panic!("client closed, but after sending incomplete bytes [{}]", hex(&partial))
            }
            Ok(p) => panic!("expected the client to close the connection, but it sent [{}]", hex(&p)),
            Err(ReadError::Timeout { partial }) => panic!(
                "client did not close the connection within {timeout:?} (bytes received meanwhile: [{}])",
                hex(&partial)
            ),
            Err(ReadError::Malformed { bytes, why }) => {
                panic!("expected close, got malformed bytes ({why}): [{}]", hex(&bytes))
            }
            Err(ReadError::Io(e)) => panic!("expected close, got read error {e}"),
        }
    }

    /// Asserts that nothing arrives and the connection stays open for `duration` (the one
    /// place where a fixed wait is right: it checks an absence).
    #[track_caller]
    pub fn expect_silence(&mut self, duration: Duration) {
        if !self.buf.is_empty() {
            panic!(
                "expected silence, but bytes are already buffered: [{}]",
                hex(&self.buf)
            );
        }
        match self.try_read_packet(duration) {
            Err(ReadError::Timeout { partial }) if partial.is_empty() => {}
            Err(ReadError::Timeout { partial }) => {
                panic!("expected silence for {duration:?}, got bytes [{}]", hex(&partial))
            }
            Ok(p) => panic!("expected silence for {duration:?}, got packet [{}]", hex(&p)),
            Err(ReadError::Closed { partial, reset }) => panic!(
                "expected silence for {duration:?}, but the client closed the connection ({}, bytes before: [{}])",
                if reset { "reset" } else { "EOF" },
                hex(&partial)
            ),
            Err(ReadError::Malformed { bytes, why }) => panic!("expected silence, got malformed bytes ({why}): [{}]", hex(&bytes)),
            Err(ReadError::Io(e)) => panic!("expected silence, got read error {e}"),
        }
    }

    /// Closes the connection (both directions).
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Half-closes: shuts down the write side only, so the client reads EOF while this side
    /// can still read what the client sends.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    fn fill(&mut self, timeout: Duration) -> io::Result<usize> {
        self.stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut chunk = [0u8; 4096];
        let n = loop {
            match self.stream.read(&mut chunk) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// The length of the complete packet at the start of `buf`, if it is all there.
fn complete_packet_len(buf: &[u8]) -> Result<Option<usize>, ReadError> {
    if buf.is_empty() {
        return Ok(None);
    }
    match decode_varint(&buf[1..]) {
        Ok(None) => Ok(None),
        Ok(Some((rl, used))) => {
            let total = 1 + used + rl as usize;
            Ok((buf.len() >= total).then_some(total))
        }
        Err(why) => Err(ReadError::Malformed {
            bytes: buf.to_vec(),
            why,
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Inspecting client packets.

/// The packet type of a packet (upper nibble of its first byte): 1 CONNECT, 3 PUBLISH,
/// 8 SUBSCRIBE, 10 UNSUBSCRIBE, 12 PINGREQ, 14 DISCONNECT, …
pub fn parse_client_packet_type(bytes: &[u8]) -> u8 {
    assert!(!bytes.is_empty(), "empty packet");
    bytes[0] >> 4
}

/// Offset of the variable header (after fixed header and remaining length).
pub fn body_offset(bytes: &[u8]) -> usize {
    match decode_varint(&bytes[1..]) {
        Ok(Some((_, used))) => 1 + used,
        _ => panic!("not a packet: [{}]", hex(bytes)),
    }
}

/// The packet identifier of a packet that has one: PUBLISH with QoS > 0 (after the topic),
/// PUBACK/PUBREC/PUBREL/PUBCOMP, SUBSCRIBE/SUBACK, UNSUBSCRIBE/UNSUBACK. `None` otherwise
/// (including PUBLISH QoS 0). Works for 3.x and 5.0 alike (properties follow the id).
pub fn packet_id(bytes: &[u8]) -> Option<u16> {
    let ty = parse_client_packet_type(bytes);
    let mut at = body_offset(bytes);
    match ty {
        3 => {
            if (bytes[0] >> 1) & 3 == 0 {
                return None;
            }
            let tlen = u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]) as usize;
            at += 2 + tlen;
        }
        4..=11 => {}
        _ => return None,
    }
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// The QoS bits of a PUBLISH packet.
pub fn publish_qos(bytes: &[u8]) -> u8 {
    assert_eq!(
        parse_client_packet_type(bytes),
        3,
        "not a PUBLISH: [{}]",
        hex(bytes)
    );
    (bytes[0] >> 1) & 3
}

/// The topic of a PUBLISH packet.
pub fn publish_topic(bytes: &[u8]) -> String {
    assert_eq!(
        parse_client_packet_type(bytes),
        3,
        "not a PUBLISH: [{}]",
        hex(bytes)
    );
    let at = body_offset(bytes);
    let tlen = u16::from_be_bytes([bytes[at], bytes[at + 1]]) as usize;
    String::from_utf8_lossy(&bytes[at + 2..at + 2 + tlen]).into_owned()
}

// ---------------------------------------------------------------------------------------
// Building broker packets by hand.

/// A whole packet: first byte, remaining length, body.
pub fn packet(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![first_byte];
    encode_varint(body.len() as u64, &mut v);
    v.extend_from_slice(body);
    v
}

/// CONNACK for MQTT 3.1/3.1.1.
pub fn connack(session_present: bool, rc: u8) -> Vec<u8> {
    vec![0x20, 0x02, session_present as u8, rc]
}

/// CONNACK for MQTT 5.0; `props` is the encoded property list without its length.
pub fn connack_v5(session_present: bool, reason: u8, props: &[u8]) -> Vec<u8> {
    let mut body = vec![session_present as u8, reason];
    encode_varint(props.len() as u64, &mut body);
    body.extend_from_slice(props);
    packet(0x20, &body)
}

fn ack(first_byte: u8, pkid: u16) -> Vec<u8> {
    let [hi, lo] = pkid.to_be_bytes();
    vec![first_byte, 0x02, hi, lo]
}

pub fn puback(pkid: u16) -> Vec<u8> {
    ack(0x40, pkid)
}

pub fn pubrec(pkid: u16) -> Vec<u8> {
    ack(0x50, pkid)
}

/// PUBREL (first byte 0x62: its reserved flags are 0010).
pub fn pubrel(pkid: u16) -> Vec<u8> {
    ack(0x62, pkid)
}

pub fn pubcomp(pkid: u16) -> Vec<u8> {
    ack(0x70, pkid)
}

/// A 5.0 PUBACK/PUBREC/PUBREL/PUBCOMP with a reason code and properties
/// (`first_byte` 0x40, 0x50, 0x62 or 0x70).
pub fn ack_v5(first_byte: u8, pkid: u16, reason: u8, props: &[u8]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    body.push(reason);
    encode_varint(props.len() as u64, &mut body);
    body.extend_from_slice(props);
    packet(first_byte, &body)
}

/// SUBACK (3.x) with one return code per topic filter.
pub fn suback(pkid: u16, codes: &[u8]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    body.extend_from_slice(codes);
    packet(0x90, &body)
}

/// SUBACK (5.0) with properties and one reason code per topic filter.
pub fn suback_v5(pkid: u16, props: &[u8], codes: &[u8]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    encode_varint(props.len() as u64, &mut body);
    body.extend_from_slice(props);
    body.extend_from_slice(codes);
    packet(0x90, &body)
}

/// UNSUBACK (3.x).
pub fn unsuback(pkid: u16) -> Vec<u8> {
    ack(0xb0, pkid)
}

/// UNSUBACK (5.0) with properties and one reason code per topic filter.
pub fn unsuback_v5(pkid: u16, props: &[u8], codes: &[u8]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    encode_varint(props.len() as u64, &mut body);
    body.extend_from_slice(props);
    body.extend_from_slice(codes);
    packet(0xb0, &body)
}

pub fn pingresp() -> Vec<u8> {
    vec![0xd0, 0x00]
}

/// DISCONNECT (3.x has no body; as sent by a 5.0 broker with reason 0 and no properties it may
/// also be this short form).
pub fn disconnect() -> Vec<u8> {
    vec![0xe0, 0x00]
}

/// DISCONNECT (5.0) with a reason code and properties.
pub fn disconnect_v5(reason: u8, props: &[u8]) -> Vec<u8> {
    let mut body = vec![reason];
    encode_varint(props.len() as u64, &mut body);
    body.extend_from_slice(props);
    packet(0xe0, &body)
}

fn publish_header(qos: u8, retain: bool, dup: bool) -> u8 {
    assert!(qos <= 2, "qos {qos}");
    0x30 | ((dup as u8) << 3) | (qos << 1) | retain as u8
}

/// PUBLISH (3.x encoding). `pkid` is written only when `qos > 0`.
pub fn publish(
    topic: &str,
    payload: &[u8],
    qos: u8,
    pkid: u16,
    retain: bool,
    dup: bool,
) -> Vec<u8> {
    let mut body = mqtt_str(topic);
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    body.extend_from_slice(payload);
    packet(publish_header(qos, retain, dup), &body)
}

/// PUBLISH (5.0 encoding) with encoded properties (without their length).
#[allow(clippy::too_many_arguments)]
pub fn publish_v5(
    topic: &str,
    payload: &[u8],
    qos: u8,
    pkid: u16,
    retain: bool,
    dup: bool,
    props: &[u8],
) -> Vec<u8> {
    let mut body = mqtt_str(topic);
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    encode_varint(props.len() as u64, &mut body);
    body.extend_from_slice(props);
    body.extend_from_slice(payload);
    packet(publish_header(qos, retain, dup), &body)
}

/// A 3.1.1 CONNECT as a minimal client would send it (clean session, no will, no
/// credentials): handy for harness self-tests and for driving a broker by hand.
pub fn connect_v311(client_id: &str, keepalive: u16, clean: bool) -> Vec<u8> {
    let mut body = mqtt_str("MQTT");
    body.push(4);
    body.push(if clean { 0x02 } else { 0x00 });
    body.extend_from_slice(&keepalive.to_be_bytes());
    body.extend_from_slice(&mqtt_str(client_id));
    packet(0x10, &body)
}
