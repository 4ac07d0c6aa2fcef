//! What the broker sends: decoding the received bytes and handling each packet (CONNACK and
//! the broker's limits, incoming PUBLISH with its QoS 1/2 flow, the acks of outgoing
//! messages, SUBACK/UNSUBACK, PINGRESP, DISCONNECT).

use std::time::{Duration, Instant};

use super::{Close, Event, Phase, ServerDisconnect, Session, Stage};
use crate::codec::{self, Ack, ConnAck, DecodeError, Packet, Publish};
use crate::message::Message;
use crate::types::{ConnectFlags, LogLevel, QoS, ReasonCode};
use crate::Properties;

fn proto_err(msg: impl Into<String>) -> Close {
    Close::Protocol(ReasonCode::PROTOCOL_ERROR, msg.into())
}

impl Session {
    /// Decodes and handles every whole packet at the front of `buf`; returns the bytes used.
    pub(crate) fn receive(
        &mut self,
        buf: &[u8],
        now: Instant,
    ) -> std::result::Result<usize, (usize, Close)> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            if rest.is_empty() {
                return Ok(used);
            }
            match codec::decode(rest, self.cfg.protocol, self.cfg.max_incoming_packet) {
                Ok(None) => return Ok(used),
                Ok(Some((pkt, n))) => {
                    used += n;
                    self.stats.bytes_received += n as u64;
                    if let Packet::Publish(p) = &pkt {
                        self.stats.messages_received[p.qos as usize] += 1;
                    }
                    self.last_in = now;
                    if let Err(c) = self.handle_packet(pkt, now) {
                        return Err((used, c));
                    }
                }
                Err(DecodeError { reason, message }) => {
                    self.log(LogLevel::Error, || {
                        format!("Malformed packet from the broker: {message}")
                    });
                    if self.cfg.protocol.is_v5() && self.phase == Phase::Connected {
                        let _ = self.disconnect(reason, Properties::default());
                    }
                    return Err((used, Close::Protocol(reason, message)));
                }
            }
        }
    }

    pub(super) fn protocol_violation(&mut self, msg: String) -> Close {
        self.log(LogLevel::Error, || format!("Protocol error: {msg}"));
        if self.cfg.protocol.is_v5() && self.phase == Phase::Connected {
            let _ = self.disconnect(ReasonCode::PROTOCOL_ERROR, Properties::default());
        }
        proto_err(msg)
    }

    /// Handles one packet from the broker.
    pub(crate) fn handle_packet(
        &mut self,
        pkt: Packet,
        now: Instant,
    ) -> std::result::Result<(), Close> {
        if self.phase == Phase::AwaitConnAck {
            return match pkt {
                Packet::ConnAck(c) => self.handle_connack(c, now),
                Packet::Auth(a) if self.cfg.protocol.is_v5() => self.handle_auth(a),
                Packet::Disconnect(d) if self.cfg.protocol.is_v5() => {
                    self.note_redirect(d.reason, &d.properties);
                    Err(Close::Server(ServerDisconnect {
                        reason: d.reason,
                        props: Box::new(d.properties),
                    }))
                }
                other => {
                    let name = other.name();
                    Err(self.protocol_violation(format!("expected CONNACK, received {name}")))
                }
            };
        }
        if self.phase == Phase::Offline {
            return Ok(());
        }
        match pkt {
            Packet::Publish(p) => self.handle_publish(p),
            Packet::PubAck(a) => {
                self.log(LogLevel::Debug, || {
                    format!("Received PUBACK (Mid: {})", a.pkid)
                });
                match self.find_sent(a.pkid) {
                    Some(i) if self.outgoing[i].qos == QoS::AtLeastOnce => {
                        self.complete_outgoing(i, a.reason, a.properties);
                        self.pump();
                    }
                    // A broker that downgrades QoS 2 publishes to QoS 1 answers them with
                    // PUBACK (RabbitMQ's MQTT plugin before 3.13 does). Paho ends the flow
                    // at that PUBACK; waiting for a PUBREC that never comes would keep the
                    // message in flight forever (and re-send it at every reconnect).
                    Some(i)
                        if self.outgoing[i].qos == QoS::ExactlyOnce
                            && self.outgoing[i].stage == Stage::Publish =>
                    {
                        self.log(LogLevel::Warning, || {
                            format!(
                                "PUBACK for the QoS 2 message {}: the broker took it at QoS 1; \
                                 its flow ends here",
                                a.pkid
                            )
                        });
                        self.complete_outgoing(i, a.reason, a.properties);
                        self.pump();
                    }
                    _ => self.log(LogLevel::Warning, || {
                        format!("PUBACK for unknown mid {} ignored", a.pkid)
                    }),
                }
                Ok(())
            }
            Packet::PubRec(a) => self.handle_pubrec(a),
            Packet::PubRel(a) => {
                self.log(LogLevel::Debug, || {
                    format!("Received PUBREL (Mid: {})", a.pkid)
                });
                if let Some(msg) = self.released_qos2(a.pkid) {
                    let ack = Some((a.pkid, QoS::ExactlyOnce));
                    self.push_event(Event::Message { msg, ack });
                }
                Ok(())
            }
            Packet::PubComp(a) => {
                self.log(LogLevel::Debug, || {
                    format!("Received PUBCOMP (Mid: {})", a.pkid)
                });
                match self.find_sent(a.pkid) {
                    Some(i) if self.outgoing[i].stage == Stage::PubRel => {
                        self.complete_outgoing(i, a.reason, a.properties);
                        self.pump();
                    }
                    _ => self.log(LogLevel::Warning, || {
                        format!("PUBCOMP for unknown mid {} ignored", a.pkid)
                    }),
                }
                Ok(())
            }
            Packet::SubAck(s) => {
                self.log(LogLevel::Debug, || {
                    format!("Received SUBACK (Mid: {})", s.pkid)
                });
                if self.pending_subs.remove(&s.pkid).is_some() {
                    self.free_mid(s.pkid);
                    self.push_event(Event::Subscribed {
                        mid: s.pkid,
                        rcs: s.reasons,
                        props: Box::new(s.properties),
                    });
                }
                Ok(())
            }
            Packet::UnsubAck(u) => {
                self.log(LogLevel::Debug, || {
                    format!("Received UNSUBACK (Mid: {})", u.pkid)
                });
                if self.pending_unsubs.remove(&u.pkid).is_some() {
                    self.free_mid(u.pkid);
                    self.push_event(Event::Unsubscribed {
                        mid: u.pkid,
                        rcs: u.reasons,
                        props: Box::new(u.properties),
                    });
                }
                Ok(())
            }
            Packet::PingResp => {
                self.log(LogLevel::Debug, || "Received PINGRESP".to_string());
                self.ping_sent = None;
                Ok(())
            }
            Packet::Disconnect(d) if self.cfg.protocol.is_v5() => {
                self.log(LogLevel::Debug, || {
                    format!("Received DISCONNECT {}", d.reason.0)
                });
                self.note_redirect(d.reason, &d.properties);
                Err(Close::Server(ServerDisconnect {
                    reason: d.reason,
                    props: Box::new(d.properties),
                }))
            }
            Packet::Auth(a) if self.cfg.protocol.is_v5() => self.handle_auth(a),
            Packet::ConnAck(c) => self.connack_while_connected(c),
            other => {
                let name = other.name();
                Err(self.protocol_violation(format!("unexpected {name} from the broker")))
            }
        }
    }

    /// CONNACK or DISCONNECT with Use Another Server (0x9C) or Server Moved (0x9D) and a
    /// Server Reference: kept for the client, which follows it if asked to.
    fn note_redirect(&mut self, rc: ReasonCode, props: &Properties) {
        if rc == ReasonCode::USE_ANOTHER_SERVER || rc == ReasonCode::SERVER_MOVED {
            if let Some(r) = &props.server_reference {
                self.log(LogLevel::Info, || {
                    format!("The broker redirects to {r} ({rc})")
                });
                self.redirect = Some(r.clone());
            }
        }
    }

    fn handle_connack(&mut self, c: ConnAck, now: Instant) -> std::result::Result<(), Close> {
        let v5 = self.cfg.protocol.is_v5();
        let rc = if v5 {
            ReasonCode(c.code)
        } else {
            ReasonCode::from_connack_v3(c.code)
        };
        self.log(LogLevel::Debug, || {
            format!(
                "Received CONNACK ({}, {})",
                u8::from(c.session_present),
                c.code
            )
        });
        self.connack_deadline = None;
        if rc.is_failure() {
            self.note_redirect(rc, &c.properties);
            self.push_event(Event::Connected {
                flags: ConnectFlags {
                    session_present: false,
                },
                rc,
                props: Box::new(c.properties),
            });
            return Err(Close::Refused(rc));
        }
        if c.session_present && self.connect_clean {
            // [MQTT-3.2.2-4]: a clean start never resumes a session.
            return Err(
                self.protocol_violation("CONNACK with Session Present after a clean start".into())
            );
        }
        if v5 {
            let p = &c.properties;
            if p.assigned_client_identifier.is_some() && self.connect_had_id {
                return Err(self.protocol_violation(
                    "CONNACK assigns a client identifier although the client sent one".into(),
                ));
            }
            if let Some(r) = p.receive_maximum {
                self.limits.receive_maximum = r;
            }
            if let Some(m) = p.maximum_packet_size {
                self.limits.maximum_packet_size = m as usize;
            }
            if let Some(q) = p.maximum_qos {
                self.limits.maximum_qos = if q == 0 {
                    QoS::AtMostOnce
                } else {
                    QoS::AtLeastOnce
                };
            }
            if let Some(r) = p.retain_available {
                self.limits.retain_available = r != 0;
            }
            if let Some(t) = p.topic_alias_maximum {
                self.limits.topic_alias_maximum = t;
            }
            if let Some(k) = p.server_keep_alive {
                self.keepalive = Duration::from_secs(u64::from(k));
            }
            self.assigned_id = p.assigned_client_identifier.clone();
        }
        if !c.session_present {
            self.forget_inbound_qos2();
        }
        self.phase = Phase::Connected;
        self.last_in = now;
        // Queued messages that the new limits make invalid end here, never sent.
        let mut i = 0;
        while i < self.outgoing.len() {
            let m = &self.outgoing[i];
            let violation = if m.stage == Stage::Publish {
                if m.bytes.len() > self.limits.maximum_packet_size {
                    Some(ReasonCode::PACKET_TOO_LARGE)
                } else {
                    self.limit_violation(m.qos, m.retain, m.topic_alias)
                }
            } else {
                None
            };
            match violation {
                Some(rc) => self.complete_outgoing(i, rc, Properties::default()),
                None => i += 1,
            }
        }
        self.push_event(Event::Connected {
            flags: ConnectFlags {
                session_present: c.session_present,
            },
            rc,
            props: Box::new(c.properties),
        });
        if self.cfg.resubscribe && !c.session_present {
            self.renew_subscriptions();
        }
        self.pump();
        Ok(())
    }

    fn handle_pubrec(&mut self, a: Ack) -> std::result::Result<(), Close> {
        self.log(LogLevel::Debug, || {
            format!("Received PUBREC (Mid: {})", a.pkid)
        });
        match self.find_sent(a.pkid) {
            Some(i) if self.outgoing[i].qos == QoS::ExactlyOnce => {
                if a.reason.is_failure() {
                    self.complete_outgoing(i, a.reason, a.properties);
                    self.pump();
                } else {
                    if self.outgoing[i].stage == Stage::Publish {
                        self.outgoing[i].stage = Stage::PubRel;
                        if let Err(e) =
                            Self::store_out(&mut self.persist, self.cfg.protocol, &self.outgoing[i])
                        {
                            // Not past PUBREC then: after a reconnect the PUBLISH goes again
                            // (with DUP), which the broker answers with PUBREC again.
                            self.outgoing[i].stage = Stage::Publish;
                            return Err(Close::Store(e));
                        }
                        // Free the payload early: a PUBREL never needs it again.
                        self.outgoing[i].bytes = Vec::new();
                    }
                    self.send_pubrel(a.pkid, ReasonCode::SUCCESS);
                }
            }
            _ if a.reason.is_failure() => {
                // [MQTT-4.3.3-4]: PUBREL answers only a successful PUBREC.
                self.log(LogLevel::Warning, || {
                    format!("PUBREC (failure) for unknown mid {}", a.pkid)
                });
            }
            _ => {
                // Not ours (or not QoS 2): answer so the broker can release the id.
                let mid = a.pkid;
                self.log(LogLevel::Warning, || {
                    format!("PUBREC for unknown mid {mid}")
                });
                self.send_control(Packet::PubRel(Ack {
                    pkid: mid,
                    reason: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                    properties: Properties::default(),
                }));
            }
        }
        Ok(())
    }

    fn handle_publish(&mut self, p: Publish) -> std::result::Result<(), Close> {
        let Publish {
            dup,
            qos,
            retain,
            mut topic,
            pkid,
            mut properties,
            payload,
        } = p;
        if self.cfg.protocol.is_v5() {
            if let Some(alias) = properties.topic_alias.take() {
                if alias == 0 || alias > self.client_alias_max {
                    let _ = self.disconnect(ReasonCode::TOPIC_ALIAS_INVALID, Properties::default());
                    return Err(Close::Protocol(
                        ReasonCode::TOPIC_ALIAS_INVALID,
                        format!(
                            "Topic Alias {alias} above our Topic Alias Maximum {}",
                            self.client_alias_max
                        ),
                    ));
                }
                if topic.is_empty() {
                    match self.in_aliases.get(&alias) {
                        Some(t) => topic = t.clone(),
                        None => {
                            return Err(
                                self.protocol_violation(format!("unknown Topic Alias {alias}"))
                            );
                        }
                    }
                } else {
                    self.in_aliases.insert(alias, topic.clone());
                }
            }
        }
        if topic.is_empty() {
            return Err(self.protocol_violation("PUBLISH with an empty topic".into()));
        }
        self.log(LogLevel::Debug, || {
            format!(
                "Received PUBLISH (d{}, q{}, r{}, m{pkid}), '{topic}', ...  ({} bytes)",
                u8::from(dup),
                qos as u8,
                u8::from(retain),
                payload.len()
            )
        });
        let msg = Box::new(Message {
            topic,
            payload,
            qos,
            retain,
            dup,
            mid: pkid,
            properties: if properties.is_empty() {
                None
            } else {
                Some(Box::new(properties))
            },
            timestamp: crate::time::now(),
        });
        self.check_receive_quota(pkid, qos, &msg)?;
        match qos {
            QoS::AtMostOnce => self.push_event(Event::Message { msg, ack: None }),
            QoS::AtLeastOnce => {
                self.inbound_qos1.insert(pkid);
                self.push_event(Event::Message {
                    msg,
                    ack: Some((pkid, qos)),
                });
            }
            QoS::ExactlyOnce => self.received_qos2(pkid, msg)?,
        }
        Ok(())
    }
}
