//! The MQTT session state machine, without sockets, threads or clocks of its own.
//!
//! It takes received bytes and an `Instant`, and produces bytes to write
//! ([`Session::pending_out`], then [`Session::written`]), events for the callbacks
//! ([`Session::take_events`]), log lines ([`Session::take_logs`]) and its next deadline
//! ([`Session::next_deadline`]). Packet ids, the in-flight window, the offline queue, QoS 1/2
//! flows in both directions, keepalive, the resend after a reconnect, topic aliases and the
//! broker's MQTT 5 limits all live here; every packet it sends is encoded by the codec.
//!
//! - `mod.rs` (this file): the state, the connection's life, timers, the output buffer, the
//!   event queue.
//! - `outgoing.rs`: publish, the in-flight window, subscribe/unsubscribe, DISCONNECT, AUTH.
//! - `incoming.rs`: decoding and handling what the broker sends (CONNACK, PUBLISH, acks).
//! - `auth.rs`: MQTT 5 enhanced authentication (AUTH in both directions, re-authentication).

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::{self, Connect, Packet};
use crate::completion::{InfoShared, Notify, Qos0Track};
use crate::message::Message;
use crate::types::{ConnectFlags, DisconnectFlags, LogLevel, Protocol, QoS, ReasonCode};
use crate::{Error, Properties, Result};
use ids::IdSet;

mod auth;
#[cfg(feature = "fuzzing")]
mod footprint;
mod ids;
mod inbound;
mod incoming;
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
    /// Output waited a whole keepalive period without a byte written: the broker reads
    /// nothing.
    Stalled,
    /// No CONNACK before the connect timeout.
    ConnackTimeout,
    /// The session store failed to write a record the next packet depends on.
    Store(String),
}

/// Why the client ends a connection ([`Session::connection_closed`]).
#[derive(Debug)]
pub(crate) enum Ended {
    /// The session decided it (`receive`, `handle_timeout`).
    Session(Close),
    /// The socket failed or reached its end.
    Lost(Error),
    /// `disconnect()`: DISCONNECT was written, or the broker closed first after it.
    User,
    /// Closed without any callback (`reinitialise`, the last handle dropped, a failed
    /// `start_connect`).
    Quiet,
    /// Closed with the socket callbacks only (`on_socket_unregister_write`,
    /// `on_socket_close`), no session callback: `reconnect()` replacing the connection (as
    /// Paho's `_reset_sockets`), or a connect attempt whose CONNECT could not be written,
    /// whose caller reports the error (`on_connect_fail` from a loop, `Err` from `connect`).
    SocketOnly,
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

    // ----------------------------------------------------------------- connection life

    /// Starts connection `conn_id`: resets per-connection state and queues CONNECT. The
    /// CONNACK must come by `deadline` (the attempt's, which also bounded its set-up).
    pub(crate) fn start_connect(
        &mut self,
        connect: &Connect,
        conn_id: u64,
        now: Instant,
        deadline: Instant,
    ) -> Result<()> {
        self.conn_id = conn_id;
        self.inbound_qos1.clear();
        self.out.clear();
        self.out_pos = 0;
        self.appended_total = 0;
        self.written_total = 0;
        self.in_aliases.clear();
        self.out_aliases.clear();
        self.limits = ServerLimits::default();
        self.client_alias_max = if self.cfg.protocol.is_v5() {
            connect.properties.topic_alias_maximum.unwrap_or(0)
        } else {
            0
        };
        self.client_receive_max = if self.cfg.protocol.is_v5() {
            connect.properties.receive_maximum.unwrap_or(u16::MAX)
        } else {
            u16::MAX
        };
        self.keepalive = Duration::from_secs(u64::from(connect.keep_alive));
        self.ping_sent = None;
        self.stall = None;
        self.last_in = now;
        self.last_out = now;
        self.connack_deadline = Some(deadline);
        self.connect_clean = connect.clean_start;
        self.connect_had_id = !connect.client_id.is_empty();
        self.auth_method = if self.cfg.protocol.is_v5() {
            connect.properties.authentication_method.clone()
        } else {
            None
        };
        self.reauth = false;
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
        self.append_packet(&Packet::Connect(connect.clone()))
    }

    /// The connection is gone (closed, lost, or never completed): queues the event that
    /// reports it (`on_disconnect` or `on_connect_fail`, none when `Quiet`) and returns the
    /// error it counts as, if any (the client then schedules a reconnect). QoS 0 messages
    /// not yet written are lost; QoS 1/2 messages stay for the resend; pending subscribes
    /// are forgotten.
    pub(crate) fn connection_closed(&mut self, why: Ended) -> Option<Error> {
        let phase = self.phase;
        let (event, err) = self.closing_event(why, phase);
        if let Some(ev) = event {
            self.push_event(ev);
        }
        self.reset_connection();
        err
    }

    /// The event and the error for a connection that ends for `why` in `phase`.
    fn closing_event(&mut self, why: Ended, phase: Phase) -> (Option<Event>, Option<Error>) {
        let disconnected = |rc: ReasonCode| Event::Disconnected {
            flags: DisconnectFlags::default(),
            rc,
            props: Box::default(),
        };
        match why {
            Ended::Quiet | Ended::SocketOnly => (None, None),
            Ended::User => (Some(disconnected(ReasonCode::SUCCESS)), None),
            Ended::Session(Close::Server(d)) => {
                self.log(LogLevel::Notice, || {
                    format!("Broker sent DISCONNECT: {}", d.reason)
                });
                let ev = Event::Disconnected {
                    flags: DisconnectFlags {
                        is_disconnect_packet_from_server: true,
                    },
                    rc: d.reason,
                    props: d.props,
                };
                (Some(ev), Some(Error::ConnectionLost))
            }
            Ended::Session(Close::Refused(rc)) => {
                (Some(disconnected(rc)), Some(Error::ConnectionRefused(rc)))
            }
            Ended::Session(Close::ConnackTimeout) => {
                self.log(LogLevel::Warning, || {
                    "No CONNACK before the connect timeout".into()
                });
                (
                    Some(Event::ConnectFailed(Error::Timeout)),
                    Some(Error::Timeout),
                )
            }
            Ended::Session(c @ (Close::Keepalive | Close::Stalled)) => {
                self.log(LogLevel::Warning, || {
                    if matches!(c, Close::Stalled) {
                        "The broker read nothing for a whole keepalive period: connection closed"
                            .into()
                    } else {
                        "No PINGRESP within the keepalive: connection lost".into()
                    }
                });
                (
                    Some(disconnected(ReasonCode::KEEP_ALIVE_TIMEOUT)),
                    Some(Error::Keepalive),
                )
            }
            Ended::Session(Close::Store(msg)) => {
                self.log(LogLevel::Error, || {
                    format!("Persistence failed, connection closed: {msg}")
                });
                let err = Error::Persistence(msg.into());
                if phase == Phase::AwaitConnAck {
                    let fail = Event::ConnectFailed(Error::Persistence(format!("{err}").into()));
                    (Some(fail), Some(err))
                } else {
                    (Some(disconnected(ReasonCode::UNSPECIFIED_ERROR)), Some(err))
                }
            }
            Ended::Session(Close::Protocol(rc, msg)) => {
                self.log(LogLevel::Error, || format!("Protocol error ({rc}): {msg}"));
                let err = Error::Protocol(msg);
                if phase == Phase::AwaitConnAck {
                    let fail = Event::ConnectFailed(Error::Protocol(format!("{err}")));
                    (Some(fail), Some(err))
                } else {
                    // MQTT 5: the client sent DISCONNECT with this reason code; report it.
                    let rc = if self.cfg.protocol.is_v5() {
                        rc
                    } else {
                        ReasonCode::UNSPECIFIED_ERROR
                    };
                    (Some(disconnected(rc)), Some(err))
                }
            }
            Ended::Lost(e) => {
                if phase == Phase::AwaitConnAck {
                    self.log(LogLevel::Warning, || {
                        format!("Connection closed before CONNACK: {e}")
                    });
                    (Some(Event::ConnectFailed(Error::ConnectionLost)), Some(e))
                } else {
                    self.log(LogLevel::Warning, || format!("Connection lost: {e}"));
                    (Some(disconnected(ReasonCode::UNSPECIFIED_ERROR)), Some(e))
                }
            }
        }
    }

    /// Forgets what belonged to the connection that just ended.
    fn reset_connection(&mut self) {
        self.phase = Phase::Offline;
        self.reauth = false;
        self.out.clear();
        self.out_pos = 0;
        self.connack_deadline = None;
        self.ping_sent = None;
        self.stall = None;
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
        self.out_aliases.clear();
    }

    /// Fails every stored message (the client is being dropped or reinitialised).
    pub(crate) fn abandon_all(&mut self) {
        for m in self.outgoing.drain(..) {
            m.info.set_failed(ReasonCode(0));
        }
        self.inflight = 0;
        self.reset_connection();
        *self.in_use = IdSet::empty();
        self.in_use_count = 0;
    }
}
