//! One connection attempt: a single deadline over DNS, TCP, the proxy, TLS and the WebSocket
//! upgrade (the session adds the CONNACK to it), and a way to stop the attempt from another
//! thread (`disconnect()`, `loop_stop()`, the last handle dropped).
//!
//! The set-up is blocking code, partly inside native-tls and tungstenite, and a timeout per
//! read cannot bound it: a peer that drips one byte a second restarts such a timeout for
//! ever. So a watchdog thread, one per attempt, shuts the attempt's socket down when the
//! deadline passes or the attempt is cancelled; every read, write or connect blocked on it
//! then returns at once. DNS look-ups (which no socket of ours carries) run on a helper
//! thread that the attempt stops waiting for.

use std::net::Shutdown;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

use socket2::Socket;

use crate::{Error, Result};

/// Why an attempt ended before its stream was ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Timeout,
    Cancelled,
}

struct State {
    deadline: Instant,
    ended: Option<End>,
    /// The attempt's stream is ready, or it failed: the watchdog stops.
    finished: bool,
    /// Duplicates of the sockets the attempt uses, to shut them down.
    sockets: Vec<Socket>,
    /// A helper thread's look-up finished.
    lookup_done: bool,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn end(&self, why: End) {
        let mut st = self.lock();
        if st.ended.is_none() && !st.finished {
            st.ended = Some(why);
            for s in st.sockets.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        self.cond.notify_all();
    }
}

/// A connection attempt in progress; cheap to clone (the client keeps one to cancel it).
#[derive(Clone)]
pub(crate) struct Attempt {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("deadline", &self.deadline())
            .finish()
    }
}

impl Attempt {
    /// Starts an attempt that must be done by `deadline`.
    pub(crate) fn start(deadline: Instant) -> Attempt {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                deadline,
                ended: None,
                finished: false,
                sockets: Vec::new(),
                lookup_done: false,
            }),
            cond: Condvar::new(),
        });
        let watched = shared.clone();
        if crate::sim::active() {
            // Simulated connections open at once: no set-up to bound.
            return Attempt { shared };
        }
        let spawned = thread::Builder::new()
            .name("mqtt-sync connect deadline".into())
            .spawn(move || watchdog(&watched));
        if spawned.is_err() {
            // Without a watchdog the per-read timeouts still bound each step.
            log::warn!(target: "mqtt_sync", "cannot start the connect watchdog thread");
        }
        Attempt { shared }
    }

    /// The same attempt (not an earlier or later one).
    pub(crate) fn same(&self, other: &Attempt) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// When the whole attempt (CONNACK included) must be done.
    pub(crate) fn deadline(&self) -> Instant {
        self.shared.lock().deadline
    }

    /// Stops the attempt from another thread: its blocked calls return at once.
    pub(crate) fn cancel(&self) {
        self.shared.end(End::Cancelled);
    }

    /// The set-up is over (its stream is ready, or it failed): the watchdog stops, and the
    /// stream is no longer shut down by it. `Err` if the attempt ended meanwhile.
    pub(crate) fn finish(&self) -> Result<()> {
        let mut st = self.shared.lock();
        st.finished = true;
        st.sockets.clear();
        let ended = st.ended;
        drop(st);
        self.shared.cond.notify_all();
        match ended {
            None => Ok(()),
            Some(why) => Err(error_for(why)),
        }
    }

    /// `Err` once the deadline passed or the attempt was cancelled.
    pub(crate) fn check(&self) -> Result<()> {
        match self.shared.lock().ended {
            None => Ok(()),
            Some(why) => Err(error_for(why)),
        }
    }

    /// The attempt will shut `socket` down if it ends before it is done.
    pub(crate) fn watch(&self, socket: &Socket) -> Result<()> {
        let dup = socket.try_clone()?;
        let mut st = self.shared.lock();
        if st.ended.is_some() {
            let _ = dup.shutdown(Shutdown::Both);
        } else {
            st.sockets.push(dup);
        }
        drop(st);
        self.check()
    }

    /// An error of a set-up step, as what ended the attempt if it ended (a shut-down socket
    /// fails with some I/O error; the caller should hear "timeout" or "cancelled").
    pub(crate) fn explain(&self, e: Error) -> Error {
        match self.shared.lock().ended {
            None => e,
            Some(why) => error_for(why),
        }
    }

    /// Runs `f` (a blocking look-up) on a helper thread and waits for it at most until the
    /// attempt ends; the helper is then left to finish on its own.
    pub(crate) fn bounded<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        self.check()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = self.shared.clone();
        thread::Builder::new()
            .name("mqtt-sync lookup".into())
            .spawn(move || {
                let _ = tx.send(f());
                shared.lock().lookup_done = true;
                shared.cond.notify_all();
            })?;
        let mut st = self.shared.lock();
        loop {
            if st.lookup_done {
                st.lookup_done = false;
                drop(st);
                return rx
                    .recv()
                    .map_err(|_| Error::Dns("the look-up thread failed".into()));
            }
            if let Some(why) = st.ended {
                return Err(error_for(why));
            }
            // The watchdog ends the attempt at the deadline and wakes this wait.
            st = self.shared.cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn error_for(why: End) -> Error {
    match why {
        End::Timeout => Error::Timeout,
        End::Cancelled => Error::state(
            "the connection attempt was stopped (disconnect(), loop_stop() or the client was \
             dropped)",
        ),
    }
}

/// Ends the attempt at its deadline, unless it finished or was cancelled first.
fn watchdog(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if st.finished || st.ended.is_some() {
            return;
        }
        let now = Instant::now();
        if now >= st.deadline {
            drop(st);
            shared.end(End::Timeout);
            return;
        }
        let wait = st.deadline - now;
        st = shared
            .cond
            .wait_timeout(st, wait)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_lookup_that_never_returns_ends_at_the_deadline() {
        let start = Instant::now();
        let a = Attempt::start(start + Duration::from_millis(200));
        let (_keep, hold) = std::sync::mpsc::channel::<()>();
        let r = a.bounded(move || {
            // A resolver that does not answer (until the test ends).
            let _ = hold.recv();
        });
        assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn cancel_stops_a_lookup_at_once() {
        let a = Attempt::start(Instant::now() + Duration::from_secs(3600));
        let b = a.clone();
        let canceller = thread::spawn(move || b.cancel());
        let (_keep, hold) = std::sync::mpsc::channel::<()>();
        let r = a.bounded(move || {
            let _ = hold.recv();
        });
        canceller.join().unwrap();
        assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    }

    #[test]
    fn a_finished_attempt_is_not_ended_later() {
        let a = Attempt::start(Instant::now() + Duration::from_millis(50));
        a.finish().unwrap();
        a.cancel();
        assert!(a.check().is_ok());
    }
}
