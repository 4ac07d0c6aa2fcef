//! `Message` (Paho's `MQTTMessage`) and `MessageInfo` (Paho's `MQTTMessageInfo`).

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::types::{QoS, ReasonCode};
use crate::{Error, Properties, Result};

/// Properties with every field unset; what `Message::properties()` returns for MQTT 3.x.
pub(crate) static EMPTY_PROPERTIES: Properties = Properties {
    payload_format_indicator: None,
    message_expiry_interval: None,
    content_type: None,
    response_topic: None,
    correlation_data: None,
    subscription_identifiers: Vec::new(),
    session_expiry_interval: None,
    assigned_client_identifier: None,
    server_keep_alive: None,
    authentication_method: None,
    authentication_data: None,
    request_problem_information: None,
    will_delay_interval: None,
    request_response_information: None,
    response_information: None,
    server_reference: None,
    reason_string: None,
    receive_maximum: None,
    topic_alias_maximum: None,
    topic_alias: None,
    maximum_qos: None,
    retain_available: None,
    user_properties: Vec::new(),
    maximum_packet_size: None,
    wildcard_subscription_available: None,
    subscription_identifier_available: None,
    shared_subscription_available: None,
};

/// A received application message (Paho's `MQTTMessage`).
#[derive(Clone, Debug)]
pub struct Message {
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) dup: bool,
    pub(crate) mid: u16,
    pub(crate) properties: Option<Box<Properties>>,
    pub(crate) timestamp: Instant,
}

impl Message {
    /// Makes a message (mostly useful in tests of code that handles messages).
    pub fn new(
        topic: impl Into<String>,
        payload: impl AsRef<[u8]>,
        qos: QoS,
        retain: bool,
    ) -> Self {
        Message {
            topic: topic.into(),
            payload: payload.as_ref().to_vec(),
            qos,
            retain,
            dup: false,
            mid: 0,
            properties: None,
            timestamp: Instant::now(),
        }
    }

    /// The topic the message was published to.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// The payload as UTF-8 text, if it is valid UTF-8.
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }
    /// Takes the payload out of the message.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }
    /// The QoS the message was delivered with.
    pub fn qos(&self) -> QoS {
        self.qos
    }
    /// True for a retained message sent on subscribe (or, with retain-as-published, as sent).
    pub fn retain(&self) -> bool {
        self.retain
    }
    /// The DUP flag: the broker may have sent this message before.
    pub fn dup(&self) -> bool {
        self.dup
    }
    /// The packet identifier (0 for QoS 0); pass it to `Client::ack` with manual acks.
    pub fn mid(&self) -> u16 {
        self.mid
    }
    /// MQTT 5 properties (empty for MQTT 3.x).
    pub fn properties(&self) -> &Properties {
        self.properties.as_deref().unwrap_or(&EMPTY_PROPERTIES)
    }
    /// When the client received the message.
    pub fn timestamp(&self) -> Instant {
        self.timestamp
    }
}

const PENDING: u8 = 0;
const PUBLISHED: u8 = 1;
const FAILED: u8 = 2;

/// Wakes threads waiting in `wait_for_publish`.
///
/// A completion stores its status and then calls [`Notify::notify`]; a waiter registers in
/// `waiters` and then reads the status under `lock`. Both pairs use `SeqCst`, so at least one
/// side sees the other's write: either the notifier sees the waiter (and wakes it under the
/// lock) or the waiter sees the new status (and does not sleep).
#[derive(Debug, Default)]
pub(crate) struct Notify {
    lock: Mutex<()>,
    cond: Condvar,
    waiters: AtomicUsize,
}

impl Notify {
    pub(crate) fn notify(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.cond.notify_all();
        }
    }
}

/// Shared completion state of one outgoing QoS 1/2 message.
#[derive(Debug)]
pub(crate) struct InfoShared {
    pub(crate) mid: u16,
    status: AtomicU8,
    /// On failure: the reason code of the refusal, or 0 for "connection lost / dropped".
    fail_rc: AtomicU8,
    notify: Arc<Notify>,
}

impl InfoShared {
    pub(crate) fn new(mid: u16, notify: Arc<Notify>) -> Arc<Self> {
        Arc::new(InfoShared {
            mid,
            status: AtomicU8::new(PENDING),
            fail_rc: AtomicU8::new(0),
            notify,
        })
    }
    pub(crate) fn set_published(&self) {
        self.status.store(PUBLISHED, Ordering::SeqCst);
        self.notify.notify();
    }
    /// `rc` 0 = the client was dropped or reinitialised; otherwise the broker's or the
    /// client's refusal reason.
    pub(crate) fn set_failed(&self, rc: ReasonCode) {
        self.fail_rc.store(rc.0, Ordering::Relaxed);
        self.status.store(FAILED, Ordering::SeqCst);
        self.notify.notify();
    }
}

/// Completion state of every QoS 0 message of one client. QoS 0 messages complete in the
/// order they were published (written to the socket, or lost with the connection), so a
/// sequence number per message and one counter replace a shared allocation per message.
#[derive(Debug)]
pub(crate) struct Qos0Track {
    /// Messages with a sequence number below this are complete.
    done: AtomicU64,
    /// Sequence ranges `[start, end)` lost with a connection, in order; adjacent ranges are
    /// merged, so there is at most one per connection that dropped unwritten QoS 0 data.
    failed: Mutex<Vec<(u64, u64)>>,
    notify: Arc<Notify>,
}

impl Qos0Track {
    pub(crate) fn new(notify: Arc<Notify>) -> Arc<Self> {
        Arc::new(Qos0Track {
            done: AtomicU64::new(0),
            failed: Mutex::new(Vec::new()),
            notify,
        })
    }

    /// Messages below `upto` were written.
    pub(crate) fn written(&self, upto: u64) {
        self.done.store(upto, Ordering::SeqCst);
        self.notify.notify();
    }

    /// Messages in `[start, end)` were lost with the connection.
    pub(crate) fn lost(&self, start: u64, end: u64) {
        if start < end {
            let mut f = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            match f.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ => f.push((start, end)),
            }
        }
        self.done.store(end, Ordering::SeqCst);
        self.notify.notify();
    }

    fn status(&self, seq: u64) -> u8 {
        if seq >= self.done.load(Ordering::SeqCst) {
            return PENDING;
        }
        let f = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        // Ranges are sorted and disjoint: the last one starting at or before `seq`.
        let i = f.partition_point(|r| r.0 <= seq);
        if i > 0 && seq < f[i - 1].1 {
            FAILED
        } else {
            PUBLISHED
        }
    }
}

/// How a `MessageInfo` learns that its message completed.
#[derive(Clone, Debug)]
pub(crate) enum Completion {
    /// QoS 1/2: a state of its own.
    One(Arc<InfoShared>),
    /// QoS 0: a place in the client's QoS 0 sequence.
    Qos0 {
        track: Arc<Qos0Track>,
        seq: u64,
        mid: u16,
    },
}

impl Completion {
    pub(crate) fn mid(&self) -> u16 {
        match self {
            Completion::One(i) => i.mid,
            Completion::Qos0 { mid, .. } => *mid,
        }
    }

    fn notify(&self) -> &Notify {
        match self {
            Completion::One(i) => &i.notify,
            Completion::Qos0 { track, .. } => &track.notify,
        }
    }
}

/// What `publish` returns (Paho's `MQTTMessageInfo`): the message id and a way to wait until
/// the message has been sent (QoS 0) or acknowledged (QoS 1 and 2).
#[derive(Clone, Debug)]
pub struct MessageInfo {
    pub(crate) shared: Completion,
    /// Used to refuse a wait on the network thread itself.
    pub(crate) loop_thread: Weak<crate::client::LoopThreadId>,
}

impl MessageInfo {
    /// The message id (also for QoS 0, where it is not sent on the wire).
    pub fn mid(&self) -> u16 {
        self.shared.mid()
    }

    /// True once the message was written (QoS 0) or acknowledged (QoS 1/2).
    pub fn is_published(&self) -> bool {
        matches!(self.status(), Ok(true))
    }

    /// Paho's `rc`: `MQTT_ERR_SUCCESS` while pending or published, otherwise the error code.
    pub fn rc(&self) -> i32 {
        match self.status() {
            Ok(_) => crate::MQTT_ERR_SUCCESS,
            Err(e) => e.code(),
        }
    }

    fn status(&self) -> Result<bool> {
        let (status, rc) = match &self.shared {
            Completion::One(i) => (
                i.status.load(Ordering::SeqCst),
                i.fail_rc.load(Ordering::Relaxed),
            ),
            Completion::Qos0 { track, seq, .. } => (track.status(*seq), 0),
        };
        match status {
            PUBLISHED => Ok(true),
            FAILED => {
                if rc == 0 {
                    Err(Error::ConnectionLost)
                } else {
                    Err(Error::PublishRefused(ReasonCode(rc)))
                }
            }
            _ => Ok(false),
        }
    }

    /// Blocks until the message is published, the timeout passes (`Err(Timeout)`), or the
    /// message can no longer be delivered (`Err(ConnectionLost)` for a QoS 0 message whose
    /// connection dropped, `Err(PublishRefused(rc))` when the broker refused it).
    ///
    /// Called on the network thread itself (inside a callback) it returns
    /// `Err(InvalidState)` instead of waiting forever, since that thread is what would
    /// complete the message.
    pub fn wait_for_publish(&self, timeout: Option<Duration>) -> Result<()> {
        if self.status()? {
            return Ok(());
        }
        if let Some(t) = self.loop_thread.upgrade() {
            if t.is_current() {
                return Err(Error::state(
                    "wait_for_publish() called on the network thread (inside a callback): \
                     it would wait for itself; return from the callback instead",
                ));
            }
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let notify = self.shared.notify();
        notify.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = notify.lock.lock().unwrap_or_else(|e| e.into_inner());
        let result = loop {
            match self.status() {
                Ok(true) => break Ok(()),
                Err(e) => break Err(e),
                Ok(false) => {}
            }
            guard = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break Err(Error::Timeout);
                    }
                    notify
                        .cond
                        .wait_timeout(guard, d - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0)
                }
                None => notify.cond.wait(guard).unwrap_or_else(|e| e.into_inner()),
            };
        };
        drop(guard);
        notify.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }
}
