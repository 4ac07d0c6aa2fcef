//! What the client sends: PUBLISH (QoS 0 written at once; QoS 1/2 stored and sent within the
//! in-flight window), SUBSCRIBE, UNSUBSCRIBE and DISCONNECT, and the completion of
//! outgoing messages.

use super::{Event, OutMsg, Phase, Session, Stage};
use crate::codec::{self, Ack, Packet};
use crate::completion::{Completion, InfoShared};
use crate::types::{LogLevel, QoS, ReasonCode, SubscribeOptions};
use crate::{Error, Properties, Result};

impl Session {
    /// Publishes a message: QoS 0 is written to the output (only while a connection is
    /// open); QoS 1/2 are stored and sent when the window allows. Returns the message's
    /// completion handle.
    pub(crate) fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        props: Option<&Properties>,
    ) -> Result<Completion> {
        let v5 = self.cfg.protocol.is_v5();
        let props = if v5 { props } else { None };
        let alias = props.and_then(|p| p.topic_alias);
        if alias.is_some() && self.cfg.auto_aliases > 0 {
            return Err(Error::invalid(
                "a Topic Alias in the properties while the client assigns aliases itself \
                 (auto_topic_alias_set): use one or the other",
            ));
        }
        let connected = self.phase == Phase::Connected;
        if connected {
            self.check_limits(qos, retain, alias)?;
        }
        if qos == QoS::AtMostOnce {
            // As Paho: once CONNECT is sent, a QoS 0 message may follow it at once
            // (MQTT allows packets before CONNACK).
            if self.phase == Phase::Offline {
                return Err(Error::NoConnection);
            }
            let mid = self.alloc_mid()?;
            let start = self.out.len();
            if let Err(e) = codec::encode_publish(
                &mut self.out,
                self.cfg.protocol,
                topic,
                payload,
                qos,
                retain,
                false,
                0,
                props,
            ) {
                self.free_mid(mid);
                return Err(e);
            }
            let mut len = self.out.len() - start;
            if len > self.limits.maximum_packet_size {
                self.out.truncate(start);
                self.free_mid(mid);
                return Err(self.too_large(len));
            }
            if self.cfg.auto_aliases > 0 {
                let plain = self.out.split_off(start);
                len = self.append_publish(&plain);
            }
            self.appended_total += len as u64;
            self.log(LogLevel::Debug, || {
                format!(
                    "Sending PUBLISH (d0, q0, r{}, m{mid}), '{topic}', ... ({} bytes)",
                    u8::from(retain),
                    payload.len()
                )
            });
            self.qos0_pending.push_back((self.appended_total, mid));
            self.stats.messages_sent[0] += 1;
            let seq = self.qos0_next;
            self.qos0_next += 1;
            return Ok(Completion::Qos0 {
                track: self.qos0_track.clone(),
                seq,
                mid,
            });
        }
        if self.cfg.max_queued > 0 && self.outgoing.len() >= self.cfg.max_queued {
            return Err(Error::QueueSize);
        }
        let mid = self.alloc_mid()?;
        let mut bytes = Vec::new();
        if let Err(e) = codec::encode_publish(
            &mut bytes,
            self.cfg.protocol,
            topic,
            payload,
            qos,
            retain,
            false,
            mid,
            props,
        ) {
            self.free_mid(mid);
            return Err(e);
        }
        if connected && bytes.len() > self.limits.maximum_packet_size {
            self.free_mid(mid);
            return Err(self.too_large(bytes.len()));
        }
        let info = InfoShared::new(mid, self.notify.clone());
        let mut m = OutMsg {
            mid,
            qos,
            retain,
            topic_alias: alias,
            bytes,
            stage: Stage::Publish,
            sent: false,
            dup: false,
            order: 0,
            info: info.clone(),
        };
        if self.persisting() {
            m.order = self.next_order();
            if let Err(e) = Self::store_out(&mut self.persist, self.cfg.protocol, &m) {
                self.free_mid(mid);
                return Err(Error::Persistence(e.into()));
            }
        }
        self.outgoing.push_back(m);
        if connected {
            self.pump();
        }
        Ok(Completion::One(info))
    }

    fn too_large(&self, len: usize) -> Error {
        Error::PayloadSize(format!(
            "PUBLISH of {len} bytes exceeds the broker's Maximum Packet Size of {} bytes",
            self.limits.maximum_packet_size
        ))
    }

    /// Checks a publish against the broker's limits; the matching reason code on failure.
    pub(super) fn limit_violation(
        &self,
        qos: QoS,
        retain: bool,
        alias: Option<u16>,
    ) -> Option<ReasonCode> {
        if qos > self.limits.maximum_qos {
            return Some(ReasonCode::QOS_NOT_SUPPORTED);
        }
        if retain && !self.limits.retain_available {
            return Some(ReasonCode::RETAIN_NOT_SUPPORTED);
        }
        if let Some(a) = alias {
            if a == 0 || a > self.limits.topic_alias_maximum {
                return Some(ReasonCode::TOPIC_ALIAS_INVALID);
            }
        }
        None
    }

    fn check_limits(&self, qos: QoS, retain: bool, alias: Option<u16>) -> Result<()> {
        match self.limit_violation(qos, retain, alias) {
            None => Ok(()),
            Some(rc) if rc == ReasonCode::QOS_NOT_SUPPORTED => Err(Error::NotSupported(format!(
                "QoS {} is above the broker's Maximum QoS {}",
                qos as u8, self.limits.maximum_qos as u8
            ))),
            Some(rc) if rc == ReasonCode::RETAIN_NOT_SUPPORTED => Err(Error::NotSupported(
                "the broker does not support retained messages (Retain Available = 0)".into(),
            )),
            Some(_) => Err(Error::InvalidArgument(format!(
                "Topic Alias {} is above the broker's Topic Alias Maximum {}",
                alias.unwrap_or(0),
                self.limits.topic_alias_maximum
            ))),
        }
    }

    /// Queues the PUBREL of outgoing QoS 2 message `mid`.
    pub(super) fn send_pubrel(&mut self, mid: u16, reason: ReasonCode) {
        self.log(LogLevel::Debug, || format!("Sending PUBREL (Mid: {mid})"));
        self.send_control(Packet::PubRel(Ack {
            pkid: mid,
            reason,
            properties: Properties::default(),
        }));
    }

    /// Appends an encoded PUBLISH to the output with the Topic Alias the client assigns
    /// itself (`auto_topic_alias_set`): the first PUBLISH of a topic on a connection sets an
    /// alias (topic and alias), the next ones use it (empty topic), while the aliases fit
    /// the configured number and the broker's Topic Alias Maximum; other topics, and a
    /// packet the alias would make too large for the broker, go out as they are. Returns
    /// the bytes appended.
    fn append_publish(&mut self, packet: &[u8]) -> usize {
        let start = self.out.len();
        let max = self.cfg.auto_aliases.min(self.limits.topic_alias_maximum);
        let topic = match codec::encoded_topic(packet) {
            Some(t) if !t.is_empty() && self.cfg.protocol.is_v5() && max > 0 => t,
            _ => {
                self.out.extend_from_slice(packet);
                return packet.len();
            }
        };
        let (alias, new) = match self.out_aliases.get(topic) {
            Some(&a) => (a, false),
            None if self.out_aliases.len() < usize::from(max) => {
                (self.out_aliases.len() as u16 + 1, true)
            }
            None => {
                self.out.extend_from_slice(packet);
                return packet.len();
            }
        };
        if codec::encode_aliased(packet, alias, new, &mut self.out)
            && self.out.len() - start <= self.limits.maximum_packet_size
        {
            if new {
                self.out_aliases.insert(topic.to_string(), alias);
            }
        } else {
            self.out.truncate(start);
            self.out.extend_from_slice(packet);
        }
        self.out.len() - start
    }

    /// Sends stored messages, in order, while the window has room.
    pub(super) fn pump(&mut self) {
        if self.phase != Phase::Connected {
            return;
        }
        let window = self.window();
        while self.inflight < window && self.inflight < self.outgoing.len() {
            let idx = self.inflight;
            let (stage, mid) = {
                let m = &self.outgoing[idx];
                (m.stage, m.mid)
            };
            match stage {
                Stage::PubRel => self.send_pubrel(mid, ReasonCode::SUCCESS),
                Stage::Publish => {
                    let m = &mut self.outgoing[idx];
                    let dup = m.dup;
                    m.dup = true;
                    if dup {
                        codec::set_dup(&mut m.bytes);
                    }
                    let (qos, retain) = (m.qos as u8, m.retain);
                    if !dup {
                        self.stats.messages_sent[usize::from(qos).min(2)] += 1;
                    }
                    let len = if self.cfg.auto_aliases > 0 {
                        let bytes = std::mem::take(&mut self.outgoing[idx].bytes);
                        let len = self.append_publish(&bytes);
                        self.outgoing[idx].bytes = bytes;
                        len
                    } else {
                        let m = &self.outgoing[idx];
                        self.out.extend_from_slice(&m.bytes);
                        m.bytes.len()
                    };
                    self.appended_total += len as u64;
                    self.log(LogLevel::Debug, || {
                        format!(
                            "Sending PUBLISH (d{}, q{qos}, r{}, m{mid}), ... ({len} bytes)",
                            u8::from(dup),
                            u8::from(retain)
                        )
                    });
                }
            }
            self.outgoing[idx].sent = true;
            self.inflight += 1;
        }
    }

    pub(super) fn find_sent(&self, mid: u16) -> Option<usize> {
        self.outgoing
            .iter()
            .take(self.inflight)
            .position(|m| m.mid == mid)
    }

    pub(super) fn complete_outgoing(&mut self, idx: usize, rc: ReasonCode, props: Properties) {
        if let Some(m) = self.outgoing.remove(idx) {
            if m.sent {
                self.inflight -= 1;
            }
            if self.persisting() {
                self.unstore(crate::persistence::Key::Outgoing(m.mid));
            }
            // The id stays taken until the event is dispatched (`release_reported`).
            if rc.is_failure() {
                m.info.set_failed(rc);
            } else {
                m.info.set_published();
            }
            self.push_event(Event::Published {
                mid: m.mid,
                rc,
                props: if props.is_empty() {
                    None
                } else {
                    Some(Box::new(props))
                },
            });
        }
    }

    /// Queues SUBSCRIBE. Only while a connection is open (CONNECT sent).
    pub(crate) fn subscribe(
        &mut self,
        filters: Vec<(String, SubscribeOptions)>,
        props: Properties,
    ) -> Result<u16> {
        if self.phase == Phase::Offline {
            return Err(Error::NoConnection);
        }
        let mid = self.alloc_mid()?;
        let pkt = Packet::Subscribe(codec::Subscribe {
            pkid: mid,
            filters,
            properties: props,
        });
        if let Err(e) = self.append_packet(&pkt) {
            self.free_mid(mid);
            return Err(e);
        }
        if let Packet::Subscribe(s) = &pkt {
            self.log(LogLevel::Debug, || {
                let list: Vec<String> = s
                    .filters
                    .iter()
                    .map(|(f, o)| format!("(b'{f}', q{})", o.qos as u8))
                    .collect();
                format!("Sending SUBSCRIBE (d0, m{mid}) [{}]", list.join(", "))
            });
        }
        self.pending_subs.insert(mid, ());
        if self.cfg.resubscribe {
            if let Packet::Subscribe(sub) = pkt {
                self.remember(sub.filters, sub.properties);
            }
        }
        Ok(mid)
    }

    /// Keeps a subscription for renewal; a filter subscribed again leaves its older entry.
    fn remember(&mut self, filters: Vec<(String, SubscribeOptions)>, props: Properties) {
        self.forget(filters.iter().map(|(f, _)| f.as_str()));
        self.remembered.push(Remembered {
            filters,
            props,
            sent_on: self.conn_id,
        });
    }

    /// Drops `filters` from the remembered subscriptions.
    fn forget<'a>(&mut self, filters: impl Iterator<Item = &'a str>) {
        let gone: Vec<&str> = filters.collect();
        for r in &mut self.remembered {
            r.filters.retain(|(f, _)| !gone.contains(&f.as_str()));
        }
        self.remembered.retain(|r| !r.filters.is_empty());
    }

    /// After a CONNACK without a session: subscribes again to what is remembered and was not
    /// sent on this connection already (a subscribe made before the CONNACK went behind the
    /// CONNECT). The SUBACKs reach `on_subscribe` as usual.
    pub(super) fn renew_subscriptions(&mut self) {
        let conn = self.conn_id;
        let due: Vec<(Vec<(String, SubscribeOptions)>, Properties)> = self
            .remembered
            .iter()
            .filter(|r| r.sent_on != conn)
            .map(|r| (r.filters.clone(), r.props.clone()))
            .collect();
        for (filters, props) in due {
            self.log(LogLevel::Debug, || {
                "Renewing a subscription (resubscribe)".into()
            });
            if let Err(e) = self.subscribe(filters, props) {
                self.log(LogLevel::Warning, || format!("Resubscribe failed: {e}"));
            }
        }
    }

    /// Queues UNSUBSCRIBE. Only while a connection is open (CONNECT sent).
    pub(crate) fn unsubscribe(&mut self, filters: Vec<String>, props: Properties) -> Result<u16> {
        if self.phase == Phase::Offline {
            return Err(Error::NoConnection);
        }
        let mid = self.alloc_mid()?;
        let pkt = Packet::Unsubscribe(codec::Unsubscribe {
            pkid: mid,
            filters,
            properties: props,
        });
        if let Err(e) = self.append_packet(&pkt) {
            self.free_mid(mid);
            return Err(e);
        }
        if let Packet::Unsubscribe(u) = &pkt {
            self.log(LogLevel::Debug, || {
                format!("Sending UNSUBSCRIBE (d0, m{mid}) {:?}", u.filters)
            });
        }
        self.pending_unsubs.insert(mid, ());
        if let Packet::Unsubscribe(u) = &pkt {
            let filters = u.filters.clone();
            self.forget(filters.iter().map(String::as_str));
        }
        Ok(mid)
    }

    /// Queues DISCONNECT.
    pub(crate) fn disconnect(&mut self, reason: ReasonCode, props: Properties) -> Result<()> {
        self.log(LogLevel::Debug, || "Sending DISCONNECT".to_string());
        self.append_packet(&Packet::Disconnect(codec::Disconnect {
            reason,
            properties: props,
        }))
    }
}

/// A subscription kept for `resubscribe_set`.
#[derive(Debug)]
pub(super) struct Remembered {
    filters: Vec<(String, SubscribeOptions)>,
    props: Properties,
    /// The connection it was last sent on.
    sent_on: u64,
}
