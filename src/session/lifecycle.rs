//! A connection's life in the session: its start (CONNECT queued), its end (why it ended,
//! the event and error that report it, what is forgotten) and abandoning everything.

use std::time::{Duration, Instant};

use super::ids::IdSet;
use super::{Event, Phase, ServerLimits, Session};
use crate::codec::{Connect, Packet};
use crate::types::{DisconnectFlags, LogLevel, ReasonCode};
use crate::{Error, Properties, Result};

/// The broker ended the connection with an MQTT 5 DISCONNECT.
#[derive(Debug)]
pub(crate) struct ServerDisconnect {
    pub reason: ReasonCode,
    pub props: Box<Properties>,
}

/// Why a connection must be closed, from the session's point of view.
#[derive(Debug)]
pub(crate) enum Close {
    /// The broker sent DISCONNECT.
    Server(ServerDisconnect),
    /// The broker refused the connection in CONNACK.
    Refused(ReasonCode),
    /// A protocol violation by the broker; for MQTT 5 the session has queued a DISCONNECT
    /// with this reason code.
    Protocol(ReasonCode, String),
    /// PINGRESP missing.
    Keepalive,
    /// Output waited a whole keepalive period without a byte written: the broker reads
    /// nothing.
    Stalled,
    /// No CONNACK before the connect timeout.
    ConnackTimeout,
    /// The session store failed to write a record the next packet depends on.
    Store(String),
}

/// Why the client ends a connection ([`Session::connection_closed`]).
#[derive(Debug)]
pub(crate) enum Ended {
    /// The session decided it (`receive`, `handle_timeout`).
    Session(Close),
    /// The socket failed or reached its end.
    Lost(Error),
    /// `disconnect()`: DISCONNECT was written, or the broker closed first after it.
    User,
    /// Closed without any callback (`reinitialise`, the last handle dropped, a failed
    /// `start_connect`).
    Quiet,
    /// Closed with the socket callbacks only (`on_socket_unregister_write`,
    /// `on_socket_close`), no session callback: `reconnect()` replacing the connection (as
    /// Paho's `_reset_sockets`), or a connect attempt whose CONNECT could not be written,
    /// whose caller reports the error (`on_connect_fail` from a loop, `Err` from `connect`).
    SocketOnly,
}

impl Session {
    /// Starts connection `conn_id`: resets per-connection state and queues CONNECT. The
    /// CONNACK must come by `deadline` (the attempt's, which also bounded its set-up).
    pub(crate) fn start_connect(
        &mut self,
        connect: &Connect,
        conn_id: u64,
        now: Instant,
        deadline: Instant,
    ) -> Result<()> {
        self.conn_id = conn_id;
        self.inbound_qos1.clear();
        self.out.clear();
        self.out_pos = 0;
        self.appended_total = 0;
        self.written_total = 0;
        self.in_aliases.clear();
        self.out_aliases.clear();
        self.limits = ServerLimits::default();
        self.client_alias_max = if self.cfg.protocol.is_v5() {
            connect.properties.topic_alias_maximum.unwrap_or(0)
        } else {
            0
        };
        self.client_receive_max = if self.cfg.protocol.is_v5() {
            connect.properties.receive_maximum.unwrap_or(u16::MAX)
        } else {
            u16::MAX
        };
        self.keepalive = Duration::from_secs(u64::from(connect.keep_alive));
        self.ping_sent = None;
        self.stall = None;
        self.last_in = now;
        self.last_out = now;
        self.connack_deadline = Some(deadline);
        self.connect_clean = connect.clean_start;
        self.connect_had_id = !connect.client_id.is_empty();
        self.auth_method = if self.cfg.protocol.is_v5() {
            connect.properties.authentication_method.clone()
        } else {
            None
        };
        self.reauth = false;
        self.inflight = 0;
        for m in self.outgoing.iter_mut() {
            m.sent = false;
        }
        self.phase = Phase::AwaitConnAck;
        self.log(LogLevel::Debug, || {
            format!(
                "Sending CONNECT (u{}, p{}, wr{}, wq{}, wf{}, c{}, k{}) client_id={}",
                u8::from(connect.username.is_some()),
                u8::from(connect.password.is_some()),
                u8::from(connect.will.as_ref().is_some_and(|w| w.retain)),
                connect.will.as_ref().map_or(0, |w| w.qos as u8),
                u8::from(connect.will.is_some()),
                u8::from(connect.clean_start),
                connect.keep_alive,
                connect.client_id
            )
        });
        self.append_packet(&Packet::Connect(connect.clone()))
    }

    /// The connection is gone (closed, lost, or never completed): queues the event that
    /// reports it (`on_disconnect` or `on_connect_fail`, none when `Quiet`) and returns the
    /// error it counts as, if any (the client then schedules a reconnect). QoS 0 messages
    /// not yet written are lost; QoS 1/2 messages stay for the resend; pending subscribes
    /// are forgotten.
    pub(crate) fn connection_closed(&mut self, why: Ended) -> Option<Error> {
        let phase = self.phase;
        let (event, err) = self.closing_event(why, phase);
        if let Some(ev) = event {
            self.push_event(ev);
        }
        self.reset_connection();
        err
    }

    /// The event and the error for a connection that ends for `why` in `phase`.
    fn closing_event(&mut self, why: Ended, phase: Phase) -> (Option<Event>, Option<Error>) {
        let disconnected = |rc: ReasonCode| Event::Disconnected {
            flags: DisconnectFlags::default(),
            rc,
            props: Box::default(),
        };
        match why {
            Ended::Quiet | Ended::SocketOnly => (None, None),
            Ended::User => (Some(disconnected(ReasonCode::SUCCESS)), None),
            Ended::Session(Close::Server(d)) => {
                self.log(LogLevel::Notice, || {
                    format!("Broker sent DISCONNECT: {}", d.reason)
                });
                let ev = Event::Disconnected {
                    flags: DisconnectFlags {
                        is_disconnect_packet_from_server: true,
                    },
                    rc: d.reason,
                    props: d.props,
                };
                (Some(ev), Some(Error::ConnectionLost))
            }
            Ended::Session(Close::Refused(rc)) => {
                (Some(disconnected(rc)), Some(Error::ConnectionRefused(rc)))
            }
            Ended::Session(Close::ConnackTimeout) => {
                self.log(LogLevel::Warning, || {
                    "No CONNACK before the connect timeout".into()
                });
                (
                    Some(Event::ConnectFailed(Error::Timeout)),
                    Some(Error::Timeout),
                )
            }
            Ended::Session(c @ (Close::Keepalive | Close::Stalled)) => {
                self.log(LogLevel::Warning, || {
                    if matches!(c, Close::Stalled) {
                        "The broker read nothing for a whole keepalive period: connection closed"
                            .into()
                    } else {
                        "No PINGRESP within the keepalive: connection lost".into()
                    }
                });
                (
                    Some(disconnected(ReasonCode::KEEP_ALIVE_TIMEOUT)),
                    Some(Error::Keepalive),
                )
            }
            Ended::Session(Close::Store(msg)) => {
                self.log(LogLevel::Error, || {
                    format!("Persistence failed, connection closed: {msg}")
                });
                let err = Error::Persistence(msg.into());
                if phase == Phase::AwaitConnAck {
                    let fail = Event::ConnectFailed(Error::Persistence(format!("{err}").into()));
                    (Some(fail), Some(err))
                } else {
                    (Some(disconnected(ReasonCode::UNSPECIFIED_ERROR)), Some(err))
                }
            }
            Ended::Session(Close::Protocol(rc, msg)) => {
                self.log(LogLevel::Error, || format!("Protocol error ({rc}): {msg}"));
                let err = Error::Protocol(msg);
                if phase == Phase::AwaitConnAck {
                    let fail = Event::ConnectFailed(Error::Protocol(format!("{err}")));
                    (Some(fail), Some(err))
                } else {
                    // MQTT 5: the client sent DISCONNECT with this reason code; report it.
                    let rc = if self.cfg.protocol.is_v5() {
                        rc
                    } else {
                        ReasonCode::UNSPECIFIED_ERROR
                    };
                    (Some(disconnected(rc)), Some(err))
                }
            }
            Ended::Lost(e) => {
                if phase == Phase::AwaitConnAck {
                    self.log(LogLevel::Warning, || {
                        format!("Connection closed before CONNACK: {e}")
                    });
                    (Some(Event::ConnectFailed(Error::ConnectionLost)), Some(e))
                } else {
                    self.log(LogLevel::Warning, || format!("Connection lost: {e}"));
                    (Some(disconnected(ReasonCode::UNSPECIFIED_ERROR)), Some(e))
                }
            }
        }
    }

    /// Forgets what belonged to the connection that just ended.
    fn reset_connection(&mut self) {
        self.phase = Phase::Offline;
        self.reauth = false;
        self.out.clear();
        self.out_pos = 0;
        self.connack_deadline = None;
        self.ping_sent = None;
        self.stall = None;
        self.inflight = 0;
        for m in self.outgoing.iter_mut() {
            m.sent = false;
        }
        if !self.qos0_pending.is_empty() {
            while let Some((_, mid)) = self.qos0_pending.pop_front() {
                self.free_mid(mid);
            }
            self.qos0_track.lost(self.qos0_done, self.qos0_next);
            self.qos0_done = self.qos0_next;
        }
        let subs: Vec<u16> = self.pending_subs.drain().map(|(k, _)| k).collect();
        let unsubs: Vec<u16> = self.pending_unsubs.drain().map(|(k, _)| k).collect();
        for mid in subs.into_iter().chain(unsubs) {
            self.free_mid(mid);
        }
        self.in_aliases.clear();
        self.out_aliases.clear();
    }

    /// Fails every stored message (the client is being dropped or reinitialised).
    pub(crate) fn abandon_all(&mut self) {
        for m in self.outgoing.drain(..) {
            m.info.set_failed(ReasonCode(0));
        }
        self.inflight = 0;
        self.reset_connection();
        *self.in_use = IdSet::empty();
        self.in_use_count = 0;
    }
}
