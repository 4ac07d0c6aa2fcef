//! What the session holds in memory, for the `session` fuzz target (feature `fuzzing`): the
//! target checks that these stay bounded by what the broker sent, whatever it sent.

use super::inbound::InQos2;
use super::Session;

/// The sizes of the session's buffers and tables.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Footprint {
    /// Unwritten bytes of the output buffer.
    pub pending_out: usize,
    /// Capacity of the output buffer.
    pub out_capacity: usize,
    /// Queued events.
    pub events: usize,
    /// Incoming QoS 2 messages held between PUBLISH and PUBCOMP, and their topic and payload
    /// bytes.
    pub inbound_qos2: usize,
    pub inbound_qos2_bytes: usize,
    /// Incoming QoS 1 messages whose PUBACK is owed.
    pub inbound_qos1: usize,
    /// Incoming topic aliases, their topic bytes, and the most the client allowed.
    pub aliases: usize,
    pub alias_bytes: usize,
    pub alias_max: usize,
    /// Stored outgoing QoS 1/2 messages and their encoded bytes.
    pub outgoing: usize,
    pub outgoing_bytes: usize,
    /// Pending SUBSCRIBEs and UNSUBSCRIBEs.
    pub pending_acks: usize,
    /// Queued log lines.
    pub logs: usize,
}

impl Session {
    /// The current [`Footprint`].
    pub(crate) fn footprint(&self) -> Footprint {
        let held = |m: &InQos2| match m {
            InQos2::Received(msg) => msg.topic.len() + msg.payload.len(),
            _ => 0,
        };
        Footprint {
            pending_out: self.pending_bytes(),
            out_capacity: self.out.capacity(),
            events: self.events.len(),
            inbound_qos2: self.inbound_qos2.len(),
            inbound_qos2_bytes: self.inbound_qos2.values().map(held).sum(),
            inbound_qos1: self.inbound_qos1.len(),
            aliases: self.in_aliases.len(),
            alias_bytes: self.in_aliases.values().map(String::len).sum(),
            alias_max: usize::from(self.client_alias_max),
            outgoing: self.outgoing.len(),
            outgoing_bytes: self.outgoing.iter().map(|m| m.bytes.len()).sum(),
            pending_acks: self.pending_subs.len() + self.pending_unsubs.len(),
            logs: self.logs.len(),
        }
    }
}
