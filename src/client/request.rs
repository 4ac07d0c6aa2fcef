//! MQTT 5 request/response (§4.10): `Client::request` publishes with a Response Topic and a
//! Correlation Data and waits for the matching response; `Client::respond` answers a request.
//!
//! Each client has one response topic (`mqtt-sync/response/<random>`), subscribed on the
//! first request of each connection — before the request is published, and MQTT makes the
//! broker handle a connection's packets in order, so the subscription exists before any
//! responder sees the request. Responses are matched by Correlation Data (a counter unique
//! to the client) and handed to the waiting thread; they never reach the message callbacks.
//! Many threads may wait at once, each for its own response.

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::time::Duration;

use crate::message::{Message, MessageInfo};
use crate::types::QoS;
use crate::{Client, Error, Properties, Result};

/// Requests waiting for their response.
#[derive(Default)]
pub(super) struct Requests {
    /// The response topic (made on first use).
    topic: Option<String>,
    /// The connection the response topic was last subscribed on.
    subscribed_on: Option<u64>,
    next: u64,
    waiting: HashMap<Vec<u8>, SyncSender<Message>>,
}

fn response_topic() -> String {
    format!("mqtt-sync/response/{:016x}", super::config::random_u64())
}

impl Client {
    /// Sends a request and waits for its response (MQTT 5 request/response): publishes
    /// `payload` to `topic` with a Response Topic and a Correlation Data of its own, and
    /// returns the first message published to that Response Topic with that Correlation
    /// Data — by a responder that called [`Client::respond`], or any that follows §4.10.
    ///
    /// Safe to call from many threads at once. Needs MQTT 5, a connection, and a loop run by
    /// another thread (`loop_start` or `loop_forever`); not from inside a callback
    /// (`Err(InvalidState)`: the response would be dispatched by the very thread that waits).
    /// `Err(Timeout)` when no response came within `timeout`.
    pub fn request(
        &self,
        topic: &str,
        payload: impl AsRef<[u8]>,
        qos: QoS,
        timeout: Duration,
    ) -> Result<Message> {
        if !self.protocol().is_v5() {
            return Err(Error::NotSupported(
                "request/response needs MQTT 5 (Response Topic and Correlation Data)".into(),
            ));
        }
        if super::dispatch::in_dispatch() {
            return Err(Error::state(
                "request() waits for a message that only this callback's thread could deliver; \
                 call it from another thread",
            ));
        }
        crate::topic::validate_topic_name(topic)?;
        let conn = self
            .inner
            .lock()
            .link
            .conn_id()
            .ok_or(Error::NoConnection)?;
        let (response_topic, subscribe) = {
            let mut r = self.inner.requests();
            let t = r.topic.get_or_insert_with(response_topic).clone();
            let sub = r.subscribed_on != Some(conn);
            r.subscribed_on = Some(conn);
            (t, sub)
        };
        if subscribe {
            if let Err(e) = self.subscribe(&response_topic, QoS::AtLeastOnce) {
                self.inner.requests().subscribed_on = None;
                return Err(e);
            }
        }
        let (tx, rx) = sync_channel(1);
        let correlation = {
            let mut r = self.inner.requests();
            r.next += 1;
            let c = r.next.to_be_bytes().to_vec();
            r.waiting.insert(c.clone(), tx);
            c
        };
        let props = Properties {
            response_topic: Some(response_topic),
            correlation_data: Some(correlation.clone()),
            ..Default::default()
        };
        if let Err(e) = self.publish_with_properties(topic, payload, qos, false, props) {
            self.inner.requests().waiting.remove(&correlation);
            return Err(e);
        }
        let got = rx.recv_timeout(timeout);
        self.inner.requests().waiting.remove(&correlation);
        got.map_err(|_| Error::Timeout)
    }

    /// Answers a request received in `on_message` (or from a channel): publishes `payload` to
    /// the request's Response Topic with its Correlation Data. `Err(InvalidArgument)` when the
    /// message carries no Response Topic.
    pub fn respond(
        &self,
        request: &Message,
        payload: impl AsRef<[u8]>,
        qos: QoS,
    ) -> Result<MessageInfo> {
        let p = request.properties();
        let Some(topic) = p.response_topic.as_deref() else {
            return Err(Error::invalid(format!(
                "the message on {:?} has no Response Topic: it is not a request",
                request.topic()
            )));
        };
        let props = Properties {
            correlation_data: p.correlation_data.clone(),
            ..Default::default()
        };
        self.publish_with_properties(topic, payload, qos, false, props)
    }

    /// A response for a waiting `request`: handed to it (and not to the callbacks).
    pub(super) fn take_response(&self, msg: &Message) -> bool {
        let mut r = self.inner.requests();
        if r.topic.as_deref() != Some(msg.topic()) {
            return false;
        }
        if let Some(c) = &msg.properties().correlation_data {
            if let Some(tx) = r.waiting.remove(c) {
                let _ = tx.try_send(msg.clone());
            }
        }
        // A late or unknown response on our response topic is nobody's message.
        true
    }
}
