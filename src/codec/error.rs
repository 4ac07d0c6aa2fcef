//! Why a received packet was refused.

use std::fmt;

use crate::types::ReasonCode;

/// Why a received packet was refused. `reason` is the MQTT 5 reason code to put in the
/// DISCONNECT the client sends: `MALFORMED_PACKET` (0x81), `PROTOCOL_ERROR` (0x82) or
/// `PACKET_TOO_LARGE` (0x95).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// MQTT 5 reason code describing the failure.
    pub reason: ReasonCode,
    /// What was wrong, for logs.
    pub message: String,
}

impl DecodeError {
    /// A Malformed Packet (0x81) error.
    pub fn malformed(message: impl Into<String>) -> Self {
        DecodeError {
            reason: ReasonCode::MALFORMED_PACKET,
            message: message.into(),
        }
    }

    /// A Protocol Error (0x82) error.
    pub fn protocol(message: impl Into<String>) -> Self {
        DecodeError {
            reason: ReasonCode::PROTOCOL_ERROR,
            message: message.into(),
        }
    }

    /// A Packet Too Large (0x95) error.
    pub fn too_large(message: impl Into<String>) -> Self {
        DecodeError {
            reason: ReasonCode::PACKET_TOO_LARGE,
            message: message.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (reason 0x{:02X})", self.message, self.reason.0)
    }
}

impl std::error::Error for DecodeError {}

impl From<DecodeError> for crate::Error {
    fn from(e: DecodeError) -> Self {
        crate::Error::Protocol(e.message)
    }
}
