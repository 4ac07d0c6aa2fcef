//! The MQTT session state machine, without sockets, threads or clocks of its own.
//!
//! It takes packets and an `Instant`, and produces bytes to write (appended to `out`),
//! events for the callbacks, and its next deadline. Packet ids, the in-flight window, the
//! offline queue, QoS 1/2 flows in both directions, keepalive, the resend after a reconnect,
//! topic aliases and the broker's MQTT 5 limits all live here.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::{self, Ack, ConnAck, Connect, DecodeError, Disconnect, Packet, Publish};
use crate::message::{Completion, InfoShared, Message, Notify, Qos0Track};
use crate::types::{ConnectFlags, LogLevel, Protocol, QoS, ReasonCode, SubscribeOptions};
use crate::{Error, Properties, Result};

/// What the session tells the client to do or report.
// `Message` is boxed so that a queue of small events (a flood of QoS 0 `on_publish`) stays
// small: the enum is a few dozen bytes instead of the size of a message.
#[derive(Debug)]
pub(crate) enum Event {
    /// A CONNACK arrived (success or refusal).
    Connected {
        flags: ConnectFlags,
        rc: ReasonCode,
        props: Box<Properties>,
    },
    /// An application message for `on_message`; after the callback the client sends
    /// `ack` (PUBACK for QoS 1, PUBCOMP for QoS 2) unless manual acks are on.
    Message {
        msg: Box<Message>,
        ack: Option<(u16, QoS)>,
    },
    /// `on_publish`.
    Published {
        mid: u16,
        rc: ReasonCode,
        props: Option<Box<Properties>>,
    },
    /// `on_publish` with `SUCCESS` and no properties for `count` written QoS 0 messages
    /// whose mids follow each other (wrapping from 65535 to 1): one queue entry for a whole
    /// batch written at once instead of one per message.
    PublishedRun { first: u16, count: u32 },
    /// `on_subscribe`.
    Subscribed {
        mid: u16,
        rcs: Vec<ReasonCode>,
        props: Box<Properties>,
    },
    /// `on_unsubscribe`.
    Unsubscribed {
        mid: u16,
        rcs: Vec<ReasonCode>,
        props: Box<Properties>,
    },
}

impl Event {
    /// Appends `other` to this event if both are runs and `other` continues this one;
    /// gives `other` back otherwise.
    pub(crate) fn merge_run(&mut self, other: Event) -> Option<Event> {
        if let (
            Event::PublishedRun { first, count },
            Event::PublishedRun {
                first: f2,
                count: c2,
            },
        ) = (&mut *self, &other)
        {
            // Mids cycle through 1..=65535.
            let after = (u64::from(*first) - 1 + u64::from(*count)) % 65535 + 1;
            if after == u64::from(*f2) {
                if let Some(sum) = count.checked_add(*c2) {
                    *count = sum;
                    return None;
                }
            }
        }
        Some(other)
    }
}

/// Queues `on_publish(mid, SUCCESS)` for a written QoS 0 message, extending the last run.
fn push_published_run(events: &mut VecDeque<Event>, mid: u16) {
    let ev = Event::PublishedRun {
        first: mid,
        count: 1,
    };
    let ev = match events.back_mut() {
        Some(back) => back.merge_run(ev),
        None => Some(ev),
    };
    if let Some(ev) = ev {
        events.push_back(ev);
    }
}

/// The broker ended the connection with an MQTT 5 DISCONNECT.
#[derive(Debug)]
pub(crate) struct ServerDisconnect {
    pub reason: ReasonCode,
    pub props: Box<Properties>,
}

/// Why a connection must be closed, from the session's point of view.
#[derive(Debug)]
pub(crate) enum Close {
    /// The broker sent DISCONNECT.
    Server(ServerDisconnect),
    /// The broker refused the connection in CONNACK.
    Refused(ReasonCode),
    /// A protocol violation by the broker; for MQTT 5 the session has queued a DISCONNECT
    /// with this reason code.
    Protocol(ReasonCode, String),
    /// PINGRESP missing.
    Keepalive,
    /// No CONNACK before the connect timeout.
    ConnackTimeout,
}

/// Settings of the session.
#[derive(Clone, Debug)]
pub(crate) struct SessionConfig {
    pub protocol: Protocol,
    /// Client-side in-flight limit (0 = unlimited).
    pub max_inflight: u16,
    /// Limit of stored outgoing QoS 1/2 messages (0 = unlimited).
    pub max_queued: usize,
    /// Largest packet accepted from the broker.
    pub max_incoming_packet: usize,
    /// An `on_log` callback is set: every line is produced.
    pub log: bool,
    /// Lines also go to the `log` crate: produced when its logger wants that level.
    pub logger: bool,
    /// Whether `Published` events are produced (an `on_publish` callback is set).
    pub publish_events: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            protocol: Protocol::V311,
            max_inflight: 20,
            max_queued: 0,
            max_incoming_packet: codec::MAX_REMAINING_LENGTH + 5,
            log: false,
            logger: false,
            publish_events: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// PUBLISH not yet acknowledged (QoS 1: PUBACK, QoS 2: PUBREC).
    Publish,
    /// QoS 2 past PUBREC: PUBREL sent (or to be re-sent), waiting for PUBCOMP.
    PubRel,
}

#[derive(Debug)]
struct OutMsg {
    mid: u16,
    qos: QoS,
    retain: bool,
    topic_alias: Option<u16>,
    /// The encoded PUBLISH (DUP clear); byte 0 gets DUP set on a resend.
    bytes: Vec<u8>,
    stage: Stage,
    /// Sent on the current connection (counts against the in-flight window).
    sent: bool,
    /// The PUBLISH was sent before (so a resend carries DUP).
    dup: bool,
    info: Arc<InfoShared>,
}

/// Limits the broker announced in CONNACK (MQTT 5).
#[derive(Clone, Copy, Debug)]
struct ServerLimits {
    receive_maximum: u16,
    maximum_packet_size: usize,
    maximum_qos: QoS,
    retain_available: bool,
    topic_alias_maximum: u16,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            receive_maximum: u16::MAX,
            maximum_packet_size: codec::MAX_REMAINING_LENGTH + 5,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            topic_alias_maximum: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No connection.
    Offline,
    /// CONNECT sent, waiting for CONNACK.
    AwaitConnAck,
    /// CONNACK success received.
    Connected,
}

/// Bitmap of packet ids in use (1..=65535).
struct IdSet([u64; 1024]);

impl IdSet {
    fn contains(&self, id: u16) -> bool {
        self.0[(id >> 6) as usize] & (1u64 << (id & 63)) != 0
    }
    fn insert(&mut self, id: u16) {
        self.0[(id >> 6) as usize] |= 1u64 << (id & 63);
    }
    fn remove(&mut self, id: u16) {
        self.0[(id >> 6) as usize] &= !(1u64 << (id & 63));
    }
}

/// The session state machine.
pub(crate) struct Session {
    pub cfg: SessionConfig,
    /// Encoded bytes waiting to be written to the socket.
    pub out: Vec<u8>,
    /// How much of `out` has been written already.
    pub out_pos: usize,
    /// Events for the client to dispatch, in order.
    pub events: VecDeque<Event>,
    /// Log lines, emitted by whichever thread releases the client's lock next.
    pub logs: Vec<(LogLevel, String)>,
    phase: Phase,
    next_mid: u16,
    in_use: Box<IdSet>,
    in_use_count: usize,
    /// Outgoing QoS 1/2 messages in publish order; the sent ones form a prefix.
    outgoing: VecDeque<OutMsg>,
    /// Number of entries at the front of `outgoing` that were sent on this connection.
    inflight: usize,
    /// Unwritten QoS 0 messages: the `appended_total` at their end and their mid. Their
    /// sequence numbers run from `qos0_done` up.
    qos0_pending: VecDeque<(u64, u16)>,
    /// Sequence number of the next QoS 0 message.
    qos0_next: u64,
    /// QoS 0 messages below this sequence number are complete.
    qos0_done: u64,
    qos0_track: Arc<Qos0Track>,
    /// Total bytes ever appended to `out` / written from it (for QoS 0 completion).
    appended_total: u64,
    written_total: u64,
    pending_subs: HashMap<u16, ()>,
    pending_unsubs: HashMap<u16, ()>,
    /// Inbound QoS 2 messages received (PUBREC sent), delivered at PUBREL.
    inbound_qos2: HashMap<u16, Box<Message>>,
    /// Incoming topic aliases (alias -> topic) of this connection.
    in_aliases: HashMap<u16, String>,
    /// Our Topic Alias Maximum (from the CONNECT properties).
    client_alias_max: u16,
    limits: ServerLimits,
    keepalive: Duration,
    last_out: Instant,
    last_in: Instant,
    ping_sent: Option<Instant>,
    connack_deadline: Option<Instant>,
    /// The CONNECT of this connection asked for a clean start / sent a client id.
    connect_clean: bool,
    connect_had_id: bool,
    /// Set when a refused CONNACK or a protocol error means "close once `out` is written".
    pub notify: Arc<Notify>,
}

fn proto_err(msg: impl Into<String>) -> Close {
    Close::Protocol(ReasonCode::PROTOCOL_ERROR, msg.into())
}

impl Session {
    pub(crate) fn new(cfg: SessionConfig, notify: Arc<Notify>) -> Self {
        let now = Instant::now();
        Session {
            cfg,
            out: Vec::with_capacity(8 * 1024),
            out_pos: 0,
            events: VecDeque::new(),
            logs: Vec::new(),
            phase: Phase::Offline,
            next_mid: 0,
            in_use: Box::new(IdSet([0; 1024])),
            in_use_count: 0,
            outgoing: VecDeque::new(),
            inflight: 0,
            qos0_pending: VecDeque::new(),
            qos0_next: 0,
            qos0_done: 0,
            qos0_track: Qos0Track::new(notify.clone()),
            appended_total: 0,
            written_total: 0,
            pending_subs: HashMap::new(),
            pending_unsubs: HashMap::new(),
            inbound_qos2: HashMap::new(),
            in_aliases: HashMap::new(),
            client_alias_max: 0,
            limits: ServerLimits::default(),
            keepalive: Duration::ZERO,
            last_out: now,
            last_in: now,
            ping_sent: None,
            connack_deadline: None,
            connect_clean: true,
            connect_had_id: false,
            notify,
        }
    }

    /// The keepalive of the current connection in seconds: the one sent in CONNECT, or the
    /// broker's Server Keep Alive (MQTT 5) once the CONNACK carried one.
    pub(crate) fn keepalive_secs(&self) -> u16 {
        u16::try_from(self.keepalive.as_secs()).unwrap_or(u16::MAX)
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    fn log(&mut self, level: LogLevel, f: impl FnOnce() -> String) {
        if self.cfg.log
            || (self.cfg.logger && log::log_enabled!(target: "mqtt_sync", level.to_log_level()))
        {
            self.logs.push((level, f()));
        }
    }

    /// Bytes not yet written to the socket.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Number of stored outgoing QoS 1/2 messages (in flight and queued).
    pub(crate) fn outgoing_len(&self) -> usize {
        self.outgoing.len()
    }

    fn window(&self) -> usize {
        let client = if self.cfg.max_inflight == 0 {
            usize::MAX
        } else {
            self.cfg.max_inflight as usize
        };
        client.min(self.limits.receive_maximum as usize)
    }

    /// Allocates the next free message id (1..=65535, skipping ids in use).
    pub(crate) fn alloc_mid(&mut self) -> Result<u16> {
        if self.in_use_count >= 65535 {
            return Err(Error::QueueSize);
        }
        loop {
            self.next_mid = self.next_mid.wrapping_add(1);
            if self.next_mid == 0 {
                self.next_mid = 1;
            }
            if !self.in_use.contains(self.next_mid) {
                self.in_use.insert(self.next_mid);
                self.in_use_count += 1;
                return Ok(self.next_mid);
            }
        }
    }

    fn free_mid(&mut self, mid: u16) {
        if mid != 0 && self.in_use.contains(mid) {
            self.in_use.remove(mid);
            self.in_use_count -= 1;
        }
    }

    fn append_packet(&mut self, pkt: &Packet) -> Result<()> {
        let start = self.out.len();
        pkt.encode(self.cfg.protocol, &mut self.out)?;
        let len = self.out.len() - start;
        if len > self.limits.maximum_packet_size {
            self.out.truncate(start);
            return Err(Error::PayloadSize(format!(
                "{} of {len} bytes exceeds the broker's Maximum Packet Size of {}",
                pkt.name(),
                self.limits.maximum_packet_size
            )));
        }
        self.appended_total += len as u64;
        Ok(())
    }

    fn append_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        self.appended_total += bytes.len() as u64;
    }

    // ----------------------------------------------------------------- connection life

    /// Starts a new connection: resets per-connection state and queues CONNECT.
    pub(crate) fn start_connect(
        &mut self,
        connect: &Connect,
        bridge: bool,
        now: Instant,
        timeout: Duration,
    ) -> Result<()> {
        self.out.clear();
        self.out_pos = 0;
        self.appended_total = 0;
        self.written_total = 0;
        self.in_aliases.clear();
        self.limits = ServerLimits::default();
        self.client_alias_max = if self.cfg.protocol.is_v5() {
            connect.properties.topic_alias_maximum.unwrap_or(0)
        } else {
            0
        };
        self.keepalive = Duration::from_secs(u64::from(connect.keep_alive));
        self.ping_sent = None;
        self.last_in = now;
        self.last_out = now;
        self.connack_deadline = Some(now + timeout);
        self.connect_clean = connect.clean_start;
        self.connect_had_id = !connect.client_id.is_empty();
        self.inflight = 0;
        for m in self.outgoing.iter_mut() {
            m.sent = false;
        }
        self.phase = Phase::AwaitConnAck;
        self.log(LogLevel::Debug, || {
            format!(
                "Sending CONNECT (u{}, p{}, wr{}, wq{}, wf{}, c{}, k{}) client_id={}",
                u8::from(connect.username.is_some()),
                u8::from(connect.password.is_some()),
                u8::from(connect.will.as_ref().is_some_and(|w| w.retain)),
                connect.will.as_ref().map_or(0, |w| w.qos as u8),
                u8::from(connect.will.is_some()),
                u8::from(connect.clean_start),
                connect.keep_alive,
                connect.client_id
            )
        });
        let start = self.out.len();
        self.append_packet(&Packet::Connect(connect.clone()))?;
        if bridge {
            // Bridge mode: bit 7 of the protocol level byte (as Paho and mosquitto do).
            let mut i = start + 1;
            while self.out.get(i).is_some_and(|b| b & 0x80 != 0) {
                i += 1;
            }
            let name_len = if connect.protocol == Protocol::V31 {
                6
            } else {
                4
            };
            if let Some(b) = self.out.get_mut(i + 1 + 2 + name_len) {
                *b |= 0x80;
            }
        }
        Ok(())
    }

    /// The connection is gone (closed, lost, or never completed). QoS 0 messages not yet
    /// written are lost; QoS 1/2 messages stay for the resend; pending subscribes are
    /// forgotten.
    pub(crate) fn connection_closed(&mut self) {
        self.phase = Phase::Offline;
        self.out.clear();
        self.out_pos = 0;
        self.connack_deadline = None;
        self.ping_sent = None;
        self.inflight = 0;
        for m in self.outgoing.iter_mut() {
            m.sent = false;
        }
        if !self.qos0_pending.is_empty() {
            while let Some((_, mid)) = self.qos0_pending.pop_front() {
                self.free_mid(mid);
            }
            self.qos0_track.lost(self.qos0_done, self.qos0_next);
            self.qos0_done = self.qos0_next;
        }
        let subs: Vec<u16> = self.pending_subs.drain().map(|(k, _)| k).collect();
        let unsubs: Vec<u16> = self.pending_unsubs.drain().map(|(k, _)| k).collect();
        for mid in subs.into_iter().chain(unsubs) {
            self.free_mid(mid);
        }
        self.in_aliases.clear();
    }

    /// Bytes `n` of `out` were written to the socket.
    pub(crate) fn written(&mut self, n: usize, now: Instant) {
        if n == 0 {
            return;
        }
        self.out_pos += n;
        self.written_total += n as u64;
        self.last_out = now;
        if self.out_pos >= self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > 4 * 1024 * 1024 {
                self.out.shrink_to(64 * 1024);
            }
        } else if self.out_pos >= 256 * 1024
            || (self.out_pos >= 64 * 1024 && self.out_pos >= self.out.len() - self.out_pos)
        {
            // The socket keeps up only partly: drop the written front now, or the buffer
            // would keep growing at its end while it never drains completely. The buffer
            // stays within the unwritten bytes + 256 KiB; each move shifts at most 4 bytes
            // per byte written (fewer while little is pending), amortised O(1).
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        let before = self.qos0_done;
        while let Some(&(end, mid)) = self.qos0_pending.front() {
            if end > self.written_total {
                break;
            }
            self.qos0_pending.pop_front();
            self.free_mid(mid);
            self.qos0_done += 1;
            if self.cfg.publish_events {
                push_published_run(&mut self.events, mid);
            }
        }
        if self.qos0_done != before {
            self.qos0_track.written(self.qos0_done);
        }
    }

    /// The next time `handle_timeout` must run.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Offline => None,
            Phase::AwaitConnAck => self.connack_deadline,
            Phase::Connected => {
                if self.keepalive.is_zero() {
                    None
                } else if let Some(p) = self.ping_sent {
                    Some(p + self.keepalive)
                } else {
                    Some(self.last_out.min(self.last_in) + self.keepalive)
                }
            }
        }
    }

    /// Runs timers: CONNACK timeout, PINGREQ after `keepalive` of silence, and the missing
    /// PINGRESP.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> std::result::Result<(), Close> {
        match self.phase {
            Phase::Offline => Ok(()),
            Phase::AwaitConnAck => match self.connack_deadline {
                Some(d) if now >= d => Err(Close::ConnackTimeout),
                _ => Ok(()),
            },
            Phase::Connected => {
                if self.keepalive.is_zero() {
                    return Ok(());
                }
                if let Some(p) = self.ping_sent {
                    if now >= p + self.keepalive {
                        return Err(Close::Keepalive);
                    }
                    return Ok(());
                }
                if now >= self.last_out + self.keepalive || now >= self.last_in + self.keepalive {
                    self.log(LogLevel::Debug, || "Sending PINGREQ".to_string());
                    self.append_raw(&[0xC0, 0x00]);
                    self.ping_sent = Some(now);
                }
                Ok(())
            }
        }
    }

    // ----------------------------------------------------------------- outgoing

    /// Publishes a message: QoS 0 is written to `out` (only while connected); QoS 1/2 are
    /// stored and sent when the window allows. Returns the message's completion handle.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        props: Option<&Properties>,
    ) -> Result<Completion> {
        let v5 = self.cfg.protocol.is_v5();
        let props = if v5 { props } else { None };
        let alias = props.and_then(|p| p.topic_alias);
        let connected = self.phase == Phase::Connected;
        if connected {
            self.check_limits(qos, retain, alias)?;
        }
        if qos == QoS::AtMostOnce {
            // As Paho: once CONNECT is sent, a QoS 0 message may follow it at once
            // (MQTT allows packets before CONNACK).
            if self.phase == Phase::Offline {
                return Err(Error::NoConnection);
            }
            let mid = self.alloc_mid()?;
            let start = self.out.len();
            if let Err(e) = codec::encode_publish(
                &mut self.out,
                self.cfg.protocol,
                topic,
                payload,
                qos,
                retain,
                false,
                0,
                props,
            ) {
                self.free_mid(mid);
                return Err(e);
            }
            let len = self.out.len() - start;
            if len > self.limits.maximum_packet_size {
                self.out.truncate(start);
                self.free_mid(mid);
                return Err(self.too_large(len));
            }
            self.appended_total += len as u64;
            self.log(LogLevel::Debug, || {
                format!(
                    "Sending PUBLISH (d0, q0, r{}, m{mid}), '{topic}', ... ({} bytes)",
                    u8::from(retain),
                    payload.len()
                )
            });
            self.qos0_pending.push_back((self.appended_total, mid));
            let seq = self.qos0_next;
            self.qos0_next += 1;
            return Ok(Completion::Qos0 {
                track: self.qos0_track.clone(),
                seq,
                mid,
            });
        }
        if self.cfg.max_queued > 0 && self.outgoing.len() >= self.cfg.max_queued {
            return Err(Error::QueueSize);
        }
        let mid = self.alloc_mid()?;
        let mut bytes = Vec::new();
        if let Err(e) = codec::encode_publish(
            &mut bytes,
            self.cfg.protocol,
            topic,
            payload,
            qos,
            retain,
            false,
            mid,
            props,
        ) {
            self.free_mid(mid);
            return Err(e);
        }
        if connected && bytes.len() > self.limits.maximum_packet_size {
            self.free_mid(mid);
            return Err(self.too_large(bytes.len()));
        }
        let info = InfoShared::new(mid, self.notify.clone());
        self.outgoing.push_back(OutMsg {
            mid,
            qos,
            retain,
            topic_alias: alias,
            bytes,
            stage: Stage::Publish,
            sent: false,
            dup: false,
            info: info.clone(),
        });
        if connected {
            self.pump();
        }
        Ok(Completion::One(info))
    }

    fn too_large(&self, len: usize) -> Error {
        Error::PayloadSize(format!(
            "PUBLISH of {len} bytes exceeds the broker's Maximum Packet Size of {} bytes",
            self.limits.maximum_packet_size
        ))
    }

    /// Checks a publish against the broker's limits; the matching reason code on failure.
    fn limit_violation(&self, qos: QoS, retain: bool, alias: Option<u16>) -> Option<ReasonCode> {
        if qos > self.limits.maximum_qos {
            return Some(ReasonCode::QOS_NOT_SUPPORTED);
        }
        if retain && !self.limits.retain_available {
            return Some(ReasonCode::RETAIN_NOT_SUPPORTED);
        }
        if let Some(a) = alias {
            if a == 0 || a > self.limits.topic_alias_maximum {
                return Some(ReasonCode::TOPIC_ALIAS_INVALID);
            }
        }
        None
    }

    fn check_limits(&self, qos: QoS, retain: bool, alias: Option<u16>) -> Result<()> {
        match self.limit_violation(qos, retain, alias) {
            None => Ok(()),
            Some(rc) if rc == ReasonCode::QOS_NOT_SUPPORTED => Err(Error::NotSupported(format!(
                "QoS {} is above the broker's Maximum QoS {}",
                qos as u8, self.limits.maximum_qos as u8
            ))),
            Some(rc) if rc == ReasonCode::RETAIN_NOT_SUPPORTED => Err(Error::NotSupported(
                "the broker does not support retained messages (Retain Available = 0)".into(),
            )),
            Some(_) => Err(Error::InvalidArgument(format!(
                "Topic Alias {} is above the broker's Topic Alias Maximum {}",
                alias.unwrap_or(0),
                self.limits.topic_alias_maximum
            ))),
        }
    }

    /// Sends stored messages, in order, while the window has room.
    fn pump(&mut self) {
        if self.phase != Phase::Connected {
            return;
        }
        let window = self.window();
        while self.inflight < window && self.inflight < self.outgoing.len() {
            let idx = self.inflight;
            let (stage, mid) = {
                let m = &self.outgoing[idx];
                (m.stage, m.mid)
            };
            match stage {
                Stage::PubRel => {
                    self.log(LogLevel::Debug, || format!("Sending PUBREL (Mid: {mid})"));
                    self.append_raw(&[0x62, 0x02, (mid >> 8) as u8, mid as u8]);
                }
                Stage::Publish => {
                    let m = &mut self.outgoing[idx];
                    let dup = m.dup;
                    m.dup = true;
                    let first = m.bytes.first().copied().unwrap_or(0);
                    let qos = m.qos as u8;
                    let retain = m.retain;
                    let len = m.bytes.len();
                    if dup {
                        if let Some(b) = m.bytes.first_mut() {
                            *b = first | 0x08;
                        }
                    }
                    self.out.extend_from_slice(&self.outgoing[idx].bytes);
                    self.appended_total += len as u64;
                    self.log(LogLevel::Debug, || {
                        format!(
                            "Sending PUBLISH (d{}, q{qos}, r{}, m{mid}), ... ({len} bytes)",
                            u8::from(dup),
                            u8::from(retain)
                        )
                    });
                }
            }
            self.outgoing[idx].sent = true;
            self.inflight += 1;
        }
    }

    fn find_sent(&self, mid: u16) -> Option<usize> {
        self.outgoing
            .iter()
            .take(self.inflight)
            .position(|m| m.mid == mid)
    }

    fn complete_outgoing(&mut self, idx: usize, rc: ReasonCode, props: Properties) {
        if let Some(m) = self.outgoing.remove(idx) {
            if m.sent {
                self.inflight -= 1;
            }
            self.free_mid(m.mid);
            if rc.is_failure() {
                m.info.set_failed(rc);
            } else {
                m.info.set_published();
            }
            self.events.push_back(Event::Published {
                mid: m.mid,
                rc,
                props: if props.is_empty() {
                    None
                } else {
                    Some(Box::new(props))
                },
            });
        }
    }

    /// Queues SUBSCRIBE. Only while a connection is open (CONNECT sent).
    pub(crate) fn subscribe(
        &mut self,
        filters: Vec<(String, SubscribeOptions)>,
        props: Properties,
    ) -> Result<u16> {
        if self.phase == Phase::Offline {
            return Err(Error::NoConnection);
        }
        let mid = self.alloc_mid()?;
        let pkt = Packet::Subscribe(codec::Subscribe {
            pkid: mid,
            filters,
            properties: props,
        });
        if let Err(e) = self.append_packet(&pkt) {
            self.free_mid(mid);
            return Err(e);
        }
        if let Packet::Subscribe(s) = &pkt {
            self.log(LogLevel::Debug, || {
                let list: Vec<String> = s
                    .filters
                    .iter()
                    .map(|(f, o)| format!("(b'{f}', q{})", o.qos as u8))
                    .collect();
                format!("Sending SUBSCRIBE (d0, m{mid}) [{}]", list.join(", "))
            });
        }
        self.pending_subs.insert(mid, ());
        Ok(mid)
    }

    /// Queues UNSUBSCRIBE. Only while a connection is open (CONNECT sent).
    pub(crate) fn unsubscribe(&mut self, filters: Vec<String>, props: Properties) -> Result<u16> {
        if self.phase == Phase::Offline {
            return Err(Error::NoConnection);
        }
        let mid = self.alloc_mid()?;
        let pkt = Packet::Unsubscribe(codec::Unsubscribe {
            pkid: mid,
            filters,
            properties: props,
        });
        if let Err(e) = self.append_packet(&pkt) {
            self.free_mid(mid);
            return Err(e);
        }
        if let Packet::Unsubscribe(u) = &pkt {
            self.log(LogLevel::Debug, || {
                format!("Sending UNSUBSCRIBE (d0, m{mid}) {:?}", u.filters)
            });
        }
        self.pending_unsubs.insert(mid, ());
        Ok(mid)
    }

    /// Queues DISCONNECT.
    pub(crate) fn disconnect(&mut self, reason: ReasonCode, props: Properties) -> Result<()> {
        self.log(LogLevel::Debug, || "Sending DISCONNECT".to_string());
        self.append_packet(&Packet::Disconnect(Disconnect {
            reason,
            properties: props,
        }))
    }

    /// Queues an AUTH packet (MQTT 5 re-authentication).
    pub(crate) fn auth(&mut self, reason: ReasonCode, props: Properties) -> Result<()> {
        if !self.cfg.protocol.is_v5() {
            return Err(Error::NotSupported("AUTH exists only in MQTT 5".into()));
        }
        self.log(LogLevel::Debug, || format!("Sending AUTH ({})", reason.0));
        self.append_packet(&Packet::Auth(codec::Auth {
            reason,
            properties: props,
        }))
    }

    /// Sends the acknowledgement of an incoming message after its callback (or from
    /// `Client::ack`): PUBACK for QoS 1, PUBCOMP for QoS 2.
    pub(crate) fn ack_incoming(&mut self, mid: u16, qos: QoS) {
        if self.phase == Phase::Offline || mid == 0 {
            return;
        }
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                self.log(LogLevel::Debug, || format!("Sending PUBACK (Mid: {mid})"));
                self.append_raw(&[0x40, 0x02, (mid >> 8) as u8, mid as u8]);
            }
            QoS::ExactlyOnce => {
                self.log(LogLevel::Debug, || format!("Sending PUBCOMP (Mid: {mid})"));
                self.append_raw(&[0x70, 0x02, (mid >> 8) as u8, mid as u8]);
            }
        }
    }

    /// Decodes and handles every whole packet at the front of `buf`; returns the bytes used.
    pub(crate) fn receive(
        &mut self,
        buf: &[u8],
        now: Instant,
    ) -> std::result::Result<usize, (usize, Close)> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            if rest.is_empty() {
                return Ok(used);
            }
            match codec::decode(rest, self.cfg.protocol, self.cfg.max_incoming_packet) {
                Ok(None) => return Ok(used),
                Ok(Some((pkt, n))) => {
                    used += n;
                    self.last_in = now;
                    if let Err(c) = self.handle_packet(pkt, now) {
                        return Err((used, c));
                    }
                }
                Err(DecodeError { reason, message }) => {
                    self.log(LogLevel::Error, || {
                        format!("Malformed packet from the broker: {message}")
                    });
                    if self.cfg.protocol.is_v5() && self.phase == Phase::Connected {
                        let _ = self.disconnect(reason, Properties::default());
                    }
                    return Err((used, Close::Protocol(reason, message)));
                }
            }
        }
    }

    fn protocol_violation(&mut self, msg: String) -> Close {
        self.log(LogLevel::Error, || format!("Protocol error: {msg}"));
        if self.cfg.protocol.is_v5() && self.phase == Phase::Connected {
            let _ = self.disconnect(ReasonCode::PROTOCOL_ERROR, Properties::default());
        }
        proto_err(msg)
    }

    /// Handles one packet from the broker.
    pub(crate) fn handle_packet(
        &mut self,
        pkt: Packet,
        now: Instant,
    ) -> std::result::Result<(), Close> {
        if self.phase == Phase::AwaitConnAck {
            return match pkt {
                Packet::ConnAck(c) => self.handle_connack(c, now),
                Packet::Auth(_) if self.cfg.protocol.is_v5() => {
                    self.log(LogLevel::Warning, || {
                        "Received AUTH during connect; enhanced authentication is not supported"
                            .into()
                    });
                    Err(proto_err("enhanced authentication (AUTH) is not supported"))
                }
                Packet::Disconnect(d) if self.cfg.protocol.is_v5() => {
                    Err(Close::Server(ServerDisconnect {
                        reason: d.reason,
                        props: Box::new(d.properties),
                    }))
                }
                other => {
                    let name = other.name();
                    Err(self.protocol_violation(format!("expected CONNACK, received {name}")))
                }
            };
        }
        if self.phase == Phase::Offline {
            return Ok(());
        }
        match pkt {
            Packet::Publish(p) => self.handle_publish(p),
            Packet::PubAck(a) => {
                self.log(LogLevel::Debug, || {
                    format!("Received PUBACK (Mid: {})", a.pkid)
                });
                match self.find_sent(a.pkid) {
                    Some(i) if self.outgoing[i].qos == QoS::AtLeastOnce => {
                        self.complete_outgoing(i, a.reason, a.properties);
                        self.pump();
                    }
                    _ => self.log(LogLevel::Warning, || {
                        format!("PUBACK for unknown mid {} ignored", a.pkid)
                    }),
                }
                Ok(())
            }
            Packet::PubRec(a) => self.handle_pubrec(a),
            Packet::PubRel(a) => {
                self.log(LogLevel::Debug, || {
                    format!("Received PUBREL (Mid: {})", a.pkid)
                });
                match self.inbound_qos2.remove(&a.pkid) {
                    Some(msg) => {
                        let ack = Some((a.pkid, QoS::ExactlyOnce));
                        self.events.push_back(Event::Message { msg, ack });
                    }
                    None => self.ack_incoming(a.pkid, QoS::ExactlyOnce),
                }
                Ok(())
            }
            Packet::PubComp(a) => {
                self.log(LogLevel::Debug, || {
                    format!("Received PUBCOMP (Mid: {})", a.pkid)
                });
                match self.find_sent(a.pkid) {
                    Some(i) if self.outgoing[i].stage == Stage::PubRel => {
                        self.complete_outgoing(i, a.reason, a.properties);
                        self.pump();
                    }
                    _ => self.log(LogLevel::Warning, || {
                        format!("PUBCOMP for unknown mid {} ignored", a.pkid)
                    }),
                }
                Ok(())
            }
            Packet::SubAck(s) => {
                self.log(LogLevel::Debug, || {
                    format!("Received SUBACK (Mid: {})", s.pkid)
                });
                if self.pending_subs.remove(&s.pkid).is_some() {
                    self.free_mid(s.pkid);
                    self.events.push_back(Event::Subscribed {
                        mid: s.pkid,
                        rcs: s.reasons,
                        props: Box::new(s.properties),
                    });
                }
                Ok(())
            }
            Packet::UnsubAck(u) => {
                self.log(LogLevel::Debug, || {
                    format!("Received UNSUBACK (Mid: {})", u.pkid)
                });
                if self.pending_unsubs.remove(&u.pkid).is_some() {
                    self.free_mid(u.pkid);
                    self.events.push_back(Event::Unsubscribed {
                        mid: u.pkid,
                        rcs: u.reasons,
                        props: Box::new(u.properties),
                    });
                }
                Ok(())
            }
            Packet::PingResp => {
                self.log(LogLevel::Debug, || "Received PINGRESP".to_string());
                self.ping_sent = None;
                Ok(())
            }
            Packet::Disconnect(d) if self.cfg.protocol.is_v5() => {
                self.log(LogLevel::Debug, || {
                    format!("Received DISCONNECT {}", d.reason.0)
                });
                Err(Close::Server(ServerDisconnect {
                    reason: d.reason,
                    props: Box::new(d.properties),
                }))
            }
            Packet::Auth(a) if self.cfg.protocol.is_v5() => {
                self.log(LogLevel::Warning, || {
                    format!(
                        "Received AUTH ({}); enhanced authentication is not supported",
                        a.reason.0
                    )
                });
                Err(self.protocol_violation("unexpected AUTH from the broker".into()))
            }
            other => {
                let name = other.name();
                Err(self.protocol_violation(format!("unexpected {name} from the broker")))
            }
        }
    }

    fn handle_connack(&mut self, c: ConnAck, now: Instant) -> std::result::Result<(), Close> {
        let v5 = self.cfg.protocol.is_v5();
        let rc = if v5 {
            ReasonCode(c.code)
        } else {
            ReasonCode::from_connack_v3(c.code)
        };
        self.log(LogLevel::Debug, || {
            format!(
                "Received CONNACK ({}, {})",
                u8::from(c.session_present),
                c.code
            )
        });
        self.connack_deadline = None;
        if rc.is_failure() {
            self.events.push_back(Event::Connected {
                flags: ConnectFlags {
                    session_present: false,
                },
                rc,
                props: Box::new(c.properties),
            });
            return Err(Close::Refused(rc));
        }
        if c.session_present && self.connect_clean {
            // [MQTT-3.2.2-4]: a clean start never resumes a session.
            return Err(
                self.protocol_violation("CONNACK with Session Present after a clean start".into())
            );
        }
        if v5 {
            let p = &c.properties;
            if p.assigned_client_identifier.is_some() && self.connect_had_id {
                return Err(self.protocol_violation(
                    "CONNACK assigns a client identifier although the client sent one".into(),
                ));
            }
            if let Some(r) = p.receive_maximum {
                self.limits.receive_maximum = r;
            }
            if let Some(m) = p.maximum_packet_size {
                self.limits.maximum_packet_size = m as usize;
            }
            if let Some(q) = p.maximum_qos {
                self.limits.maximum_qos = if q == 0 {
                    QoS::AtMostOnce
                } else {
                    QoS::AtLeastOnce
                };
            }
            if let Some(r) = p.retain_available {
                self.limits.retain_available = r != 0;
            }
            if let Some(t) = p.topic_alias_maximum {
                self.limits.topic_alias_maximum = t;
            }
            if let Some(k) = p.server_keep_alive {
                self.keepalive = Duration::from_secs(u64::from(k));
            }
        }
        if !c.session_present {
            self.inbound_qos2.clear();
        }
        self.phase = Phase::Connected;
        self.last_in = now;
        // Queued messages that the new limits make invalid end here, never sent.
        let mut i = 0;
        while i < self.outgoing.len() {
            let m = &self.outgoing[i];
            let violation = if m.stage == Stage::Publish {
                if m.bytes.len() > self.limits.maximum_packet_size {
                    Some(ReasonCode::PACKET_TOO_LARGE)
                } else {
                    self.limit_violation(m.qos, m.retain, m.topic_alias)
                }
            } else {
                None
            };
            match violation {
                Some(rc) => self.complete_outgoing(i, rc, Properties::default()),
                None => i += 1,
            }
        }
        self.events.push_back(Event::Connected {
            flags: ConnectFlags {
                session_present: c.session_present,
            },
            rc,
            props: Box::new(c.properties),
        });
        self.pump();
        Ok(())
    }

    fn handle_pubrec(&mut self, a: Ack) -> std::result::Result<(), Close> {
        self.log(LogLevel::Debug, || {
            format!("Received PUBREC (Mid: {})", a.pkid)
        });
        match self.find_sent(a.pkid) {
            Some(i) if self.outgoing[i].qos == QoS::ExactlyOnce => {
                if a.reason.is_failure() {
                    self.complete_outgoing(i, a.reason, a.properties);
                    self.pump();
                } else {
                    let mid = a.pkid;
                    if self.outgoing[i].stage == Stage::Publish {
                        self.outgoing[i].stage = Stage::PubRel;
                        // Free the payload early: a PUBREL never needs it again.
                        self.outgoing[i].bytes = Vec::new();
                    }
                    self.log(LogLevel::Debug, || format!("Sending PUBREL (Mid: {mid})"));
                    self.append_raw(&[0x62, 0x02, (mid >> 8) as u8, mid as u8]);
                }
            }
            _ if a.reason.is_failure() => {
                // [MQTT-4.3.3-4]: PUBREL answers only a successful PUBREC.
                self.log(LogLevel::Warning, || {
                    format!("PUBREC (failure) for unknown mid {}", a.pkid)
                });
            }
            _ => {
                // Not ours (or not QoS 2): answer so the broker can release the id.
                let mid = a.pkid;
                self.log(LogLevel::Warning, || {
                    format!("PUBREC for unknown mid {mid}")
                });
                if self.cfg.protocol.is_v5() {
                    self.append_raw(&[0x62, 0x03, (mid >> 8) as u8, mid as u8, 0x92]);
                } else {
                    self.append_raw(&[0x62, 0x02, (mid >> 8) as u8, mid as u8]);
                }
            }
        }
        Ok(())
    }

    fn handle_publish(&mut self, p: Publish) -> std::result::Result<(), Close> {
        let Publish {
            dup,
            qos,
            retain,
            mut topic,
            pkid,
            mut properties,
            payload,
        } = p;
        if self.cfg.protocol.is_v5() {
            if let Some(alias) = properties.topic_alias.take() {
                if alias == 0 || alias > self.client_alias_max {
                    let _ = self.disconnect(ReasonCode::TOPIC_ALIAS_INVALID, Properties::default());
                    return Err(Close::Protocol(
                        ReasonCode::TOPIC_ALIAS_INVALID,
                        format!(
                            "Topic Alias {alias} above our Topic Alias Maximum {}",
                            self.client_alias_max
                        ),
                    ));
                }
                if topic.is_empty() {
                    match self.in_aliases.get(&alias) {
                        Some(t) => topic = t.clone(),
                        None => {
                            return Err(
                                self.protocol_violation(format!("unknown Topic Alias {alias}"))
                            );
                        }
                    }
                } else {
                    self.in_aliases.insert(alias, topic.clone());
                }
            }
        }
        if topic.is_empty() {
            return Err(self.protocol_violation("PUBLISH with an empty topic".into()));
        }
        self.log(LogLevel::Debug, || {
            format!(
                "Received PUBLISH (d{}, q{}, r{}, m{pkid}), '{topic}', ...  ({} bytes)",
                u8::from(dup),
                qos as u8,
                u8::from(retain),
                payload.len()
            )
        });
        let msg = Box::new(Message {
            topic,
            payload,
            qos,
            retain,
            dup,
            mid: pkid,
            properties: if properties.is_empty() {
                None
            } else {
                Some(Box::new(properties))
            },
            timestamp: Instant::now(),
        });
        match qos {
            QoS::AtMostOnce => self.events.push_back(Event::Message { msg, ack: None }),
            QoS::AtLeastOnce => self.events.push_back(Event::Message {
                msg,
                ack: Some((pkid, qos)),
            }),
            QoS::ExactlyOnce => {
                self.log(LogLevel::Debug, || format!("Sending PUBREC (Mid: {pkid})"));
                self.append_raw(&[0x50, 0x02, (pkid >> 8) as u8, pkid as u8]);
                self.inbound_qos2.entry(pkid).or_insert(msg);
            }
        }
        Ok(())
    }

    /// Fails every stored message (the client is being dropped or reinitialised).
    pub(crate) fn abandon_all(&mut self) {
        for m in self.outgoing.drain(..) {
            m.info.set_failed(ReasonCode(0));
        }
        self.inflight = 0;
        self.connection_closed();
        *self.in_use = IdSet([0; 1024]);
        self.in_use_count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, ConnAck};

    fn connect_pkt(protocol: Protocol, keep_alive: u16) -> Connect {
        Connect {
            protocol,
            clean_start: true,
            keep_alive,
            client_id: "t".into(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        }
    }

    fn session(protocol: Protocol, max_inflight: u16) -> Session {
        Session::new(
            SessionConfig {
                protocol,
                max_inflight,
                ..Default::default()
            },
            Arc::new(Notify::default()),
        )
    }

    /// Decodes every packet in `out` and clears it (as if written).
    fn drain(s: &mut Session) -> Vec<Packet> {
        let proto = s.cfg.protocol;
        let bytes = s.out[s.out_pos..].to_vec();
        let n = bytes.len();
        s.written(n, Instant::now());
        let mut pkts = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            // CONNECT decodes with the protocol it carries.
            let (p, used) = decode(&bytes[at..], proto, usize::MAX)
                .expect("valid")
                .expect("whole");
            pkts.push(p);
            at += used;
        }
        pkts
    }

    fn connack(s: &mut Session, props: Properties, now: Instant) {
        s.handle_packet(
            Packet::ConnAck(ConnAck {
                session_present: false,
                code: 0,
                properties: props,
            }),
            now,
        )
        .expect("connack accepted");
    }

    /// Starts a connection with the session's protocol and `keep_alive`.
    fn start(s: &mut Session, keep_alive: u16, now: Instant) {
        let connect = connect_pkt(s.cfg.protocol, keep_alive);
        s.start_connect(&connect, false, now, Duration::from_secs(5))
            .unwrap();
    }

    fn up(protocol: Protocol, max_inflight: u16) -> (Session, Instant) {
        let now = Instant::now();
        let mut s = session(protocol, max_inflight);
        start(&mut s, 10, now);
        connack(&mut s, Properties::default(), now);
        drain(&mut s);
        s.events.clear();
        (s, now)
    }

    fn pub_mids(pkts: &[Packet]) -> Vec<(u16, bool)> {
        pkts.iter()
            .filter_map(|p| match p {
                Packet::Publish(p) => Some((p.pkid, p.dup)),
                _ => None,
            })
            .collect()
    }

    fn ack(pkid: u16) -> Ack {
        Ack {
            pkid,
            reason: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }
    }

    #[test]
    fn written_qos0_messages_queue_one_run_per_batch_across_the_mid_wrap() {
        let (mut s, _) = up(Protocol::V311, 0);
        s.cfg.publish_events = true;
        s.next_mid = 65533;
        for _ in 0..4 {
            s.publish("t", b"x", QoS::AtMostOnce, false, None).unwrap();
        }
        drain(&mut s);
        assert_eq!(s.events.len(), 1, "{:?}", s.events);
        assert!(matches!(
            s.events[0],
            Event::PublishedRun {
                first: 65534,
                count: 4
            }
        ));
        // A QoS 1 message in flight keeps its mid: the QoS 0 mids after it skip it, so the
        // run breaks there.
        s.events.clear();
        s.next_mid = 9;
        s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
        s.next_mid = 7;
        for _ in 0..3 {
            s.publish("t", b"x", QoS::AtMostOnce, false, None).unwrap();
        }
        drain(&mut s);
        let runs: Vec<(u16, u32)> = s
            .events
            .iter()
            .filter_map(|e| match e {
                Event::PublishedRun { first, count } => Some((*first, *count)),
                _ => None,
            })
            .collect();
        assert_eq!(runs, vec![(8, 2), (11, 1)]);
    }

    #[test]
    fn qos0_infos_complete_in_order_and_fail_only_what_the_connection_lost() {
        let info = |c: &Completion| crate::MessageInfo {
            shared: c.clone(),
            loop_thread: std::sync::Weak::new(),
        };
        let (mut s, now) = up(Protocol::V311, 0);
        let a: Vec<Completion> = (0..4)
            .map(|_| s.publish("t", b"x", QoS::AtMostOnce, false, None).unwrap())
            .collect();
        let one = s.pending_bytes() / 4;
        s.written(one + 1, now); // the first and one byte of the second
        let st: Vec<bool> = a.iter().map(|c| info(c).is_published()).collect();
        assert_eq!(st, vec![true, false, false, false]);
        s.written(one, now); // the second
        s.connection_closed(); // the third and fourth are lost
        let rc: Vec<(bool, i32)> = a
            .iter()
            .map(|c| (info(c).is_published(), info(c).rc()))
            .collect();
        let lost = Error::ConnectionLost.code();
        assert_eq!(rc, vec![(true, 0), (true, 0), (false, lost), (false, lost)]);
        assert_eq!(
            info(&a[3]).wait_for_publish(None).unwrap_err().code(),
            lost,
            "a lost message ends its wait at once"
        );
        // A new connection: written messages after a loss are published, and a second loss
        // right after the first merges with it.
        start(&mut s, 10, now);
        connack(&mut s, Properties::default(), now);
        drain(&mut s);
        let b = s.publish("t", b"x", QoS::AtMostOnce, false, None).unwrap();
        drain(&mut s);
        let c = s.publish("t", b"x", QoS::AtMostOnce, false, None).unwrap();
        s.connection_closed();
        assert!(info(&b).is_published());
        assert_eq!(info(&c).rc(), lost);
        assert!(info(&a[1]).is_published() && info(&a[2]).rc() == lost);
        assert_eq!(
            info(&b).wait_for_publish(Some(Duration::ZERO)).ok(),
            Some(())
        );
    }

    #[test]
    fn output_that_never_drains_completely_stays_bounded_and_in_order() {
        // A socket that takes a bit less than what is queued each time: without compaction the
        // buffer grows at its end forever although the unwritten part stays small.
        let (mut s, now) = up(Protocol::V311, 0);
        let mut wire = Vec::new();
        let mut max_cap = 0;
        for i in 0..100_000u32 {
            s.publish("t", &i.to_be_bytes(), QoS::AtMostOnce, false, None)
                .unwrap();
            let pending = s.pending_bytes();
            let take = pending.saturating_sub(50);
            wire.extend_from_slice(&s.out[s.out_pos..s.out_pos + take]);
            s.written(take, now);
            max_cap = max_cap.max(s.out.capacity());
        }
        wire.extend_from_slice(&s.out[s.out_pos..]);
        assert!(
            max_cap <= 128 * 1024,
            "output buffer grew to {max_cap} bytes"
        );
        let mut at = 0;
        let mut next = 0u32;
        while at < wire.len() {
            let (p, used) = decode(&wire[at..], Protocol::V311, usize::MAX)
                .expect("valid")
                .expect("whole");
            let Packet::Publish(p) = p else {
                panic!("not a PUBLISH")
            };
            assert_eq!(
                p.payload[..],
                next.to_be_bytes()[..],
                "bytes lost or reordered"
            );
            next += 1;
            at += used;
        }
        assert_eq!(next, 100_000);
    }

    #[test]
    fn mids_start_at_one_are_shared_and_skip_ids_in_flight() {
        let (mut s, _) = up(Protocol::V311, 0);
        let a = s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
        let b = s.publish("t", b"x", QoS::AtMostOnce, false, None).unwrap();
        let c = s
            .subscribe(
                vec![("t".into(), SubscribeOptions::default())],
                Properties::default(),
            )
            .unwrap();
        assert_eq!((a.mid(), b.mid(), c), (1, 2, 3));
        // QoS 0 mid 2 is freed once written; mid 1 (unacked) and 3 (no SUBACK) stay in use.
        drain(&mut s);
        s.next_mid = 65535;
        let d = s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
        assert_eq!(
            d.mid(),
            2,
            "wraps to 1 (in flight, skipped), then 2 (free again)"
        );
        let e = s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
        assert_eq!(e.mid(), 4, "3 waits for its SUBACK");
    }

    #[test]
    fn window_limits_inflight_and_keeps_order() {
        let (mut s, now) = up(Protocol::V311, 2);
        for _ in 0..5 {
            s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
        }
        assert_eq!(pub_mids(&drain(&mut s)), vec![(1, false), (2, false)]);
        s.handle_packet(Packet::PubAck(ack(1)), now).unwrap();
        assert_eq!(pub_mids(&drain(&mut s)), vec![(3, false)]);
        s.handle_packet(Packet::PubAck(ack(3)), now).unwrap();
        s.handle_packet(Packet::PubAck(ack(2)), now).unwrap();
        assert_eq!(pub_mids(&drain(&mut s)), vec![(4, false), (5, false)]);
        let published: Vec<u16> = s
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Published { mid, .. } => Some(*mid),
                _ => None,
            })
            .collect();
        assert_eq!(published, vec![1, 3, 2]);
    }

    #[test]
    fn reconnect_resends_with_dup_in_order_and_pubrel_within_window() {
        let (mut s, now) = up(Protocol::V311, 3);
        for q in [
            QoS::ExactlyOnce,
            QoS::AtLeastOnce,
            QoS::AtLeastOnce,
            QoS::AtLeastOnce,
            QoS::AtLeastOnce,
        ] {
            s.publish("t", b"x", q, false, None).unwrap();
        }
        drain(&mut s);
        // mid 1 (QoS 2) gets PUBREC: PUBREL sent.
        s.handle_packet(Packet::PubRec(ack(1)), now).unwrap();
        assert!(matches!(drain(&mut s)[..], [Packet::PubRel(ref a)] if a.pkid == 1));
        s.connection_closed();
        start(&mut s, 10, now);
        drain(&mut s);
        connack(&mut s, Properties::default(), now);
        let pkts = drain(&mut s);
        // Window 3: PUBREL 1, then PUBLISH 2 and 3 with DUP; 4 and 5 wait.
        assert!(
            matches!(pkts[0], Packet::PubRel(ref a) if a.pkid == 1),
            "{pkts:?}"
        );
        assert_eq!(pub_mids(&pkts), vec![(2, true), (3, true)]);
        s.handle_packet(Packet::PubComp(ack(1)), now).unwrap();
        // 4 was never sent: no DUP.
        assert_eq!(pub_mids(&drain(&mut s)), vec![(4, false)]);
    }

    #[test]
    fn inbound_qos2_is_delivered_once_at_pubrel() {
        let (mut s, now) = up(Protocol::V311, 0);
        let p = Publish {
            dup: false,
            qos: QoS::ExactlyOnce,
            retain: false,
            topic: "a".into(),
            pkid: 7,
            properties: Properties::default(),
            payload: b"p".to_vec(),
        };
        s.handle_packet(Packet::Publish(p.clone()), now).unwrap();
        s.handle_packet(Packet::Publish(Publish { dup: true, ..p }), now)
            .unwrap();
        assert!(s.events.is_empty(), "nothing delivered before PUBREL");
        let pkts = drain(&mut s);
        assert_eq!(pkts.len(), 2);
        assert!(pkts
            .iter()
            .all(|p| matches!(p, Packet::PubRec(a) if a.pkid == 7)));
        s.handle_packet(Packet::PubRel(ack(7)), now).unwrap();
        s.handle_packet(Packet::PubRel(ack(7)), now).unwrap();
        let delivered = s
            .events
            .iter()
            .filter(|e| matches!(e, Event::Message { .. }))
            .count();
        assert_eq!(delivered, 1);
        // The second PUBREL is answered at once; the first after the callback.
        assert!(matches!(drain(&mut s)[..], [Packet::PubComp(ref a)] if a.pkid == 7));
    }

    #[test]
    fn keepalive_pings_then_times_out() {
        let (mut s, t0) = up(Protocol::V311, 0);
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(10)));
        s.handle_timeout(t0 + Duration::from_secs(9)).unwrap();
        assert!(drain(&mut s).is_empty());
        s.handle_timeout(t0 + Duration::from_secs(10)).unwrap();
        assert!(matches!(drain(&mut s)[..], [Packet::PingReq]));
        assert!(s.handle_timeout(t0 + Duration::from_secs(19)).is_ok());
        assert!(matches!(
            s.handle_timeout(t0 + Duration::from_secs(20)),
            Err(Close::Keepalive)
        ));
    }

    #[test]
    fn connack_limits_refuse_or_end_queued_messages() {
        let now = Instant::now();
        let mut s = session(Protocol::V5, 0);
        let too_big = s
            .publish("t", &[0u8; 100], QoS::AtLeastOnce, false, None)
            .unwrap();
        let qos2 = s.publish("t", b"x", QoS::ExactlyOnce, false, None).unwrap();
        let retained = s.publish("t", b"x", QoS::AtLeastOnce, true, None).unwrap();
        let ok = s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
        start(&mut s, 0, now);
        drain(&mut s);
        connack(
            &mut s,
            Properties {
                maximum_packet_size: Some(50),
                maximum_qos: Some(1),
                retain_available: Some(0),
                receive_maximum: Some(1),
                ..Default::default()
            },
            now,
        );
        let ended: Vec<(u16, u8)> = s
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Published { mid, rc, .. } => Some((*mid, rc.0)),
                _ => None,
            })
            .collect();
        assert_eq!(
            ended,
            vec![
                (too_big.mid(), 0x95),
                (qos2.mid(), 0x9B),
                (retained.mid(), 0x9A)
            ]
        );
        assert_eq!(pub_mids(&drain(&mut s)), vec![(ok.mid(), false)]);
        // While connected the same publishes are refused up front.
        assert!(matches!(
            s.publish("t", b"x", QoS::ExactlyOnce, false, None),
            Err(Error::NotSupported(_))
        ));
        assert!(matches!(
            s.publish("t", &[0u8; 100], QoS::AtMostOnce, false, None),
            Err(Error::PayloadSize(_))
        ));
        assert!(s.out.is_empty(), "a refused call sends nothing");
    }

    #[test]
    fn offline_qos0_and_subscribe_are_refused() {
        let mut s = session(Protocol::V311, 0);
        assert!(matches!(
            s.publish("t", b"x", QoS::AtMostOnce, false, None),
            Err(Error::NoConnection)
        ));
        assert!(matches!(
            s.subscribe(
                vec![("t".into(), SubscribeOptions::default())],
                Properties::default()
            ),
            Err(Error::NoConnection)
        ));
        s.cfg.max_queued = 1;
        s.publish("t", b"x", QoS::AtLeastOnce, false, None).unwrap();
        assert!(matches!(
            s.publish("t", b"x", QoS::AtLeastOnce, false, None),
            Err(Error::QueueSize)
        ));
    }
}
