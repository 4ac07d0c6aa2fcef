//! The session's timers: the CONNACK timeout, PINGREQ after a keepalive of silence, the
//! missing PINGRESP, and a connection whose output made no progress for a keepalive.

use std::time::Instant;

use super::{Close, Phase, Session};
use crate::codec::Packet;
use crate::types::LogLevel;

impl Session {
    /// The next time `handle_timeout` must run.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Offline => None,
            Phase::AwaitConnAck => self.connack_deadline,
            Phase::Connected => {
                if self.keepalive.is_zero() {
                    None
                } else {
                    let ping = match self.ping_sent {
                        Some(p) => p + self.keepalive,
                        None => self.last_out.min(self.last_in) + self.keepalive,
                    };
                    Some(match self.stall {
                        Some((_, since)) => ping.min(since + self.keepalive),
                        None => ping,
                    })
                }
            }
        }
    }

    /// Runs timers: CONNACK timeout, PINGREQ after `keepalive` of silence, and the missing
    /// PINGRESP.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> std::result::Result<(), Close> {
        match self.phase {
            Phase::Offline => Ok(()),
            Phase::AwaitConnAck => match self.connack_deadline {
                Some(d) if now >= d => Err(Close::ConnackTimeout),
                _ => Ok(()),
            },
            Phase::Connected => {
                if self.keepalive.is_zero() {
                    return Ok(());
                }
                // A broker that reads nothing (while it may go on sending) cannot make the
                // client hold its output for ever: a keepalive without progress ends it.
                if self.pending_bytes() == 0 {
                    self.stall = None;
                } else {
                    match self.stall {
                        Some((total, since)) if total == self.written_total => {
                            if now >= since + self.keepalive {
                                return Err(Close::Stalled);
                            }
                        }
                        _ => self.stall = Some((self.written_total, now)),
                    }
                }
                if let Some(p) = self.ping_sent {
                    if now >= p + self.keepalive {
                        return Err(Close::Keepalive);
                    }
                    return Ok(());
                }
                if now >= self.last_out + self.keepalive || now >= self.last_in + self.keepalive {
                    self.log(LogLevel::Debug, || "Sending PINGREQ".to_string());
                    self.send_control(Packet::PingReq);
                    self.ping_sent = Some(now);
                }
                Ok(())
            }
        }
    }
}
