//! The session's side of persistence (`crate::persistence`): the records it writes as its
//! QoS 1/2 state changes, their encoding, and the restore of a store's records.
//!
//! Nothing here runs without a store: every entry point starts with `self.persist` being
//! `Some`, so the default (no store) costs one branch.
//!
//! Outgoing value: format (1), protocol level, QoS, flags (1 retain, 2 past PUBREC, 4 topic
//! alias), topic alias (u16 LE), order (u64 LE: publish order across restarts), then the
//! encoded PUBLISH (empty past PUBREC). Incoming value: format (1), protocol level, state
//! (0 waiting for PUBREL, 1 delivered), then the encoded PUBLISH (state 0 only).

use super::inbound::InQos2;
use super::{OutMsg, Phase, Session, Stage};
use crate::codec::{self, Packet};
use crate::completion::InfoShared;
use crate::message::Message;
use crate::persistence::{Key, Persistence};
use crate::types::{LogLevel, QoS};
use crate::{Error, Result};

const FORMAT: u8 = 1;
const F_RETAIN: u8 = 1;
const F_PUBREL: u8 = 2;
const F_ALIAS: u8 = 4;
const OUT_HEAD: usize = 14;
const IN_RECEIVED: u8 = 0;
const IN_DELIVERED: u8 = 1;

fn store_err(op: &str, key: Key, e: &std::io::Error) -> String {
    format!("cannot {op} the record of {key}: {e}")
}

impl Session {
    /// Attaches a store and restores its records: outgoing messages join the queue (sent
    /// after the next CONNACK, with DUP), incoming QoS 2 messages wait for their PUBREL.
    /// Only while offline with nothing stored in memory. Returns how many records it loaded.
    pub(crate) fn set_persistence(&mut self, mut store: Box<dyn Persistence>) -> Result<usize> {
        if self.phase != Phase::Offline {
            return Err(Error::state(
                "persistence_set() while a connection is open: call it before connect()",
            ));
        }
        if !self.outgoing.is_empty() || !self.inbound_qos2.is_empty() {
            return Err(Error::state(
                "persistence_set() after QoS 1/2 messages were queued: call it before the \
                 first publish",
            ));
        }
        let records = store.load().map_err(|e| {
            Error::Persistence(crate::error::Detail::caused(
                format!("cannot load the store: {e}"),
                e,
            ))
        })?;
        let level = self.cfg.protocol.level();
        let mut out = Vec::new();
        let mut inc = Vec::new();
        for (key, value) in records {
            let bad = |why: &str| Error::Persistence(format!("{key}: {why}").into());
            if value.len() < 3 || value[0] != FORMAT {
                return Err(bad("unknown record format"));
            }
            if value[1] != level {
                return Err(bad(&format!(
                    "stored with MQTT protocol level {}, the client speaks {level}: use a \
                     store per protocol version",
                    value[1]
                )));
            }
            match key {
                Key::Outgoing(mid) => out.push(self.decode_out(mid, &value).map_err(|w| bad(&w))?),
                Key::Incoming(mid) => {
                    inc.push((mid, self.decode_in(mid, &value).map_err(|w| bad(&w))?))
                }
            }
        }
        let n = out.len() + inc.len();
        out.sort_by_key(|m| m.order);
        for m in out {
            if self.in_use.contains(m.mid) {
                return Err(Error::Persistence(
                    format!("{}: packet id in use twice", Key::Outgoing(m.mid)).into(),
                ));
            }
            self.in_use.insert(m.mid);
            self.in_use_count += 1;
            self.persist_seq = self.persist_seq.max(m.order + 1);
            // New ids continue after the last stored one.
            self.next_mid = m.mid;
            self.outgoing.push_back(m);
        }
        for (mid, state) in inc {
            if let InQos2::Received(msg) = &state {
                self.inbound_qos2_bytes += msg.payload.len() + msg.topic.len();
            }
            self.inbound_qos2.insert(mid, state);
        }
        self.persist = Some(store);
        Ok(n)
    }

    fn decode_out(&self, mid: u16, v: &[u8]) -> std::result::Result<OutMsg, String> {
        if v.len() < OUT_HEAD {
            return Err("record too short".into());
        }
        let qos = match v[2] {
            1 => QoS::AtLeastOnce,
            2 => QoS::ExactlyOnce,
            q => return Err(format!("QoS {q} is not stored")),
        };
        let flags = v[3];
        let alias = u16::from_le_bytes([v[4], v[5]]);
        let mut order = [0; 8];
        order.copy_from_slice(&v[6..14]);
        let bytes = v[OUT_HEAD..].to_vec();
        let stage = if flags & F_PUBREL != 0 {
            if qos != QoS::ExactlyOnce {
                return Err("a QoS 1 message past PUBREC".into());
            }
            Stage::PubRel
        } else {
            // The stored PUBLISH must decode, with this id.
            match codec::decode(&bytes, self.cfg.protocol, usize::MAX) {
                Ok(Some((Packet::Publish(p), n))) if n == bytes.len() && p.pkid == mid => {}
                _ => return Err("the stored PUBLISH does not decode".into()),
            }
            Stage::Publish
        };
        Ok(OutMsg {
            mid,
            qos,
            retain: flags & F_RETAIN != 0,
            topic_alias: (flags & F_ALIAS != 0).then_some(alias),
            bytes,
            stage,
            sent: false,
            // It may have been sent before the restart: a resend carries DUP.
            dup: true,
            order: u64::from_le_bytes(order),
            info: InfoShared::new(mid, self.notify.clone()),
        })
    }

    fn decode_in(&self, mid: u16, v: &[u8]) -> std::result::Result<InQos2, String> {
        match v[2] {
            IN_DELIVERED => Ok(InQos2::Delivered),
            IN_RECEIVED => match codec::decode(&v[3..], self.cfg.protocol, usize::MAX) {
                Ok(Some((Packet::Publish(p), n))) if n == v.len() - 3 && p.pkid == mid => {
                    Ok(InQos2::Received(Box::new(Message {
                        topic: p.topic,
                        payload: p.payload,
                        qos: p.qos,
                        retain: p.retain,
                        dup: p.dup,
                        mid,
                        properties: if p.properties.is_empty() {
                            None
                        } else {
                            Some(Box::new(p.properties))
                        },
                        timestamp: crate::time::now(),
                    })))
                }
                _ => Err("the stored PUBLISH does not decode".into()),
            },
            s => Err(format!("unknown state {s}")),
        }
    }

    /// A store is attached.
    pub(crate) fn persisting(&self) -> bool {
        self.persist.is_some()
    }

    /// The next publish-order number for a stored message.
    pub(super) fn next_order(&mut self) -> u64 {
        let o = self.persist_seq;
        self.persist_seq += 1;
        o
    }

    /// Writes the record of outgoing message `m` (its current stage); a field-level
    /// function so that `m` may be borrowed from `outgoing` meanwhile.
    pub(super) fn store_out(
        persist: &mut Option<Box<dyn Persistence>>,
        protocol: crate::types::Protocol,
        m: &OutMsg,
    ) -> std::result::Result<(), String> {
        let Some(store) = persist.as_mut() else {
            return Ok(());
        };
        let mut v = Vec::with_capacity(OUT_HEAD + m.bytes.len());
        let mut flags = 0;
        if m.retain {
            flags |= F_RETAIN;
        }
        if m.stage == Stage::PubRel {
            flags |= F_PUBREL;
        }
        if m.topic_alias.is_some() {
            flags |= F_ALIAS;
        }
        v.extend_from_slice(&[FORMAT, protocol.level(), m.qos as u8, flags]);
        v.extend_from_slice(&m.topic_alias.unwrap_or(0).to_le_bytes());
        v.extend_from_slice(&m.order.to_le_bytes());
        if m.stage == Stage::Publish {
            v.extend_from_slice(&m.bytes);
        }
        let key = Key::Outgoing(m.mid);
        store.put(key, &v).map_err(|e| store_err("write", key, &e))
    }

    /// Writes the record of incoming QoS 2 message `mid`: waiting for PUBREL (with the
    /// message) or delivered (`msg` = `None`).
    pub(super) fn store_in(
        &mut self,
        mid: u16,
        msg: Option<&Message>,
    ) -> std::result::Result<(), String> {
        let Some(store) = self.persist.as_mut() else {
            return Ok(());
        };
        let level = self.cfg.protocol.level();
        let mut v = vec![FORMAT, level];
        match msg {
            None => v.push(IN_DELIVERED),
            Some(m) => {
                v.push(IN_RECEIVED);
                codec::encode_publish(
                    &mut v,
                    self.cfg.protocol,
                    &m.topic,
                    &m.payload,
                    m.qos,
                    m.retain,
                    m.dup,
                    mid,
                    m.properties.as_deref(),
                )
                .map_err(|e| format!("cannot encode incoming message {mid}: {e}"))?;
            }
        }
        let key = Key::Incoming(mid);
        store.put(key, &v).map_err(|e| store_err("write", key, &e))
    }

    /// Removes a record. A failure is logged (an error): nothing is lost, but after a restart
    /// the record's message may be sent (or a PUBREL answered) once more.
    pub(super) fn unstore(&mut self, key: Key) {
        let Some(store) = self.persist.as_mut() else {
            return;
        };
        if let Err(e) = store.remove(key) {
            let msg = store_err("remove", key, &e);
            self.log(LogLevel::Error, || format!("Persistence: {msg}"));
        }
    }

    /// Before bytes go to the socket: lets the store make the records written since the
    /// last write durable ([`Persistence::flush`]).
    pub(crate) fn flush_store(&mut self) -> Result<()> {
        match self.persist.as_mut() {
            Some(store) => store.flush().map_err(|e| {
                Error::Persistence(crate::error::Detail::caused(
                    format!("cannot flush the store before a write: {e}"),
                    e,
                ))
            }),
            None => Ok(()),
        }
    }

    /// Logs a failed write that closes nothing (the state in memory goes on).
    pub(super) fn store_failed(&mut self, msg: &str) {
        self.log(LogLevel::Error, || format!("Persistence: {msg}"));
    }
}
