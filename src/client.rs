//! The public `Client` handle: options, connecting, the loops, publish/subscribe and the
//! dispatch of callbacks.
//!
//! Threading model: all state sits behind one mutex (`Inner::state`); the socket is
//! non-blocking and registered with a `mio` poller. Whoever holds the state lock may read
//! or write the socket, so `publish()` writes at once from the calling thread. The loop
//! thread waits in `poll` without any lock. Callbacks run with no internal lock held.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use crate::callbacks::{self, Callbacks, Slot};
use crate::codec::{Connect, LastWill};
use crate::message::{Message, MessageInfo, Notify, EMPTY_PROPERTIES};
use crate::network::{self, NetConfig, NetStream};
use crate::options::{validate_session, ClientBuilder, ConnectOptions};
use crate::session::{Close, Event, Phase, Session, SessionConfig};
use crate::topic::{topic_matches_sub, validate_topic_filter, validate_topic_name};
use crate::types::*;
use crate::{Error, Properties, Result};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
/// Read buffer of a new connection; it doubles up to `READ_CHUNK` while reads fill it.
const READ_INITIAL: usize = 8 * 1024;
const READ_CHUNK: usize = 64 * 1024;
const READ_BUDGET: usize = 1024 * 1024;
/// Publishes closer together than this count as a burst (see `publish_inner`).
const BURST_GAP: Duration = Duration::from_micros(20);
/// During a burst the publishing thread still writes once this much is pending.
const BATCH_BYTES: usize = 64 * 1024;

thread_local! {
    /// Depth of callback dispatch on this thread (no nested dispatch, no blocking waits).
    static IN_DISPATCH: Cell<u32> = const { Cell::new(0) };
}

fn in_dispatch() -> bool {
    IN_DISPATCH.with(|d| d.get() > 0)
}

/// The threads currently driving this client's loop or dispatching its callbacks.
#[derive(Debug, Default)]
pub(crate) struct LoopThreadId(Mutex<Vec<ThreadId>>);

impl LoopThreadId {
    pub(crate) fn is_current(&self) -> bool {
        let me = thread::current().id();
        self.0.lock().map(|v| v.contains(&me)).unwrap_or(false)
    }
    fn enter(self: &Arc<Self>) -> LoopGuard {
        if let Ok(mut v) = self.0.lock() {
            v.push(thread::current().id());
        }
        LoopGuard(self.clone())
    }
}

struct LoopGuard(Arc<LoopThreadId>);

impl Drop for LoopGuard {
    fn drop(&mut self) {
        let me = thread::current().id();
        if let Ok(mut v) = self.0 .0.lock() {
            if let Some(i) = v.iter().rposition(|t| *t == me) {
                v.remove(i);
            }
        }
    }
}

/// Events queued for dispatch, tagged with the connection generation they belong to.
enum CEvent {
    S(Event),
    Disconnected {
        flags: DisconnectFlags,
        rc: ReasonCode,
        props: Box<Properties>,
    },
    ConnectFail(Error),
    SocketOpen(RawFd),
    SocketClose(RawFd),
    RegisterWrite(RawFd),
    UnregisterWrite(RawFd),
}

struct Conn {
    stream: Box<dyn NetStream>,
    fd: RawFd,
    rbuf: Vec<u8>,
    rlen: usize,
    /// Stopped reading before `WouldBlock` (budget): poll without waiting next time.
    read_more: bool,
}

/// Why a connection is being closed.
enum Why {
    Session(Close),
    Lost(Error),
    User,
    /// Closed without any callback (reconnect(), drop).
    Quiet,
}

struct State {
    // --- identity and options
    client_id: String,
    clean_session: bool,
    protocol: Protocol,
    transport: Transport,
    manual_ack: bool,
    reconnect_on_failure: bool,
    username: Option<String>,
    password: Option<Vec<u8>>,
    will: Option<LastWill>,
    host: Option<String>,
    port: u16,
    keepalive: u16,
    bind_address: Option<String>,
    bind_port: u16,
    clean_start: CleanStart,
    connect_props: Option<Properties>,
    net: NetConfig,
    reconnect_min: Duration,
    reconnect_max: Duration,
    connect_timeout: Duration,
    max_outgoing_bytes: usize,
    bridge: bool,
    srv_nameserver: Option<std::net::SocketAddr>,
    // --- runtime
    session: Session,
    conn: Option<Conn>,
    gen: u64,
    /// The user wants to be connected (connect/connect_async/reconnect, not disconnect()).
    want_connected: bool,
    /// connect_async: a loop should connect as soon as it runs.
    connect_pending: bool,
    next_attempt: Option<Instant>,
    backoff: Option<Duration>,
    /// MQTT 5 `CleanStart::FirstOnly`: clean until the first successful CONNACK.
    first_connect: bool,
    /// A CONNACK success was seen since the last explicit connect().
    ever_connected: bool,
    /// The loop's first attempt of a `connect_async` failed (ends `loop_forever` unless
    /// `retry_first_connection`).
    first_attempt_failed: bool,
    /// disconnect() queued DISCONNECT: close once it is written.
    disconnecting: bool,
    /// A thread is inside network::open().
    connecting: bool,
    last_error: Option<Error>,
    events: VecDeque<(u64, CEvent)>,
    logs: Vec<(LogLevel, String)>,
    write_registered: bool,
    loop_handle: Option<JoinHandle<()>>,
    /// A loop_start thread or loop_forever is running.
    background: bool,
    /// loop_stop() asked the loop thread to end.
    stop: bool,
    stop_deadline: Option<Instant>,
    space_waiters: usize,
    shutdown: bool,
    /// When the last publish was made (burst detection).
    last_publish: Instant,
    /// A publisher asked the loop thread to write what is pending.
    flush_scheduled: bool,
    /// The last write stopped at `WouldBlock` with output left: a publishing thread then only
    /// appends, and the loop thread writes when the socket becomes writable (a publisher
    /// retrying every call would make one failing `send` per message).
    write_blocked: bool,
    /// `on_socket_register_write`/`_unregister_write` are set (else no such events).
    socket_write_callbacks: bool,
    /// The loop thread was woken to dispatch queued events and has not done so yet.
    dispatch_scheduled: bool,
}

pub(crate) struct Inner {
    state: Mutex<State>,
    cond: Condvar,
    callbacks: Mutex<Callbacks>,
    poll: Mutex<(Poll, Events)>,
    registry: Registry,
    waker: Waker,
    notify: Arc<Notify>,
    loop_thread: Arc<LoopThreadId>,
    /// Forward log lines to the `log` crate (enable_logger / disable_logger).
    logger: AtomicBool,
    /// An `on_log` callback is set.
    has_on_log: AtomicBool,
    /// The connection generation the user called `disconnect()` on: its messages that are
    /// not yet dispatched are dropped (unacknowledged, so the broker keeps QoS 1/2 ones).
    discard_gen: AtomicU64,
}

/// Dropping the last one of these (held only by user `Client` handles) shuts the client down.
struct UserToken {
    inner: Weak<Inner>,
}

impl Drop for UserToken {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.shutdown();
        }
    }
}

/// The MQTT client (Paho's `mqtt.Client`): a cheap handle, `Clone + Send + Sync`; every
/// method takes `&self`.
///
/// ```no_run
/// use mqtt_sync as mqtt;
/// use std::time::Duration;
///
/// let client = mqtt::Client::new("example");
/// client.on_message(|_c, msg| println!("{} {:?}", msg.topic(), msg.payload()));
/// client.on_connect(|c, _flags, rc, _props| {
///     if !rc.is_failure() {
///         c.subscribe("$SYS/#", mqtt::QoS::AtMostOnce).ok();
///     }
/// });
/// client.connect("localhost", 1883, 60)?;
/// client.loop_start()?;
/// std::thread::sleep(Duration::from_secs(5));
/// client.disconnect()?;
/// client.loop_stop()?;
/// # Ok::<(), mqtt::Error>(())
/// ```
pub struct Client {
    // Declared first so it drops while `inner` is still alive.
    user: Arc<UserToken>,
    inner: Arc<Inner>,
}

impl Clone for Client {
    fn clone(&self) -> Self {
        Client {
            user: self.user.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.lock();
        f.debug_struct("Client")
            .field("client_id", &st.client_id)
            .field("protocol", &st.protocol)
            .field("transport", &st.transport)
            .field("host", &st.host)
            .field("port", &st.port)
            .field("connected", &(st.session.phase() == Phase::Connected))
            .finish()
    }
}

/// A handle that does not keep the client alive (`Client::downgrade`); for closures stored
/// in the client's own callbacks.
#[derive(Clone, Debug)]
pub struct WeakClient {
    inner: Weak<Inner>,
    user: Weak<UserToken>,
}

impl std::fmt::Debug for UserToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserToken")
    }
}

impl WeakClient {
    /// The client, if a user handle still exists.
    pub fn upgrade(&self) -> Option<Client> {
        Some(Client {
            user: self.user.upgrade()?,
            inner: self.inner.upgrade()?,
        })
    }
}

fn random_client_id() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    const CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(22);
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let mut x = h.finish();
    for i in 0..22 {
        if i % 10 == 0 {
            let mut h = RandomState::new().build_hasher();
            h.write_u64(x);
            x = h.finish();
        }
        out.push(CHARS[(x % 62) as usize] as char);
        x /= 62;
    }
    out
}

impl State {
    fn new(b: &ClientBuilder, notify: Arc<Notify>) -> State {
        let client_id = if b.client_id.is_empty() && b.protocol == Protocol::V31 {
            random_client_id()
        } else {
            b.client_id.clone()
        };
        State {
            client_id,
            clean_session: b.clean_session.unwrap_or(true),
            protocol: b.protocol,
            transport: b.transport,
            manual_ack: b.manual_ack,
            reconnect_on_failure: b.reconnect_on_failure,
            username: None,
            password: None,
            will: None,
            host: None,
            port: 1883,
            keepalive: 60,
            bind_address: None,
            bind_port: 0,
            clean_start: CleanStart::FirstOnly,
            connect_props: None,
            net: NetConfig {
                nodelay: true,
                ..Default::default()
            },
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
            max_outgoing_bytes: 1024 * 1024,
            bridge: false,
            srv_nameserver: None,
            session: Session::new(
                SessionConfig {
                    protocol: b.protocol,
                    ..Default::default()
                },
                notify,
            ),
            conn: None,
            gen: 0,
            want_connected: false,
            connect_pending: false,
            next_attempt: None,
            backoff: None,
            first_connect: true,
            ever_connected: false,
            first_attempt_failed: false,
            disconnecting: false,
            connecting: false,
            last_error: None,
            events: VecDeque::new(),
            logs: Vec::new(),
            write_registered: false,
            loop_handle: None,
            background: false,
            stop: false,
            stop_deadline: None,
            space_waiters: 0,
            shutdown: false,
            last_publish: Instant::now(),
            flush_scheduled: false,
            write_blocked: false,
            socket_write_callbacks: false,
            dispatch_scheduled: false,
        }
    }

    fn log(&mut self, level: LogLevel, line: impl Into<String>) {
        if self.session.cfg.log
            || (self.session.cfg.logger
                && log::log_enabled!(target: "mqtt_sync", level.to_log_level()))
        {
            self.logs.push((level, line.into()));
        }
    }

    /// Moves the session's events into the dispatch queue, applying what the client keeps
    /// from them (assigned client id, backoff reset).
    fn collect(&mut self) {
        while let Some(ev) = self.session.events.pop_front() {
            if let Event::Connected { rc, props, .. } = &ev {
                if !rc.is_failure() {
                    self.backoff = None;
                    self.first_connect = false;
                    self.ever_connected = true;
                    if let Some(id) = &props.assigned_client_identifier {
                        self.client_id = id.clone();
                    }
                }
            }
            let ev = match self.events.back_mut() {
                Some((gen, CEvent::S(back))) if *gen == self.gen => back.merge_run(ev),
                _ => Some(ev),
            };
            if let Some(ev) = ev {
                self.events.push_back((self.gen, CEvent::S(ev)));
            }
        }
        self.logs.append(&mut self.session.logs);
    }

    fn push(&mut self, ev: CEvent) {
        self.collect();
        self.events.push_back((self.gen, ev));
    }

    fn connected(&self) -> bool {
        self.conn.is_some() && self.session.phase() == Phase::Connected
    }

    /// Schedules the next reconnect attempt with exponential backoff.
    fn schedule_reconnect(&mut self, now: Instant) {
        let delay = match self.backoff {
            None => self.reconnect_min,
            Some(d) => (d * 2).min(self.reconnect_max),
        };
        self.backoff = Some(delay);
        self.next_attempt = Some(now + delay);
    }

    fn update_write_interest(&mut self) {
        let want = match &self.conn {
            Some(c) => self.session.pending_bytes() > 0 || c.stream.has_pending_write(),
            None => false,
        };
        if want != self.write_registered {
            self.write_registered = want;
            if !self.socket_write_callbacks {
                return;
            }
            if let Some(fd) = self.conn.as_ref().map(|c| c.fd) {
                self.push(if want {
                    CEvent::RegisterWrite(fd)
                } else {
                    CEvent::UnregisterWrite(fd)
                });
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self) {
        let _ = self.waker.wake();
    }

    fn log_active(&self, level: LogLevel) -> bool {
        self.has_on_log.load(Ordering::Relaxed)
            || (self.logger.load(Ordering::Relaxed)
                && log::log_enabled!(target: "mqtt_sync", level.to_log_level()))
    }

    fn refresh_log_flag(&self, st: &mut State) {
        st.session.cfg.log = self.has_on_log.load(Ordering::Relaxed);
        st.session.cfg.logger = self.logger.load(Ordering::Relaxed);
    }

    /// Writes as much of the pending output as the socket takes.
    fn flush(&self, st: &mut State) -> std::result::Result<(), Error> {
        let now = Instant::now();
        let State { conn, session, .. } = st;
        let Some(conn) = conn.as_mut() else {
            return Ok(());
        };
        loop {
            let pending = &session.out[session.out_pos..];
            if pending.is_empty() {
                break;
            }
            match conn.stream.write(pending) {
                Ok(0) => return Err(Error::ConnectionLost),
                Ok(n) => session.written(n, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io(e)),
            }
        }
        if conn.stream.has_pending_write() {
            match conn.stream.flush() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        st.write_blocked = st.session.pending_bytes() > 0;
        if st.space_waiters > 0 {
            self.cond.notify_all();
        }
        st.update_write_interest();
        Ok(())
    }

    /// Reads and handles what the socket has (up to a budget).
    fn read_in(&self, st: &mut State) -> std::result::Result<(), Why> {
        let now = Instant::now();
        let max_packet = st.session.cfg.max_incoming_packet;
        let mut budget = READ_BUDGET;
        loop {
            let State { conn, session, .. } = &mut *st;
            let Some(c) = conn.as_mut() else {
                return Ok(());
            };
            if c.rlen == c.rbuf.len() {
                // A packet larger than the buffer: grow (the decoder has already checked
                // the header against the maximum packet size).
                let new_len = (c.rbuf.len() * 2)
                    .min(max_packet.max(READ_CHUNK))
                    .max(c.rlen + 1);
                c.rbuf.resize(new_len, 0);
            }
            let r = c.stream.read(&mut c.rbuf[c.rlen..]);
            match r {
                Ok(0) => return Err(Why::Lost(Error::ConnectionLost)),
                Ok(n) => {
                    let filled = c.rlen + n == c.rbuf.len();
                    c.rlen += n;
                    let res = session.receive(&c.rbuf[..c.rlen], now);
                    let used = match &res {
                        Ok(u) => *u,
                        Err((u, _)) => *u,
                    };
                    if used > 0 {
                        c.rbuf.copy_within(used..c.rlen, 0);
                        c.rlen -= used;
                        if c.rlen == 0 && c.rbuf.len() > 4 * READ_CHUNK {
                            c.rbuf.truncate(READ_CHUNK);
                            c.rbuf.shrink_to_fit();
                        }
                    }
                    if filled && c.rbuf.len() < READ_CHUNK {
                        // Busy connection: read in larger pieces (idle ones stay small).
                        let new_len = (c.rbuf.len() * 2).min(READ_CHUNK);
                        c.rbuf.resize(new_len, 0);
                    }
                    if let Err((_, close)) = res {
                        // Write what the session queued (a DISCONNECT with the reason).
                        let _ = self.flush(st);
                        return Err(Why::Session(close));
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        if let Some(c) = st.conn.as_mut() {
                            c.read_more = true;
                        }
                        return Ok(());
                    }
                    // Read again even after a short read: the edge that brought this data may
                    // also have brought the peer's FIN, which only the next read reports (0
                    // bytes); skipping it loses the EOF until the next keepalive.
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if c.stream.has_buffered_read() {
                        continue;
                    }
                    c.read_more = false;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Why::Lost(Error::Io(e))),
            }
        }
    }

    /// Closes the connection and queues the callbacks that report it.
    fn close_conn(&self, st: &mut State, why: Why) {
        let now = Instant::now();
        let phase = st.session.phase();
        st.collect();
        if let Some(mut c) = st.conn.take() {
            let _ = self.registry.deregister(&mut SourceFd(&c.fd));
            c.stream.shutdown();
            if st.write_registered {
                st.write_registered = false;
                st.events.push_back((st.gen, CEvent::UnregisterWrite(c.fd)));
            }
            if !matches!(why, Why::Quiet) {
                st.events.push_back((st.gen, CEvent::SocketClose(c.fd)));
            }
        }
        st.session.connection_closed();
        let was_disconnecting = st.disconnecting;
        st.disconnecting = false;
        let flags = DisconnectFlags::default();
        let (event, err) = match why {
            Why::Quiet => (None, None),
            Why::User => (
                Some(CEvent::Disconnected {
                    flags,
                    rc: ReasonCode::SUCCESS,
                    props: Box::default(),
                }),
                None,
            ),
            Why::Session(Close::Server(d)) => {
                st.log(
                    LogLevel::Notice,
                    format!("Broker sent DISCONNECT: {}", d.reason),
                );
                (
                    Some(CEvent::Disconnected {
                        flags: DisconnectFlags {
                            is_disconnect_packet_from_server: true,
                        },
                        rc: d.reason,
                        props: d.props,
                    }),
                    Some(Error::ConnectionLost),
                )
            }
            Why::Session(Close::Refused(rc)) => (
                Some(CEvent::Disconnected {
                    flags,
                    rc,
                    props: Box::default(),
                }),
                Some(Error::ConnectionRefused(rc)),
            ),
            Why::Session(Close::ConnackTimeout) => {
                st.log(LogLevel::Warning, "No CONNACK before the connect timeout");
                (
                    Some(CEvent::ConnectFail(Error::Timeout)),
                    Some(Error::Timeout),
                )
            }
            Why::Session(Close::Keepalive) => {
                st.log(
                    LogLevel::Warning,
                    "No PINGRESP within the keepalive: connection lost",
                );
                (
                    Some(CEvent::Disconnected {
                        flags,
                        rc: ReasonCode::KEEP_ALIVE_TIMEOUT,
                        props: Box::default(),
                    }),
                    Some(Error::Keepalive),
                )
            }
            Why::Session(Close::Protocol(rc, msg)) => {
                st.log(LogLevel::Error, format!("Protocol error ({rc}): {msg}"));
                let err = Error::Protocol(msg);
                if phase == Phase::AwaitConnAck {
                    (
                        Some(CEvent::ConnectFail(Error::Protocol(format!("{err}")))),
                        Some(err),
                    )
                } else {
                    (
                        Some(CEvent::Disconnected {
                            flags,
                            rc: ReasonCode::UNSPECIFIED_ERROR,
                            props: Box::default(),
                        }),
                        Some(err),
                    )
                }
            }
            Why::Lost(e) => {
                if was_disconnecting {
                    // The broker closed first after our DISCONNECT: still a clean end.
                    (
                        Some(CEvent::Disconnected {
                            flags,
                            rc: ReasonCode::SUCCESS,
                            props: Box::default(),
                        }),
                        None,
                    )
                } else if phase == Phase::AwaitConnAck {
                    st.log(
                        LogLevel::Warning,
                        format!("Connection closed before CONNACK: {e}"),
                    );
                    (Some(CEvent::ConnectFail(Error::ConnectionLost)), Some(e))
                } else {
                    st.log(LogLevel::Warning, format!("Connection lost: {e}"));
                    (
                        Some(CEvent::Disconnected {
                            flags,
                            rc: ReasonCode::UNSPECIFIED_ERROR,
                            props: Box::default(),
                        }),
                        Some(e),
                    )
                }
            }
        };
        if let Some(ev) = event {
            st.events.push_back((st.gen, ev));
        }
        if let Some(e) = err {
            st.last_error = Some(e);
            if st.want_connected {
                st.schedule_reconnect(now);
            }
        }
        st.gen += 1;
        self.cond.notify_all();
    }

    /// Stops everything: the last user handle was dropped.
    fn shutdown(&self) {
        let handle = {
            let mut st = self.lock();
            st.shutdown = true;
            st.want_connected = false;
            st.connect_pending = false;
            st.stop = true;
            self.close_conn(&mut st, Why::Quiet);
            st.events.clear();
            st.session.abandon_all();
            st.loop_handle.take()
        };
        self.cond.notify_all();
        self.wake();
        if let Some(h) = handle {
            if h.thread().id() != thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

/// Runs a user closure, catching a panic and logging it.
fn guarded(inner: &Inner, client: &Client, what: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        let line = format!("Caught exception in {what}: the callback panicked; the loop goes on");
        log::error!(target: "mqtt_sync", "{line}");
        let cb = inner.callbacks.lock().ok().and_then(|c| c.on_log.clone());
        if let Some(cb) = cb {
            let _ = catch_unwind(AssertUnwindSafe(|| cb(client, LogLevel::Error, &line)));
        }
    }
}

fn call_slot<F: ?Sized>(
    inner: &Inner,
    client: &Client,
    what: &str,
    slot: &Slot<F>,
    f: impl FnOnce(&mut F),
) {
    if let Some(s) = slot {
        let mut g = s.lock().unwrap_or_else(|e| e.into_inner());
        guarded(inner, client, what, || f(&mut **g));
    }
}

// ---------------------------------------------------------------------------------------
// Construction and configuration

impl Client {
    /// A client for MQTT 3.1.1 with a clean session over TCP (Paho's `Client(client_id=...)`).
    pub fn new(client_id: impl Into<String>) -> Client {
        Client::from_builder(ClientBuilder::new().client_id(client_id))
    }

    /// A builder for the other constructor options (protocol, transport, ...).
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    pub(crate) fn from_builder(b: ClientBuilder) -> Client {
        let notify = Arc::new(Notify::default());
        // The poller: creating one only fails when the process is out of file descriptors.
        let poll = Poll::new()
            .unwrap_or_else(|e| panic!("cannot create a poller (out of file descriptors?): {e}"));
        let registry = poll
            .registry()
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone the poller registry: {e}"));
        let waker = Waker::new(poll.registry(), WAKER)
            .unwrap_or_else(|e| panic!("cannot create the waker: {e}"));
        let inner = Arc::new(Inner {
            state: Mutex::new(State::new(&b, notify.clone())),
            cond: Condvar::new(),
            callbacks: Mutex::new(Callbacks::default()),
            poll: Mutex::new((poll, Events::with_capacity(16))),
            registry,
            waker,
            notify,
            loop_thread: Arc::new(LoopThreadId::default()),
            logger: AtomicBool::new(true),
            has_on_log: AtomicBool::new(false),
            discard_gen: AtomicU64::new(u64::MAX),
        });
        {
            let mut st = inner.lock();
            inner.refresh_log_flag(&mut st);
        }
        let user = Arc::new(UserToken {
            inner: Arc::downgrade(&inner),
        });
        Client { user, inner }
    }

    /// A handle that does not keep the client alive.
    pub fn downgrade(&self) -> WeakClient {
        WeakClient {
            inner: Arc::downgrade(&self.inner),
            user: Arc::downgrade(&self.user),
        }
    }

    /// Resets the client as Paho's `reinitialise`: new client id and clean session, no
    /// callbacks, no stored messages, no connection. Protocol and transport are kept.
    /// Fails while a loop thread runs.
    pub fn reinitialise(&self, client_id: impl Into<String>, clean_session: bool) -> Result<()> {
        let client_id = client_id.into();
        let mut st = self.inner.lock();
        if st.background {
            return Err(Error::state(
                "reinitialise() while a loop runs: call loop_stop() first",
            ));
        }
        validate_session(
            st.protocol,
            &client_id,
            if st.protocol == Protocol::V5 {
                None
            } else {
                Some(clean_session)
            },
        )?;
        self.inner.close_conn(&mut st, Why::Quiet);
        st.session.abandon_all();
        let b = ClientBuilder {
            client_id,
            clean_session: Some(clean_session),
            protocol: st.protocol,
            transport: st.transport,
            reconnect_on_failure: true,
            manual_ack: false,
        };
        let handle = st.loop_handle.take();
        *st = State::new(&b, self.inner.notify.clone());
        drop(st);
        drop(handle);
        *self
            .inner
            .callbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Callbacks::default();
        self.inner.has_on_log.store(false, Ordering::Relaxed);
        let mut st = self.inner.lock();
        self.inner.refresh_log_flag(&mut st);
        Ok(())
    }

    /// The client id (after an MQTT 5 CONNACK with an Assigned Client Identifier, that id).
    pub fn client_id(&self) -> String {
        self.inner.lock().client_id.clone()
    }
    /// The broker host of the last connect.
    pub fn host(&self) -> String {
        self.inner.lock().host.clone().unwrap_or_default()
    }
    /// The broker port of the last connect.
    pub fn port(&self) -> u16 {
        self.inner.lock().port
    }
    /// The keepalive in seconds: the one given to `connect`, or, while connected to an MQTT 5
    /// broker whose CONNACK carried a Server Keep Alive, the broker's value (which the client
    /// then follows).
    pub fn keepalive(&self) -> u16 {
        let st = self.inner.lock();
        if st.connected() {
            st.session.keepalive_secs()
        } else {
            st.keepalive
        }
    }
    /// The protocol version.
    pub fn protocol(&self) -> Protocol {
        self.inner.lock().protocol
    }
    /// The transport.
    pub fn transport(&self) -> Transport {
        self.inner.lock().transport
    }
    /// The user name set by `username_pw_set`.
    pub fn username(&self) -> Option<String> {
        self.inner.lock().username.clone()
    }

    /// Sets user name and optional password for the next connect.
    pub fn username_pw_set(&self, username: &str, password: Option<&str>) -> Result<()> {
        let mut st = self.inner.lock();
        st.username = Some(username.to_string());
        st.password = password.map(|p| p.as_bytes().to_vec());
        Ok(())
    }

    /// Sets the will message for the next connect.
    pub fn will_set(
        &self,
        topic: &str,
        payload: impl AsRef<[u8]>,
        qos: QoS,
        retain: bool,
    ) -> Result<()> {
        self.will_set_with_properties(topic, payload, qos, retain, Properties::default())
    }

    /// Sets the will message with MQTT 5 will properties.
    pub fn will_set_with_properties(
        &self,
        topic: &str,
        payload: impl AsRef<[u8]>,
        qos: QoS,
        retain: bool,
        properties: Properties,
    ) -> Result<()> {
        validate_topic_name(topic)?;
        let payload = payload.as_ref();
        if payload.len() > 65535 {
            return Err(Error::PayloadSize(
                "a will payload is at most 65535 bytes".into(),
            ));
        }
        let will = LastWill {
            topic: topic.to_string(),
            payload: payload.to_vec(),
            qos,
            retain,
            properties,
        };
        // Validate the will properties now rather than at connect time.
        let mut st = self.inner.lock();
        if st.protocol.is_v5() && !will.properties.is_empty() {
            let probe = Connect {
                protocol: st.protocol,
                clean_start: true,
                keep_alive: 0,
                client_id: String::new(),
                will: Some(will.clone()),
                username: None,
                password: None,
                properties: Properties::default(),
            };
            let mut buf = Vec::new();
            crate::codec::Packet::Connect(probe).encode(st.protocol, &mut buf)?;
        }
        st.will = Some(will);
        Ok(())
    }

    /// Removes the will message.
    pub fn will_clear(&self) -> Result<()> {
        self.inner.lock().will = None;
        Ok(())
    }

    fn locked_while_connected(&self, what: &str, f: impl FnOnce(&mut State)) -> Result<()> {
        let mut st = self.inner.lock();
        if st.conn.is_some() {
            return Err(Error::state(format!(
                "{what} cannot be changed while a connection is open"
            )));
        }
        f(&mut st);
        Ok(())
    }

    /// In-flight window for QoS 1/2 messages (default 20, 0 = unlimited). Locked while connected.
    pub fn max_inflight_messages_set(&self, n: u16) -> Result<()> {
        self.locked_while_connected("max_inflight_messages", |st| {
            st.session.cfg.max_inflight = n
        })
    }

    /// Limit of stored outgoing QoS 1/2 messages (default 0 = unlimited); past it `publish`
    /// returns `Err(QueueSize)`. Locked while connected.
    pub fn max_queued_messages_set(&self, n: usize) -> Result<()> {
        self.locked_while_connected("max_queued_messages", |st| st.session.cfg.max_queued = n)
    }

    /// Time allowed for TCP/TLS/WebSocket set-up and for the CONNACK (default 5 s).
    pub fn connect_timeout_set(&self, timeout: Duration) -> Result<()> {
        if timeout.is_zero() {
            return Err(Error::invalid("the connect timeout must be positive"));
        }
        self.locked_while_connected("connect_timeout", |st| st.connect_timeout = timeout)
    }

    /// Bytes that may wait for the socket before `publish` blocks (with a loop thread) —
    /// default 1 MiB.
    pub fn max_outgoing_bytes_set(&self, n: usize) -> Result<()> {
        if n == 0 {
            return Err(Error::invalid("max_outgoing_bytes must be positive"));
        }
        self.inner.lock().max_outgoing_bytes = n;
        Ok(())
    }

    /// Largest packet accepted from the broker (default: MQTT's maximum). A bigger one
    /// closes the connection with a protocol error, before its payload is buffered.
    pub fn max_incoming_packet_size_set(&self, n: usize) -> Result<()> {
        if n < 2 {
            return Err(Error::invalid(
                "the maximum packet size must be at least 2 bytes",
            ));
        }
        self.inner.lock().session.cfg.max_incoming_packet = n;
        Ok(())
    }

    /// Reconnect backoff: starts at `min`, doubles up to `max` (defaults 1 s and 120 s),
    /// resets after a successful CONNACK.
    pub fn reconnect_delay_set(&self, min: Duration, max: Duration) -> Result<()> {
        if min > max {
            return Err(Error::invalid(
                "reconnect_delay_set: min_delay must not exceed max_delay",
            ));
        }
        let mut st = self.inner.lock();
        st.reconnect_min = min;
        st.reconnect_max = max;
        Ok(())
    }

    /// Sets TCP_NODELAY for the next connection (default on: lowest latency).
    pub fn tcp_nodelay_set(&self, on: bool) -> Result<()> {
        self.inner.lock().net.nodelay = on;
        Ok(())
    }

    /// Forward internal log lines to the `log` crate (target `mqtt_sync`). On by default:
    /// the `log` facade costs nothing until the application installs a logger.
    pub fn enable_logger(&self) {
        self.inner.logger.store(true, Ordering::Relaxed);
        let mut st = self.inner.lock();
        self.inner.refresh_log_flag(&mut st);
    }

    /// Stop forwarding log lines to the `log` crate (`on_log` still receives them).
    pub fn disable_logger(&self) {
        self.inner.logger.store(false, Ordering::Relaxed);
        let mut st = self.inner.lock();
        self.inner.refresh_log_flag(&mut st);
    }

    /// Bridge mode: the protocol level in CONNECT gets bit 7 set, so a broker that supports
    /// it does not loop messages back. Call before connect.
    pub fn enable_bridge_mode(&self) {
        self.inner.lock().bridge = true;
    }

    /// Turns manual acknowledgement of incoming QoS 1/2 messages on or off.
    pub fn manual_ack_set(&self, on: bool) -> Result<()> {
        self.inner.lock().manual_ack = on;
        Ok(())
    }

    /// Turns automatic reconnection in `loop_start`/`loop_forever` on or off.
    pub fn reconnect_on_failure_set(&self, on: bool) -> Result<()> {
        self.inner.lock().reconnect_on_failure = on;
        Ok(())
    }

    pub(crate) fn with_net<R>(&self, f: impl FnOnce(&mut NetConfig) -> Result<R>) -> Result<R> {
        let mut st = self.inner.lock();
        f(&mut st.net)
    }

    /// Configures TLS as Paho's `tls_set(ca_certs, certfile, keyfile)`: verification and the
    /// host name check are on. `keyfile` may be `None` when `certfile` holds the key too.
    pub fn tls_set(
        &self,
        ca_certs: Option<&std::path::Path>,
        certfile: Option<&std::path::Path>,
        keyfile: Option<&std::path::Path>,
    ) -> Result<()> {
        self.tls_set_with(crate::TlsOptions {
            ca_certs: ca_certs.map(|p| p.to_path_buf()),
            certfile: certfile.map(|p| p.to_path_buf()),
            keyfile: keyfile.map(|p| p.to_path_buf()),
            ..Default::default()
        })
    }

    /// Configures TLS with every option of Paho's `tls_set` (verification mode, minimum
    /// version, ALPN, encrypted key password). The files are loaded now, so errors show here.
    pub fn tls_set_with(&self, options: crate::TlsOptions) -> Result<()> {
        let settings = network::tls::TlsSettings::from_options(options)?;
        self.with_net(|n| {
            n.tls = Some(settings);
            Ok(())
        })
    }

    /// Uses a `native_tls::TlsConnector` you built (Paho's `tls_set_context`).
    #[cfg(feature = "tls")]
    pub fn tls_set_context(&self, connector: native_tls::TlsConnector) -> Result<()> {
        let settings = network::tls::TlsSettings::from_connector(connector);
        self.with_net(|n| {
            n.tls = Some(settings);
            Ok(())
        })
    }

    /// Skips the host name check of the broker's certificate (the chain is still verified).
    /// Call after `tls_set`; with `tls_set_context` it returns `Err(InvalidState)`.
    pub fn tls_insecure_set(&self, insecure: bool) -> Result<()> {
        self.with_net(|n| match n.tls.as_mut() {
            Some(t) => t.set_insecure(insecure),
            None => Err(Error::state(
                "tls_insecure_set() needs tls_set() or tls_set_with() first",
            )),
        })
    }

    /// Connects through a SOCKS5 or HTTP CONNECT proxy (Paho's `proxy_set`). Without it the
    /// `mqtt_proxy` environment variable is honoured, except for hosts in `no_proxy`.
    pub fn proxy_set(&self, options: crate::ProxyOptions) -> Result<()> {
        network::proxy::validate(&options)?;
        self.with_net(|n| {
            n.proxy = Some(options);
            Ok(())
        })
    }

    /// The DNS server `connect_srv` asks (default: the system configuration).
    pub fn srv_nameserver_set(&self, nameserver: Option<std::net::SocketAddr>) -> Result<()> {
        self.inner.lock().srv_nameserver = nameserver;
        Ok(())
    }

    /// Sets the WebSocket path (default `/mqtt`) and extra handshake headers.
    pub fn ws_set_options(&self, path: &str, headers: &[(&str, &str)]) -> Result<()> {
        if !path.starts_with('/') {
            return Err(Error::invalid("the WebSocket path must start with '/'"));
        }
        self.with_net(|n| {
            n.ws_path = Some(path.to_string());
            n.ws_headers = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Ok(())
        })
    }
}

// ---------------------------------------------------------------------------------------
// Callbacks

macro_rules! setter {
    ($(#[$m:meta])* fn $name:ident: $ty:path, ($($arg:ty),*)) => {
        $(#[$m])*
        pub fn $name(&self, f: impl FnMut($($arg),*) + Send + 'static) {
            let b: Box<$ty> = Box::new(f);
            self.inner.callbacks.lock().unwrap_or_else(|e| e.into_inner()).$name = callbacks::slot(b);
            let (publish, sockets) = self
                .inner
                .callbacks
                .lock()
                .map(|c| {
                    (
                        c.on_publish.is_some(),
                        c.on_socket_register_write.is_some() || c.on_socket_unregister_write.is_some(),
                    )
                })
                .unwrap_or((false, false));
            let mut st = self.inner.lock();
            st.session.cfg.publish_events = publish;
            st.socket_write_callbacks = sockets;
        }
    };
}

impl Client {
    setter!(
        /// `on_connect(client, flags, reason_code, properties)`: CONNACK received (success or
        /// refusal).
        fn on_connect: callbacks::OnConnect, (&Client, ConnectFlags, ReasonCode, &Properties));
    setter!(
        /// `on_connect_fail(client, error)`: a connection attempt made by a loop failed
        /// (TCP/TLS set-up, or no CONNACK in time).
        fn on_connect_fail: callbacks::OnConnectFail, (&Client, &Error));
    setter!(
        /// `on_disconnect(client, flags, reason_code, properties)`: once per ended connection.
        fn on_disconnect: callbacks::OnDisconnect, (&Client, DisconnectFlags, ReasonCode, &Properties));
    setter!(
        /// `on_message(client, message)`: a message that no `message_callback_add` filter matched.
        fn on_message: callbacks::OnMessage, (&Client, &Message));
    setter!(
        /// `on_publish(client, mid, reason_code, properties)`: QoS 0 written, QoS 1 PUBACK,
        /// QoS 2 PUBCOMP, or a refusal.
        fn on_publish: callbacks::OnAck, (&Client, u16, ReasonCode, &Properties));
    setter!(
        /// `on_subscribe(client, mid, reason_codes, properties)`: SUBACK received.
        fn on_subscribe: callbacks::OnSubAck, (&Client, u16, &[ReasonCode], &Properties));
    setter!(
        /// `on_unsubscribe(client, mid, reason_codes, properties)`: UNSUBACK received (MQTT 3.x:
        /// an empty list).
        fn on_unsubscribe: callbacks::OnSubAck, (&Client, u16, &[ReasonCode], &Properties));
    setter!(
        /// `on_pre_connect(client)`: just before a connection attempt.
        fn on_pre_connect: callbacks::OnClient, (&Client));
    setter!(
        /// `on_socket_open(client, fd)`: a socket was connected (external loops).
        fn on_socket_open: callbacks::OnSocket, (&Client, RawFd));
    setter!(
        /// `on_socket_close(client, fd)`: the socket is about to be closed.
        fn on_socket_close: callbacks::OnSocket, (&Client, RawFd));
    setter!(
        /// `on_socket_register_write(client, fd)`: output is waiting; watch the socket for
        /// writability and call `loop_write`.
        fn on_socket_register_write: callbacks::OnSocket, (&Client, RawFd));
    setter!(
        /// `on_socket_unregister_write(client, fd)`: nothing left to write.
        fn on_socket_unregister_write: callbacks::OnSocket, (&Client, RawFd));

    /// `on_log(client, level, line)`: internal log lines (also from user threads, so `Fn +
    /// Sync`).
    pub fn on_log(&self, f: impl Fn(&Client, LogLevel, &str) + Send + Sync + 'static) {
        self.inner
            .callbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .on_log = Some(Arc::new(f));
        self.inner.has_on_log.store(true, Ordering::Relaxed);
        let mut st = self.inner.lock();
        self.inner.refresh_log_flag(&mut st);
    }

    /// Adds (or replaces) a callback for messages whose topic matches `sub`. Every matching
    /// filter's callback runs; `on_message` only when none matched.
    pub fn message_callback_add(
        &self,
        sub: &str,
        f: impl FnMut(&Client, &Message) + Send + 'static,
    ) -> Result<()> {
        validate_topic_filter(sub)?;
        let b: Box<callbacks::OnMessage> = Box::new(f);
        let entry = Arc::new(Mutex::new(b));
        let mut cbs = self
            .inner
            .callbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match cbs.topic.iter_mut().find(|(s, _)| s == sub) {
            Some(slot) => slot.1 = entry,
            None => cbs.topic.push((sub.to_string(), entry)),
        }
        Ok(())
    }

    /// Removes the callback added for exactly `sub`.
    pub fn message_callback_remove(&self, sub: &str) {
        self.inner
            .callbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .topic
            .retain(|(s, _)| s != sub);
    }
}

// ---------------------------------------------------------------------------------------
// Connecting

impl Client {
    /// Connects to `host:port` (blocking: TCP/TLS/WebSocket set-up, then CONNECT is sent).
    /// `is_connected()` turns true when a loop has processed the CONNACK.
    pub fn connect(&self, host: &str, port: u16, keepalive: u16) -> Result<()> {
        self.connect_with(ConnectOptions {
            port,
            keepalive,
            ..ConnectOptions::new(host)
        })
    }

    fn store_connect_options(&self, o: ConnectOptions) -> Result<()> {
        if o.host.is_empty() {
            return Err(Error::invalid("host must not be empty"));
        }
        let mut st = self.inner.lock();
        if !st.protocol.is_v5() {
            if o.clean_start != CleanStart::FirstOnly {
                return Err(Error::invalid(
                    "clean_start applies only to MQTT 5.0; use clean_session",
                ));
            }
            if o.properties.as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(Error::invalid("properties are only used with MQTT 5.0"));
            }
        }
        if let Some(p) = &o.properties {
            // Reject properties that CONNECT cannot carry now, not at every reconnect.
            let probe = crate::codec::Packet::Connect(Connect {
                protocol: st.protocol,
                clean_start: true,
                keep_alive: o.keepalive,
                client_id: String::new(),
                will: None,
                username: None,
                password: None,
                properties: p.clone(),
            });
            probe.encode(st.protocol, &mut Vec::new())?;
        }
        st.host = Some(o.host);
        st.port = o.port;
        st.keepalive = o.keepalive;
        st.bind_address = o.bind_address;
        st.bind_port = o.bind_port;
        st.clean_start = o.clean_start;
        st.connect_props = o.properties;
        st.want_connected = true;
        st.ever_connected = false;
        st.first_attempt_failed = false;
        st.first_connect = true;
        Ok(())
    }

    /// Connects with every option of Paho's `connect()` (bind address, clean start,
    /// MQTT 5 properties).
    pub fn connect_with(&self, options: ConnectOptions) -> Result<()> {
        self.store_connect_options(options)?;
        self.reconnect()
    }

    /// Connects to the broker named by the DNS SRV records of `domain` (`_mqtt._tcp.<domain>`,
    /// or `_secure-mqtt._tcp.<domain>` with TLS configured), trying the targets in RFC 2782
    /// order — by priority, then weighted random within a priority — until one connects.
    pub fn connect_srv(&self, domain: &str, keepalive: u16) -> Result<()> {
        if domain.is_empty() {
            return Err(Error::invalid("connect_srv needs a domain"));
        }
        let (secure, nameserver) = {
            let st = self.inner.lock();
            (st.net.tls.is_some(), st.srv_nameserver)
        };
        let candidates = network::srv::lookup(domain, secure, nameserver)?;
        let mut last = Error::Dns(format!("no usable SRV target for {domain}"));
        for (host, port) in candidates {
            match self.connect(&host, port, keepalive) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.log(
                        LogLevel::Warning,
                        &format!("SRV target {host}:{port} failed: {e}"),
                    );
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Stores the connection parameters; a loop (`loop_start`, `loop_forever`, `loop_once`)
    /// connects.
    pub fn connect_async(&self, host: &str, port: u16, keepalive: u16) -> Result<()> {
        self.connect_async_with(ConnectOptions {
            port,
            keepalive,
            ..ConnectOptions::new(host)
        })
    }

    /// `connect_async` with every connect option.
    pub fn connect_async_with(&self, options: ConnectOptions) -> Result<()> {
        self.store_connect_options(options)?;
        let mut st = self.inner.lock();
        st.connect_pending = true;
        st.next_attempt = Some(Instant::now());
        drop(st);
        self.inner.wake();
        Ok(())
    }

    /// Connects again with the stored parameters (closing the current connection, if any,
    /// without callbacks).
    pub fn reconnect(&self) -> Result<()> {
        let r = self.do_connect();
        self.after_op();
        r
    }

    fn do_connect(&self) -> Result<()> {
        let (params_host, port, transport, bind_address, bind_port, timeout, net) = {
            let mut st = self.inner.lock();
            if st.shutdown {
                return Err(Error::state("the client is shut down"));
            }
            let Some(host) = st.host.clone() else {
                return Err(Error::state(
                    "reconnect() before connect(): no host to connect to",
                ));
            };
            if st.connecting {
                return Err(Error::state("a connection attempt is already in progress"));
            }
            if st.conn.is_some() {
                self.inner.close_conn(&mut st, Why::Quiet);
            }
            st.connecting = true;
            st.want_connected = true;
            st.connect_pending = false;
            st.next_attempt = None;
            st.disconnecting = false;
            (
                host,
                st.port,
                st.transport,
                st.bind_address.clone(),
                st.bind_port,
                st.connect_timeout,
                st.net.clone(),
            )
        };
        let slot = self
            .inner
            .callbacks
            .lock()
            .ok()
            .and_then(|c| c.on_pre_connect.clone());
        call_slot(&self.inner, self, "on_pre_connect", &slot, |f| f(self));
        self.log(
            LogLevel::Debug,
            &format!("Connecting to {params_host}:{port}"),
        );
        let opened = network::open(&network::ConnectParams {
            host: &params_host,
            port,
            transport,
            bind_address: bind_address.as_deref(),
            bind_port,
            timeout,
            config: &net,
        });
        let mut st = self.inner.lock();
        st.connecting = false;
        let stream = match opened {
            Ok(s) => s,
            Err(e) => {
                st.log(
                    LogLevel::Warning,
                    format!("Connecting to {params_host}:{port} failed: {e}"),
                );
                return Err(e);
            }
        };
        if st.shutdown || !st.want_connected {
            return Err(Error::state("disconnect() was called while connecting"));
        }
        self.install(&mut st, stream)
    }

    fn install(&self, st: &mut State, stream: Box<dyn NetStream>) -> Result<()> {
        st.write_blocked = false;
        let fd = stream.raw_fd();
        self.inner.registry.register(
            &mut SourceFd(&fd),
            SOCKET,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let clean = if st.protocol.is_v5() {
            match st.clean_start {
                CleanStart::Always => true,
                CleanStart::Never => false,
                CleanStart::FirstOnly => st.first_connect,
            }
        } else {
            st.clean_session
        };
        let connect = Connect {
            protocol: st.protocol,
            clean_start: clean,
            keep_alive: st.keepalive,
            client_id: st.client_id.clone(),
            will: st.will.clone(),
            username: st.username.clone(),
            password: st.password.clone(),
            properties: if st.protocol.is_v5() {
                st.connect_props.clone().unwrap_or_default()
            } else {
                Properties::default()
            },
        };
        st.gen += 1;
        st.conn = Some(Conn {
            stream,
            fd,
            rbuf: vec![0; READ_INITIAL],
            rlen: 0,
            read_more: false,
        });
        st.write_registered = false;
        st.push(CEvent::SocketOpen(fd));
        let now = Instant::now();
        let timeout = st.connect_timeout;
        let bridge = st.bridge;
        if let Err(e) = st.session.start_connect(&connect, bridge, now, timeout) {
            self.inner.close_conn(st, Why::Quiet);
            return Err(e);
        }
        if let Err(e) = self.inner.flush(st) {
            self.inner.close_conn(st, Why::Lost(Error::ConnectionLost));
            return Err(e);
        }
        st.collect();
        self.inner.cond.notify_all();
        self.inner.wake();
        Ok(())
    }

    /// Sends DISCONNECT and closes the connection once it is written; `on_disconnect` then
    /// reports `SUCCESS`. Stops the reconnect attempts. Offline, it only stops them and
    /// returns `Err(NoConnection)` (as Paho's `MQTT_ERR_NO_CONN`).
    pub fn disconnect(&self) -> Result<()> {
        self.disconnect_with(ReasonCode::NORMAL_DISCONNECTION, Properties::default())
    }

    /// `disconnect` with an MQTT 5 reason code and properties.
    pub fn disconnect_with(&self, reason: ReasonCode, properties: Properties) -> Result<()> {
        let mut st = self.inner.lock();
        st.want_connected = false;
        st.connect_pending = false;
        st.next_attempt = None;
        if st.conn.is_some() {
            self.inner.discard_gen.store(st.gen, Ordering::Relaxed);
        }
        let r = if st.conn.is_some() {
            let props = if st.protocol.is_v5() {
                properties
            } else {
                Properties::default()
            };
            let reason = if st.protocol.is_v5() {
                reason
            } else {
                ReasonCode::SUCCESS
            };
            match st.session.disconnect(reason, props) {
                Ok(()) => {
                    st.disconnecting = true;
                    match self.inner.flush(&mut st) {
                        Ok(()) => {
                            if st.session.pending_bytes() == 0 {
                                self.inner.close_conn(&mut st, Why::User);
                            }
                        }
                        Err(_) => self.inner.close_conn(&mut st, Why::User),
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else {
            Err(Error::NoConnection)
        };
        self.inner.cond.notify_all();
        drop(st);
        self.inner.wake();
        self.after_op();
        r
    }

    /// True once a loop has processed a successful CONNACK, until the connection ends.
    pub fn is_connected(&self) -> bool {
        let st = self.inner.lock();
        st.connected() && !st.disconnecting
    }
}

// ---------------------------------------------------------------------------------------
// Publishing and subscribing

impl Client {
    /// Publishes a message. QoS 0 needs a connection (`Err(NoConnection)` offline); QoS 1/2
    /// are queued while offline and sent after the next CONNACK.
    pub fn publish(
        &self,
        topic: &str,
        payload: impl AsRef<[u8]>,
        qos: QoS,
        retain: bool,
    ) -> Result<MessageInfo> {
        self.publish_inner(topic, payload.as_ref(), qos, retain, None)
    }

    /// `publish` with MQTT 5 properties (ignored for MQTT 3.x).
    pub fn publish_with_properties(
        &self,
        topic: &str,
        payload: impl AsRef<[u8]>,
        qos: QoS,
        retain: bool,
        properties: Properties,
    ) -> Result<MessageInfo> {
        self.publish_inner(topic, payload.as_ref(), qos, retain, Some(&properties))
    }

    fn publish_inner(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        props: Option<&Properties>,
    ) -> Result<MessageInfo> {
        let alias = props.and_then(|p| p.topic_alias).is_some();
        if topic.is_empty() && !alias {
            return Err(Error::invalid("the topic must not be empty"));
        }
        let mut st = self.inner.lock();
        // Backpressure: with another thread draining the socket, wait for room.
        if st.session.pending_bytes() >= st.max_outgoing_bytes
            && st.background
            && !self.inner.loop_thread.is_current()
            && !in_dispatch()
        {
            st.space_waiters += 1;
            while st.session.pending_bytes() >= st.max_outgoing_bytes
                && st.conn.is_some()
                && !st.shutdown
            {
                st = self
                    .inner
                    .cond
                    .wait_timeout(st, Duration::from_millis(100))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            st.space_waiters -= 1;
            if st.conn.is_none() && qos == QoS::AtMostOnce {
                return Err(Error::ConnectionLost);
            }
        }
        let info = st.session.publish(topic, payload, qos, retain, props)?;
        // Write at once, from this thread, unless this publish is part of a burst and a loop
        // thread can write the accumulated batch in one go (one syscall for many messages).
        let now = Instant::now();
        let burst = now.saturating_duration_since(st.last_publish) < BURST_GAP;
        st.last_publish = now;
        let loop_writes = st.background && !in_dispatch() && burst;
        if st.session.pending_bytes() > 0 {
            if !loop_writes || (st.session.pending_bytes() >= BATCH_BYTES && !st.write_blocked) {
                if let Err(e) = self.inner.flush(&mut st) {
                    self.inner.close_conn(&mut st, Why::Lost(e));
                }
            } else if !st.flush_scheduled {
                // Once per burst: the loop thread writes the tail when the burst ends.
                st.flush_scheduled = true;
                self.inner.wake();
            }
        }
        st.update_write_interest();
        let need =
            !st.session.events.is_empty() || !st.session.logs.is_empty() || !st.events.is_empty();
        if need {
            st.collect();
            drop(st);
            self.after_op();
        }
        Ok(MessageInfo {
            shared: info,
            loop_thread: Arc::downgrade(&self.inner.loop_thread),
        })
    }

    /// Subscribes to one filter. Returns the mid (matched by `on_subscribe`).
    pub fn subscribe(&self, topic: &str, qos: QoS) -> Result<u16> {
        self.subscribe_many_with_options(&[(topic, SubscribeOptions::qos(qos))], None)
    }

    /// Subscribes to several filters in one SUBSCRIBE packet.
    pub fn subscribe_many(&self, topics: &[(&str, QoS)]) -> Result<u16> {
        let v: Vec<(&str, SubscribeOptions)> = topics
            .iter()
            .map(|(t, q)| (*t, SubscribeOptions::qos(*q)))
            .collect();
        self.subscribe_many_with_options(&v, None)
    }

    /// Subscribes with MQTT 5 subscription options and properties.
    pub fn subscribe_with_options(
        &self,
        topic: &str,
        options: SubscribeOptions,
        properties: Option<Properties>,
    ) -> Result<u16> {
        self.subscribe_many_with_options(&[(topic, options)], properties)
    }

    /// Subscribes to several filters with options, in one SUBSCRIBE packet.
    pub fn subscribe_many_with_options(
        &self,
        topics: &[(&str, SubscribeOptions)],
        properties: Option<Properties>,
    ) -> Result<u16> {
        if topics.is_empty() {
            return Err(Error::invalid("subscribe needs at least one topic"));
        }
        for (t, _) in topics {
            validate_topic_filter(t)?;
        }
        let filters = topics.iter().map(|(t, o)| (t.to_string(), *o)).collect();
        let mut st = self.inner.lock();
        let props = if st.protocol.is_v5() {
            properties.unwrap_or_default()
        } else {
            Properties::default()
        };
        if st.conn.is_none() {
            return Err(Error::NoConnection);
        }
        let mid = st.session.subscribe(filters, props)?;
        if let Err(e) = self.inner.flush(&mut st) {
            self.inner.close_conn(&mut st, Why::Lost(e));
        }
        st.collect();
        drop(st);
        self.after_op();
        Ok(mid)
    }

    /// Unsubscribes from one filter.
    pub fn unsubscribe(&self, topic: &str) -> Result<u16> {
        self.unsubscribe_with_properties(&[topic], Properties::default())
    }

    /// Unsubscribes from several filters in one packet.
    pub fn unsubscribe_many(&self, topics: &[&str]) -> Result<u16> {
        self.unsubscribe_with_properties(topics, Properties::default())
    }

    /// Unsubscribes with MQTT 5 properties.
    pub fn unsubscribe_with_properties(
        &self,
        topics: &[&str],
        properties: Properties,
    ) -> Result<u16> {
        if topics.is_empty() {
            return Err(Error::invalid("unsubscribe needs at least one topic"));
        }
        for t in topics {
            validate_topic_filter(t)?;
        }
        let mut st = self.inner.lock();
        let props = if st.protocol.is_v5() {
            properties
        } else {
            Properties::default()
        };
        if st.conn.is_none() {
            return Err(Error::NoConnection);
        }
        let mid = st
            .session
            .unsubscribe(topics.iter().map(|t| t.to_string()).collect(), props)?;
        if let Err(e) = self.inner.flush(&mut st) {
            self.inner.close_conn(&mut st, Why::Lost(e));
        }
        st.collect();
        drop(st);
        self.after_op();
        Ok(mid)
    }

    /// With manual acks: acknowledges an incoming message (PUBACK for QoS 1, PUBCOMP for
    /// QoS 2). Without a connection it does nothing.
    pub fn ack(&self, mid: u16, qos: QoS) -> Result<()> {
        let mut st = self.inner.lock();
        st.session.ack_incoming(mid, qos);
        if let Err(e) = self.inner.flush(&mut st) {
            self.inner.close_conn(&mut st, Why::Lost(e));
        }
        st.collect();
        drop(st);
        self.after_op();
        Ok(())
    }

    /// Sends an MQTT 5 AUTH packet (re-authentication).
    pub fn auth(&self, reason: ReasonCode, properties: Properties) -> Result<()> {
        let mut st = self.inner.lock();
        if !st.connected() {
            return Err(Error::NoConnection);
        }
        st.session.auth(reason, properties)?;
        if let Err(e) = self.inner.flush(&mut st) {
            self.inner.close_conn(&mut st, Why::Lost(e));
        }
        st.collect();
        drop(st);
        self.after_op();
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Loops

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Once,
    Forever,
}

impl Client {
    fn log(&self, level: LogLevel, line: &str) {
        if !self.inner.log_active(level) {
            return;
        }
        self.emit_logs(vec![(level, line.to_string())]);
    }

    fn emit_logs(&self, logs: Vec<(LogLevel, String)>) {
        if logs.is_empty() {
            return;
        }
        let forward = self.inner.logger.load(Ordering::Relaxed);
        let cb = self
            .inner
            .callbacks
            .lock()
            .ok()
            .and_then(|c| c.on_log.clone());
        for (level, line) in logs {
            if forward {
                log::log!(target: "mqtt_sync", level.to_log_level(), "{line}");
            }
            if let Some(cb) = &cb {
                guarded(&self.inner, self, "on_log", || cb(self, level, &line));
            }
        }
    }

    /// After a user-thread operation: emit log lines, and either wake the loop thread to
    /// dispatch events or (with no loop thread) dispatch them here.
    fn after_op(&self) {
        let (logs, has_events, background, wake) = {
            let mut st = self.inner.lock();
            st.collect();
            let has_events = !st.events.is_empty();
            let background = st.background && !self.inner.loop_thread.is_current();
            // One wake-up until the loop thread dispatches, however many events queue; none
            // during a publish burst, when the loop thread already runs on a 1 ms tick.
            let wake = has_events && background && !st.dispatch_scheduled && !st.flush_scheduled;
            if wake {
                st.dispatch_scheduled = true;
            }
            (std::mem::take(&mut st.logs), has_events, background, wake)
        };
        self.emit_logs(logs);
        if wake {
            self.inner.wake();
        } else if has_events && !background && !in_dispatch() {
            self.dispatch();
        }
    }

    /// Runs every queued callback, in order, with no internal lock held.
    fn dispatch(&self) {
        if in_dispatch() {
            return;
        }
        IN_DISPATCH.with(|d| d.set(d.get() + 1));
        let _guard = self.inner.loop_thread.enter();
        loop {
            let (events, logs, manual) = {
                let mut st = self.inner.lock();
                st.collect();
                st.dispatch_scheduled = false;
                (
                    std::mem::take(&mut st.events),
                    std::mem::take(&mut st.logs),
                    st.manual_ack,
                )
            };
            self.emit_logs(logs);
            if events.is_empty() {
                break;
            }
            let mut acks = Vec::new();
            for (gen, ev) in events {
                if matches!(ev, CEvent::S(Event::Message { .. }))
                    && gen == self.inner.discard_gen.load(Ordering::Relaxed)
                {
                    continue;
                }
                if let Some(ack) = self.dispatch_one(ev) {
                    if !manual {
                        acks.push((gen, ack));
                    }
                }
            }
            if !acks.is_empty() {
                let mut st = self.inner.lock();
                for (gen, (mid, qos)) in acks {
                    if gen == st.gen {
                        st.session.ack_incoming(mid, qos);
                    }
                }
                if let Err(e) = self.inner.flush(&mut st) {
                    self.inner.close_conn(&mut st, Why::Lost(e));
                }
            }
        }
        IN_DISPATCH.with(|d| d.set(d.get() - 1));
    }

    fn dispatch_one(&self, ev: CEvent) -> Option<(u16, QoS)> {
        let inner = &self.inner;
        let cbs = || inner.callbacks.lock().unwrap_or_else(|e| e.into_inner());
        match ev {
            CEvent::S(Event::Connected { flags, rc, props }) => {
                let slot = cbs().on_connect.clone();
                call_slot(inner, self, "on_connect", &slot, |f| {
                    f(self, flags, rc, &props)
                });
            }
            CEvent::S(Event::Message { msg, ack }) => {
                self.dispatch_message(&msg);
                return ack;
            }
            CEvent::S(Event::Published { mid, rc, props }) => {
                let slot = cbs().on_publish.clone();
                let p = props.as_deref().unwrap_or(&EMPTY_PROPERTIES);
                call_slot(inner, self, "on_publish", &slot, |f| f(self, mid, rc, p));
            }
            CEvent::S(Event::PublishedRun { first, count }) => {
                let mut mid = first;
                for _ in 0..count {
                    // Looked up per message, as Paho does: a callback may replace itself.
                    let slot = cbs().on_publish.clone();
                    call_slot(inner, self, "on_publish", &slot, |f| {
                        f(self, mid, ReasonCode::SUCCESS, &EMPTY_PROPERTIES)
                    });
                    mid = if mid == u16::MAX { 1 } else { mid + 1 };
                }
            }
            CEvent::S(Event::Subscribed { mid, rcs, props }) => {
                let slot = cbs().on_subscribe.clone();
                call_slot(inner, self, "on_subscribe", &slot, |f| {
                    f(self, mid, &rcs, &props)
                });
            }
            CEvent::S(Event::Unsubscribed { mid, rcs, props }) => {
                let slot = cbs().on_unsubscribe.clone();
                call_slot(inner, self, "on_unsubscribe", &slot, |f| {
                    f(self, mid, &rcs, &props)
                });
            }
            CEvent::Disconnected { flags, rc, props } => {
                let slot = cbs().on_disconnect.clone();
                call_slot(inner, self, "on_disconnect", &slot, |f| {
                    f(self, flags, rc, &props)
                });
            }
            CEvent::ConnectFail(e) => {
                let slot = cbs().on_connect_fail.clone();
                call_slot(inner, self, "on_connect_fail", &slot, |f| f(self, &e));
            }
            CEvent::SocketOpen(fd) => {
                let slot = cbs().on_socket_open.clone();
                call_slot(inner, self, "on_socket_open", &slot, |f| f(self, fd));
            }
            CEvent::SocketClose(fd) => {
                let slot = cbs().on_socket_close.clone();
                call_slot(inner, self, "on_socket_close", &slot, |f| f(self, fd));
            }
            CEvent::RegisterWrite(fd) => {
                let slot = cbs().on_socket_register_write.clone();
                call_slot(inner, self, "on_socket_register_write", &slot, |f| {
                    f(self, fd)
                });
            }
            CEvent::UnregisterWrite(fd) => {
                let slot = cbs().on_socket_unregister_write.clone();
                call_slot(inner, self, "on_socket_unregister_write", &slot, |f| {
                    f(self, fd)
                });
            }
        }
        None
    }

    fn dispatch_message(&self, msg: &Message) {
        let (matched, on_message) = {
            let c = self
                .inner
                .callbacks
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let matched: Vec<_> = c
                .topic
                .iter()
                .filter(|(s, _)| topic_matches_sub(s, msg.topic()))
                .map(|(_, f)| f.clone())
                .collect();
            (matched, c.on_message.clone())
        };
        if matched.is_empty() {
            call_slot(&self.inner, self, "on_message", &on_message, |f| {
                f(self, msg)
            });
        } else {
            for f in matched {
                call_slot(&self.inner, self, "on_message", &Some(f), |f| f(self, msg));
            }
        }
    }

    /// One pass of the network loop: connect if due, wait for the socket, a wake-up or the
    /// next deadline (at most `max_wait`), then read, run timers, write, and dispatch.
    fn iterate(&self, max_wait: Duration, mode: Mode) -> Result<()> {
        match self.prepare(max_wait, mode)? {
            Prepared::Done(r) => r,
            Prepared::Wait(w) => {
                self.inner.poll_wait(w.wait)?;
                self.finish(w, mode)
            }
        }
    }

    /// Phase 1 of a pass: connect if due (then the pass is done), else write what is pending
    /// and compute how long to wait.
    fn prepare(&self, max_wait: Duration, mode: Mode) -> Result<Prepared> {
        let now = Instant::now();
        let mut st = self.inner.lock();
        if st.shutdown {
            return Err(Error::state("the client is shut down"));
        }
        if st.conn.is_none() && !st.connecting {
            let due = st.next_attempt.is_some_and(|t| t <= now);
            let may = st.connect_pending
                || (mode == Mode::Forever && st.want_connected && st.reconnect_on_failure);
            if due && may && st.host.is_some() {
                let first_async = st.connect_pending && !st.ever_connected;
                drop(st);
                if let Err(e) = self.do_connect() {
                    let mut st = self.inner.lock();
                    if !matches!(e, Error::InvalidState(_)) {
                        if first_async {
                            st.first_attempt_failed = true;
                        }
                        st.push(CEvent::ConnectFail(clone_error(&e)));
                        if st.want_connected {
                            st.schedule_reconnect(Instant::now());
                        }
                        st.last_error = Some(clone_error(&e));
                    }
                    drop(st);
                    self.dispatch();
                    return Ok(Prepared::Done(Err(e)));
                }
                self.dispatch();
                return Ok(Prepared::Done(Ok(())));
            }
        }
        let mut deadline = now + max_wait;
        // Write what is pending before waiting — unless a publisher on another thread is in
        // the middle of a burst: it writes large batches itself, and this thread only writes
        // the tail once the burst is over (checked each millisecond, poll's resolution).
        if st.flush_scheduled && now.saturating_duration_since(st.last_publish) < BURST_GAP {
            deadline = deadline.min(now + Duration::from_millis(1));
        } else {
            st.flush_scheduled = false;
            if st.conn.is_some() && st.session.pending_bytes() > 0 {
                if let Err(e) = self.inner.flush(&mut st) {
                    self.inner.close_conn(&mut st, Why::Lost(e));
                }
            }
        }
        if let Some(d) = st.session.next_deadline() {
            deadline = deadline.min(d);
        }
        if st.conn.is_none() {
            if let Some(t) = st.next_attempt {
                if st.connect_pending || (mode == Mode::Forever && st.want_connected) {
                    deadline = deadline.min(t);
                }
            }
        }
        if let Some(d) = st.stop_deadline {
            deadline = deadline.min(d);
        }
        // During a publish burst the events wait for the 1 ms tick and go out in one batch.
        let bursting = st.flush_scheduled;
        let immediate = st
            .conn
            .as_ref()
            .is_some_and(|c| c.read_more || c.stream.has_buffered_read())
            || (!bursting && (!st.events.is_empty() || !st.session.events.is_empty()));
        let had_conn = st.conn.is_some();
        let gen_before = st.gen;
        drop(st);
        let wait = if immediate {
            Duration::ZERO
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        Ok(Prepared::Wait(Waiting {
            wait,
            had_conn,
            gen_before,
        }))
    }

    /// Phase 3 of a pass: read, run timers, write, and dispatch.
    fn finish(&self, w: Waiting, mode: Mode) -> Result<()> {
        let mut st = self.inner.lock();
        let mut result = Ok(());
        if st.conn.is_some() {
            let now = Instant::now();
            if let Err(why) = self.inner.read_in(&mut st) {
                self.inner.close_conn(&mut st, why);
            }
            if st.conn.is_some() {
                if let Err(c) = st.session.handle_timeout(now) {
                    self.inner.close_conn(&mut st, Why::Session(c));
                }
            }
            if st.conn.is_some() {
                if let Err(e) = self.inner.flush(&mut st) {
                    self.inner.close_conn(&mut st, Why::Lost(e));
                }
            }
            if st.conn.is_some() && st.disconnecting && st.session.pending_bytes() == 0 {
                self.inner.close_conn(&mut st, Why::User);
            }
        } else if !w.had_conn && mode == Mode::Once && !st.connect_pending && !st.connecting {
            result = Err(Error::NoConnection);
        }
        if w.had_conn && st.gen != w.gen_before && st.conn.is_none() {
            result = Err(st
                .last_error
                .as_ref()
                .map(clone_error)
                .unwrap_or(Error::ConnectionLost));
            if !st.want_connected {
                result = Ok(());
            }
        }
        st.collect();
        drop(st);
        self.dispatch();
        result
    }

    /// Whether a `loop_forever`/`loop_start` loop should end now, and with what. The
    /// `loop_start` thread (`thread`) ends only on `loop_stop()` or when the client is
    /// dropped: before the first connect, and after `disconnect()`, it waits idle for the next
    /// `connect`/`connect_async`.
    fn forever_exit(&self, retry_first: bool, thread: bool) -> Option<Result<()>> {
        let mut st = self.inner.lock();
        if st.shutdown {
            return Some(Ok(()));
        }
        if st.stop {
            let busy =
                st.connected() && (st.session.pending_bytes() > 0 || st.session.outgoing_len() > 0);
            let now = Instant::now();
            let ct = st.connect_timeout;
            let deadline = *st.stop_deadline.get_or_insert(now + ct);
            if !busy || now >= deadline {
                return Some(Ok(()));
            }
        }
        if thread {
            return None;
        }
        if st.conn.is_none() && !st.connecting {
            if !st.want_connected {
                return Some(Ok(()));
            }
            if !st.connect_pending {
                if !st.reconnect_on_failure {
                    return Some(Err(st.last_error.take().unwrap_or(Error::ConnectionLost)));
                }
                if !retry_first && st.first_attempt_failed {
                    st.first_attempt_failed = false;
                    return Some(Err(st.last_error.take().unwrap_or(Error::NoConnection)));
                }
            }
        }
        None
    }

    /// Python's `loop(timeout)`: one pass of the network loop, waiting at most `timeout`.
    /// Performs a pending `connect_async`; does not reconnect by itself (call `reconnect`,
    /// also from `on_disconnect`). `Err(NoConnection)` without a connection; the error that
    /// ended the connection on the pass that saw it end.
    pub fn loop_once(&self, timeout: Duration) -> Result<()> {
        if self.inner.loop_thread.is_current() {
            return Err(Error::state(
                "loop_once() called from inside a callback or a running loop",
            ));
        }
        {
            let st = self.inner.lock();
            if st.background {
                return Err(Error::state(
                    "loop_once() while loop_start()/loop_forever() runs",
                ));
            }
        }
        let _g = self.inner.loop_thread.enter();
        self.iterate(timeout, Mode::Once)
    }

    /// Blocks running the network loop, reconnecting with backoff, until `disconnect()` (then
    /// `Ok`) or, with `reconnect_on_failure(false)`, until the connection fails (`Err`).
    pub fn loop_forever(&self) -> Result<()> {
        self.loop_forever_with(false)
    }

    /// `loop_forever`, where `retry_first_connection` also retries a first connection that
    /// fails (otherwise that failure is returned).
    pub fn loop_forever_with(&self, retry_first_connection: bool) -> Result<()> {
        if self.inner.loop_thread.is_current() {
            return Err(Error::state(
                "loop_forever() called from inside a callback or a running loop",
            ));
        }
        {
            let mut st = self.inner.lock();
            if st.background {
                return Err(Error::state(
                    "a loop is already running (loop_start or loop_forever)",
                ));
            }
            if st.host.is_none() {
                return Err(Error::NoConnection);
            }
            st.background = true;
            st.stop = false;
        }
        let _g = self.inner.loop_thread.enter();
        let r = self.run_forever(retry_first_connection);
        {
            let mut st = self.inner.lock();
            st.background = false;
            st.stop = false;
            st.stop_deadline = None;
        }
        // Anything queued between the last pass and `background = false` runs here.
        self.dispatch();
        r
    }

    fn run_forever(&self, retry_first: bool) -> Result<()> {
        loop {
            if let Some(r) = self.forever_exit(retry_first, false) {
                // Events queued by other threads (e.g. disconnect()'s on_disconnect) run
                // before the loop returns.
                self.dispatch();
                return r;
            }
            // Long waits: the waker interrupts them for anything new.
            match self.iterate(Duration::from_secs(3600), Mode::Forever) {
                Err(Error::InvalidState(m)) if m.contains("shut down") => return Ok(()),
                _ => {}
            }
        }
    }

    /// Starts the network thread: it runs the loop, reconnects with backoff, and runs the
    /// callbacks. `connect()` before or `connect()`/`connect_async()` after both work.
    pub fn loop_start(&self) -> Result<()> {
        let mut st = self.inner.lock();
        if st.background {
            return Err(Error::state(
                "a loop is already running (loop_start or loop_forever)",
            ));
        }
        if let Some(h) = st.loop_handle.take() {
            if h.thread().id() != thread::current().id() {
                drop(st);
                let _ = h.join();
                st = self.inner.lock();
            }
        }
        st.background = true;
        st.stop = false;
        st.stop_deadline = None;
        st.dispatch_scheduled = false;
        if st.conn.is_none() && st.want_connected && st.next_attempt.is_none() {
            st.next_attempt = Some(Instant::now());
            st.connect_pending = true;
        }
        let inner = self.inner.clone();
        let user = Arc::downgrade(&self.user);
        let id = st.client_id.clone();
        let handle = thread::Builder::new()
            .name(format!("mqtt-sync {id}"))
            .spawn(move || thread_main(inner, user))
            .map_err(Error::Io)?;
        st.loop_handle = Some(handle);
        Ok(())
    }

    /// Stops the network thread (without disconnecting): it first writes what is queued and,
    /// while the connection is healthy, waits for QoS 1/2 acknowledgements (at most the
    /// connect timeout). Safe inside a callback (the thread then ends after the callback).
    pub fn loop_stop(&self) -> Result<()> {
        let handle = {
            let mut st = self.inner.lock();
            if st.loop_handle.is_none() {
                return Err(Error::state("loop_stop() without loop_start()"));
            }
            st.stop = true;
            if self.inner.loop_thread.is_current() {
                None
            } else {
                st.loop_handle.take()
            }
        };
        self.inner.wake();
        if let Some(h) = handle {
            let _ = h.join();
        }
        Ok(())
    }

    // ----- external event loop (Paho's socket()/loop_read()/loop_write()/loop_misc())

    /// The socket's file descriptor, for an external `select`/`poll` loop.
    pub fn socket(&self) -> Option<RawFd> {
        self.inner.lock().conn.as_ref().map(|c| c.fd)
    }

    /// True when output is waiting for the socket (watch it for writability).
    pub fn want_write(&self) -> bool {
        let st = self.inner.lock();
        st.conn
            .as_ref()
            .is_some_and(|c| st.session.pending_bytes() > 0 || c.stream.has_pending_write())
    }

    /// External loop: the socket is readable — read and handle what arrived (including what
    /// TLS has buffered), then run the callbacks.
    pub fn loop_read(&self) -> Result<()> {
        let _g = self.inner.loop_thread.enter();
        let mut st = self.inner.lock();
        if st.conn.is_none() {
            return Err(Error::NoConnection);
        }
        let mut r = Ok(());
        if let Err(why) = self.inner.read_in(&mut st) {
            self.inner.close_conn(&mut st, why);
            r = Err(st
                .last_error
                .as_ref()
                .map(clone_error)
                .unwrap_or(Error::ConnectionLost));
        } else if let Err(e) = self.inner.flush(&mut st) {
            self.inner.close_conn(&mut st, Why::Lost(e));
            r = Err(Error::ConnectionLost);
        }
        st.collect();
        drop(st);
        self.dispatch();
        r
    }

    /// External loop: the socket is writable — write what is waiting.
    pub fn loop_write(&self) -> Result<()> {
        let _g = self.inner.loop_thread.enter();
        let mut st = self.inner.lock();
        if st.conn.is_none() {
            return Err(Error::NoConnection);
        }
        let mut r = Ok(());
        if let Err(e) = self.inner.flush(&mut st) {
            self.inner.close_conn(&mut st, Why::Lost(e));
            r = Err(Error::ConnectionLost);
        } else if st.disconnecting && st.session.pending_bytes() == 0 {
            self.inner.close_conn(&mut st, Why::User);
        }
        st.collect();
        drop(st);
        self.dispatch();
        r
    }

    /// External loop: run the timers (keepalive PINGREQ, missing PINGRESP, CONNACK timeout);
    /// call it at least once a second.
    pub fn loop_misc(&self) -> Result<()> {
        let _g = self.inner.loop_thread.enter();
        let mut st = self.inner.lock();
        if st.conn.is_none() {
            return Err(Error::NoConnection);
        }
        let mut r = Ok(());
        if let Err(c) = st.session.handle_timeout(Instant::now()) {
            self.inner.close_conn(&mut st, Why::Session(c));
            r = Err(st
                .last_error
                .as_ref()
                .map(clone_error)
                .unwrap_or(Error::ConnectionLost));
        } else if let Err(e) = self.inner.flush(&mut st) {
            self.inner.close_conn(&mut st, Why::Lost(e));
            r = Err(Error::ConnectionLost);
        }
        st.collect();
        drop(st);
        self.dispatch();
        r
    }
}

/// The loop thread. Between passes, and while it waits in `poll`, it holds only weak
/// references to the user's handles, so dropping the last `Client` shuts it down.
fn thread_main(inner: Arc<Inner>, user: Weak<UserToken>) {
    let _g = inner.loop_thread.enter();
    loop {
        let Some(tok) = user.upgrade() else {
            break;
        };
        let client = Client {
            user: tok,
            inner: inner.clone(),
        };
        if client.forever_exit(true, true).is_some() {
            client.dispatch();
            break;
        }
        let prepared = client.prepare(Duration::from_secs(3600), Mode::Forever);
        drop(client);
        let w = match prepared {
            Ok(Prepared::Wait(w)) => w,
            Ok(Prepared::Done(_)) => continue,
            Err(_) => break,
        };
        if inner.poll_wait(w.wait).is_err() {
            break;
        }
        let Some(tok) = user.upgrade() else {
            break;
        };
        let client = Client {
            user: tok,
            inner: inner.clone(),
        };
        let _ = client.finish(w, Mode::Forever);
    }
    {
        let mut st = inner.lock();
        st.background = false;
        st.stop = false;
        st.stop_deadline = None;
    }
    if let Some(tok) = user.upgrade() {
        Client {
            user: tok,
            inner: inner.clone(),
        }
        .dispatch();
    }
}

struct Waiting {
    wait: Duration,
    had_conn: bool,
    gen_before: u64,
}

enum Prepared {
    Done(Result<()>),
    Wait(Waiting),
}

impl Inner {
    fn poll_wait(&self, wait: Duration) -> Result<()> {
        let mut p = self.poll.lock().unwrap_or_else(|e| e.into_inner());
        let (poll, events) = &mut *p;
        match poll.poll(events, Some(wait)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(Error::Io(e)),
        }
    }
}

fn clone_error(e: &Error) -> Error {
    match e {
        Error::InvalidArgument(s) => Error::InvalidArgument(s.clone()),
        Error::InvalidState(s) => Error::InvalidState(s.clone()),
        Error::NoConnection => Error::NoConnection,
        Error::Protocol(s) => Error::Protocol(s.clone()),
        Error::ConnectionRefused(r) => Error::ConnectionRefused(*r),
        Error::ConnectionLost => Error::ConnectionLost,
        Error::Tls(s) => Error::Tls(s.clone()),
        Error::PayloadSize(s) => Error::PayloadSize(s.clone()),
        Error::NotSupported(s) => Error::NotSupported(s.clone()),
        Error::PublishRefused(r) => Error::PublishRefused(*r),
        Error::QueueSize => Error::QueueSize,
        Error::Keepalive => Error::Keepalive,
        Error::Io(e) => Error::Io(io::Error::new(e.kind(), e.to_string())),
        Error::Timeout => Error::Timeout,
        Error::Dns(s) => Error::Dns(s.clone()),
        Error::WebSocket(s) => Error::WebSocket(s.clone()),
        Error::Proxy(s) => Error::Proxy(s.clone()),
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn s<T: Send + Sync>() {}
    s::<Client>();
    s::<WeakClient>();
    s::<MessageInfo>();
    s::<Error>();
}

impl Drop for Inner {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(mut c) = st.conn.take() {
            c.stream.shutdown();
        }
    }
}
