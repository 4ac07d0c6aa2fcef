//! The loop: one pass ([`Client::prepare`], wait in `poll`, [`Client::finish`]), and every way
//! to drive it — `loop_forever`, the `loop_start` thread, `loop_once`, and the external-loop
//! calls (`socket`, `loop_read`, `loop_write`, `loop_misc`, `want_write`).
//!
//! A pass: connect if an attempt is due (the pass ends there); otherwise write what is
//! pending and compute the wait (the session's next deadline, a reconnect time, the
//! `loop_stop` deadline, a 1 ms tick during a publish burst), wait in `poll` without any
//! lock (the waker interrupts it for a publish or a wake-up from another thread), then read,
//! run the timers, write, close after a written DISCONNECT, and dispatch the callbacks.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use super::conn::read_pause_bound;
use super::ops::{in_burst, BURST_TICK};
use super::state::{Link, Retry, Runner, State};
use super::{clone_error, Client, Inner, UserToken};
use crate::session::{Ended, Event};
use crate::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `loop_once`: performs a pending `connect_async`, never reconnects by itself.
    Once,
    /// `loop_forever` and the `loop_start` thread: reconnect with backoff.
    Forever,
}

/// What a pass waits for after [`Client::prepare`].
struct Waiting {
    wait: Duration,
    /// The connection open before the wait, if any.
    conn_before: Option<u64>,
}

enum Prepared {
    /// The pass connected (or tried to) and is over.
    Done(Result<()>),
    /// Wait, then [`Client::finish`].
    Wait(Waiting),
}

impl Inner {
    fn poll_wait(&self, wait: Duration) -> Result<()> {
        let wait = crate::sim::poll_wait(wait);
        let mut p = self.poll.lock().unwrap_or_else(|e| e.into_inner());
        let (poll, events) = &mut *p;
        match poll.poll(events, Some(wait)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(Error::Io(e)),
        }
    }
}

impl State {
    /// The error that ended the last connection, for the loop call that saw it end.
    fn ended_with(&self) -> Error {
        self.last_error
            .as_ref()
            .map(clone_error)
            .unwrap_or(Error::ConnectionLost)
    }
}

impl Client {
    /// One pass of the network loop, waiting at most `max_wait`.
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
        let now = crate::time::now();
        let mut st = self.inner.lock();
        if matches!(st.link, Link::Shutdown) {
            return Err(Error::state("the client is shut down"));
        }
        if let Link::Waiting(retry) = st.link {
            let due = match retry {
                Retry::Now => true,
                Retry::At { at, .. } => {
                    at <= now && mode == Mode::Forever && st.opts.reconnect_on_failure
                }
                Retry::Manual => false,
            };
            if due && st.opts.host.is_some() {
                let first_async = retry == Retry::Now && !st.connected_once;
                drop(st);
                let r = self.open_connection(None);
                if let Err(e) = &r {
                    let mut st = self.inner.lock();
                    if !matches!(e, Error::InvalidState(_)) {
                        st.session.push_event(Event::ConnectFailed(clone_error(e)));
                        if matches!(st.link, Link::Waiting(Retry::Manual)) {
                            st.schedule_reconnect(crate::time::now(), first_async);
                        }
                        st.last_error = Some(clone_error(e));
                    }
                }
                self.dispatch();
                return Ok(Prepared::Done(r));
            }
        }
        let mut deadline = crate::time::after(now, max_wait);
        // Write what is pending before waiting — unless a publisher on another thread is in
        // the middle of a burst: it writes large batches itself, and this thread only writes
        // the tail once the burst is over (checked each millisecond, poll's resolution).
        if st.flow.flush_scheduled && in_burst(&st, now) {
            deadline = deadline.min(now + BURST_TICK);
        } else {
            st.flow.flush_scheduled = false;
            if st.link.is_open() && st.session.pending_bytes() > 0 {
                self.inner.flush_or_close(&mut st);
            }
        }
        if let Some(d) = st.session.next_deadline() {
            deadline = deadline.min(d);
        }
        match st.link {
            Link::Waiting(Retry::Now) => deadline = now,
            Link::Waiting(Retry::At { at, .. }) if mode == Mode::Forever => {
                deadline = deadline.min(at)
            }
            _ => {}
        }
        if let Some(d) = st.runner.stop() {
            deadline = deadline.min(d);
        }
        // During a publish burst the events wait for the 1 ms tick and go out in one batch.
        let bursting = st.flow.flush_scheduled;
        let drained = st.session.pending_bytes() < read_pause_bound(st.opts.max_outgoing_bytes)
            && !st.channel_full();
        let immediate = st.link.conn().is_some_and(|c| {
            if c.read_paused {
                drained
            } else {
                c.read_more || c.stream.has_buffered_read()
            }
        }) || (!bursting && st.session.has_events());
        let conn_before = st.link.conn_id();
        drop(st);
        let wait = if immediate {
            Duration::ZERO
        } else {
            deadline.saturating_duration_since(crate::time::now())
        };
        Ok(Prepared::Wait(Waiting { wait, conn_before }))
    }

    /// Phase 3 of a pass: read, run timers, write, and dispatch.
    fn finish(&self, w: Waiting, mode: Mode) -> Result<()> {
        let mut st = self.inner.lock();
        let mut result = Ok(());
        if st.link.is_open() {
            let now = crate::time::now();
            if let Err(why) = self.inner.read_in(&mut st) {
                self.inner.close_conn(&mut st, why);
            }
            if st.link.is_open() {
                if let Err(c) = st.session.handle_timeout(now) {
                    self.inner.close_conn(&mut st, Ended::Session(c));
                }
            }
            if st.link.is_open() {
                self.inner.flush_or_close(&mut st);
            }
            self.close_if_disconnected(&mut st);
        } else if w.conn_before.is_none()
            && mode == Mode::Once
            && !matches!(st.link, Link::Waiting(Retry::Now) | Link::Opening { .. })
        {
            result = Err(Error::NoConnection);
        }
        if w.conn_before.is_some() && !st.link.is_open() {
            result = if st.link.wanted() {
                Err(st.ended_with())
            } else {
                Ok(())
            };
        }
        drop(st);
        self.dispatch();
        result
    }

    /// Closes the connection once the DISCONNECT of `disconnect()` is written.
    fn close_if_disconnected(&self, st: &mut State) {
        let closing = st.link.conn().is_some_and(|c| c.closing);
        if closing && st.session.pending_bytes() == 0 {
            self.inner.close_conn(st, Ended::User);
        }
    }

    /// Whether a `loop_forever`/`loop_start` loop should end now, and with what. The
    /// `loop_start` thread (`thread`) ends only on `loop_stop()` or when the client is
    /// dropped: before the first connect, and after `disconnect()`, it waits idle for the next
    /// `connect`/`connect_async`.
    fn forever_exit(&self, retry_first: bool, thread: bool) -> Option<Result<()>> {
        let mut guard = self.inner.lock();
        let st = &mut *guard;
        if matches!(st.link, Link::Shutdown) {
            return Some(Ok(()));
        }
        if let Some(deadline) = st.runner.stop() {
            let busy = st.session_up()
                && (st.session.pending_bytes() > 0 || st.session.outgoing_len() > 0);
            if !busy || crate::time::now() >= deadline {
                return Some(Ok(()));
            }
        }
        if thread {
            return None;
        }
        match &mut st.link {
            Link::Idle => Some(Ok(())),
            Link::Waiting(Retry::Now) => None,
            Link::Waiting(retry) => {
                if !st.opts.reconnect_on_failure {
                    let e = st.last_error.take().unwrap_or(Error::ConnectionLost);
                    return Some(Err(e));
                }
                if let Retry::At { first_failed, .. } = retry {
                    if *first_failed && !retry_first {
                        *first_failed = false;
                        return Some(Err(st.last_error.take().unwrap_or(Error::NoConnection)));
                    }
                }
                None
            }
            _ => None,
        }
    }

    /// Python's `loop(timeout)`: one pass of the network loop, waiting at most `timeout`.
    /// Performs a pending `connect_async`; does not reconnect by itself (call `reconnect`,
    /// also from `on_disconnect`). `Err(NoConnection)` without a connection; the error that
    /// ended the connection on the pass that saw it end.
    pub fn loop_once(&self, timeout: Duration) -> Result<()> {
        if self.inner.loop_threads.is_current() {
            return Err(Error::state(
                "loop_once() called from inside a callback or a running loop",
            ));
        }
        if self.inner.lock().runner.running() {
            return Err(Error::state(
                "loop_once() while loop_start()/loop_forever() runs",
            ));
        }
        let _g = self.inner.loop_threads.enter();
        let _call = LoopCall::enter(&self.inner);
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
        if self.inner.loop_threads.is_current() {
            return Err(Error::state(
                "loop_forever() called from inside a callback or a running loop",
            ));
        }
        {
            let mut st = self.inner.lock();
            if st.runner.running() {
                return Err(Error::state(
                    "a loop is already running (loop_start or loop_forever)",
                ));
            }
            if st.opts.host.is_none() {
                return Err(Error::NoConnection);
            }
            st.runner = Runner::Forever;
        }
        let _g = self.inner.loop_threads.enter();
        let reset = RunnerReset(&self.inner);
        let r = self.run_forever(retry_first_connection);
        drop(reset);
        // Anything queued between the last pass and the end of the loop runs here.
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
            // Long waits: the waker interrupts them for anything new. A failed pass is
            // reported through the callbacks; the next `forever_exit` decides what it means.
            let _ = self.iterate(Duration::from_secs(3600), Mode::Forever);
        }
    }

    /// Starts the network thread: it runs the loop, reconnects with backoff, and runs the
    /// callbacks. `connect()` before or `connect()`/`connect_async()` after both work.
    pub fn loop_start(&self) -> Result<()> {
        let mut st = self.inner.lock();
        if st.runner.running() {
            return Err(Error::state(
                "a loop is already running (loop_start or loop_forever)",
            ));
        }
        if let Runner::Ended(h) = std::mem::replace(&mut st.runner, Runner::Idle) {
            if h.thread().id() != thread::current().id() {
                drop(st);
                crate::sim::join(h);
                st = self.inner.lock();
            }
        }
        st.flow.dispatch_scheduled = false;
        if matches!(st.link, Link::Waiting(Retry::Manual)) {
            st.link = Link::Waiting(Retry::Now);
        }
        let inner = self.inner.clone();
        let user = Arc::downgrade(&self.user);
        let name = format!("mqtt-sync {}", st.opts.client_id);
        st.runner = Runner::Thread {
            handle: None,
            stop: None,
        };
        match crate::sim::spawn(thread::Builder::new().name(name), move || {
            thread_main(inner, user)
        }) {
            Ok(h) => {
                st.runner = Runner::Thread {
                    handle: Some(h),
                    stop: None,
                };
                Ok(())
            }
            Err(e) => {
                st.runner = Runner::Idle;
                Err(Error::Io(e))
            }
        }
    }

    /// Stops the network thread (without disconnecting): it first writes what is queued and,
    /// while the connection is healthy, waits for QoS 1/2 acknowledgements (at most the
    /// connect timeout). Safe inside a callback (the thread then ends after the callback).
    pub fn loop_stop(&self) -> Result<()> {
        let here = self.inner.loop_threads.is_current();
        let handle = {
            let mut st = self.inner.lock();
            let deadline = crate::time::after(crate::time::now(), st.opts.connect_timeout);
            // An attempt the loop thread is making is stopped: the thread ends without
            // waiting for its deadline; loop_start() later tries again.
            if let (
                Link::Opening { attempt, by },
                Runner::Thread {
                    handle: Some(h), ..
                },
            ) = (&st.link, &st.runner)
            {
                if *by == h.thread().id() {
                    attempt.cancel();
                    st.link = Link::Waiting(Retry::Manual);
                }
            }
            match &mut st.runner {
                Runner::Thread {
                    handle: handle @ Some(_),
                    stop,
                } => {
                    *stop = Some(deadline);
                    if here {
                        None
                    } else {
                        handle.take()
                    }
                }
                Runner::Ended(_) => match std::mem::replace(&mut st.runner, Runner::Idle) {
                    Runner::Ended(h) if !here => Some(h),
                    _ => None,
                },
                _ => return Err(Error::state("loop_stop() without loop_start()")),
            }
        };
        self.inner.wake();
        // A publisher held by backpressure stops waiting: nothing drains after the thread.
        self.inner.cond.notify_all();
        if let Some(h) = handle {
            crate::sim::join(h);
        }
        Ok(())
    }

    // ----- external event loop (Paho's socket()/loop_read()/loop_write()/loop_misc())

    /// The socket's file descriptor, for an external `select`/`poll` loop.
    pub fn socket(&self) -> Option<RawFd> {
        self.inner.lock().link.conn().map(|c| c.fd)
    }

    /// True when output is waiting for the socket (watch it for writability).
    pub fn want_write(&self) -> bool {
        let st = self.inner.lock();
        st.link
            .conn()
            .is_some_and(|c| st.session.pending_bytes() > 0 || c.stream.has_pending_write())
    }

    /// Runs one external-loop step `f` on the open connection, then the callbacks.
    fn external(&self, f: impl FnOnce(&Client, &mut State) -> Result<()>) -> Result<()> {
        let _g = self.inner.loop_threads.enter();
        let _call = LoopCall::enter(&self.inner);
        let mut st = self.inner.lock();
        if !st.link.is_open() {
            return Err(Error::NoConnection);
        }
        let r = f(self, &mut st);
        drop(st);
        self.dispatch();
        r
    }

    /// Writes what is pending; on a failed socket, closes and reports `ConnectionLost`.
    fn write_or_lost(&self, st: &mut State) -> Result<()> {
        match self.inner.flush(st) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.inner.close_conn(st, Ended::Lost(e));
                Err(Error::ConnectionLost)
            }
        }
    }

    /// External loop: the socket is readable — read and handle what arrived (including what
    /// TLS has buffered), then run the callbacks.
    pub fn loop_read(&self) -> Result<()> {
        self.external(|c, st| match c.inner.read_in(st) {
            Err(why) => {
                c.inner.close_conn(st, why);
                Err(st.ended_with())
            }
            Ok(()) => c.write_or_lost(st),
        })
    }

    /// External loop: the socket is writable — write what is waiting.
    pub fn loop_write(&self) -> Result<()> {
        self.external(|c, st| {
            c.write_or_lost(st)?;
            c.close_if_disconnected(st);
            Ok(())
        })
    }

    /// External loop: run the timers (keepalive PINGREQ, missing PINGRESP, CONNACK timeout);
    /// call it at least once a second.
    pub fn loop_misc(&self) -> Result<()> {
        self.external(
            |c, st| match st.session.handle_timeout(crate::time::now()) {
                Err(close) => {
                    c.inner.close_conn(st, Ended::Session(close));
                    Err(st.ended_with())
                }
                Ok(()) => c.write_or_lost(st),
            },
        )
    }
}

/// Counts a thread inside `loop_once` or an external-loop call (see `Client::after_op`).
struct LoopCall<'a>(&'a Inner);

impl<'a> LoopCall<'a> {
    fn enter(inner: &'a Inner) -> Self {
        inner.loop_calls.fetch_add(1, Ordering::SeqCst);
        LoopCall(inner)
    }
}

impl Drop for LoopCall<'_> {
    fn drop(&mut self) {
        self.0.loop_calls.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Puts the runner back when a loop ends, also when it ends by a panic, so that the client
/// stays usable (`loop_start` / `loop_forever` work again).
struct RunnerReset<'a>(&'a Inner);

impl Drop for RunnerReset<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.runner = match std::mem::replace(&mut st.runner, Runner::Idle) {
            Runner::Thread {
                handle: Some(h), ..
            } => Runner::Ended(h),
            _ => Runner::Idle,
        };
    }
}

/// The loop thread: runs the loop; a panic (a bug, or a callback's captured value that panics
/// when dropped) is logged and ends the thread, leaving the client usable.
fn thread_main(inner: Arc<Inner>, user: Weak<UserToken>) {
    let _g = inner.loop_threads.enter();
    let reset = RunnerReset(&inner);
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| thread_loop(&inner, &user)));
    drop(reset);
    if run.is_err() {
        log::error!(
            target: "mqtt_sync",
            "the network loop thread panicked and stopped; loop_start() starts a new one"
        );
    }
    if let Some(tok) = user.upgrade() {
        Client {
            user: tok,
            inner: inner.clone(),
        }
        .dispatch();
    }
}

/// The passes of the loop thread. Between passes, and while it waits in `poll`, it holds only
/// weak references to the user's handles, so dropping the last `Client` shuts it down.
fn thread_loop(inner: &Arc<Inner>, user: &Weak<UserToken>) {
    let client_now = || {
        Some(Client {
            user: user.upgrade()?,
            inner: inner.clone(),
        })
    };
    loop {
        let Some(client) = client_now() else {
            break;
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
        let Some(client) = client_now() else {
            break;
        };
        let _ = client.finish(w, Mode::Forever);
    }
}
