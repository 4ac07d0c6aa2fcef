//! MQTT 5 enhanced authentication (§4.12): the AUTH packets of the broker, checked against
//! the exchange in progress and handed to the application (`Event::Auth`), and the AUTH
//! packets of the client (its answers, and AUTH 0x19 to re-authenticate).
//!
//! An exchange is open before CONNACK on a connection whose CONNECT carried an
//! Authentication Method, and after the client sent AUTH 0x19 until the broker's AUTH 0x00
//! (or the end of the connection). Every AUTH outside an open exchange, or with another
//! method, is a protocol error: the client sends DISCONNECT 0x82 and closes.

use super::{Close, Event, Phase, Session};
use crate::codec::{self, Packet};
use crate::types::{LogLevel, ReasonCode};
use crate::{Error, Properties, Result};

impl Session {
    /// The broker's AUTH.
    pub(super) fn handle_auth(&mut self, a: codec::Auth) -> std::result::Result<(), Close> {
        let rc = a.reason;
        self.log(LogLevel::Debug, || format!("Received AUTH ({})", rc.0));
        if self.phase == Phase::Offline {
            return Ok(());
        }
        let Some(method) = self.auth_method.as_deref() else {
            return Err(self.auth_violation(format!(
                "the broker sent AUTH ({rc}) but the client set no Authentication Method in \
                 CONNECT (enhanced authentication needs ConnectOptions::properties with \
                 authentication_method)"
            )));
        };
        match a.properties.authentication_method.as_deref() {
            Some(m) if m == method => {}
            Some(m) => {
                let why = format!(
                    "the broker's AUTH names Authentication Method {m:?}, but this connection \
                     uses {method:?}"
                );
                return Err(self.auth_violation(why));
            }
            None => {
                return Err(
                    self.auth_violation("the broker's AUTH has no Authentication Method".into())
                )
            }
        }
        match (self.phase, rc) {
            (Phase::AwaitConnAck, ReasonCode::CONTINUE_AUTHENTICATION) => {}
            (Phase::AwaitConnAck, _) => {
                return Err(self.auth_violation(format!(
                    "AUTH ({rc}) before CONNACK: only Continue authentication (0x18) may come"
                )));
            }
            (_, _) if !self.reauth => {
                return Err(self.auth_violation(format!(
                    "AUTH ({rc}) after CONNACK although the client requested no \
                     re-authentication"
                )));
            }
            (_, ReasonCode::CONTINUE_AUTHENTICATION) => {}
            (_, ReasonCode::SUCCESS) => {
                self.reauth = false;
                self.log(LogLevel::Info, || "Re-authentication succeeded".into());
            }
            (_, _) => {
                return Err(self.auth_violation(format!(
                    "AUTH ({rc}) from the broker: a broker never sends Re-authenticate"
                )));
            }
        }
        self.push_event(Event::Auth {
            rc,
            props: Box::new(a.properties),
        });
        Ok(())
    }

    /// A protocol error of the enhanced authentication: queues DISCONNECT 0x82 (also before
    /// CONNACK, so the broker learns why) and returns the close.
    fn auth_violation(&mut self, msg: String) -> Close {
        self.log(LogLevel::Error, || format!("Protocol error: {msg}"));
        let _ = self.disconnect(ReasonCode::PROTOCOL_ERROR, Properties::default());
        Close::Protocol(ReasonCode::PROTOCOL_ERROR, msg)
    }

    /// A CONNACK on an established connection. mosquitto 2.0.11 refuses a re-authentication
    /// with CONNACK 0x87 instead of DISCONNECT: taken as the refusal it means. Anything else
    /// is a protocol error.
    pub(super) fn connack_while_connected(
        &mut self,
        c: codec::ConnAck,
    ) -> std::result::Result<(), Close> {
        let rc = ReasonCode(c.code);
        if self.reauth && rc.is_failure() {
            self.log(LogLevel::Notice, || {
                format!("The broker refused the re-authentication with CONNACK ({rc})")
            });
            return Err(Close::Refused(rc));
        }
        Err(self.protocol_violation("unexpected CONNACK from the broker".into()))
    }

    /// Queues an AUTH of the client: 0x18 (Continue authentication) inside an open exchange,
    /// or 0x19 (Re-authenticate) on a connected connection that used enhanced
    /// authentication. The connection's Authentication Method is added when `props` has
    /// none.
    pub(crate) fn auth(&mut self, reason: ReasonCode, mut props: Properties) -> Result<()> {
        if !self.cfg.protocol.is_v5() {
            return Err(Error::NotSupported(
                "AUTH exists only in MQTT 5: build the client with Protocol::V5".into(),
            ));
        }
        if self.phase == Phase::Offline {
            return Err(Error::NoConnection);
        }
        let Some(method) = self.auth_method.clone() else {
            return Err(Error::InvalidState(
                "AUTH needs a connection made with an Authentication Method (set \
                 authentication_method in ConnectOptions::properties)"
                    .into(),
            ));
        };
        match &props.authentication_method {
            Some(m) if *m != method => {
                return Err(Error::InvalidArgument(format!(
                    "Authentication Method {m:?} differs from the connection's {method:?}"
                )));
            }
            Some(_) => {}
            None => props.authentication_method = Some(method),
        }
        match reason {
            ReasonCode::RE_AUTHENTICATE => {
                if self.phase != Phase::Connected {
                    return Err(Error::InvalidState(
                        "re-authentication needs an established connection (after CONNACK)".into(),
                    ));
                }
                if self.reauth {
                    return Err(Error::InvalidState(
                        "a re-authentication is already in progress".into(),
                    ));
                }
            }
            ReasonCode::CONTINUE_AUTHENTICATION => {
                if self.phase != Phase::AwaitConnAck && !self.reauth {
                    return Err(Error::InvalidState(
                        "no authentication exchange is in progress to continue".into(),
                    ));
                }
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "a client sends AUTH only with Continue authentication (0x18) or \
                     Re-authenticate (0x19), not {other}"
                )));
            }
        }
        self.log(LogLevel::Debug, || format!("Sending AUTH ({})", reason.0));
        self.append_packet(&Packet::Auth(codec::Auth {
            reason,
            properties: props,
        }))?;
        if reason == ReasonCode::RE_AUTHENTICATE {
            self.reauth = true;
        }
        Ok(())
    }

    /// The application's answer (`on_auth`) to an AUTH of connection `conn_id`: AUTH 0x18
    /// with `data`. `Ok(false)` when that connection is gone (nothing sent).
    pub(crate) fn auth_continue(&mut self, conn_id: u64, data: Vec<u8>) -> Result<bool> {
        if conn_id != self.conn_id || self.phase == Phase::Offline {
            return Ok(false);
        }
        self.auth(
            ReasonCode::CONTINUE_AUTHENTICATION,
            Properties {
                authentication_data: Some(data),
                ..Properties::default()
            },
        )?;
        Ok(true)
    }

    /// Connection `conn_id` is the current one and still open.
    pub(crate) fn is_current(&self, conn_id: u64) -> bool {
        conn_id == self.conn_id && self.phase != Phase::Offline
    }
}
