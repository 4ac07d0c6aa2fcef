//! The MQTT session state machine, without sockets, threads or clocks of its own.
//!
//! It takes received bytes and an `Instant`, and produces bytes to write
//! ([`Session::pending_out`], then [`Session::written`]), events for the callbacks
//! ([`Session::take_events`]), log lines ([`Session::take_logs`]) and its next deadline
//! ([`Session::next_deadline`]). Packet ids, the in-flight window, the offline queue, QoS 1/2
//! flows in both directions, keepalive, the resend after a reconnect, topic aliases and the
//! broker's MQTT 5 limits all live here; every packet it sends is encoded by the codec.
//!
//! - `mod.rs` (this file): the state, the output buffer, the event queue.
//! - `lifecycle.rs`: a connection's life: CONNECT queued, the connection's end (why it ended,
//!   the event that reports it, what is forgotten), abandoning everything.
//! - `outgoing.rs`: publish, the in-flight window, subscribe/unsubscribe, DISCONNECT, AUTH.
//! - `incoming.rs`: decoding and handling what the broker sends (CONNACK, PUBLISH, acks).
//! - `auth.rs`: MQTT 5 enhanced authentication (AUTH in both directions, re-authentication).

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::{self, Packet};
use crate::completion::{InfoShared, Notify, Qos0Track};
use crate::message::Message;
use crate::types::{ConnectFlags, DisconnectFlags, LogLevel, Protocol, QoS, ReasonCode};
use crate::{Error, Properties, Result};
use ids::IdSet;
pub(crate) use lifecycle::{Close, Ended, ServerDisconnect};

mod auth;
#[cfg(feature = "fuzzing")]
mod footprint;
mod ids;
mod inbound;
mod incoming;
mod lifecycle;
mod outgoing;
mod persist;
#[cfg(test)]
mod tests;
mod timers;

/// Something a callback will report, in the order it happened. The session produces most of
/// them; the client adds the ones about sockets ([`Session::push_event`]).
// `Message` is boxed so that a queue of small events (a flood of QoS 0 `on_publish`) stays
// small: the enum is a few dozen bytes instead of the size of a message.
#[derive(Debug)]
pub(crate) enum Event {
    /// A CONNACK arrived (success or refusal): `on_connect`.
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
    /// The connection ended: `on_disconnect`.
    Disconnected {
        flags: DisconnectFlags,
        rc: ReasonCode,
        props: Box<Properties>,
    },
    /// An attempt ended before its CONNACK: `on_connect_fail`.
    ConnectFailed(Error),
    /// An AUTH packet of the broker's enhanced authentication (Continue authentication
    /// during CONNECT or a re-authentication, or Success at the end of a re-authentication):
    /// `on_auth`, whose answer the client sends if the connection is still this one.
    Auth {
        rc: ReasonCode,
        props: Box<Properties>,
    },
    /// `on_socket_open` / `_close` / `_register_write` / `_unregister_write`.
    Socket(SocketEvent, RawFd),
}

/// What happened to the socket, for an external event loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SocketEvent {
    Open,
    Close,
    RegisterWrite,
    UnregisterWrite,
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

/// Settings of the session, derived from the client's options.
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
    /// Remember subscriptions and renew them after a CONNACK without a session.
    pub resubscribe: bool,
    /// Outgoing topic aliases the client assigns itself (MQTT 5; 0 = off), at most this
    /// many and at most the broker's Topic Alias Maximum.
    pub auto_aliases: u16,
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
            resubscribe: false,
            auto_aliases: 0,
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

/// A stored outgoing QoS 1/2 message.
#[derive(Debug)]
struct OutMsg {
    mid: u16,
    qos: QoS,
    retain: bool,
    topic_alias: Option<u16>,
    /// The encoded PUBLISH (DUP clear until the first resend).
    bytes: Vec<u8>,
    stage: Stage,
    /// Sent on the current connection (counts against the in-flight window).
    sent: bool,
    /// The PUBLISH was sent before (so a resend carries DUP).
    dup: bool,
    /// Publish order across restarts (persistence only; 0 without a store).
    order: u64,
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

/// The session state machine.
pub(crate) struct Session {
    cfg: SessionConfig,
    /// Encoded bytes waiting to be written to the socket; `out[out_pos..]` is unwritten.
    out: Vec<u8>,
    out_pos: usize,
    /// What the callbacks will report, in order, each tagged with its connection's id.
    events: VecDeque<(u64, Event)>,
    /// Log lines, emitted by whichever thread releases the client's lock next.
    logs: Vec<(LogLevel, String)>,
    /// The id the client gave the current (or last) connection.
    conn_id: u64,
    phase: Phase,
    next_mid: u16,
    /// Ids taken: by a message, SUBSCRIBE or UNSUBSCRIBE in progress, or by a completed
    /// publish whose `on_publish` event has not been dispatched yet (released by
    /// [`Session::release_reported`]), so that no new publish shares the mid of an
    /// `on_publish` still to come.
    in_use: Box<IdSet>,
    in_use_count: usize,
    /// Tells this session from the one a `reinitialise()` put in its place, for ids
    /// released after dispatch.
    instance: u64,
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
    /// Counters for monitoring (`Client::stats`).
    stats: crate::types::Stats,
    /// The Server Reference of the last redirect (0x9C / 0x9D), until the client takes it.
    redirect: Option<String>,
    /// Subscriptions to renew (`resubscribe_set`), in the order made: the filters of one
    /// SUBSCRIBE, its properties, and the connection it was last sent on.
    remembered: Vec<outgoing::Remembered>,
    /// Total bytes ever appended to `out` / written from it (for QoS 0 completion).
    appended_total: u64,
    written_total: u64,
    pending_subs: HashMap<u16, ()>,
    pending_unsubs: HashMap<u16, ()>,
    /// Incoming QoS 2 messages between PUBREC and PUBCOMP (`inbound.rs`).
    inbound_qos2: HashMap<u16, inbound::InQos2>,
    /// Payload and topic bytes of the messages stored in `inbound_qos2` (bounded by
    /// [`inbound::INBOUND_QOS2_BYTES`]).
    inbound_qos2_bytes: usize,
    /// Our Receive Maximum (MQTT 5 CONNECT property; 65,535 when not sent): incoming QoS 1/2
    /// messages not yet acknowledged.
    client_receive_max: u16,
    /// Incoming QoS 1 messages of this connection whose PUBACK is still owed.
    inbound_qos1: HashSet<u16>,
    /// Incoming topic aliases (alias -> topic) of this connection.
    in_aliases: HashMap<u16, String>,
    /// Outgoing topic aliases the client assigned on this connection (topic -> alias).
    out_aliases: HashMap<String, u16>,
    /// Our Topic Alias Maximum (from the CONNECT properties).
    client_alias_max: u16,
    limits: ServerLimits,
    keepalive: Duration,
    last_out: Instant,
    last_in: Instant,
    ping_sent: Option<Instant>,
    /// Output is pending: the total written when that was first seen, and since when no
    /// byte of it was written.
    stall: Option<(u64, Instant)>,
    connack_deadline: Option<Instant>,
    /// The CONNECT of this connection asked for a clean start / sent a client id.
    connect_clean: bool,
    connect_had_id: bool,
    /// The broker's Assigned Client Identifier, until the client takes it.
    assigned_id: Option<String>,
    /// The Authentication Method of this connection's CONNECT (MQTT 5 enhanced
    /// authentication), `None` without one.
    auth_method: Option<String>,
    /// The client sent AUTH 0x19 (re-authenticate) and the exchange has not ended yet.
    reauth: bool,
    notify: Arc<Notify>,
    /// The session store (`persistence_set`); `None` (the default) keeps the state in
    /// memory only.
    persist: Option<Box<dyn crate::persistence::Persistence>>,
    /// The next publish-order number of a stored outgoing message.
    persist_seq: u64,
}

impl Session {
    pub(crate) fn new(cfg: SessionConfig, notify: Arc<Notify>) -> Self {
        let now = crate::time::now();
        Session {
            cfg,
            out: Vec::with_capacity(8 * 1024),
            out_pos: 0,
            events: VecDeque::new(),
            logs: Vec::new(),
            conn_id: 0,
            phase: Phase::Offline,
            next_mid: 0,
            in_use: Box::new(IdSet::empty()),
            in_use_count: 0,
            instance: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
            outgoing: VecDeque::new(),
            inflight: 0,
            qos0_pending: VecDeque::new(),
            qos0_next: 0,
            qos0_done: 0,
            qos0_track: Qos0Track::new(notify.clone()),
            stats: crate::types::Stats::default(),
            redirect: None,
            remembered: Vec::new(),
            appended_total: 0,
            written_total: 0,
            pending_subs: HashMap::new(),
            pending_unsubs: HashMap::new(),
            inbound_qos2: HashMap::new(),
            inbound_qos2_bytes: 0,
            client_receive_max: u16::MAX,
            inbound_qos1: HashSet::new(),
            in_aliases: HashMap::new(),
            out_aliases: HashMap::new(),
            client_alias_max: 0,
            limits: ServerLimits::default(),
            keepalive: Duration::ZERO,
            last_out: now,
            last_in: now,
            ping_sent: None,
            stall: None,
            connack_deadline: None,
            connect_clean: true,
            connect_had_id: false,
            assigned_id: None,
            auth_method: None,
            reauth: false,
            notify,
            persist: None,
            persist_seq: 0,
        }
    }

    /// Replaces the settings (the client calls it when an option changes).
    pub(crate) fn set_config(&mut self, cfg: SessionConfig) {
        self.cfg = cfg;
    }

    /// The keepalive of the current connection in seconds: the one sent in CONNECT, or the
    /// broker's Server Keep Alive (MQTT 5) once the CONNACK carried one.
    pub(crate) fn keepalive_secs(&self) -> u16 {
        u16::try_from(self.keepalive.as_secs()).unwrap_or(u16::MAX)
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// The Assigned Client Identifier of the last CONNACK, once.
    pub(crate) fn take_assigned_client_id(&mut self) -> Option<String> {
        self.assigned_id.take()
    }

    // ----------------------------------------------------------------- events and logs

    fn log(&mut self, level: LogLevel, f: impl FnOnce() -> String) {
        if self.cfg.log
            || (self.cfg.logger && log::log_enabled!(target: "mqtt_sync", level.to_log_level()))
        {
            self.logs.push((level, f()));
        }
    }

    /// Adds a line from the client to the log lines, in order with the session's own.
    pub(crate) fn push_log(&mut self, level: LogLevel, line: impl FnOnce() -> String) {
        self.log(level, line);
    }

    /// The log lines produced since the last call.
    pub(crate) fn take_logs(&mut self) -> Vec<(LogLevel, String)> {
        std::mem::take(&mut self.logs)
    }

    pub(crate) fn has_logs(&self) -> bool {
        !self.logs.is_empty()
    }

    /// Queues an event of the client's (sockets) behind the session's own.
    pub(crate) fn push_event(&mut self, ev: Event) {
        self.events.push_back((self.conn_id, ev));
    }

    /// Queues `on_publish(mid, SUCCESS)` for a written QoS 0 message, extending the last run.
    fn push_published_run(&mut self, mid: u16) {
        let ev = Event::PublishedRun {
            first: mid,
            count: 1,
        };
        let ev = match self.events.back_mut() {
            Some((id, back)) if *id == self.conn_id => back.merge_run(ev),
            _ => Some(ev),
        };
        if let Some(ev) = ev {
            self.events.push_back((self.conn_id, ev));
        }
    }

    /// Every queued event, in order, each with the id of the connection it belongs to.
    pub(crate) fn take_events(&mut self) -> VecDeque<(u64, Event)> {
        std::mem::take(&mut self.events)
    }

    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Drops every queued event (the client is shutting down).
    pub(crate) fn clear_events(&mut self) {
        self.events.clear();
    }

    // ----------------------------------------------------------------- the output buffer

    /// Bytes waiting to be written to the socket.
    pub(crate) fn pending_out(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// Number of bytes not yet written to the socket.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Number of incoming QoS 2 messages between PUBREC and PUBCOMP (for the simulation).
    #[cfg(feature = "simulation")]
    pub(crate) fn inbound_qos2_len(&self) -> usize {
        self.inbound_qos2.len()
    }

    /// Number of stored outgoing QoS 1/2 messages (in flight and queued).
    pub(crate) fn outgoing_len(&self) -> usize {
        self.outgoing.len()
    }

    /// Outgoing QoS 1/2 messages sent on this connection and not yet acknowledged.
    pub(crate) fn inflight_len(&self) -> usize {
        self.inflight
    }

    /// The counters since the session was made.
    pub(crate) fn stats(&self) -> crate::types::Stats {
        self.stats
    }

    /// The Server Reference of a redirect received on the connection that just ended.
    pub(crate) fn take_redirect(&mut self) -> Option<String> {
        self.redirect.take()
    }

    /// A connection reached CONNACK success (counted for `Stats`).
    pub(crate) fn count_connection(&mut self) {
        self.stats.connections += 1;
    }

    /// The first `n` bytes of [`Session::pending_out`] were written to the socket.
    pub(crate) fn written(&mut self, n: usize, now: Instant) {
        if n == 0 {
            return;
        }
        self.out_pos += n;
        self.written_total += n as u64;
        self.stats.bytes_sent += n as u64;
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
            self.qos0_done += 1;
            if self.cfg.publish_events {
                // The id stays taken until the event is dispatched.
                self.push_published_run(mid);
            } else {
                self.free_mid(mid);
            }
        }
        if self.qos0_done != before {
            self.qos0_track.written(self.qos0_done);
        }
    }

    /// Encodes `pkt` onto the output; refuses (appending nothing) a packet over the broker's
    /// Maximum Packet Size.
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

    /// Queues an acknowledgement or a PINGREQ: the few bytes of the shortest packets, sent
    /// whatever the broker's Maximum Packet Size says (as libmosquitto: no smaller packet
    /// exists that would do their job).
    fn send_control(&mut self, pkt: Packet) {
        let start = self.out.len();
        match pkt.encode(self.cfg.protocol, &mut self.out) {
            Ok(()) => self.appended_total += (self.out.len() - start) as u64,
            Err(e) => {
                let name = pkt.name();
                self.log(LogLevel::Warning, || format!("{name} not sent: {e}"));
            }
        }
    }

    // ----------------------------------------------------------------- packet ids

    fn window(&self) -> usize {
        let client = if self.cfg.max_inflight == 0 {
            usize::MAX
        } else {
            self.cfg.max_inflight as usize
        };
        client.min(self.limits.receive_maximum as usize)
    }
}
