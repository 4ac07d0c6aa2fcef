#[macro_use]
mod support;

// Persistence across crashes, against a real mosquitto: a publisher in a child process (this
// test binary re-invoked, see `persistence_child`) publishes a numbered stream at QoS 1 and
// QoS 2 with a `FileStore`, and is killed with SIGKILL at random points, then restarted with
// the same client id and store until the whole stream is out. A subscriber with a persistent
// QoS 2 session checks that no QoS 1 message is lost and every QoS 2 message arrives exactly
// once. Seeded randomness: set MQTT_SYNC_PERSIST_SEED to replay a run.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mqtt_sync::persistence::{FileStore, SyncPolicy};
use mqtt_sync::{CleanStart, Client, ConnectOptions, MessageInfo, Properties, Protocol, QoS};
use support::wait::poll_until;
use support::{Mosquitto, T};

const CHILD_ENV: &str = "MQTT_SYNC_PERSIST_CHILD";
/// Messages in the stream (even: QoS 1, odd: QoS 2).
const N: u32 = 800;
/// Rounds that end with a SIGKILL before the last one runs to the end.
const KILLS: u32 = 7;
/// A child waits for the completion of the message this many places back before the next
/// publish, so that a kill finds messages in every stage of their flows.
const PACE: usize = 30;
/// How long anything of the child (a line, its end) may take.
const CHILD_T: Duration = Duration::from_secs(60);

/// xorshift64*: small, seeded, good enough to pick kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    std::env::var("MQTT_SYNC_PERSIST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        })
}

fn policy_name(p: u64) -> &'static str {
    ["always", "every8", "interval", "never", "beforesend"][p as usize % 5]
}

fn policy(name: &str) -> SyncPolicy {
    match name {
        "every8" => SyncPolicy::EveryN(8),
        "interval" => SyncPolicy::Interval(Duration::from_millis(2)),
        "never" => SyncPolicy::Never,
        "beforesend" => SyncPolicy::BeforeSend,
        _ => SyncPolicy::Always,
    }
}

fn proto_of(s: &str) -> Protocol {
    if s == "5" {
        Protocol::V5
    } else {
        Protocol::V311
    }
}

/// A persistent-session client: clean_session(false) for 3.1.1, CleanStart::Never with a
/// Session Expiry Interval for 5.
fn persistent(proto: Protocol, id: &str, port: u16) -> (Client, ConnectOptions) {
    let mut b = Client::builder().client_id(id).protocol(proto);
    if proto != Protocol::V5 {
        b = b.clean_session(false);
    }
    let c = b.build().expect("build client");
    c.reconnect_delay_set(Duration::from_millis(20), Duration::from_millis(200))
        .unwrap();
    let mut opts = ConnectOptions {
        port,
        ..ConnectOptions::new("127.0.0.1")
    };
    if proto == Protocol::V5 {
        opts.clean_start = CleanStart::Never;
        opts.properties = Some(Properties {
            session_expiry_interval: Some(600),
            ..Default::default()
        });
    }
    (c, opts)
}

/// The publisher's process: entry point for the child runs of `crash_*` (ignored in a normal
/// run; the parent selects it with `--ignored --exact` and passes its job in CHILD_ENV:
/// `port proto client_id store start round policy topic`).
#[test]
#[ignore = "the child process of the persistence crash tests"]
fn persistence_child() {
    let Ok(job) = std::env::var(CHILD_ENV) else {
        return;
    };
    let f: Vec<&str> = job.split(' ').collect();
    let (port, proto, id, store, start, round, pol, topic) = (
        f[0].parse::<u16>().unwrap(),
        proto_of(f[1]),
        f[2],
        f[3],
        f[4].parse::<u32>().unwrap(),
        f[5],
        policy(f[6]),
        f[7],
    );
    let (c, opts) = persistent(proto, id, port);
    c.persistence_set(FileStore::open_with(store, pol).expect("open the store"))
        .expect("load the store");
    c.connect_with(opts).expect("connect");
    c.loop_start().unwrap();
    let mut pending: std::collections::VecDeque<MessageInfo> = Default::default();
    for i in start..N {
        let qos = if i % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        let info = c
            .publish(
                &format!("{topic}/q{}", qos as u8),
                format!("{i}:{round}"),
                qos,
                false,
            )
            .expect("publish");
        println!("PERSIST-OK {i}");
        pending.push_back(info);
        if pending.len() > PACE {
            let old = pending.pop_front().unwrap();
            old.wait_for_publish(Some(CHILD_T)).expect("acknowledged");
        }
    }
    // Also the messages restored from the store (they have no MessageInfo).
    assert!(
        poll_until(CHILD_T, || c.queued_messages() + c.inflight_messages() == 0),
        "the queue did not drain"
    );
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
    println!("PERSIST-DONE");
}

enum Line {
    Ok(u32),
    Done,
}

/// Starts a child and a thread that forwards its protocol lines.
fn spawn_child(job: &str) -> (Child, mpsc::Receiver<Line>, std::thread::JoinHandle<()>) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "persistence_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, job)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            // libtest may print "test persistence_child ... " in front of the first line.
            let l = if let Some(at) = line.find("PERSIST-OK ") {
                Line::Ok(line[at + 11..].trim().parse().expect("a number"))
            } else if line.contains("PERSIST-DONE") {
                Line::Done
            } else {
                continue;
            };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    (child, rx, reader)
}

fn crash_and_restart(proto: Protocol) {
    let seed = seed();
    println!("persistence crash test ({proto:?}): seed {seed} (MQTT_SYNC_PERSIST_SEED)");
    let mut rng = Rng(seed);
    let broker = Mosquitto::builder().config("max_queued_messages 0").start();
    let tag = if proto == Protocol::V5 { "5" } else { "4" };
    let topic = format!("persist/{tag}");
    let store_dir = tempfile::tempdir().unwrap();
    let store = store_dir.path().join("publisher.store");

    // The subscriber: persistent session, QoS 2, never killed.
    let (sub, opts) = persistent(proto, &format!("persist-sub-{tag}"), broker.port());
    let (mtx, mrx) = mpsc::channel::<(u8, String)>();
    sub.on_message(move |_, m| {
        let _ = mtx.send((m.qos() as u8, String::from_utf8_lossy(m.payload()).into()));
    });
    let (stx, srx) = mpsc::channel();
    sub.on_subscribe(move |_, _, rcs, _| {
        let _ = stx.send(rcs.to_vec());
    });
    sub.connect_with(opts).unwrap();
    sub.loop_start().unwrap();
    assert!(poll_until(T, || sub.is_connected()));
    sub.subscribe(&format!("{topic}/#"), QoS::ExactlyOnce)
        .unwrap();
    let rcs = srx.recv_timeout(T).expect("SUBACK");
    assert_eq!(rcs[0].value(), 2);

    let mut next = 0u32;
    let mut boundaries = HashSet::new();
    let mut kills = 0;
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds <= KILLS + 20, "seed {seed}: too many rounds");
        let kill_after = (kills < KILLS).then(|| 1 + rng.below(80) as u32);
        let pol = policy_name(rng.below(5));
        let job = format!(
            "{} {tag} persist-pub-{tag} {} {next} {rounds} {pol} {topic}",
            broker.port(),
            store.display()
        );
        let (mut child, lines, reader) = spawn_child(&job);
        let mut count = 0;
        let mut done = false;
        let mut killed = false;
        loop {
            match lines.recv_timeout(CHILD_T) {
                Ok(Line::Ok(i)) => {
                    assert_eq!(i, next, "seed {seed}: the child publishes in order");
                    next = i + 1;
                    count += 1;
                    if !killed && Some(count) == kill_after {
                        child.kill().unwrap(); // SIGKILL
                        killed = true;
                    }
                }
                Ok(Line::Done) => done = true,
                // The child's stdout closed: it ended (or was killed).
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("seed {seed}: the child (round {rounds}) went silent");
                }
            }
        }
        reader.join().unwrap();
        let status = child.wait().unwrap();
        println!(
            "round {rounds}: policy {pol}, {count} published, {}",
            if killed { "killed" } else { "ran to the end" }
        );
        if done {
            break;
        }
        assert!(killed, "seed {seed}: the child failed: {status}");
        kills += 1;
        // The message after the last one reported may have been stored before the kill: the
        // next round publishes it again (an application-level resend, with a new round).
        boundaries.insert(next);
    }

    // A marker behind the stream: once it arrives, everything queued before it has.
    let (marker, mopts) = persistent(proto, &format!("persist-end-{tag}"), broker.port());
    marker.connect_with(mopts).unwrap();
    marker.loop_start().unwrap();
    // MQTT keeps the order within one QoS level only: each marker goes at its stream's QoS.
    for (q, qos) in [(1, QoS::AtLeastOnce), (2, QoS::ExactlyOnce)] {
        marker
            .publish(&format!("{topic}/q{q}"), "end", qos, false)
            .unwrap()
            .wait_for_publish(Some(T))
            .unwrap();
    }
    let mut q1: BTreeMap<u32, u32> = BTreeMap::new();
    let mut q2: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut ends = 0;
    while ends < 2 {
        let (qos, p) = mrx
            .recv_timeout(CHILD_T)
            .unwrap_or_else(|_| panic!("seed {seed}: the subscriber went silent"));
        if p == "end" {
            ends += 1;
            continue;
        }
        let (i, round) = p.split_once(':').unwrap();
        let (i, round): (u32, u32) = (i.parse().unwrap(), round.parse().unwrap());
        if i % 2 == 0 {
            assert_eq!(qos, 1);
            *q1.entry(i).or_default() += 1;
        } else {
            assert_eq!(qos, 2);
            q2.entry(i).or_default().push(round);
        }
    }
    for i in (0..N).step_by(2) {
        assert!(q1.contains_key(&i), "seed {seed}: QoS 1 message {i} lost");
    }
    for i in (1..N).step_by(2) {
        let rounds = q2
            .get(&i)
            .unwrap_or_else(|| panic!("seed {seed}: QoS 2 message {i} lost"));
        let distinct: HashSet<u32> = rounds.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            rounds.len(),
            "seed {seed}: QoS 2 message {i} delivered twice (rounds {rounds:?})"
        );
        assert!(
            rounds.len() == 1 || boundaries.contains(&i),
            "seed {seed}: QoS 2 message {i} arrived from rounds {rounds:?}, not at a kill point"
        );
    }
    let dups = q1.values().filter(|&&n| n > 1).count();
    println!("{proto:?}: {N} messages, {kills} kills, {rounds} rounds, {dups} QoS 1 duplicates");
    // (A round may reach the end of the stream before its kill point.)
    assert!(kills > 0, "seed {seed}: no kill");
    sub.disconnect().unwrap();
    marker.disconnect().unwrap();
}

#[test]
fn crash_and_restart_v311() {
    crash_and_restart(Protocol::V311);
}

#[test]
fn crash_and_restart_v5() {
    crash_and_restart(Protocol::V5);
}

/// The store hands a dropped client's queue to the next client: messages published while
/// offline, never sent, go out after the next client connects, once.
#[test]
fn a_dropped_clients_queue_is_sent_by_the_next_client() {
    let broker = Mosquitto::start();
    let store = mqtt_sync::persistence::MemoryStore::new();
    let (sub, opts) = persistent(Protocol::V311, "persist-mem-sub", broker.port());
    let (mtx, mrx) = mpsc::channel::<String>();
    sub.on_message(move |_, m| {
        let _ = mtx.send(String::from_utf8_lossy(m.payload()).into());
    });
    sub.connect_with(opts).unwrap();
    sub.loop_start().unwrap();
    assert!(poll_until(T, || sub.is_connected()));
    let (stx, srx) = mpsc::channel();
    sub.on_subscribe(move |_, _, _, _| {
        let _ = stx.send(());
    });
    sub.subscribe("persist/mem", QoS::ExactlyOnce).unwrap();
    srx.recv_timeout(T).unwrap();

    let (c, _) = persistent(Protocol::V311, "persist-mem-pub", broker.port());
    c.persistence_set(store.clone()).unwrap();
    for i in 0..5 {
        let qos = if i % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        c.publish("persist/mem", format!("m{i}"), qos, false)
            .unwrap();
    }
    assert_eq!(store.len(), 5);
    drop(c);
    assert_eq!(store.len(), 5, "dropping the client keeps the store");

    let (c, opts) = persistent(Protocol::V311, "persist-mem-pub", broker.port());
    c.persistence_set(store.clone()).unwrap();
    assert_eq!(c.queued_messages(), 5);
    // Too late once connected.
    c.connect_with(opts).unwrap();
    c.loop_start().unwrap();
    assert!(matches!(
        c.persistence_set(store.clone()),
        Err(mqtt_sync::Error::InvalidState(_))
    ));
    let mut got = Vec::new();
    while got.len() < 5 {
        got.push(mrx.recv_timeout(T).expect("a message"));
    }
    // MQTT orders messages within one QoS level only.
    got.sort();
    assert_eq!(got, ["m0", "m1", "m2", "m3", "m4"]);
    assert!(poll_until(T, || store.is_empty()), "{:?}", store.keys());
    c.disconnect().unwrap();
    sub.disconnect().unwrap();
}

/// What a store was asked, in order, and how much of it was flushed: `ops[..flushed]` is what
/// a group-committing store would have on the disk.
#[derive(Default)]
struct FlushLog {
    ops: Vec<mqtt_sync::persistence::Key>,
    flushed: usize,
    flushes: usize,
}

impl FlushLog {
    /// The last record written for `key` was flushed (a power loss would not lose it).
    fn durable(&self, key: mqtt_sync::persistence::Key) -> bool {
        match self.ops.iter().rposition(|k| *k == key) {
            Some(i) => i < self.flushed,
            None => false,
        }
    }
}

/// A store that records its calls (the records themselves go to a `MemoryStore`).
#[derive(Default)]
struct RecordingStore {
    inner: mqtt_sync::persistence::MemoryStore,
    log: std::sync::Arc<std::sync::Mutex<FlushLog>>,
    /// The next this many flushes fail (a disk that cannot sync).
    fail_flushes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl RecordingStore {
    /// A store whose next `fail` flushes fail (the count can be raised while it is in use).
    fn failing(fail: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Self {
        RecordingStore {
            fail_flushes: fail,
            ..Default::default()
        }
    }
}

impl mqtt_sync::persistence::Persistence for RecordingStore {
    fn put(&mut self, key: mqtt_sync::persistence::Key, value: &[u8]) -> std::io::Result<()> {
        self.log.lock().unwrap().ops.push(key);
        self.inner.put(key, value)
    }
    fn remove(&mut self, key: mqtt_sync::persistence::Key) -> std::io::Result<()> {
        self.log.lock().unwrap().ops.push(key);
        self.inner.remove(key)
    }
    fn load(&mut self) -> std::io::Result<Vec<(mqtt_sync::persistence::Key, Vec<u8>)>> {
        self.inner.load()
    }
    fn flush(&mut self) -> std::io::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        if self
            .fail_flushes
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(std::io::Error::other("injected: the disk cannot sync"));
        }
        let mut l = self.log.lock().unwrap();
        l.flushed = l.ops.len();
        l.flushes += 1;
        Ok(())
    }
}

/// Group commit (`SyncPolicy::BeforeSend`) rests on `Persistence::flush` being called before
/// the bytes that depend on a record reach the socket. A scripted broker checks, as each
/// packet arrives, that the record behind it was flushed: a stored message before its
/// PUBLISH (QoS 1 and 2, single and in a burst), the PUBREC stage before PUBREL, an incoming
/// QoS 2 message before PUBREC and its last record before PUBCOMP.
#[test]
fn records_are_flushed_before_the_packets_that_depend_on_them() {
    use mqtt_sync::persistence::Key;
    use support::scripted_client::{self as sc, s, Ev};
    let log = std::sync::Arc::new(std::sync::Mutex::new(FlushLog::default()));
    let broker = sc::ScriptedBroker::bind();
    let c = sc::v311("persist-flush");
    c.persistence_set(RecordingStore {
        log: log.clone(),
        ..Default::default()
    })
    .unwrap();
    let ev = sc::hook(&c);
    let mut conn = sc::start(&broker, &c, &ev, 60);
    let durable = |key| log.lock().unwrap().durable(key);

    // QoS 1 and QoS 2, one at a time.
    let info = c.publish("f/1", "a", QoS::AtLeastOnce, false).unwrap();
    let mid = info.mid();
    conn.expect_packet(&s::publish("f/1", b"a", 1, mid, false, false), T);
    assert!(
        durable(Key::Outgoing(mid)),
        "QoS 1 PUBLISH sent before its record was flushed"
    );
    conn.send(&s::puback(mid));
    info.wait_for_publish(Some(T)).unwrap();

    let info = c.publish("f/2", "b", QoS::ExactlyOnce, false).unwrap();
    let mid = info.mid();
    conn.expect_packet(&s::publish("f/2", b"b", 2, mid, false, false), T);
    assert!(
        durable(Key::Outgoing(mid)),
        "QoS 2 PUBLISH sent before its record was flushed"
    );
    conn.send(&s::pubrec(mid));
    conn.expect_packet(&s::pubrel(mid), T);
    assert!(
        durable(Key::Outgoing(mid)),
        "PUBREL sent before the PUBREC stage was flushed"
    );
    conn.send(&s::pubcomp(mid));
    info.wait_for_publish(Some(T)).unwrap();

    // A burst from another thread while the loop writes: every PUBLISH that arrives has its
    // record flushed, whichever write carried it.
    let burst = {
        let c = c.clone();
        std::thread::spawn(move || {
            (0..200)
                .map(|i| {
                    c.publish("f/burst", format!("{i}"), QoS::AtLeastOnce, false)
                        .unwrap()
                        .mid()
                })
                .collect::<Vec<u16>>()
        })
    };
    for _ in 0..200 {
        let p = conn.read_packet(T);
        let mid = s::packet_id(&p).expect("a PUBLISH with an id");
        assert!(
            durable(Key::Outgoing(mid)),
            "burst PUBLISH {mid} before its flush"
        );
        conn.send(&s::puback(mid));
    }
    assert_eq!(burst.join().unwrap().len(), 200);

    // Incoming QoS 2.
    conn.send(&s::publish("in/2", b"x", 2, 7, false, false));
    conn.expect_packet(&s::pubrec(7), T);
    assert!(
        durable(Key::Incoming(7)),
        "PUBREC sent before the message's record was flushed"
    );
    conn.send(&s::pubrel(7));
    conn.expect_packet(&s::pubcomp(7), T);
    assert!(
        durable(Key::Incoming(7)),
        "PUBCOMP sent before the last record was flushed"
    );
    ev.wait_for(T, |e| matches!(e, Ev::Message { mid: 7, .. }));

    let flushes = log.lock().unwrap().flushes;
    assert!(flushes > 0);
    c.disconnect().unwrap();
}

/// A store that cannot flush: nothing that depends on it is sent; the connection closes with
/// the error in `on_disconnect`, the message stays queued, and once the store flushes again
/// it goes out on the next connection.
#[test]
fn a_failing_flush_sends_nothing_and_the_message_goes_after_the_reconnect() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use support::scripted_client::{self as sc, s, Ev};
    let fail = std::sync::Arc::new(AtomicUsize::new(0));
    let broker = sc::ScriptedBroker::bind();
    let c = sc::v311("persist-flush-fail");
    sc::fast_reconnect(&c);
    c.persistence_set(RecordingStore::failing(fail.clone()))
        .unwrap();
    let ev = sc::hook(&c);
    let mut conn = sc::start(&broker, &c, &ev, 60);
    fail.store(1, SeqCst);
    let info = c.publish("f/fail", "m", QoS::AtLeastOnce, false).unwrap();
    // The PUBLISH is not written: the broker sees the connection end instead.
    conn.expect_closed(T);
    let e = ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    assert!(matches!(e, Ev::Disconnect { .. }), "{e:?}");
    assert_eq!(fail.load(SeqCst), 0, "the failing flush was not called");
    assert!(!info.is_published());
    let (mut conn, _) = sc::accept_connack(&broker, &ev, &sc::ok_connack(&c));
    let p = conn.read_packet(T);
    assert_eq!(
        s::parse_client_packet_type(&p),
        3,
        "expected the PUBLISH again"
    );
    assert_eq!(s::packet_id(&p), Some(info.mid()));
    conn.send(&s::puback(info.mid()));
    info.wait_for_publish(Some(T)).unwrap();
    c.disconnect().unwrap();
}

/// A store that cannot flush while the loop connects: each attempt writes nothing and is
/// reported once, by one `on_connect_fail` carrying the persistence error (not a second one
/// saying the connection was lost), its socket is reported opened and closed, and the
/// attempt after the store recovers connects.
#[test]
fn a_store_failing_at_connect_reports_each_attempt_once() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use support::scripted_client::{self as sc, Ev};
    let broker = sc::ScriptedBroker::bind();
    let c = sc::v311("persist-connect-fail");
    sc::fast_reconnect(&c);
    c.persistence_set(RecordingStore::failing(Arc::new(AtomicUsize::new(2))))
        .unwrap();
    let ev = sc::hook(&c);
    let (opened, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let o = opened.clone();
    c.on_socket_open(move |_, _| {
        o.fetch_add(1, SeqCst);
    });
    let cl = closed.clone();
    c.on_socket_close(move |_, _| {
        cl.fetch_add(1, SeqCst);
    });
    c.connect_async(sc::HOST, broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    for _ in 0..2 {
        broker.accept(T).expect_closed(T);
    }
    let mut conn = broker.accept(T);
    assert_eq!(conn.read_packet(T)[0], 0x10, "expected CONNECT");
    // Each failed attempt was dispatched before the loop tried again.
    let seen = ev.drain();
    assert_eq!(seen.len(), 2, "one event per failed attempt: {seen:?}");
    for e in &seen {
        assert!(
            matches!(e, Ev::ConnectFail(s) if s.contains("Persistence")),
            "{e:?}"
        );
    }
    conn.send(&sc::ok_connack(&c));
    sc::wait_connect(&ev);
    // Every socket opened for a failed attempt was reported closed too.
    assert_eq!((opened.load(SeqCst), closed.load(SeqCst)), (3, 2));
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
}
