//! A bounded receive channel beside the callbacks (`Client::message_channel`): the loop puts
//! every message that reaches `on_message` / `message_callback_add` into it as well, and a
//! thread pulls them with [`MessageReceiver::recv`], [`MessageReceiver::recv_timeout`] or an
//! iterator.
//!
//! Backpressure, never loss: while the channel holds `capacity` messages the loop stops
//! reading the socket (the broker's TCP window closes, then the broker queues or throttles);
//! taking a message wakes the loop. At most one read batch (what was already decoded) may
//! go past the capacity. A message is acknowledged (PUBACK, PUBCOMP) once it is in the
//! channel, as it is once its callback returned.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::Inner;
use crate::message::Message;

/// What the loop and the receiver share.
pub(super) struct Channel {
    state: Mutex<ChanState>,
    ready: Condvar,
    capacity: usize,
    /// To wake the loop when the channel stops being full.
    inner: Weak<Inner>,
}

struct ChanState {
    items: VecDeque<Message>,
    /// `disconnect()` was called, the client was dropped, or another channel replaced this
    /// one: the iteration ends once the items are taken.
    closed: bool,
    /// The receiver was dropped: the loop puts nothing more in.
    receiver_gone: bool,
}

impl Channel {
    pub(super) fn new(capacity: usize, inner: Weak<Inner>) -> Arc<Channel> {
        Arc::new(Channel {
            state: Mutex::new(ChanState {
                items: VecDeque::new(),
                closed: false,
                receiver_gone: false,
            }),
            ready: Condvar::new(),
            capacity,
            inner,
        })
    }

    fn lock(&self) -> MutexGuard<'_, ChanState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the loop should stop reading.
    pub(super) fn is_full(&self) -> bool {
        let s = self.lock();
        !s.receiver_gone && s.items.len() >= self.capacity
    }

    /// The receiver is gone: the channel can be removed.
    pub(super) fn is_abandoned(&self) -> bool {
        self.lock().receiver_gone
    }

    /// The loop hands over a delivered message.
    pub(super) fn push(&self, msg: Message) {
        let mut s = self.lock();
        if s.receiver_gone {
            return;
        }
        s.items.push_back(msg);
        drop(s);
        self.ready.notify_one();
    }

    /// No more messages will come (the iteration ends when the rest is taken).
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    fn take(&self, mut s: MutexGuard<'_, ChanState>) -> Option<Message> {
        let was_full = s.items.len() >= self.capacity;
        let m = s.items.pop_front();
        let now_below = s.items.len() < self.capacity;
        drop(s);
        if m.is_some() && was_full && now_below {
            if let Some(inner) = self.inner.upgrade() {
                inner.wake();
            }
        }
        m
    }
}

/// The receiving end of [`Client::message_channel`](crate::Client::message_channel): blocking
/// and timed receives, and an iterator that ends after `disconnect()` (or when the client is
/// dropped) once the messages already received are taken.
pub struct MessageReceiver {
    chan: Arc<Channel>,
}

impl MessageReceiver {
    pub(super) fn new(chan: Arc<Channel>) -> MessageReceiver {
        MessageReceiver { chan }
    }

    /// The next message; waits for one. `None` once the channel is closed (after
    /// `disconnect()`, drop of the client, or a newer `message_channel`) and empty.
    pub fn recv(&self) -> Option<Message> {
        let mut s = self.chan.lock();
        loop {
            if !s.items.is_empty() {
                return self.chan.take(s);
            }
            if s.closed {
                return None;
            }
            s = self.chan.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The next message, waiting at most `timeout`; `None` on timeout or when the channel is
    /// closed and empty (tell them apart with [`MessageReceiver::is_closed`]).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Message> {
        let deadline = crate::time::after(Instant::now(), timeout);
        let mut s = self.chan.lock();
        loop {
            if !s.items.is_empty() {
                return self.chan.take(s);
            }
            let now = Instant::now();
            if s.closed || now >= deadline {
                return None;
            }
            s = self
                .chan
                .ready
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// A message if one is waiting; never waits.
    pub fn try_recv(&self) -> Option<Message> {
        let s = self.chan.lock();
        if s.items.is_empty() {
            None
        } else {
            self.chan.take(s)
        }
    }

    /// Messages waiting in the channel.
    pub fn len(&self) -> usize {
        self.chan.lock().items.len()
    }

    /// No message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The channel will receive no more messages.
    pub fn is_closed(&self) -> bool {
        self.chan.lock().closed
    }

    /// A blocking iterator over the messages (see [`MessageReceiver::recv`]).
    pub fn iter(&self) -> Iter<'_> {
        Iter { rx: self }
    }
}

impl Drop for MessageReceiver {
    fn drop(&mut self) {
        let mut s = self.chan.lock();
        s.receiver_gone = true;
        s.items.clear();
        drop(s);
        // The loop may have stopped reading for this channel.
        if let Some(inner) = self.chan.inner.upgrade() {
            inner.wake();
        }
    }
}

impl std::fmt::Debug for MessageReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.chan.lock();
        f.debug_struct("MessageReceiver")
            .field("waiting", &s.items.len())
            .field("capacity", &self.chan.capacity)
            .field("closed", &s.closed)
            .finish()
    }
}

/// Blocking iterator of [`MessageReceiver::iter`].
#[derive(Debug)]
pub struct Iter<'a> {
    rx: &'a MessageReceiver,
}

impl Iterator for Iter<'_> {
    type Item = Message;
    fn next(&mut self) -> Option<Message> {
        self.rx.recv()
    }
}

impl<'a> IntoIterator for &'a MessageReceiver {
    type Item = Message;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl crate::Client {
    /// A bounded channel that receives every message that reaches the message callbacks
    /// (`on_message` or `message_callback_add`; set none to use the channel alone), for
    /// threads that would rather pull messages than be called. Works with every loop style;
    /// typically `loop_start()` on one side and [`MessageReceiver::recv`] or a `for` loop on
    /// the other.
    ///
    /// When `capacity` messages wait in it, the loop stops reading the socket until the
    /// receiver takes one (backpressure to the broker; messages are never dropped). The
    /// iteration ends once `disconnect()` was called (or the client dropped) and the waiting
    /// messages are taken; a lost connection that the loop re-establishes does not end it. A
    /// second call replaces (and closes) the first channel. `capacity` must be at least 1.
    ///
    /// ```no_run
    /// # use mqtt_sync::{Client, QoS};
    /// let client = Client::new("consumer");
    /// let messages = client.message_channel(1000)?;
    /// client.on_connect(|c, _, _, _| {
    ///     c.subscribe("sensors/#", QoS::AtLeastOnce).ok();
    /// });
    /// client.connect("localhost", 1883, 60)?;
    /// client.loop_start()?;
    /// for m in &messages {
    ///     println!("{}: {:?}", m.topic(), m.payload());
    /// }
    /// # Ok::<(), mqtt_sync::Error>(())
    /// ```
    pub fn message_channel(&self, capacity: usize) -> crate::Result<MessageReceiver> {
        if capacity == 0 {
            return Err(crate::Error::invalid(
                "message_channel: the capacity must be at least 1",
            ));
        }
        let chan = Channel::new(capacity, Arc::downgrade(&self.inner));
        let mut st = self.inner.lock();
        st.close_channel();
        st.channel = Some(chan.clone());
        Ok(MessageReceiver::new(chan))
    }
}
