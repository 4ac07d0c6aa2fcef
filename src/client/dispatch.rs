//! Running the callbacks: the session's queued events, in order, one at a time, with no
//! internal lock held, on the thread that drives the loop; and the log lines.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use super::callbacks::Slot;
use super::{Client, Inner};
use crate::message::EMPTY_PROPERTIES;
use crate::session::{Event, SocketEvent};
use crate::topic::{shared_filter, topic_matches_sub};
use crate::types::{AuthReply, LogLevel, QoS, ReasonCode};
use crate::{Message, Properties};

/// Holds the dispatch token; gives it back when dropped (also by a panic).
struct DispatchToken<'a>(&'a Inner);

impl Drop for DispatchToken<'_> {
    fn drop(&mut self) {
        self.0.dispatching.store(false, Ordering::Release);
    }
}

thread_local! {
    /// Depth of callback dispatch on this thread (no nested dispatch, no blocking waits).
    static IN_DISPATCH: Cell<u32> = const { Cell::new(0) };
}

/// True on a thread that is running a callback.
pub(super) fn in_dispatch() -> bool {
    IN_DISPATCH.with(|d| d.get() > 0)
}

/// Runs a user closure, catching a panic and logging it.
fn guarded(inner: &Inner, client: &Client, what: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        let line = format!("Caught exception in {what}: the callback panicked; the loop goes on");
        log::error!(target: "mqtt_sync", "{line}");
        let cb = inner.callbacks().on_log.clone();
        if let Some(cb) = cb {
            let _ = catch_unwind(AssertUnwindSafe(|| cb(client, LogLevel::Error, &line)));
        }
    }
}

/// Runs the closure in `slot`, if any, unlocked from every other slot.
pub(super) fn call_slot<F: ?Sized>(
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

impl Client {
    /// Emits one log line (from a user thread or the loop).
    pub(super) fn log(&self, level: LogLevel, line: &str) {
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
        let cb = self.inner.callbacks().on_log.clone();
        for (level, line) in logs {
            if forward {
                log::log!(target: "mqtt_sync", level.to_log_level(), "{line}");
            }
            if let Some(cb) = &cb {
                guarded(&self.inner, self, "on_log", || cb(self, level, &line));
            }
        }
    }

    /// After a user-thread operation: emit log lines; then the callbacks of the events it
    /// queued run on the thread that drives the loop — the loop thread (woken), a thread in
    /// `loop_once`/`loop_read`/... (woken, or at its next call) — or, when no thread is in
    /// the loop, here (as Paho runs them in the call).
    pub(super) fn after_op(&self) {
        let (logs, here, wake) = {
            let mut st = self.inner.lock();
            let has_events = st.session.has_events();
            let me = self.inner.loop_threads.is_current();
            let background = st.runner.running() && !me;
            let looping = self.inner.loop_calls.load(Ordering::SeqCst) > 0 && !me;
            // One wake-up until the loop dispatches, however many events queue; none during
            // a publish burst, when the loop thread already runs on a 1 ms tick.
            let wake = has_events
                && (background || looping)
                && !st.flow.dispatch_scheduled
                && !st.flow.flush_scheduled;
            if wake {
                st.flow.dispatch_scheduled = true;
            }
            let here = has_events && !background && !looping && !in_dispatch();
            (st.session.take_logs(), here, wake)
        };
        self.emit_logs(logs);
        if wake {
            self.inner.wake();
        } else if here {
            self.dispatch();
        }
    }

    /// Runs every queued callback, in order, with no internal lock held, and never on two
    /// threads at once: one thread holds the dispatch token; another that finds it taken
    /// leaves its events to that thread, which looks once more after giving the token back.
    /// Messages of a connection the user called `disconnect()` on are not delivered and not
    /// acknowledged (the broker keeps QoS 1/2 ones; a released QoS 2 message goes back to the
    /// session, which delivers it when a resumed session re-sends its PUBREL); the others are
    /// acknowledged after their callback (`Session::delivered`).
    pub(super) fn dispatch(&self) {
        if in_dispatch() {
            return;
        }
        loop {
            if self.inner.dispatching.swap(true, Ordering::AcqRel) {
                return;
            }
            let token = DispatchToken(&self.inner);
            IN_DISPATCH.with(|d| d.set(d.get() + 1));
            let guard = self.inner.loop_threads.enter();
            self.run_queued();
            drop(guard);
            IN_DISPATCH.with(|d| d.set(d.get() - 1));
            drop(token);
            // Events queued after the last look, while the token was still held, are ours.
            if !self.inner.lock().session.has_events() {
                return;
            }
        }
    }

    fn run_queued(&self) {
        // Ids of the publishes whose `on_publish` ran in the last batch, and their session:
        // freed at the next lock (a new publish never shares the mid of a pending report).
        let mut reported: Vec<(u16, u32)> = Vec::new();
        let mut instance = 0;
        loop {
            let (events, logs, manual, chan) = {
                let mut st = self.inner.lock();
                if !reported.is_empty() {
                    if st.session.instance() == instance {
                        st.session.release_reported(&reported);
                        if st.flow.space_waiters > 0 {
                            self.inner.cond.notify_all();
                        }
                    }
                    reported.clear();
                }
                instance = st.session.instance();
                st.flow.dispatch_scheduled = false;
                (
                    st.session.take_events(),
                    st.session.take_logs(),
                    st.opts.manual_ack,
                    {
                        if st.channel.as_ref().is_some_and(|c| c.is_abandoned()) {
                            st.channel = None;
                        }
                        st.channel.clone()
                    },
                )
            };
            self.emit_logs(logs);
            if events.is_empty() {
                break;
            }
            let mut delivered = Vec::new();
            let mut undelivered = Vec::new();
            for (conn, ev) in events {
                // Read per event: a callback of this batch may just have called disconnect().
                let discard = self.inner.discard_conn.load(Ordering::Relaxed);
                match ev {
                    Event::Message { msg, ack } if conn == discard => {
                        if let Some((mid, QoS::ExactlyOnce)) = ack {
                            undelivered.push((mid, msg));
                        }
                    }
                    Event::Message { msg, ack } => {
                        if self.dispatch_message(&msg) {
                            if let Some(ch) = &chan {
                                ch.push(*msg);
                            }
                        }
                        if let Some((mid, qos)) = ack {
                            delivered.push((conn, mid, qos));
                        }
                    }
                    Event::Socket(kind, fd) => {
                        self.dispatch_one(Event::Socket(kind, fd));
                        let mut st = self.inner.lock();
                        // A closed connection's stream, kept for these callbacks: close it now.
                        st.retired
                            .retain(|(id, last, _)| !(*id == conn && *last == kind));
                    }
                    Event::Auth { rc, props } => self.dispatch_auth(conn, rc, &props),
                    other => {
                        match &other {
                            Event::Published { mid, .. } => reported.push((*mid, 1)),
                            Event::PublishedRun { first, count } => reported.push((*first, *count)),
                            _ => {}
                        }
                        self.dispatch_one(other)
                    }
                }
            }
            if !delivered.is_empty() || !undelivered.is_empty() {
                let mut st = self.inner.lock();
                for (conn, mid, qos) in delivered {
                    st.session.delivered(conn, mid, qos, manual);
                }
                for (mid, msg) in undelivered {
                    st.session.undelivered_qos2(mid, msg);
                }
                self.inner.flush_or_close(&mut st);
            }
        }
    }

    /// Runs the callback of one event (messages: [`Client::dispatch_message`]).
    fn dispatch_one(&self, ev: Event) {
        let inner = &self.inner;
        let cbs = || inner.callbacks();
        match ev {
            Event::Connected { flags, rc, props } => {
                let slot = cbs().on_connect.clone();
                call_slot(inner, self, "on_connect", &slot, |f| {
                    f(self, flags, rc, &props)
                });
            }
            Event::Message { msg, .. } => {
                self.dispatch_message(&msg);
            }
            Event::Published { mid, rc, props } => {
                let slot = cbs().on_publish.clone();
                let p = props.as_deref().unwrap_or(&EMPTY_PROPERTIES);
                call_slot(inner, self, "on_publish", &slot, |f| f(self, mid, rc, p));
            }
            Event::PublishedRun { first, count } => {
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
            Event::Subscribed { mid, rcs, props } => {
                let slot = cbs().on_subscribe.clone();
                call_slot(inner, self, "on_subscribe", &slot, |f| {
                    f(self, mid, &rcs, &props)
                });
            }
            Event::Unsubscribed { mid, rcs, props } => {
                let slot = cbs().on_unsubscribe.clone();
                call_slot(inner, self, "on_unsubscribe", &slot, |f| {
                    f(self, mid, &rcs, &props)
                });
            }
            Event::Disconnected { flags, rc, props } => {
                let slot = cbs().on_disconnect.clone();
                call_slot(inner, self, "on_disconnect", &slot, |f| {
                    f(self, flags, rc, &props)
                });
            }
            // Needs its connection's id: run_queued calls dispatch_auth.
            Event::Auth { .. } => {}
            Event::ConnectFailed(e) => {
                let slot = cbs().on_connect_fail.clone();
                call_slot(inner, self, "on_connect_fail", &slot, |f| f(self, &e));
            }
            Event::Socket(kind, fd) => {
                let c = cbs();
                let (slot, name) = match kind {
                    SocketEvent::Open => (c.on_socket_open.clone(), "on_socket_open"),
                    SocketEvent::Close => (c.on_socket_close.clone(), "on_socket_close"),
                    SocketEvent::RegisterWrite => (
                        c.on_socket_register_write.clone(),
                        "on_socket_register_write",
                    ),
                    SocketEvent::UnregisterWrite => (
                        c.on_socket_unregister_write.clone(),
                        "on_socket_unregister_write",
                    ),
                };
                drop(c);
                call_slot(inner, self, name, &slot, |f| f(self, fd));
            }
        }
    }

    /// Runs `on_auth` for an AUTH of connection `conn`, unlocked, then sends its answer if
    /// that connection is still open and the user did not disconnect it.
    fn dispatch_auth(&self, conn: u64, rc: ReasonCode, props: &Properties) {
        let inner = &self.inner;
        let slot = inner.callbacks().on_auth.clone();
        if slot.is_none() {
            self.log(
                LogLevel::Warning,
                &format!("Received AUTH ({rc}) but no on_auth callback is set: nothing answered"),
            );
            return;
        }
        let mut reply = AuthReply::Done;
        call_slot(inner, self, "on_auth", &slot, |f| {
            reply = f(self, rc, props)
        });
        if conn == inner.discard_conn.load(Ordering::Relaxed) {
            return;
        }
        match reply {
            AuthReply::Done => {}
            AuthReply::Continue(data) => {
                let mut st = inner.lock();
                if !st.link.is_open() {
                    return;
                }
                match st.session.auth_continue(conn, data) {
                    Ok(_) => {}
                    Err(e) => st.session.push_log(LogLevel::Warning, || {
                        format!("on_auth answer not sent: {e}")
                    }),
                }
                inner.flush_or_close(&mut st);
                drop(st);
                self.after_op();
            }
            AuthReply::Abort(reason) => {
                let current = {
                    let st = inner.lock();
                    st.link.is_open() && st.session.is_current(conn)
                };
                if current {
                    self.log(
                        LogLevel::Notice,
                        &format!("on_auth aborts the authentication: DISCONNECT ({reason})"),
                    );
                    let _ = self.disconnect_with(reason, Properties::default());
                }
            }
        }
    }

    /// Every matching `message_callback_add` filter's callback, or `on_message` if none.
    /// `false` for a response to a `request()` (handed to its waiter, nobody else's).
    fn dispatch_message(&self, msg: &Message) -> bool {
        if self.take_response(msg) {
            return false;
        }
        let (matched, on_message) = {
            let c = self.inner.callbacks();
            let matched: Vec<_> = c
                .topic
                .iter()
                .filter(|(s, _)| topic_matches_sub(shared_filter(s), msg.topic()))
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
        true
    }
}
