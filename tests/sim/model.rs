//! What the run observed, and the invariants checked against it.

use std::collections::HashMap;
use std::time::Duration;

use mqtt_sync::{MessageInfo, QoS, ReasonCode};

/// Work handed to a worker thread.
pub type Job = Box<dyn FnOnce() + Send>;

/// The number after `tag` at the start of a payload (`p12;...` -> 12).
pub fn parse_tag(payload: &[u8], tag: u8) -> Option<usize> {
    let rest = payload.strip_prefix(&[tag])?;
    let end = rest.iter().position(|&b| b == b';')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// One `publish()` call that returned a `MessageInfo`.
pub struct PubRec {
    pub qos: QoS,
    pub topic: String,
    pub mid: u16,
    pub info: MessageInfo,
    pub on_publish: Vec<ReasonCode>,
    /// `reinitialise()` came before its `on_publish`: its events were dropped with the
    /// session, it must only be completed (failed).
    pub abandoned: bool,
    /// The worker thread that called `publish()`.
    pub worker: usize,
    /// Queue order: (client generation, returns of `publish()` so far); exact within one
    /// thread, which is where MQTT's order promise applies (concurrent publishes of two
    /// threads have no order). Mids give no order: they wrap and skip ids in use.
    pub order: (u64, u64),
}

/// A message the broker routed into a session: an obligation for the client.
pub struct Route {
    pub pid: Option<usize>,
    pub topic: String,
    pub qos: QoS,
    pub session: String,
    pub deliveries: u32,
    /// The broker discarded the session before it was acknowledged: nothing is owed.
    pub cancelled: bool,
    /// The broker received its PUBACK / PUBCOMP (QoS 0: sent).
    pub acked: bool,
}

/// Topic, QoS, the scope in which order is checked (the connection for QoS 0, the client
/// generation between `reinitialise()` calls for QoS 1 and 2) and the publishing thread.
type OrderKey = (String, u8, u64, usize);

#[derive(Default)]
pub struct Model {
    pub verbose: bool,
    pub trace: Vec<String>,
    pub violations: Vec<String>,
    pub step: u64,
    pub clock: Duration,
    /// Publishes by publish id (`p<id>;` in their payload).
    pub pubs: Vec<Option<PubRec>>,
    /// Ids reserved for publishes in progress.
    pub next_pid: usize,
    /// mid -> publish id, for publishes whose `on_publish` has not run.
    pub outstanding: HashMap<u16, usize>,
    /// `on_publish` that ran before its `publish()` returned (the callback ran inside it).
    pub early: HashMap<u16, Vec<ReasonCode>>,
    pub routes: Vec<Route>,
    /// Queue order of the last publish first received by the broker, per (topic, QoS).
    pub last_received: HashMap<OrderKey, ((u64, u64), usize)>,
    /// The connection (pipe) the broker is reading a PUBLISH from: QoS 0 order is only
    /// promised within one connection (a closed connection's last bytes may be read after
    /// the next connection's).
    pub receiving_on: u64,
    pub received: HashMap<usize, u32>,
    /// Last route first delivered, per (topic, QoS).
    pub last_delivered: HashMap<(String, u8), usize>,
    /// Session discards so far (QoS 2 de-duplication state lost with them).
    pub epoch: u64,
    pub qos2_routed: HashMap<(usize, String), u64>,
    /// The thread inside a callback, and how deep.
    pub in_callback: Option<(usize, u32)>,
    /// Manual acks owed: (mid, QoS).
    pub owed_acks: Vec<(u16, QoS)>,
    /// The client id in use (routes of other sessions are not owed to it at the end).
    pub client_id: String,
    pub deliveries: u64,
    /// Incremented by each reinitialise (mids start again).
    pub generation: u64,
    /// Publishes returned so far (the queue order within one thread).
    pub pub_seq: u64,
}

impl Model {
    pub fn trace(&mut self, line: String) {
        let t = self.clock.as_secs_f64();
        self.trace
            .push(format!("[{:>6} {:>10.6}s] {line}", self.step, t));
    }

    pub fn violation(&mut self, what: String) {
        self.trace(format!("VIOLATION: {what}"));
        self.violations.push(what);
    }

    pub fn new_pid(&mut self) -> usize {
        self.pubs.push(None);
        self.pubs.len() - 1
    }

    /// `publish()` of `pid` returned `info`.
    pub fn published(
        &mut self,
        pid: usize,
        worker: usize,
        qos: QoS,
        topic: &str,
        info: MessageInfo,
    ) {
        let mid = info.mid();
        self.pub_seq += 1;
        // A mid stays with its publish until that publish's on_publish has run, so that
        // on_publish(mid) names one message. A QoS 0 message lost with its connection
        // (never written) gets no on_publish and gives its mid back.
        if let Some(old) = self.outstanding.insert(mid, pid) {
            let (old_qos, lost) = match self.pubs[old].as_ref() {
                Some(p) => (
                    Some(p.qos),
                    p.qos == QoS::AtMostOnce && !p.info.is_published(),
                ),
                None => (None, false),
            };
            if !lost {
                self.violation(format!(
                    "mid {mid} given to publish {pid} while publish {old} (QoS {:?}) still holds it",
                    old_qos
                ));
            }
        }
        self.pubs[pid] = Some(PubRec {
            qos,
            topic: topic.to_string(),
            mid,
            info,
            on_publish: Vec::new(),
            abandoned: false,
            order: (self.generation, self.pub_seq),
            worker,
        });
        if let Some(rcs) = self.early.remove(&mid) {
            for rc in rcs {
                self.on_publish(mid, rc);
            }
        }
    }

    pub fn on_publish(&mut self, mid: u16, rc: ReasonCode) {
        let Some(pid) = self.outstanding.remove(&mid) else {
            self.early.entry(mid).or_default().push(rc);
            return;
        };
        let p = self.pubs[pid].as_mut().expect("publish");
        p.on_publish.push(rc);
        if p.on_publish.len() > 1 {
            self.violation(format!(
                "on_publish ran twice for publish {pid} (mid {mid})"
            ));
        }
    }

    /// `reinitialise()`: the client dropped its stored messages and their pending events.
    pub fn reinitialised(&mut self) {
        for (_, pid) in self.outstanding.drain() {
            if let Some(p) = self.pubs[pid].as_mut() {
                p.abandoned = true;
            }
        }
        self.early.clear();
        self.owed_acks.clear();
        self.generation += 1;
    }

    pub fn broker_received(&mut self, pid: usize, topic: &str, qos: QoS, dup: bool) {
        let n = self.received.entry(pid).or_insert(0);
        *n += 1;
        let order = self
            .pubs
            .get(pid)
            .and_then(|p| p.as_ref())
            .map(|p| (p.order, p.worker));
        if *n == 1 {
            // The mass profile's "bulk" messages are not checked for order.
            if let (Some((order, worker)), false) = (order, topic == "bulk") {
                // QoS 0: within one connection. QoS 1/2: within one client generation;
                // `reinitialise()` abandons the older messages, and those already written to
                // a closed connection may still be read by the broker after the new ones.
                let scope = if qos == QoS::AtMostOnce {
                    self.receiving_on
                } else {
                    order.0
                };
                let key = (topic.to_string(), qos as u8, scope, worker);
                if let Some(&(last, lpid)) = self.last_received.get(&key) {
                    if order < last {
                        self.violation(format!(
                            "publish {pid} reached the broker after publish {lpid} ({topic}, QoS {}), \
                             although it was queued first",
                            qos as u8
                        ));
                    }
                }
                self.last_received.insert(key, (order, pid));
            }
        } else if qos != QoS::AtMostOnce && !dup {
            self.violation(format!("publish {pid} was sent again without DUP"));
        }
    }

    pub fn new_route(&mut self, pid: Option<usize>, topic: &str, qos: QoS, session: &str) -> usize {
        if let (Some(pid), QoS::ExactlyOnce) = (pid, qos) {
            let key = (pid, session.to_string());
            if let Some(&e) = self.qos2_routed.get(&key) {
                if e == self.epoch {
                    self.violation(format!(
                        "QoS 2 publish {pid} reached the subscribers twice (no session was lost)"
                    ));
                }
            }
            self.qos2_routed.insert(key, self.epoch);
        }
        if self.verbose {
            let rid = self.routes.len();
            self.trace(format!(
                "broker: route r{rid} (publish {pid:?}, {topic}, q{}) into session {session}",
                qos as u8
            ));
        }
        self.routes.push(Route {
            pid,
            topic: topic.to_string(),
            qos,
            session: session.to_string(),
            deliveries: 0,
            cancelled: false,
            acked: false,
        });
        self.routes.len() - 1
    }

    pub fn session_lost(&mut self, rids: &[usize]) {
        self.epoch += 1;
        for &r in rids {
            self.routes[r].cancelled = true;
        }
    }

    pub fn route_acked(&mut self, rid: usize) {
        let r = &mut self.routes[rid];
        r.acked = true;
        if r.qos != QoS::AtMostOnce && r.deliveries == 0 {
            let q = r.qos as u8;
            self.violation(format!(
                "the client acknowledged message r{rid} (QoS {q}) that on_message never saw"
            ));
        }
    }

    /// `on_message` saw route `rid`.
    pub fn delivered(&mut self, rid: usize, qos: QoS, topic: &str) {
        self.deliveries += 1;
        let Some(r) = self.routes.get_mut(rid) else {
            self.violation(format!("on_message: unknown message r{rid}"));
            return;
        };
        r.deliveries += 1;
        let (rq, n) = (r.qos, r.deliveries);
        if rq != qos || r.topic != topic {
            self.violation(format!(
                "on_message r{rid}: QoS {} on {topic}, routed QoS {} on {}",
                qos as u8, rq as u8, self.routes[rid].topic
            ));
        }
        if n > 1 && rq != QoS::AtLeastOnce {
            self.violation(format!(
                "message r{rid} (QoS {}) delivered {n} times",
                rq as u8
            ));
        }
        if n == 1 {
            let key = (topic.to_string(), qos as u8);
            if let Some(&last) = self.last_delivered.get(&key) {
                if rid < last {
                    self.violation(format!(
                        "message r{rid} delivered after r{last} ({topic}, QoS {})",
                        qos as u8
                    ));
                }
            }
            self.last_delivered.insert(key, rid);
        }
    }

    /// Checks at the end of a run (after the quiet phase).
    pub fn final_checks(&mut self) {
        let mut v = Vec::new();
        for (pid, p) in self.pubs.iter().enumerate() {
            let Some(p) = p else { continue };
            if p.qos == QoS::AtMostOnce {
                continue;
            }
            let published = p.info.is_published();
            let pending = !published && p.info.rc() == 0;
            if pending {
                v.push(format!(
                    "publish {pid} (QoS {}, mid {}, {}) never completed",
                    p.qos as u8, p.mid, p.topic
                ));
                continue;
            }
            if p.abandoned {
                continue;
            }
            match p.on_publish.as_slice() {
                [] => v.push(format!(
                    "publish {pid} (QoS {}, mid {}) completed (published={published}) but on_publish never ran",
                    p.qos as u8, p.mid
                )),
                [rc] => {
                    if rc.is_failure() == published {
                        v.push(format!(
                            "publish {pid}: on_publish rc {rc} but is_published()={published}"
                        ));
                    }
                }
                _ => {}
            }
        }
        for (mid, rcs) in &self.early {
            v.push(format!("on_publish(mid {mid}, {rcs:?}) for no publish"));
        }
        for (rid, r) in self.routes.iter().enumerate() {
            if r.qos != QoS::AtMostOnce
                && !r.cancelled
                && r.deliveries == 0
                && r.session == self.client_id
            {
                v.push(format!(
                    "message r{rid} (publish {:?}, QoS {}, {}) was never delivered",
                    r.pid, r.qos as u8, r.topic
                ));
            }
        }
        for x in v {
            self.violation(x);
        }
    }
}
