//! Self-test of the RabbitMQ cluster harness (`tests/support/rabbitmq.rs`) and of the MQTT
//! failover scenario it exists for, with clients independent of mqtt-sync: a raw-socket
//! MQTT 3.1.1 QoS 1 publisher written here, and `mosquitto_sub` as a persistent subscriber.
//!
//! Scenario: the subscriber connects to node B (clean_session=false, QoS 1) and stays there;
//! the publisher connects to node A and publishes QoS 1 messages one after another (each
//! waits for its PUBACK); node A is stopped (gracefully, or killed) while the publisher
//! goes on; the publisher's connection breaks, it reconnects to node B, sends the message
//! that had no PUBACK again (DUP) and goes on. Every message must reach the subscriber at
//! least once.
//!
//! Opt-in, as a cluster takes ~30 s to start: the tests are skipped (with a note) unless
//! `MQTT_SYNC_RABBITMQ=1`. `scripts/rabbitmq-cluster-test` installs RabbitMQ and runs them.

mod support;

use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Range;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::rabbitmq::{opted_in, unique, RabbitCluster, A, B};
use support::wait::{poll_until, wait_until_msg};
use support::Events;

/// Messages acked by node A before it is stopped.
const BEFORE: usize = 20;
/// Messages acked by node B after the failover before the publisher stops.
const AFTER: usize = 20;
/// A bound on the number of messages, so a publisher that never fails over stops.
const MAX_MESSAGES: usize = 200_000;
/// How long the publisher may take to reconnect to B, and the subscriber to get everything.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);

// --- A raw MQTT 3.1.1 publisher ---------------------------------------------------------------

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn mqtt_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first];
    remaining_length(body.len(), &mut p);
    p.extend_from_slice(body);
    p
}

/// Reads one packet: (first byte, body).
fn read_packet(s: &mut TcpStream) -> io::Result<(u8, Vec<u8>)> {
    let mut first = [0u8; 1];
    s.read_exact(&mut first)?;
    let mut len = 0usize;
    let mut mult = 1usize;
    loop {
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?;
        len += (b[0] & 0x7f) as usize * mult;
        if b[0] & 0x80 == 0 {
            break;
        }
        mult *= 128;
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((first[0], body))
}

/// An MQTT 3.1.1 connection that publishes at QoS 1, one message at a time.
struct RawPublisher {
    stream: TcpStream,
}

impl RawPublisher {
    /// CONNECT (clean session, keepalive 60 s, guest/guest) and a CONNACK with return code 0.
    fn connect(addr: SocketAddr, client_id: &str) -> io::Result<RawPublisher> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        stream.set_nodelay(true)?;
        let mut body = Vec::new();
        mqtt_str("MQTT", &mut body);
        body.push(4); // protocol level 3.1.1
        body.push(0x02 | 0x80 | 0x40); // clean session, username, password
        body.extend_from_slice(&60u16.to_be_bytes());
        mqtt_str(client_id, &mut body);
        mqtt_str("guest", &mut body);
        mqtt_str("guest", &mut body);
        stream.write_all(&packet(0x10, &body))?;
        let (first, body) = read_packet(&mut stream)?;
        if first != 0x20 || body.len() != 2 || body[1] != 0 {
            return Err(io::Error::other(format!(
                "bad CONNACK: {first:#04x} {body:?}"
            )));
        }
        Ok(RawPublisher { stream })
    }

    /// PUBLISH at QoS 1 and wait for its PUBACK.
    fn publish(&mut self, topic: &str, payload: &[u8], id: u16, dup: bool) -> io::Result<()> {
        let mut body = Vec::new();
        mqtt_str(topic, &mut body);
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(payload);
        let first = 0x32 | if dup { 0x08 } else { 0 };
        self.stream.write_all(&packet(first, &body))?;
        loop {
            let (first, body) = read_packet(&mut self.stream)?;
            if first == 0x40 && body == id.to_be_bytes() {
                return Ok(());
            }
            if first >> 4 != 4 {
                return Err(io::Error::other(format!(
                    "unexpected packet {first:#04x} {body:?} while waiting for PUBACK {id}"
                )));
            }
        }
    }
}

fn packet_id(seq: usize) -> u16 {
    (seq % 65535 + 1) as u16
}

/// What the publisher did.
#[derive(Debug, Default)]
struct PubReport {
    /// Messages published and acked: payloads `m0` .. `m{total-1}`.
    total: usize,
    acked_on_a: usize,
    acked_on_b: usize,
    /// The message whose publish failed on A (sent again to B with DUP set).
    failed_at: Option<usize>,
    failure: String,
    reconnect_took: Duration,
}

/// Publishes `m0`, `m1`, ... to A until its connection breaks, then to B until `AFTER`
/// messages were acked there. `acked_on_a` is shared so the test knows when to stop A.
fn run_publisher(
    addr_a: SocketAddr,
    addr_b: SocketAddr,
    topic: String,
    client_id: String,
    acked_on_a: Arc<AtomicUsize>,
) -> PubReport {
    let mut report = PubReport::default();
    let mut conn = RawPublisher::connect(addr_a, &client_id).expect("publisher connects to A");
    let mut on_b = false;
    let mut seq = 0usize;
    let mut dup = false;
    while !(on_b && report.acked_on_b >= AFTER) {
        assert!(
            seq < MAX_MESSAGES,
            "{MAX_MESSAGES} messages published and no failover; {report:?}"
        );
        let payload = format!("m{seq}");
        match conn.publish(&topic, payload.as_bytes(), packet_id(seq), dup) {
            Ok(()) => {
                if on_b {
                    report.acked_on_b += 1;
                } else {
                    report.acked_on_a += 1;
                    acked_on_a.fetch_add(1, Ordering::SeqCst);
                }
                seq += 1;
                dup = false;
            }
            Err(e) if !on_b => {
                report.failed_at = Some(seq);
                report.failure = e.to_string();
                let t = Instant::now();
                let mut last_err = String::new();
                let mut new_conn = None;
                poll_until(FAILOVER_TIMEOUT, || {
                    match RawPublisher::connect(addr_b, &client_id) {
                        Ok(c) => new_conn = Some(c),
                        Err(e) => last_err = e.to_string(),
                    }
                    new_conn.is_some()
                });
                conn = new_conn.unwrap_or_else(|| {
                    panic!(
                        "publisher could not connect to B within {FAILOVER_TIMEOUT:?}: {last_err}"
                    )
                });
                report.reconnect_took = t.elapsed();
                on_b = true;
                dup = true;
            }
            Err(e) => panic!("publish of m{seq} to B failed: {e}; {report:?}"),
        }
    }
    report.total = seq;
    report
}

// --- mosquitto_sub as the persistent subscriber --------------------------------------------

#[derive(Debug)]
enum SubEv {
    Subacked,
    Msg(String),
    Line(String),
    Eof,
}

/// A child process killed (and reaped) on drop, also when the test panics.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mosquitto_sub -V mqttv311 -q 1 -c -i <id>` on `port`, its output sent as events
/// (line-buffered with stdbuf: mosquitto_sub does not flush its `-d` lines).
fn start_subscriber(port: u16, client_id: &str, topic: &str) -> (KillOnDrop, Events<SubEv>) {
    let mut child = Command::new("stdbuf")
        .args(["-oL", "-eL", "mosquitto_sub"])
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-V", "mqttv311", "-q", "1", "-c", "-i", client_id])
        .args(["-u", "guest", "-P", "guest", "-k", "60", "-d"])
        .args(["-t", topic, "-F", "MSG %p"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mosquitto_sub (package mosquitto-clients)");
    let events = Events::new();
    for out in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = events.sender();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let ev = if let Some(p) = line.strip_prefix("MSG ") {
                    SubEv::Msg(p.to_string())
                } else if line.contains("received SUBACK") {
                    SubEv::Subacked
                } else {
                    SubEv::Line(line)
                };
                if tx.send(ev).is_err() {
                    return;
                }
            }
            let _ = tx.send(SubEv::Eof);
        });
    }
    (KillOnDrop(child), events)
}

/// Collects the subscriber's messages until every one of `want` (`m{n}` for n in `want`)
/// arrived; returns the numbers seen, the number of deliveries and the other output lines.
fn wait_all_received(
    events: &Events<SubEv>,
    want: Range<usize>,
) -> (BTreeSet<usize>, usize, Vec<String>) {
    let mut got = BTreeSet::new();
    let mut deliveries = 0;
    let mut other = Vec::new();
    let mut have = 0;
    let deadline = Instant::now() + FAILOVER_TIMEOUT;
    while have < want.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Some(SubEv::Msg(p)) => {
                deliveries += 1;
                let n: usize = p
                    .strip_prefix('m')
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected payload {p:?}"));
                if got.insert(n) && want.contains(&n) {
                    have += 1;
                }
            }
            Some(SubEv::Line(l)) => other.push(l),
            Some(ev) => other.push(format!("{ev:?}")),
            None => {
                let missing: Vec<usize> = want.clone().filter(|n| !got.contains(n)).collect();
                panic!(
                    "subscriber got {} of {} messages within {FAILOVER_TIMEOUT:?}; \
                     missing (first 50): {:?}; other output (last 20): {:?}",
                    have,
                    want.len(),
                    &missing[..missing.len().min(50)],
                    &other[other.len().saturating_sub(20)..]
                );
            }
        }
    }
    (got, deliveries, other)
}

enum Stop {
    Graceful,
    Kill,
}

fn failover_scenario(test: &str, how: Stop) {
    let mut cluster = RabbitCluster::builder().debug_log(true).start();
    eprintln!("{test}: {}", cluster.timings());
    eprintln!(
        "{test}: MQTT Raft (client-ID tracking) members seen from B: {}",
        cluster.mqtt_ra_members(B)
    );

    let topic = unique("failover");
    let sub_id = unique("sub");
    let (_sub, sub_events) = start_subscriber(cluster.mqtt_port(B), &sub_id, &topic);
    sub_events.wait_for(Duration::from_secs(20), |e| matches!(e, SubEv::Subacked));
    let queues = cluster.ctl_ok(B, &["list_queues", "name", "type", "durable", "pid"]);
    eprintln!("{test}: queues after SUBSCRIBE on B:\n{queues}");
    assert!(
        queues.contains(&format!("mqtt-subscription-{sub_id}qos1"))
            && queues.contains("classic")
            && queues.contains(cluster.node_name(B)),
        "the subscriber's queue should be a classic queue on node B:\n{queues}"
    );

    let acked_on_a = Arc::new(AtomicUsize::new(0));
    let publisher = {
        let (a, b) = (cluster.mqtt_addr(A), cluster.mqtt_addr(B));
        let (topic, id, acked) = (topic.clone(), unique("pub"), acked_on_a.clone());
        thread::spawn(move || run_publisher(a, b, topic, id, acked))
    };
    wait_until_msg(Duration::from_secs(30), "publisher acked by A", || {
        acked_on_a.load(Ordering::SeqCst) >= BEFORE
    });
    let stopped = Instant::now();
    match how {
        Stop::Graceful => {
            let took = cluster.stop_node(A);
            eprintln!("{test}: node A stopped gracefully in {took:.1?}");
        }
        Stop::Kill => {
            cluster.kill_node(A);
            eprintln!("{test}: node A killed");
        }
    }
    assert!(!cluster.is_running(A));
    let report = publisher.join().expect("publisher thread");
    eprintln!(
        "{test}: publisher: {report:?}; done {:.1?} after the stop began",
        stopped.elapsed()
    );
    assert!(
        report.failed_at.is_some(),
        "the publisher never failed over"
    );
    assert!(report.acked_on_a >= BEFORE && report.acked_on_b >= AFTER);

    let (got, deliveries, _) = wait_all_received(&sub_events, 0..report.total);
    assert_eq!(got.len(), report.total);
    eprintln!(
        "{test}: subscriber on B got all {} messages ({} deliveries, {} duplicates)",
        report.total,
        deliveries,
        deliveries - report.total
    );
}

/// The harness itself: both nodes in one cluster, MQTT on both, a message from A reaches a
/// subscriber on B; a stopped node comes back with `restart_node` (which works around the
/// 100 s wait of the MQTT plugin's start in a two-node cluster), rejoins, and serves MQTT.
#[test]
fn cluster_routes_between_nodes_and_restarts_a_node() {
    if !opted_in("cluster_routes_between_nodes_and_restarts_a_node") {
        return;
    }
    let mut cluster = RabbitCluster::start();
    eprintln!("{}", cluster.timings());
    let status = cluster.ctl_ok(A, &["cluster_status"]);
    for n in [A, B] {
        assert!(status.contains(cluster.node_name(n)), "{status}");
    }

    let topic = unique("route");
    let (_sub, events) = start_subscriber(cluster.mqtt_port(B), &unique("sub"), &topic);
    events.wait_for(Duration::from_secs(20), |e| matches!(e, SubEv::Subacked));
    let mut p = RawPublisher::connect(cluster.mqtt_addr(A), &unique("pub")).unwrap();
    p.publish(&topic, b"m0", 1, false).unwrap();
    drop(p);
    wait_all_received(&events, 0..1);

    let took = cluster.stop_node(A);
    eprintln!("node A stopped in {took:.1?}");
    let took = cluster.restart_node(A);
    eprintln!("node A restarted in {took:.1?}");
    // Without the harness's nudge of the Ra server, this start would take over 100 s.
    assert!(took < Duration::from_secs(90), "restart took {took:?}");
    let running = cluster.ctl_ok(B, &["eval", "length(rabbit_nodes:all_running())."]);
    assert_eq!(running.trim(), "2");
    let mut p = RawPublisher::connect(cluster.mqtt_addr(A), &unique("pub")).unwrap();
    p.publish(&topic, b"m1", 1, false).unwrap();
    wait_all_received(&events, 1..2);
}

/// Node A stopped with `rabbitmqctl shutdown` while the publisher publishes to it.
#[test]
fn failover_when_node_a_is_stopped() {
    if opted_in("failover_when_node_a_is_stopped") {
        failover_scenario("graceful", Stop::Graceful);
    }
}

/// Node A killed (SIGKILL) while the publisher publishes to it.
#[test]
fn failover_when_node_a_is_killed() {
    if opted_in("failover_when_node_a_is_killed") {
        failover_scenario("kill", Stop::Kill);
    }
}
