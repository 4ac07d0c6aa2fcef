//! `Message` (Paho's `MQTTMessage`) and `MessageInfo` (Paho's `MQTTMessageInfo`).

use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::completion::Completion;
use crate::loop_thread::LoopThreads;
use crate::types::QoS;
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

/// What `publish` returns (Paho's `MQTTMessageInfo`): the message id and a way to wait until
/// the message has been sent (QoS 0) or acknowledged (QoS 1 and 2).
#[derive(Clone, Debug)]
pub struct MessageInfo {
    pub(crate) shared: Completion,
    /// Used to refuse a wait on the network thread itself.
    pub(crate) loop_thread: Weak<LoopThreads>,
}

impl MessageInfo {
    /// The message id (also for QoS 0, where it is not sent on the wire).
    pub fn mid(&self) -> u16 {
        self.shared.mid()
    }

    /// True once the message was written (QoS 0) or acknowledged (QoS 1/2).
    pub fn is_published(&self) -> bool {
        matches!(self.shared.status(), Ok(true))
    }

    /// Paho's `rc`: `MQTT_ERR_SUCCESS` while pending or published, otherwise the error code.
    pub fn rc(&self) -> i32 {
        match self.shared.status() {
            Ok(_) => crate::MQTT_ERR_SUCCESS,
            Err(e) => e.code(),
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
        if self.shared.status()? {
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
        // A timeout too large for a deadline waits without one.
        self.shared
            .wait(timeout.and_then(|t| Instant::now().checked_add(t)))
    }
}
