//! Waiting without sleeping: event channels with timeouts, and a polling helper.

use std::fmt::Debug;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// The default timeout for anything that should happen "soon".
pub const T: Duration = Duration::from_secs(10);

/// The poll interval of [`wait_until`].
pub const POLL: Duration = Duration::from_millis(5);

/// A channel of events (e.g. sent from client callbacks) that a test waits on.
///
/// ```ignore
/// let events = Events::new();
/// let tx = events.sender();
/// client.on_connect(move |_, rc| tx.send(Ev::Connected(rc)).unwrap());
/// assert_eq!(events.wait(T), Ev::Connected(0));
/// ```
pub struct Events<E> {
    tx: Sender<E>,
    rx: Receiver<E>,
}

impl<E> Default for Events<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Events<E> {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Events { tx, rx }
    }

    /// A sender to move into a callback; clone it as often as needed.
    pub fn sender(&self) -> Sender<E> {
        self.tx.clone()
    }

    /// The next event; panics if none arrives within `timeout`.
    #[track_caller]
    pub fn wait(&self, timeout: Duration) -> E {
        match self.rx.recv_timeout(timeout) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => panic!("no event within {timeout:?}"),
            Err(RecvTimeoutError::Disconnected) => unreachable!("Events holds a sender"),
        }
    }

    /// The next event, or `None` if none arrives within `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<E> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// An event already queued, without waiting.
    pub fn try_recv(&self) -> Option<E> {
        self.rx.try_recv().ok()
    }

    /// Every event already queued, without waiting.
    pub fn drain(&self) -> Vec<E> {
        self.rx.try_iter().collect()
    }
}

impl<E: Debug> Events<E> {
    /// The first event that matches `pred`, discarding the others; panics (listing the
    /// discarded events) if none matches within `timeout`.
    #[track_caller]
    pub fn wait_for(&self, timeout: Duration, mut pred: impl FnMut(&E) -> bool) -> E {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(e) if pred(&e) => return e,
                Ok(e) => skipped.push(e),
                Err(_) => panic!(
                    "no matching event within {timeout:?}; events seen and skipped: {skipped:?}"
                ),
            }
        }
    }

    /// Asserts that no event arrives within `duration` (this is the one place a fixed wait is
    /// right: it checks an absence).
    #[track_caller]
    pub fn assert_none_within(&self, duration: Duration) {
        if let Ok(e) = self.rx.recv_timeout(duration) {
            panic!("expected no event within {duration:?}, got {e:?}");
        }
    }
}

/// Polls `cond` every [`POLL`] until it is true; panics if it is still false after `timeout`.
#[track_caller]
pub fn wait_until(timeout: Duration, cond: impl FnMut() -> bool) {
    wait_until_msg(timeout, "condition", cond)
}

/// Like [`wait_until`], naming what was awaited in the panic message.
#[track_caller]
pub fn wait_until_msg(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    if !poll_until(timeout, &mut cond) {
        panic!("{what} not met within {timeout:?}");
    }
}

/// Polls `cond` every [`POLL`] until it is true (returns true) or `timeout` passes (false).
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}
