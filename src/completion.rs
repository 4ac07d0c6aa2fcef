//! Completion of outgoing messages: what `MessageInfo` waits on.
//!
//! A leaf module (no threads of its own, nothing from the client): the session marks a
//! message published or failed here, and `MessageInfo::wait_for_publish` waits for that.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::types::ReasonCode;
use crate::{Error, Result};

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

    /// `Ok(true)` once published, `Ok(false)` while pending, the reason when it failed.
    pub(crate) fn status(&self) -> Result<bool> {
        let (status, rc) = match self {
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

    /// Blocks until the message completes or `deadline` passes (`Err(Timeout)`).
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Result<()> {
        let notify = self.notify();
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
