//! Acknowledging incoming messages: which QoS 1 and QoS 2 messages still owe their PUBACK or
//! PUBCOMP, and when it is sent — after the message's callback, at the application's `ack()`
//! with manual acks, or when the broker re-sends a PUBREL.
//!
//! An incoming QoS 2 message stays in the session from its PUBLISH until its PUBCOMP is sent:
//! if the application never saw it (the user disconnected before it was dispatched), it goes
//! back to waiting for PUBREL, so a resumed session delivers it when the broker re-sends
//! PUBREL. Exactly once, also across `disconnect()`.

use super::{Close, Phase, Session};
use crate::codec::{Ack, Packet};
use crate::message::Message;
use crate::persistence::Key;
use crate::types::{LogLevel, QoS, ReasonCode};
use crate::{Error, Properties, Result};

/// Bytes of the QoS 2 messages the session may hold between their PUBREC and their PUBREL
/// (at least one message of the largest accepted size always fits). A broker that sends more
/// without releasing them is cut off (MQTT 5: DISCONNECT 0x93), so it cannot make the client
/// hold unbounded memory.
pub(super) const INBOUND_QOS2_BYTES: usize = 64 * 1024 * 1024;

/// The memory a stored message accounts for.
fn held(msg: &Message) -> usize {
    msg.payload.len() + msg.topic.len()
}

/// An incoming QoS 2 message between its PUBREC and its PUBCOMP.
#[derive(Debug)]
pub(super) enum InQos2 {
    /// PUBREC sent; waiting for PUBREL.
    Received(Box<Message>),
    /// PUBREL arrived; the message waits for its callback.
    Releasing,
    /// Delivered with manual acks on: PUBCOMP at `Client::ack`.
    AwaitingAck,
    /// Delivered while no connection was up: PUBCOMP when the broker re-sends PUBREL.
    Delivered,
}

impl Session {
    fn send_pubcomp(&mut self, mid: u16) {
        self.log(LogLevel::Debug, || format!("Sending PUBCOMP (Mid: {mid})"));
        self.send_control(Packet::PubComp(ack(mid)));
    }

    fn send_puback(&mut self, mid: u16) {
        self.log(LogLevel::Debug, || format!("Sending PUBACK (Mid: {mid})"));
        self.send_control(Packet::PubAck(ack(mid)));
    }

    /// Forgets every stored incoming QoS 2 message (the broker has no session).
    pub(super) fn forget_inbound_qos2(&mut self) {
        if self.persisting() {
            let mids: Vec<u16> = self.inbound_qos2.keys().copied().collect();
            for mid in mids {
                self.unstore(Key::Incoming(mid));
            }
        }
        self.inbound_qos2.clear();
        self.inbound_qos2_bytes = 0;
    }

    /// An incoming QoS 1/2 PUBLISH with a new packet id must fit our Receive Maximum (QoS 1
    /// and 2 messages not yet acknowledged) and the bytes bound of the QoS 2 store; past either
    /// the connection is closed (MQTT 5: DISCONNECT 0x93, Receive Maximum exceeded).
    pub(super) fn check_receive_quota(
        &mut self,
        mid: u16,
        qos: QoS,
        msg: &Message,
    ) -> std::result::Result<(), Close> {
        let new = match qos {
            QoS::AtMostOnce => return Ok(()),
            QoS::AtLeastOnce => !self.inbound_qos1.contains(&mid),
            QoS::ExactlyOnce => !self.inbound_qos2.contains_key(&mid),
        };
        if !new {
            return Ok(());
        }
        let unacked = self.inbound_qos1.len() + self.inbound_qos2.len();
        let why = if unacked >= usize::from(self.client_receive_max) {
            format!(
                "the broker sent more than our Receive Maximum ({}) of unacknowledged QoS 1/2 \
                 messages",
                self.client_receive_max
            )
        } else if qos == QoS::ExactlyOnce
            && self.inbound_qos2_bytes + held(msg)
                > INBOUND_QOS2_BYTES.max(self.cfg.max_incoming_packet)
        {
            format!(
                "the broker sent more than {} bytes of QoS 2 messages without releasing them",
                INBOUND_QOS2_BYTES.max(self.cfg.max_incoming_packet)
            )
        } else {
            return Ok(());
        };
        self.log(LogLevel::Error, || why.clone());
        if self.cfg.protocol.is_v5() {
            let _ = self.disconnect(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED, Properties::default());
        }
        Err(Close::Protocol(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED, why))
    }

    /// A QoS 2 PUBLISH arrived: stored, PUBREC sent. With a session store the message is
    /// written there first; if that fails no PUBREC goes out and the connection is closed
    /// (the broker sends the message again).
    ///
    /// A PUBLISH for an id already held replaces what is held. A re-sent PUBLISH carries the
    /// same message, so replacing an unreleased one changes nothing. Anything else is a new
    /// message of a new broker session: a sender never re-sends a PUBLISH once it has sent
    /// PUBREL (MQTT 3.1.1 and 5.0 §4.3.3), so the old state belongs to a session the broker
    /// no longer has — e.g. one replaced by a CONNECT whose CONNACK never reached us (the
    /// attempt timed out or was cut), which makes `session_present` of the next CONNACK
    /// speak of the new session. Keeping the old state would acknowledge the new message
    /// without delivering it.
    pub(super) fn received_qos2(
        &mut self,
        mid: u16,
        msg: Box<Message>,
    ) -> std::result::Result<(), Close> {
        if let Err(e) = self.store_in(mid, Some(&msg)) {
            // Logged with the close (`connection_closed`).
            return Err(Close::Store(e));
        }
        let bytes = held(&msg);
        match self.inbound_qos2.insert(mid, InQos2::Received(msg)) {
            None => {}
            Some(InQos2::Received(old)) => {
                self.inbound_qos2_bytes = self.inbound_qos2_bytes.saturating_sub(held(&old));
            }
            Some(_) => self.log(LogLevel::Warning, || {
                format!(
                    "Received PUBLISH (Mid: {mid}) for an id already released: a new message \
                     of a new broker session; the old state is dropped"
                )
            }),
        }
        self.inbound_qos2_bytes += bytes;
        self.log(LogLevel::Debug, || format!("Sending PUBREC (Mid: {mid})"));
        self.send_control(Packet::PubRec(ack(mid)));
        Ok(())
    }

    /// PUBREL arrived: the message goes to its callback (once), or, if it was delivered
    /// already, its PUBCOMP goes out now.
    pub(super) fn released_qos2(&mut self, mid: u16) -> Option<Box<Message>> {
        match self.inbound_qos2.get_mut(&mid) {
            Some(state @ InQos2::Received(_)) => {
                match std::mem::replace(state, InQos2::Releasing) {
                    InQos2::Received(msg) => {
                        self.inbound_qos2_bytes =
                            self.inbound_qos2_bytes.saturating_sub(held(&msg));
                        Some(msg)
                    }
                    _ => None,
                }
            }
            // The PUBCOMP follows the callback / the application's ack.
            Some(InQos2::Releasing | InQos2::AwaitingAck) => None,
            Some(InQos2::Delivered) => {
                self.inbound_qos2.remove(&mid);
                self.unstore(Key::Incoming(mid));
                self.send_pubcomp(mid);
                None
            }
            None => {
                self.send_pubcomp(mid);
                None
            }
        }
    }

    /// The callback of message `mid` (QoS `qos`, from connection `conn`) has run. Sends its
    /// PUBACK (on that same connection only) or PUBCOMP (the session's), unless manual acks
    /// are on.
    pub(crate) fn delivered(&mut self, conn: u64, mid: u16, qos: QoS, manual: bool) {
        let connected = self.phase == Phase::Connected;
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                if !manual && conn == self.conn_id && self.inbound_qos1.remove(&mid) && connected {
                    self.send_puback(mid);
                }
            }
            QoS::ExactlyOnce => {
                if !matches!(self.inbound_qos2.get(&mid), Some(InQos2::Releasing)) {
                    return;
                }
                if manual {
                    self.inbound_qos2.insert(mid, InQos2::AwaitingAck);
                } else {
                    self.qos2_done(mid, connected);
                }
            }
        }
    }

    /// Released QoS 2 message `mid` was delivered (and acknowledged by the application with
    /// manual acks): PUBCOMP now, or, offline, when the broker re-sends PUBREL.
    fn qos2_done(&mut self, mid: u16, connected: bool) {
        if connected {
            self.inbound_qos2.remove(&mid);
            self.unstore(Key::Incoming(mid));
            self.send_pubcomp(mid);
        } else {
            self.inbound_qos2.insert(mid, InQos2::Delivered);
            if let Err(e) = self.store_in(mid, None) {
                // The record still holds the message: after a restart it would be
                // delivered again at the broker's PUBREL.
                self.store_failed(&e);
            }
        }
    }

    /// Message `mid` was released by PUBREL but the application will not see it (the user
    /// called `disconnect()`): it waits for PUBREL again, so a resumed session delivers it.
    pub(crate) fn undelivered_qos2(&mut self, mid: u16, msg: Box<Message>) {
        if let Some(state @ InQos2::Releasing) = self.inbound_qos2.get_mut(&mid) {
            self.inbound_qos2_bytes += held(&msg);
            *state = InQos2::Received(msg);
        }
    }

    /// `Client::ack` with manual acks: PUBACK for a QoS 1 message of this connection, PUBCOMP
    /// for a released QoS 2 message of the session. Anything else is refused and sends
    /// nothing. While no connection is up, a QoS 1 ack is refused (the broker re-sends the
    /// message on a resumed session and it is delivered again); a QoS 2 ack is kept and its
    /// PUBCOMP answers the broker's re-sent PUBREL, so the message is not stuck.
    pub(crate) fn ack_manual(&mut self, mid: u16, qos: QoS) -> Result<()> {
        let connected = self.phase == Phase::Connected;
        let awaiting = matches!(
            self.inbound_qos2.get(&mid),
            Some(InQos2::Releasing | InQos2::AwaitingAck)
        );
        match qos {
            QoS::ExactlyOnce if awaiting => {
                self.qos2_done(mid, connected);
                Ok(())
            }
            _ if !connected => Err(Error::NoConnection),
            QoS::AtLeastOnce if self.inbound_qos1.remove(&mid) => {
                self.send_puback(mid);
                Ok(())
            }
            _ => Err(Error::invalid(format!(
                "ack({mid}, QoS {}): no incoming message with that id and QoS waits for its \
                 acknowledgement on this connection",
                qos as u8
            ))),
        }
    }
}

fn ack(mid: u16) -> Ack {
    Ack {
        pkid: mid,
        reason: ReasonCode::SUCCESS,
        properties: Properties::default(),
    }
}
