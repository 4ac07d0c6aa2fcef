//! The state behind the client's lock: what the user configured ([`Options`], in
//! `config.rs`), the session, and the life of the connection and of the loop as explicit
//! phases ([`Link`], [`Runner`]) rather than a set of flags.

use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use super::config::Options;
use super::conn::Conn;
use crate::network::{Attempt, NetStream};
use crate::session::{Phase, Session, SessionConfig, SocketEvent};
use crate::Error;

/// Where the connection is in its life.
pub(super) enum Link {
    /// No connection, and none wanted: before the first connect, after `disconnect()`.
    Idle,
    /// No connection, but the user wants one.
    Waiting(Retry),
    /// A thread (`by`) is inside `network::open()`: DNS, TCP, proxy, TLS, WebSocket upgrade,
    /// all under `attempt`'s deadline; `disconnect()` and `loop_stop()` cancel it.
    Opening { attempt: Attempt, by: ThreadId },
    /// A socket is open (the session knows whether its CONNACK came).
    Open(Box<Conn>),
    /// The last user handle was dropped: nothing connects any more.
    Shutdown,
}

/// When a waiting connection is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Retry {
    /// `connect_async`, or `loop_start` after a failed `connect()`: the next pass of any loop
    /// connects (`loop_once` too).
    Now,
    /// After a lost connection or a failed attempt: a reconnecting loop (`loop_forever`,
    /// `loop_start`) tries at `at`. `first_failed`: this was the first attempt of a
    /// `connect_async`, which ends `loop_forever()` unless it retries first connections.
    At { at: Instant, first_failed: bool },
    /// After a failed `connect()`/`reconnect()` call: only another call (or `loop_start`)
    /// tries again.
    Manual,
}

impl Link {
    /// The open connection.
    pub(super) fn conn(&self) -> Option<&Conn> {
        match self {
            Link::Open(c) => Some(c),
            _ => None,
        }
    }

    pub(super) fn conn_mut(&mut self) -> Option<&mut Conn> {
        match self {
            Link::Open(c) => Some(c),
            _ => None,
        }
    }

    pub(super) fn is_open(&self) -> bool {
        matches!(self, Link::Open(_))
    }

    pub(super) fn is_opening(&self) -> bool {
        matches!(self, Link::Opening { .. })
    }

    /// Stops an attempt in progress (its thread's blocked set-up returns at once).
    pub(super) fn cancel_attempt(&self) {
        if let Link::Opening { attempt, .. } = self {
            attempt.cancel();
        }
    }

    /// The id of the open connection.
    pub(super) fn conn_id(&self) -> Option<u64> {
        self.conn().map(|c| c.id)
    }

    /// The user wants a connection (after connect, until disconnect).
    pub(super) fn wanted(&self) -> bool {
        match self {
            Link::Idle | Link::Shutdown => false,
            Link::Waiting(_) | Link::Opening { .. } => true,
            Link::Open(c) => !c.closing,
        }
    }
}

/// Who drives the loop.
pub(super) enum Runner {
    /// No `loop_start` thread and no `loop_forever` (`loop_once` and external loops may run).
    Idle,
    /// `loop_forever` runs on a user thread.
    Forever,
    /// `loop_start`'s thread runs. `handle` is `None` while `loop_stop()` joins it; `stop` is
    /// set by `loop_stop()`: end once the acks in flight arrived, at the latest then.
    Thread {
        handle: Option<JoinHandle<()>>,
        stop: Option<Instant>,
    },
    /// `loop_start`'s thread ended (asked from inside a callback) and was not joined yet.
    Ended(JoinHandle<()>),
}

impl Runner {
    /// A loop thread (`loop_start`) or `loop_forever` runs.
    pub(super) fn running(&self) -> bool {
        matches!(self, Runner::Forever | Runner::Thread { .. })
    }

    /// The deadline `loop_stop()` set.
    pub(super) fn stop(&self) -> Option<Instant> {
        match self {
            Runner::Thread { stop, .. } => *stop,
            _ => None,
        }
    }
}

/// How a publishing thread and the loop thread share the writing (see `ops.rs`).
pub(super) struct WriteFlow {
    /// When the last publish was made (burst detection).
    pub last_publish: Instant,
    /// A publisher asked the loop thread to write what is pending.
    pub flush_scheduled: bool,
    /// The last write stopped at `WouldBlock` with output left: a publishing thread then only
    /// appends, and the loop thread writes when the socket becomes writable (a publisher
    /// retrying every call would make one failing `send` per message).
    pub write_blocked: bool,
    /// The loop thread was woken to dispatch queued events and has not done so yet.
    pub dispatch_scheduled: bool,
    /// Publishers waiting for room under `max_outgoing_bytes`.
    pub space_waiters: usize,
}

/// Which callbacks are set, as far as the session and the socket care.
#[derive(Clone, Copy, Default)]
pub(super) struct Reporting {
    /// `on_log` is set.
    pub on_log: bool,
    /// Lines go to the `log` crate (`enable_logger`).
    pub logger: bool,
    /// `on_publish` is set (else no `Published` events).
    pub on_publish: bool,
    /// `on_socket_register_write` / `_unregister_write` are set (else no such events).
    pub socket_write: bool,
}

/// Everything behind the client's lock.
pub(super) struct State {
    pub opts: Options,
    pub session: Session,
    pub link: Link,
    pub runner: Runner,
    /// The current reconnect delay; `None` until a failure, reset by a successful CONNACK.
    pub backoff: Option<Duration>,
    /// A CONNACK succeeded since the last `connect()` (MQTT 5 `CleanStart::FirstOnly`).
    pub connected_once: bool,
    /// Why the last connection or attempt ended.
    pub last_error: Option<Error>,
    pub flow: WriteFlow,
    pub reporting: Reporting,
    /// Closed connections' streams kept open until the socket callbacks of their close ran
    /// (`on_socket_unregister_write`, `on_socket_close` get a descriptor that is still
    /// theirs): connection id, the event after which the stream is dropped, the stream.
    pub retired: Vec<(u64, SocketEvent, Box<dyn NetStream>)>,
    /// The receive channel of `message_channel`, if any.
    pub channel: Option<std::sync::Arc<super::channel::Channel>>,
}

impl State {
    pub(super) fn new(opts: Options, session: Session, reporting: Reporting) -> State {
        let mut st = State {
            opts,
            session,
            link: Link::Idle,
            runner: Runner::Idle,
            backoff: None,
            connected_once: false,
            last_error: None,
            flow: WriteFlow {
                last_publish: crate::time::now(),
                flush_scheduled: false,
                write_blocked: false,
                dispatch_scheduled: false,
                space_waiters: 0,
            },
            reporting,
            retired: Vec::new(),
            channel: None,
        };
        st.sync_session();
        st
    }

    /// Gives the session the settings it works with (after an option or a callback changed).
    pub(super) fn sync_session(&mut self) {
        let o = &self.opts;
        let cfg = SessionConfig {
            protocol: o.protocol,
            max_inflight: o.max_inflight,
            max_queued: o.max_queued,
            // A Maximum Packet Size in the user's MQTT 5 CONNECT properties binds us too.
            max_incoming_packet: match o.connect_props.as_ref().and_then(|p| p.maximum_packet_size)
            {
                Some(m) if o.protocol.is_v5() => o
                    .max_incoming_packet
                    .min(usize::try_from(m).unwrap_or(usize::MAX)),
                _ => o.max_incoming_packet,
            },
            log: self.reporting.on_log,
            logger: self.reporting.logger,
            publish_events: self.reporting.on_publish,
            resubscribe: o.resubscribe,
            auto_aliases: o.auto_aliases,
        };
        self.session.set_config(cfg);
    }

    /// A line for `on_log` and the `log` crate, in order with the session's.
    pub(super) fn log(&mut self, level: crate::LogLevel, line: impl Into<String>) {
        self.session.push_log(level, || line.into());
    }

    /// Connected: a CONNACK succeeded on the open connection, and `disconnect()` was not
    /// called on it.
    pub(super) fn connected(&self) -> bool {
        self.link.conn().is_some_and(|c| !c.closing) && self.session.phase() == Phase::Connected
    }

    /// A socket is open and its CONNACK succeeded (also while DISCONNECT is being written).
    pub(super) fn session_up(&self) -> bool {
        self.link.is_open() && self.session.phase() == Phase::Connected
    }

    /// Schedules the next reconnect attempt with exponential backoff.
    pub(super) fn schedule_reconnect(&mut self, now: Instant, first_failed: bool) {
        // A server list: the next attempt goes to the next server (round robin).
        if self.opts.servers.len() > 1 {
            let next = (self.opts.server_idx + 1) % self.opts.servers.len();
            self.opts.use_server(next);
        }
        let delay = match self.backoff {
            None => self.opts.reconnect_min,
            Some(d) => d.saturating_mul(2).min(self.opts.reconnect_max),
        };
        self.backoff = Some(delay);
        self.link = Link::Waiting(Retry::At {
            at: crate::time::after(now, delay),
            first_failed,
        });
    }

    /// A broker's Server Reference (CONNACK or DISCONNECT 0x9C / 0x9D): with
    /// `follow_redirects_set(true)` the next attempt goes there (the first entry of the
    /// reference, `host`, `host:port` or `[v6]:port`; no port keeps the current one).
    pub(super) fn follow_redirect(&mut self, reference: &str) {
        if !self.opts.follow_redirects {
            return;
        }
        let Some(first) = reference.split_whitespace().next() else {
            return;
        };
        let (host, port) = match parse_reference(first) {
            Some((h, p)) => (h, p.unwrap_or(self.opts.port)),
            None => {
                self.log(
                    crate::LogLevel::Warning,
                    format!("Server Reference {first:?} not understood; not followed"),
                );
                return;
            }
        };
        self.log(
            crate::LogLevel::Info,
            format!("Following the redirect to {host}:{port}"),
        );
        self.opts.host = Some(host);
        self.opts.port = port;
        // The broker named another server: SRV records are not looked up again over it.
        self.opts.srv_domain = None;
    }

    /// The receive channel is full: the loop stops reading until it is not.
    pub(super) fn channel_full(&self) -> bool {
        self.channel.as_ref().is_some_and(|c| c.is_full())
    }

    /// Closes the receive channel (its iteration ends once drained).
    pub(super) fn close_channel(&mut self) {
        if let Some(c) = self.channel.take() {
            c.close();
        }
    }

    /// What a CONNACK success changes for the client: the backoff restarts, MQTT 5's
    /// `CleanStart::FirstOnly` stops asking for a clean start, and an Assigned Client
    /// Identifier becomes the client id.
    pub(super) fn connack_succeeded(&mut self) {
        self.session.count_connection();
        self.backoff = None;
        self.connected_once = true;
        if let Some(id) = self.session.take_assigned_client_id() {
            self.opts.client_id = id;
        }
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_reference(r: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = r.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((h.to_string(), port));
    }
    match r.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && !h.is_empty() => {
            Some((h.to_string(), Some(p.parse().ok()?)))
        }
        Some(_) => None,
        None if !r.is_empty() => Some((r.to_string(), None)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_reference;

    #[test]
    fn server_references() {
        assert_eq!(
            parse_reference("b.example"),
            Some(("b.example".into(), None))
        );
        assert_eq!(
            parse_reference("b.example:1884"),
            Some(("b.example".into(), Some(1884)))
        );
        assert_eq!(
            parse_reference("[::1]:1884"),
            Some(("::1".into(), Some(1884)))
        );
        assert_eq!(parse_reference("[::1]"), Some(("::1".into(), None)));
        assert_eq!(parse_reference("b:x"), None);
        assert_eq!(parse_reference(""), None);
    }
}
