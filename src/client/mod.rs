//! The public `Client` handle and what its threads share.
//!
//! One job per file:
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | `Client`, `WeakClient`, the shared `Inner`, construction, `reinitialise`, shutdown |
//! | `builder.rs` | `ClientBuilder` (Paho's constructor keywords) |
//! | `state.rs` | the state behind the lock: the connection's life (`Link`), who drives the loop (`Runner`) |
//! | `config.rs` | what the user configured (`Options`), its setters and getters |
//! | `callbacks.rs` | the callback slots and their setters |
//! | `connect.rs` | `connect`, `connect_async`, `connect_srv`, `reconnect`, `disconnect` |
//! | `ops.rs` | `publish` (burst and backpressure), `subscribe`, `unsubscribe`, `ack`, `auth` |
//! | `conn.rs` | the open socket: write, read into the session, close |
//! | `dispatch.rs` | running the callbacks of queued events; log lines |
//! | `event_loop.rs` | one pass of the loop, `loop_forever`, the `loop_start` thread, `loop_once`, the external-loop calls |
//! | `channel.rs` | `message_channel`: the bounded receive channel beside the callbacks |
//! | `request.rs` | MQTT 5 request/response: `request`, `respond` |
//!
//! Threading model: all state sits behind one mutex (`Inner::state`); the socket is
//! non-blocking and registered with a `mio` poller. Whoever holds the state lock may read
//! or write the socket, so `publish()` writes at once from the calling thread. The loop
//! thread waits in `poll` without any lock. Callbacks run with no internal lock held.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread;

use mio::{Events, Poll, Registry, Token, Waker};

use crate::completion::Notify;
use crate::loop_thread::LoopThreads;
use crate::session::{Ended, Session, SessionConfig};
use crate::types::LogLevel;
use crate::{Error, Result};

mod builder;
mod callbacks;
mod channel;
mod config;
mod conn;
mod connect;
mod dispatch;
mod event_loop;
mod ops;
mod request;
mod state;

pub use builder::ClientBuilder;
use callbacks::Callbacks;
pub use channel::{Iter as MessageIter, MessageReceiver};
use config::Options;
pub use config::DEFAULT_MAX_INCOMING_PACKET;
use state::{Link, Reporting, Runner, State};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// What the handles and the loop thread share.
pub(crate) struct Inner {
    state: Mutex<State>,
    /// Signalled when the connection closes or output drains (publishers waiting for room).
    cond: Condvar,
    callbacks: Mutex<Callbacks>,
    /// `request()`s waiting for their response.
    requests: Mutex<request::Requests>,
    poll: Mutex<(Poll, Events)>,
    registry: Registry,
    waker: Waker,
    notify: Arc<Notify>,
    loop_threads: Arc<LoopThreads>,
    /// Forward log lines to the `log` crate (enable_logger / disable_logger).
    logger: AtomicBool,
    /// An `on_log` callback is set.
    has_on_log: AtomicBool,
    /// The last connection id given out. Ids are never reused, also not across
    /// `reinitialise`, so an event can always tell which connection it belongs to.
    last_conn_id: AtomicU64,
    /// The connection the user called `disconnect()` on (0: none): its messages that are
    /// not yet dispatched are dropped (unacknowledged, so the broker keeps QoS 1/2 ones).
    discard_conn: AtomicU64,
    /// A thread is running callbacks: the token that makes them run one at a time.
    dispatching: AtomicBool,
    /// Threads inside `loop_once`, `loop_read`, `loop_write` or `loop_misc`: they run the
    /// callbacks, not a thread that publishes meanwhile.
    loop_calls: AtomicUsize,
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

impl std::fmt::Debug for UserToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserToken")
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
            .field("client_id", &st.opts.client_id)
            .field("protocol", &st.opts.protocol)
            .field("transport", &st.opts.transport)
            .field("host", &st.opts.host)
            .field("port", &st.opts.port)
            .field("connected", &st.session_up())
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

impl WeakClient {
    /// The client, if a user handle still exists.
    pub fn upgrade(&self) -> Option<Client> {
        Some(Client {
            user: self.user.upgrade()?,
            inner: self.inner.upgrade()?,
        })
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn callbacks(&self) -> MutexGuard<'_, Callbacks> {
        self.callbacks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn requests(&self) -> MutexGuard<'_, request::Requests> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self) {
        crate::sim::wake();
        let _ = self.waker.wake();
    }

    fn log_active(&self, level: LogLevel) -> bool {
        self.has_on_log.load(Ordering::Relaxed)
            || (self.logger.load(Ordering::Relaxed)
                && log::log_enabled!(target: "mqtt_sync", level.to_log_level()))
    }

    /// What the callbacks care about, from the flags (for a new `State`).
    fn reporting(&self) -> Reporting {
        Reporting {
            on_log: self.has_on_log.load(Ordering::Relaxed),
            logger: self.logger.load(Ordering::Relaxed),
            ..Reporting::default()
        }
    }

    /// An id for a new connection.
    fn new_conn_id(&self) -> u64 {
        self.last_conn_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// `disconnect()` was called on connection `id`: its undispatched messages are dropped.
    fn note_disconnect(&self, id: u64) {
        self.discard_conn.store(id, Ordering::Relaxed);
    }

    /// Stops everything: the last user handle was dropped.
    fn shutdown(&self) {
        let handle = {
            let mut st = self.lock();
            self.close_conn(&mut st, Ended::Quiet);
            st.close_channel();
            st.link.cancel_attempt();
            st.link = Link::Shutdown;
            st.session.clear_events();
            st.retired.clear();
            st.session.abandon_all();
            match &mut st.runner {
                Runner::Thread { handle, .. } => handle.take(),
                Runner::Ended(_) => match std::mem::replace(&mut st.runner, Runner::Idle) {
                    Runner::Ended(h) => Some(h),
                    _ => None,
                },
                _ => None,
            }
        };
        self.cond.notify_all();
        self.wake();
        if let Some(h) = handle {
            if h.thread().id() != thread::current().id() {
                crate::sim::join(h);
            }
        }
    }
}

impl Client {
    /// A client for MQTT 3.1.1 with a clean session over TCP (Paho's `Client(client_id=...)`).
    pub fn new(client_id: impl Into<String>) -> Client {
        Client::from_builder(ClientBuilder::new().client_id(client_id))
    }

    /// A builder for the other constructor options (protocol, transport, ...).
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    fn from_builder(b: ClientBuilder) -> Client {
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
        let reporting = Reporting {
            logger: true,
            ..Reporting::default()
        };
        let session = Session::new(SessionConfig::default(), notify.clone());
        let inner = Arc::new(Inner {
            state: Mutex::new(State::new(Options::new(&b), session, reporting)),
            cond: Condvar::new(),
            callbacks: Mutex::new(Callbacks::default()),
            requests: Mutex::new(request::Requests::default()),
            poll: Mutex::new((poll, Events::with_capacity(16))),
            registry,
            waker,
            notify,
            loop_threads: Arc::new(LoopThreads::default()),
            logger: AtomicBool::new(true),
            has_on_log: AtomicBool::new(false),
            last_conn_id: AtomicU64::new(0),
            discard_conn: AtomicU64::new(0),
            dispatching: AtomicBool::new(false),
            loop_calls: AtomicUsize::new(0),
        });
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
        if st.runner.running() {
            return Err(Error::state(
                "reinitialise() while a loop runs: call loop_stop() first",
            ));
        }
        let protocol = st.opts.protocol;
        builder::validate_session(
            protocol,
            &client_id,
            (!protocol.is_v5()).then_some(clean_session),
        )?;
        self.inner.close_conn(&mut st, Ended::Quiet);
        st.link.cancel_attempt();
        st.session.abandon_all();
        let b = ClientBuilder {
            client_id,
            clean_session: Some(clean_session),
            protocol,
            transport: st.opts.transport,
            reconnect_on_failure: true,
            manual_ack: false,
        };
        let stale = std::mem::replace(&mut st.runner, Runner::Idle);
        self.inner.has_on_log.store(false, Ordering::Relaxed);
        st.close_channel();
        let session = Session::new(SessionConfig::default(), self.inner.notify.clone());
        *st = State::new(Options::new(&b), session, self.inner.reporting());
        drop(st);
        drop(stale);
        *self.inner.callbacks() = Callbacks::default();
        Ok(())
    }
}

#[cfg(feature = "simulation")]
impl Client {
    /// What the simulation checks against the configured bounds (see `sim.rs`).
    pub(crate) fn sim_probe(&self) -> crate::sim::Probe {
        let st = self.inner.lock();
        crate::sim::Probe {
            pending_bytes: st.session.pending_bytes(),
            outgoing: st.session.outgoing_len(),
            inbound_qos2: st.session.inbound_qos2_len(),
            max_outgoing_bytes: st.opts.max_outgoing_bytes,
            max_queued: st.opts.max_queued,
            connected: st.connected(),
            loop_running: st.runner.running(),
            draining: st.runner.running()
                && st.runner.stop().is_none()
                && st.link.conn().is_some_and(|c| !c.closing),
        }
    }
}

/// A copy of an error (`Error` is not `Clone`: `io::Error` is not).
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
        Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
        Error::Timeout => Error::Timeout,
        Error::Dns(s) => Error::Dns(s.clone()),
        Error::WebSocket(s) => Error::WebSocket(s.clone()),
        Error::Proxy(s) => Error::Proxy(s.clone()),
        Error::Persistence(s) => Error::Persistence(s.clone()),
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn s<T: Send + Sync>() {}
    s::<Client>();
    s::<WeakClient>();
    s::<crate::MessageInfo>();
    s::<Error>();
}

impl Drop for Inner {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = st.link.conn_mut() {
            c.stream.shutdown();
        }
    }
}
