//! The simulated broker: MQTT 3.1.1 and 5 session semantics over the world's pipes.
//!
//! Sessions: clean / persistent (3.1.1 clean session flag; MQTT 5 clean start and Session
//! Expiry Interval), kept across connections and (optionally) restarts; subscriptions; an
//! outbound queue per session with an in-flight window (the client's Receive Maximum and
//! the broker's own limit), resent in order with DUP after a reconnect; QoS 2 state in both
//! directions; its own Receive Maximum (MQTT 5), checked against what the client sends.
//! It records every message it routes into a session as a [`Route`](super::model::Route): an
//! obligation the client must meet (deliver QoS 1 at least once, QoS 2 exactly once), which
//! the broker cancels when it discards the session (where MQTT stops promising).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use mqtt_sync::codec::{self, Ack, ConnAck, Packet, Publish, SubAck, UnsubAck};
use mqtt_sync::{topic_matches_sub, Properties, Protocol, QoS, ReasonCode};

use super::world::Shared;

#[derive(Clone, Copy, Debug)]
pub struct BrokerCfg {
    /// Capacity of a connection's client -> broker direction, in bytes.
    pub pipe_cap: usize,
    /// Receive Maximum announced in CONNACK (MQTT 5).
    pub receive_max: Option<u16>,
    /// The broker's own limit of unacknowledged messages to the client.
    pub out_inflight: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutStage {
    Publish,
    PubRel,
}

#[derive(Debug)]
struct OutRoute {
    rid: usize,
    topic: String,
    qos: QoS,
    payload: Vec<u8>,
    /// Packet id once first sent (kept across reconnects).
    pkid: Option<u16>,
    stage: OutStage,
    /// Sent on the current connection.
    sent: bool,
}

#[derive(Default, Debug)]
struct Sess {
    persistent: bool,
    subs: Vec<(String, QoS)>,
    out: VecDeque<OutRoute>,
    next_pkid: u16,
    /// Incoming QoS 2 packet ids between PUBREC and PUBREL, with the publish they carried.
    in_qos2: HashMap<u16, usize>,
    /// The connection (pipe) the session is attached to.
    conn: Option<usize>,
}

struct Conn {
    pipe: usize,
    inbuf: Vec<u8>,
    /// After CONNECT: client id, protocol, client's Receive Maximum, keepalive.
    up: Option<Up>,
    /// Acks held back (the "slow acks" fault), released later.
    held: Vec<Packet>,
    /// Client QoS 1/2 publishes not yet completed by the broker (MQTT 5 receive quota).
    unacked: HashSet<u16>,
    last_in: Duration,
    /// Taken over by a newer connection of its session: closed without reading more.
    dead: bool,
}

struct Up {
    client_id: String,
    protocol: Protocol,
    client_rm: u16,
    keepalive: u16,
}

pub struct Broker {
    pub cfg: BrokerCfg,
    /// Accepting connections.
    pub up: bool,
    /// Down until then (restart).
    pub down_until: Duration,
    /// Reads nothing until then (a stalled broker).
    pub paused_until: Duration,
    /// Holds its acknowledgements of the client's publishes for a while.
    pub slow_acks: bool,
    /// Refuse the next CONNECT in CONNACK.
    pub refuse_connack: bool,
    conns: Vec<Conn>,
    sessions: HashMap<String, Sess>,
}

impl Broker {
    pub fn new(cfg: BrokerCfg) -> Broker {
        Broker {
            cfg,
            up: true,
            down_until: Duration::ZERO,
            paused_until: Duration::ZERO,
            slow_acks: false,
            refuse_connack: false,
            conns: Vec::new(),
            sessions: HashMap::new(),
        }
    }

    /// Messages queued or in flight in the session of `id`.
    pub fn session_out_len(&self, id: &str) -> usize {
        self.sessions.get(id).map_or(0, |s| s.out.len())
    }

    /// The queue of the session of `id`, for diagnostics.
    pub fn session_debug(&self, id: &str) -> String {
        self.sessions.get(id).map_or("none".into(), |s| {
            let v: Vec<String> = s
                .out
                .iter()
                .map(|r| {
                    format!(
                        "r{} q{} id={:?} {:?} sent={}",
                        r.rid, r.qos as u8, r.pkid, r.stage, r.sent
                    )
                })
                .collect();
            format!("conn={:?} [{}]", s.conn, v.join(", "))
        })
    }

    /// A new TCP connection (pipe `pipe`).
    pub fn accept(&mut self, pipe: usize) {
        self.conns.push(Conn {
            pipe,
            inbuf: Vec::new(),
            up: None,
            held: Vec::new(),
            unacked: HashSet::new(),
            last_in: Duration::ZERO,
            dead: false,
        });
    }

    /// Work is waiting: bytes to read, a connection to close, held acks.
    pub fn busy(sh: &Shared) -> bool {
        let b = &sh.broker;
        if sh.clock < b.paused_until {
            return false;
        }
        b.conns.iter().any(|c| {
            let p = &sh.pipes[c.pipe];
            !p.to_broker.is_empty() || p.client_closed || p.cut || !c.held.is_empty()
        }) || (!b.up && sh.clock >= b.down_until)
    }

    /// The next time the broker has something to do by itself (keepalive, end of a pause).
    pub fn next_timer(sh: &Shared) -> Option<Duration> {
        let b = &sh.broker;
        let mut t: Option<Duration> = None;
        let mut upd = |d: Duration| t = Some(t.map_or(d, |x| x.min(d)));
        if b.paused_until > sh.clock {
            upd(b.paused_until);
        }
        if !b.up {
            upd(b.down_until);
        }
        for c in &b.conns {
            if let Some(u) = &c.up {
                if u.keepalive > 0 {
                    upd(c.last_in + Duration::from_millis(u64::from(u.keepalive) * 1500));
                }
            }
        }
        t
    }
}

/// Packet bytes for the client.
fn send(sh: &mut Shared, ci: usize, pkt: &Packet) {
    let (pipe, protocol) = {
        let c = &sh.broker.conns[ci];
        (
            c.pipe,
            c.up.as_ref().map(|u| u.protocol).unwrap_or(Protocol::V311),
        )
    };
    let mut buf = Vec::new();
    if let Err(e) = pkt.encode(protocol, &mut buf) {
        sh.model
            .violation(format!("broker cannot encode {}: {e}", pkt.name()));
        return;
    }
    let p = &mut sh.pipes[pipe];
    if p.cut {
        return;
    }
    match p.cut_b2c {
        Some(left) if left < buf.len() => {
            p.to_client.extend(&buf[..left]);
            p.cut = true;
            p.cut_b2c = None;
            sh.model
                .trace(format!("connection {pipe} cut while the broker wrote"));
        }
        Some(left) => {
            p.cut_b2c = Some(left - buf.len());
            p.to_client.extend(&buf);
        }
        None => p.to_client.extend(&buf),
    }
    sh.poll_ready = true;
}

fn ack(pkid: u16, reason: ReasonCode) -> Ack {
    Ack {
        pkid,
        reason,
        properties: Properties::default(),
    }
}

/// One step of the broker: reads and handles what the client sent, closes ended
/// connections, releases held acks, enforces keepalives, comes back after a restart.
pub fn step(sh: &mut Shared) {
    let now = sh.clock;
    if !sh.broker.up && now >= sh.broker.down_until {
        sh.broker.up = true;
        sh.model.trace("broker is up again".into());
    }
    if now < sh.broker.paused_until {
        return;
    }
    let mut ci = 0;
    while ci < sh.broker.conns.len() {
        if !sh.broker.conns[ci].held.is_empty() && (!sh.broker.slow_acks || sh.rng.below(3) == 0) {
            let held = std::mem::take(&mut sh.broker.conns[ci].held);
            for p in &held {
                send(sh, ci, p);
                complete_unacked(sh, ci, p);
            }
        }
        let pipe = sh.broker.conns[ci].pipe;
        if sh.broker.conns[ci].dead {
            close(sh, ci);
            continue;
        }
        let mut bytes = std::mem::take(&mut sh.pipes[pipe].to_broker);
        if sh.io.partial && bytes.len() > 1 {
            let n = 1 + sh.rng.below(bytes.len() as u64) as usize;
            let rest = bytes.split_off(n);
            sh.pipes[pipe].to_broker = rest;
        }
        if !bytes.is_empty() {
            sh.broker.conns[ci].last_in = now;
            if sh.pipes[pipe].write_blocked {
                sh.pipes[pipe].write_blocked = false;
                sh.poll_ready = true;
            }
        }
        sh.broker.conns[ci].inbuf.extend_from_slice(&bytes);
        let mut closed = false;
        loop {
            let protocol = sh.broker.conns[ci]
                .up
                .as_ref()
                .map(|u| u.protocol)
                .unwrap_or(Protocol::V311);
            let buf = std::mem::take(&mut sh.broker.conns[ci].inbuf);
            match codec::decode(&buf, protocol, usize::MAX) {
                Ok(None) => {
                    sh.broker.conns[ci].inbuf = buf;
                    break;
                }
                Ok(Some((pkt, n))) => {
                    sh.broker.conns[ci].inbuf = buf[n..].to_vec();
                    if !handle(sh, ci, pkt) {
                        closed = true;
                        break;
                    }
                }
                Err(e) => {
                    sh.model
                        .violation(format!("the client sent a malformed packet: {e:?}"));
                    closed = true;
                    break;
                }
            }
        }
        let p = &sh.pipes[pipe];
        let ended = p.to_broker.is_empty() && (p.client_closed || p.cut);
        let ka_expired = sh.broker.conns[ci].up.as_ref().is_some_and(|u| {
            u.keepalive > 0
                && now
                    > sh.broker.conns[ci].last_in
                        + Duration::from_millis(u64::from(u.keepalive) * 1500)
        });
        if ka_expired && !closed && !ended {
            sh.model
                .trace(format!("broker: keepalive expired on connection {pipe}"));
        }
        if closed || ended || ka_expired {
            close(sh, ci);
            continue;
        }
        ci += 1;
    }
}

/// Ends connection `ci`: the client sees the end; a session that does not persist goes.
fn close(sh: &mut Shared, ci: usize) {
    let c = sh.broker.conns.remove(ci);
    if sh.model.verbose {
        sh.model
            .trace(format!("broker: connection {} closed", c.pipe));
    }
    sh.pipes[c.pipe].cut = true;
    sh.poll_ready = true;
    if let Some(u) = c.up {
        let discard = match sh.broker.sessions.get_mut(&u.client_id) {
            Some(s) if s.conn == Some(c.pipe) => {
                s.conn = None;
                !s.persistent
            }
            _ => false,
        };
        if discard {
            discard_session(sh, &u.client_id, "not persistent, connection ended");
        }
    }
}

fn discard_session(sh: &mut Shared, id: &str, why: &str) {
    if let Some(s) = sh.broker.sessions.remove(id) {
        let rids: Vec<usize> = s.out.iter().map(|r| r.rid).collect();
        sh.model.trace(format!(
            "broker: session {id} discarded ({why}); {} queued message(s) cancelled",
            rids.len()
        ));
        sh.model.session_lost(&rids);
    }
}

/// Restarts the broker: every connection ends; sessions survive only with `keep`.
pub fn restart(sh: &mut Shared, keep: bool, down_for: Duration) {
    while !sh.broker.conns.is_empty() {
        let c = sh.broker.conns.remove(0);
        sh.pipes[c.pipe].cut = true;
        if let Some(u) = c.up {
            if let Some(s) = sh.broker.sessions.get_mut(&u.client_id) {
                s.conn = None;
            }
        }
    }
    sh.poll_ready = true;
    let ids: Vec<String> = sh.broker.sessions.keys().cloned().collect();
    for id in ids {
        let persistent = sh.broker.sessions[&id].persistent;
        if !keep || !persistent {
            discard_session(sh, &id, "broker restart");
        }
    }
    sh.broker.up = false;
    sh.broker.down_until = sh.clock + down_for;
}

/// Handles one packet; false: the connection is closed.
fn handle(sh: &mut Shared, ci: usize, pkt: Packet) -> bool {
    let up_id = sh.broker.conns[ci].up.as_ref().map(|u| u.client_id.clone());
    let Some(id) = up_id else {
        return match pkt {
            Packet::Connect(c) => connect(sh, ci, c),
            other => {
                sh.model
                    .violation(format!("the client sent {} before CONNECT", other.name()));
                false
            }
        };
    };
    let v5 = sh.broker.conns[ci]
        .up
        .as_ref()
        .is_some_and(|u| u.protocol == Protocol::V5);
    match pkt {
        Packet::Connect(_) => {
            sh.model
                .violation("the client sent a second CONNECT".into());
            false
        }
        Packet::Publish(p) => {
            publish_in(sh, ci, &id, p, v5);
            true
        }
        Packet::PubRel(a) => {
            let known = sh
                .broker
                .sessions
                .get_mut(&id)
                .and_then(|s| s.in_qos2.remove(&a.pkid))
                .is_some();
            let rc = if known || !v5 {
                ReasonCode::SUCCESS
            } else {
                ReasonCode(0x92)
            };
            let pkt = Packet::PubComp(ack(a.pkid, rc));
            out_ack(sh, ci, pkt);
            true
        }
        Packet::PubAck(a) => {
            out_done(sh, &id, a.pkid, QoS::AtLeastOnce, OutStage::Publish);
            pump(sh, &id);
            true
        }
        Packet::PubRec(a) => {
            let s = sh.broker.sessions.get_mut(&id);
            let found = s.and_then(|s| {
                s.out
                    .iter_mut()
                    .find(|r| r.pkid == Some(a.pkid) && r.sent && r.qos == QoS::ExactlyOnce)
            });
            match found {
                Some(r) => {
                    r.stage = OutStage::PubRel;
                    send(sh, ci, &Packet::PubRel(ack(a.pkid, ReasonCode::SUCCESS)));
                }
                None => sh
                    .model
                    .trace(format!("broker: PUBREC for unknown id {}", a.pkid)),
            }
            true
        }
        Packet::PubComp(a) => {
            out_done(sh, &id, a.pkid, QoS::ExactlyOnce, OutStage::PubRel);
            pump(sh, &id);
            true
        }
        Packet::Subscribe(s) => {
            let mut reasons = Vec::new();
            if let Some(sess) = sh.broker.sessions.get_mut(&id) {
                for (f, o) in &s.filters {
                    sess.subs.retain(|(g, _)| g != f);
                    sess.subs.push((f.clone(), o.qos));
                    reasons.push(ReasonCode(o.qos as u8));
                }
            }
            sh.model.trace(format!(
                "broker: SUBSCRIBE {:?}",
                s.filters.iter().map(|f| &f.0).collect::<Vec<_>>()
            ));
            send(
                sh,
                ci,
                &Packet::SubAck(SubAck {
                    pkid: s.pkid,
                    reasons,
                    properties: Properties::default(),
                }),
            );
            true
        }
        Packet::Unsubscribe(u) => {
            let mut reasons = Vec::new();
            if let Some(sess) = sh.broker.sessions.get_mut(&id) {
                for f in &u.filters {
                    let before = sess.subs.len();
                    sess.subs.retain(|(g, _)| g != f);
                    reasons.push(if sess.subs.len() < before {
                        ReasonCode::SUCCESS
                    } else {
                        ReasonCode(0x11)
                    });
                }
            }
            send(
                sh,
                ci,
                &Packet::UnsubAck(UnsubAck {
                    pkid: u.pkid,
                    reasons,
                    properties: Properties::default(),
                }),
            );
            true
        }
        Packet::PingReq => {
            send(sh, ci, &Packet::PingResp);
            true
        }
        Packet::Disconnect(_) => false,
        other => {
            sh.model
                .violation(format!("the client sent an unexpected {}", other.name()));
            false
        }
    }
}

fn connect(sh: &mut Shared, ci: usize, c: codec::Connect) -> bool {
    let v5 = c.protocol == Protocol::V5;
    sh.broker.conns[ci].up = Some(Up {
        client_id: c.client_id.clone(),
        protocol: c.protocol,
        client_rm: c.properties.receive_maximum.unwrap_or(u16::MAX),
        keepalive: c.keep_alive,
    });
    sh.broker.conns[ci].last_in = sh.clock;
    if sh.broker.refuse_connack {
        sh.broker.refuse_connack = false;
        sh.model.trace("broker: CONNACK refusal".into());
        let code = if v5 { 0x87 } else { 5 };
        let pkt = Packet::ConnAck(ConnAck {
            session_present: false,
            code,
            properties: Properties::default(),
        });
        send(sh, ci, &pkt);
        sh.broker.conns[ci].up = None;
        return false;
    }
    let id = c.client_id.clone();
    // Take-over: an older connection with this client id ends; what it still carries is
    // never read (closed at its next step).
    let me = sh.broker.conns[ci].pipe;
    for oi in 0..sh.broker.conns.len() {
        let old = &sh.broker.conns[oi];
        if old.pipe != me && old.up.as_ref().is_some_and(|u| u.client_id == id) {
            let pipe = old.pipe;
            sh.pipes[pipe].cut = true;
            sh.broker.conns[oi].up = None;
            sh.broker.conns[oi].dead = true;
            if let Some(s) = sh.broker.sessions.get_mut(&id) {
                if s.conn == Some(pipe) {
                    s.conn = None;
                }
            }
        }
    }
    if c.clean_start {
        discard_session(sh, &id, "clean start");
    }
    connect_finish(sh, ci, &id, &c, v5)
}

fn connect_finish(sh: &mut Shared, ci: usize, id: &str, c: &codec::Connect, v5: bool) -> bool {
    let present = sh.broker.sessions.contains_key(id);
    let persistent = if v5 {
        c.properties.session_expiry_interval.unwrap_or(0) > 0
    } else {
        !c.clean_start
    };
    let pipe = sh.broker.conns[ci].pipe;
    let s = sh.broker.sessions.entry(id.to_string()).or_default();
    s.persistent = persistent;
    s.conn = Some(pipe);
    for r in s.out.iter_mut() {
        r.sent = false;
    }
    let mut props = Properties::default();
    if v5 {
        props.receive_maximum = sh.broker.cfg.receive_max;
    }
    sh.model.trace(format!(
        "broker: CONNECT {id} clean={} -> session_present={present} persistent={persistent}",
        c.clean_start
    ));
    send(
        sh,
        ci,
        &Packet::ConnAck(ConnAck {
            session_present: present,
            code: 0,
            properties: props,
        }),
    );
    pump(sh, id);
    true
}

/// Sends (or holds, with slow acks) an ack of a client publish.
fn out_ack(sh: &mut Shared, ci: usize, pkt: Packet) {
    if sh.broker.slow_acks {
        sh.broker.conns[ci].held.push(pkt);
    } else {
        send(sh, ci, &pkt);
        complete_unacked(sh, ci, &pkt);
    }
}

fn complete_unacked(sh: &mut Shared, ci: usize, pkt: &Packet) {
    if let Packet::PubAck(a) | Packet::PubComp(a) = pkt {
        sh.broker.conns[ci].unacked.remove(&a.pkid);
    }
}

fn publish_in(sh: &mut Shared, ci: usize, id: &str, p: Publish, v5: bool) {
    let pid = super::model::parse_tag(&p.payload, b'p');
    sh.model.receiving_on = sh.broker.conns[ci].pipe as u64;
    if sh.model.verbose {
        let pipe = sh.broker.conns[ci].pipe;
        sh.model.trace(format!(
            "broker: connection {pipe}: PUBLISH p{pid:?} q{} dup={} id={}",
            p.qos as u8, p.dup, p.pkid
        ));
    }
    if p.qos != QoS::AtMostOnce {
        let conn = &mut sh.broker.conns[ci];
        let fresh = conn.unacked.insert(p.pkid);
        if v5 && fresh {
            if let Some(rm) = sh.broker.cfg.receive_max {
                if conn.unacked.len() > usize::from(rm) {
                    sh.model.violation(format!(
                        "the client exceeded the broker's Receive Maximum {rm}: {} unacknowledged",
                        conn.unacked.len()
                    ));
                }
            }
        }
    }
    match p.qos {
        QoS::AtMostOnce => route(sh, &p, pid),
        QoS::AtLeastOnce => {
            route(sh, &p, pid);
            out_ack(sh, ci, Packet::PubAck(ack(p.pkid, ReasonCode::SUCCESS)));
        }
        QoS::ExactlyOnce => {
            let pending = sh
                .broker
                .sessions
                .get(id)
                .and_then(|s| s.in_qos2.get(&p.pkid).copied());
            match pending {
                Some(prev) => {
                    if !p.dup || pid != Some(prev) {
                        sh.model.violation(format!(
                            "QoS 2 PUBLISH id {} (publish {pid:?}, dup={}) while id {} still \
                             holds publish {prev} (before its PUBREL)",
                            p.pkid, p.dup, p.pkid
                        ));
                    }
                }
                None => {
                    route(sh, &p, pid);
                    if let (Some(s), Some(pid)) = (sh.broker.sessions.get_mut(id), pid) {
                        s.in_qos2.insert(p.pkid, pid);
                    }
                }
            }
            out_ack(sh, ci, Packet::PubRec(ack(p.pkid, ReasonCode::SUCCESS)));
        }
    }
}

/// Routes a message into every session with a matching subscription.
pub fn route(sh: &mut Shared, p: &Publish, pid: Option<usize>) {
    if let Some(pid) = pid {
        sh.model.broker_received(pid, &p.topic, p.qos, p.dup);
    }
    let ids: Vec<String> = sh.broker.sessions.keys().cloned().collect();
    let mut ids = ids;
    ids.sort();
    for id in ids {
        let s = &sh.broker.sessions[&id];
        let qos = s
            .subs
            .iter()
            .filter(|(f, _)| topic_matches_sub(f, &p.topic))
            .map(|(_, q)| *q)
            .max();
        let Some(sub_qos) = qos else { continue };
        let qos = sub_qos.min(p.qos);
        if qos == QoS::AtMostOnce && s.conn.is_none() {
            continue;
        }
        let rid = sh.model.new_route(pid, &p.topic, qos, &id);
        let mut payload = format!("r{rid};").into_bytes();
        payload.extend_from_slice(&p.payload);
        let s = sh.broker.sessions.get_mut(&id).expect("session");
        s.out.push_back(OutRoute {
            rid,
            topic: p.topic.clone(),
            qos,
            payload,
            pkid: None,
            stage: OutStage::Publish,
            sent: false,
        });
        pump(sh, &id);
    }
}

/// An outbound message completed (PUBACK / PUBCOMP).
fn out_done(sh: &mut Shared, id: &str, pkid: u16, qos: QoS, stage: OutStage) {
    if let Some(s) = sh.broker.sessions.get_mut(id) {
        if let Some(i) = s
            .out
            .iter()
            .position(|r| r.pkid == Some(pkid) && r.sent && r.qos == qos && r.stage == stage)
        {
            let r = s.out.remove(i).expect("index");
            sh.model.route_acked(r.rid);
            return;
        }
    }
    sh.model.trace(format!(
        "broker: ack for unknown outbound id {pkid} ignored"
    ));
}

/// Sends the session's queued messages to its connection, in order, within the window.
fn pump(sh: &mut Shared, id: &str) {
    let Some(pipe) = sh.broker.sessions.get(id).and_then(|s| s.conn) else {
        return;
    };
    let Some(ci) = sh.broker.conns.iter().position(|c| c.pipe == pipe) else {
        return;
    };
    let (v5, client_rm) = {
        let u = sh.broker.conns[ci].up.as_ref().expect("up");
        (u.protocol == Protocol::V5, u.client_rm)
    };
    let window = sh
        .broker
        .cfg
        .out_inflight
        .min(usize::from(client_rm))
        .max(1);
    let mut sends = Vec::new();
    {
        let s = sh.broker.sessions.get_mut(id).expect("session");
        let mut inflight = s
            .out
            .iter()
            .filter(|r| r.sent && r.qos != QoS::AtMostOnce)
            .count();
        let mut i = 0;
        while i < s.out.len() {
            if s.out[i].sent {
                i += 1;
                continue;
            }
            if s.out[i].qos == QoS::AtMostOnce {
                let r = s.out.remove(i).expect("index");
                sends.push((
                    Packet::Publish(Publish {
                        dup: false,
                        qos: QoS::AtMostOnce,
                        retain: false,
                        topic: r.topic,
                        pkid: 0,
                        properties: Properties::default(),
                        payload: r.payload,
                    }),
                    Some(r.rid),
                ));
                continue;
            }
            if inflight >= window {
                break;
            }
            let dup = s.out[i].pkid.is_some();
            if s.out[i].pkid.is_none() {
                // A packet id not used by another message in flight.
                loop {
                    s.next_pkid = s.next_pkid.wrapping_add(1).max(1);
                    let cand = s.next_pkid;
                    if !s.out.iter().any(|r| r.pkid == Some(cand)) {
                        break;
                    }
                }
                s.out[i].pkid = Some(s.next_pkid);
            }
            let r = &mut s.out[i];
            r.sent = true;
            inflight += 1;
            let pkid = r.pkid.expect("pkid");
            let pkt = match r.stage {
                OutStage::Publish => Packet::Publish(Publish {
                    dup,
                    qos: r.qos,
                    retain: false,
                    topic: r.topic.clone(),
                    pkid,
                    properties: Properties::default(),
                    payload: r.payload.clone(),
                }),
                OutStage::PubRel => Packet::PubRel(ack(pkid, ReasonCode::SUCCESS)),
            };
            sends.push((pkt, None));
            i += 1;
        }
    }
    let _ = v5;
    for (p, qos0_rid) in sends {
        send(sh, ci, &p);
        if let Some(rid) = qos0_rid {
            sh.model.route_acked(rid);
        }
    }
}
