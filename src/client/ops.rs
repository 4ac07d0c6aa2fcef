//! The operations a user thread (or a callback) calls: publish with its burst and
//! backpressure policy, subscribe, unsubscribe, ack and auth. Each queues a packet in the
//! session and ends with the same tail ([`Client::finish_op`]).
//!
//! Who writes: a publish writes at once from the calling thread, unless it is part of a burst
//! (publishes closer together than [`BURST_GAP`]) while a loop thread runs: then it only
//! appends, writing itself once [`BATCH_BYTES`] are pending, and the loop thread writes the
//! tail when the burst ends (one syscall for many messages). When more than
//! `max_outgoing_bytes` wait for the socket and another thread drains it, `publish` waits
//! for room (backpressure).

use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use super::dispatch::in_dispatch;
use super::state::State;
use super::Client;
use crate::message::MessageInfo;
use crate::topic::validate_topic_filter;
use crate::types::{QoS, ReasonCode, SubscribeOptions};
use crate::{Error, Properties, Result};

/// Publishes closer together than this count as a burst.
const BURST_GAP: Duration = Duration::from_micros(20);
/// During a burst the publishing thread still writes once this much is pending.
const BATCH_BYTES: usize = 64 * 1024;

/// How often a publisher held by backpressure tries to write itself.
const WAIT_RETRY: Duration = Duration::from_millis(10);

/// How long the loop waits during a burst before it writes the tail itself.
pub(super) const BURST_TICK: Duration = Duration::from_millis(1);

/// True while publishes arrive closer together than the burst gap.
pub(super) fn in_burst(st: &State, now: Instant) -> bool {
    now.saturating_duration_since(st.flow.last_publish) < BURST_GAP
}

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
        // The arguments first: a wrong topic is reported as such, also while offline.
        if !topic.is_empty() {
            crate::topic::validate_topic_name(topic)?;
        }
        let mut st = self.inner.lock();
        if self.must_wait(&st) {
            st = self.wait_for_room(st);
            if !st.link.is_open() && qos == QoS::AtMostOnce {
                return Err(Error::ConnectionLost);
            }
        }
        if qos == QoS::AtMostOnce && st.link.conn().is_some_and(|c| c.closing) {
            // It would go out behind the DISCONNECT of disconnect(), and be dropped.
            return Err(Error::NoConnection);
        }
        let info = st.session.publish(topic, payload, qos, retain, props)?;
        // Write at once, from this thread, unless this publish is part of a burst and a loop
        // thread can write the accumulated batch in one go (one syscall for many messages).
        let now = crate::time::now();
        let burst = in_burst(&st, now);
        st.flow.last_publish = now;
        let loop_writes = st.runner.running() && !in_dispatch() && burst;
        if st.session.pending_bytes() > 0 {
            if !loop_writes || (st.session.pending_bytes() >= BATCH_BYTES && !st.flow.write_blocked)
            {
                self.inner.flush_or_close(&mut st);
                if st.session.persisting() {
                    // The write may have waited for the disk (`SyncPolicy::BeforeSend`): the
                    // gap to the next publish counts from here, or a stream whose every
                    // publish syncs would never look like a burst and never share a sync.
                    st.flow.last_publish = crate::time::now();
                }
            } else if !st.flow.flush_scheduled {
                // Once per burst: the loop thread writes the tail when the burst ends.
                st.flow.flush_scheduled = true;
                self.inner.wake();
            }
        }
        st.update_write_interest();
        if st.session.has_events() || st.session.has_logs() {
            drop(st);
            self.after_op();
        }
        Ok(MessageInfo {
            shared: info,
            loop_thread: Arc::downgrade(&self.inner.loop_threads),
        })
    }

    /// A publish must wait: more than `max_outgoing_bytes` wait for the socket, or every
    /// packet id is taken, while a loop thread drains the connection (and this is not that
    /// thread, nor a callback). Without a thread that drains, publish never waits: it writes
    /// what the socket takes and queues the rest, or fails with `QueueSize`.
    fn must_wait(&self, st: &State) -> bool {
        let full = st.session.pending_bytes() >= st.opts.max_outgoing_bytes;
        let no_id = st.session.ids_exhausted();
        let draining = st.runner.running()
            && st.runner.stop().is_none()
            && st.link.conn().is_some_and(|c| !c.closing);
        (full || no_id) && draining && !self.inner.loop_threads.is_current() && !in_dispatch()
    }

    /// Waits until `must_wait` no longer holds: room and an id freed, or nothing drains any
    /// more (`loop_stop`, `disconnect`, a lost connection, the client dropped). Meanwhile it
    /// writes what the socket takes itself, so it never depends on the loop thread alone
    /// (which may be inside a callback waiting for this very publisher).
    fn wait_for_room<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        st.flow.space_waiters += 1;
        while self.must_wait(&st) {
            if st.session.pending_bytes() >= st.opts.max_outgoing_bytes {
                self.inner.flush_or_close(&mut st);
                if !self.must_wait(&st) {
                    break;
                }
            }
            // Woken when output drains, an id frees or the connection ends; the timeout
            // retries the write for a socket that became writable while nobody watched it.
            st = crate::sim::wait_timeout(&self.inner.state, &self.inner.cond, st, WAIT_RETRY);
        }
        st.flow.space_waiters -= 1;
        st
    }

    /// The tail every operation shares: write what it queued (closing the connection if the
    /// socket failed), release the lock, then report its events and log lines.
    pub(super) fn finish_op(&self, mut st: MutexGuard<'_, State>) {
        self.inner.flush_or_close(&mut st);
        drop(st);
        self.after_op();
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
        let props = if st.opts.protocol.is_v5() {
            properties.unwrap_or_default()
        } else {
            Properties::default()
        };
        if !st.link.is_open() {
            return Err(Error::NoConnection);
        }
        let mid = st.session.subscribe(filters, props)?;
        self.finish_op(st);
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
        let props = if st.opts.protocol.is_v5() {
            properties
        } else {
            Properties::default()
        };
        if !st.link.is_open() {
            return Err(Error::NoConnection);
        }
        let mid = st
            .session
            .unsubscribe(topics.iter().map(|t| t.to_string()).collect(), props)?;
        self.finish_op(st);
        Ok(mid)
    }

    /// With manual acks: acknowledges an incoming message (PUBACK for QoS 1, PUBCOMP for
    /// QoS 2). It acts only with manual acks on (`Err(InvalidState)` otherwise: the client
    /// acknowledges by itself) and for a message that waits for its acknowledgement — a QoS 1
    /// message of the current connection, a QoS 2 message whose PUBREL came
    /// (`Err(InvalidArgument)` otherwise); a refused call sends nothing. Offline, a QoS 1 ack
    /// is refused with `Err(NoConnection)` (a resumed session re-delivers the message), while
    /// a QoS 2 ack is accepted and kept: its PUBCOMP answers the PUBREL the broker re-sends
    /// when the session resumes.
    pub fn ack(&self, mid: u16, qos: QoS) -> Result<()> {
        let mut st = self.inner.lock();
        if !st.opts.manual_ack {
            return Err(Error::state(
                "ack() without manual acknowledgements: the client acknowledges by itself \
                 (turn them on with manual_ack_set(true) or ClientBuilder::manual_ack(true))",
            ));
        }
        // The session refuses what needs a connection (a QoS 2 ack is kept for the broker's
        // re-sent PUBREL).
        st.session.ack_manual(mid, qos)?;
        self.finish_op(st);
        Ok(())
    }

    /// Sends an MQTT 5 AUTH packet of enhanced authentication (MQTT 5 §4.12):
    /// `CONTINUE_AUTHENTICATION` (0x18) to answer the broker inside an exchange (what
    /// [`AuthReply::Continue`](crate::AuthReply::Continue) from `on_auth` does), or
    /// `RE_AUTHENTICATE` (0x19) to start a re-authentication (see
    /// [`Client::reauthenticate`]). The connection's Authentication Method is added when
    /// `properties` has none.
    ///
    /// Errors: `NoConnection` without a connection; `NotSupported` before MQTT 5;
    /// `InvalidState` on a connection made without an Authentication Method, for 0x18
    /// outside an exchange, or for 0x19 before CONNACK or during another re-authentication;
    /// `InvalidArgument` for another reason code or another method.
    pub fn auth(&self, reason: ReasonCode, properties: Properties) -> Result<()> {
        let mut st = self.inner.lock();
        if st.link.conn().is_none_or(|c| c.closing) {
            return Err(Error::NoConnection);
        }
        st.session.auth(reason, properties)?;
        self.finish_op(st);
        Ok(())
    }

    /// Starts an MQTT 5 re-authentication: sends AUTH 0x19 (Re-authenticate) with the
    /// connection's Authentication Method and `data` as Authentication Data. The broker's
    /// answers reach [`Client::on_auth`]: AUTH 0x18 challenges, then AUTH 0x00 when it
    /// succeeded; a refusal ends the connection and reaches `on_disconnect` with the
    /// broker's reason code (mosquitto 2.0.11 refuses with a CONNACK 0x87, reported the
    /// same way).
    ///
    /// Errors as [`Client::auth`]: the connection must be established (CONNACK received)
    /// and made with an Authentication Method, and no other re-authentication may be in
    /// progress.
    pub fn reauthenticate(&self, data: impl AsRef<[u8]>) -> Result<()> {
        self.auth(
            ReasonCode::RE_AUTHENTICATE,
            Properties {
                authentication_data: Some(data.as_ref().to_vec()),
                ..Properties::default()
            },
        )
    }
}
