//! Server-list failover (`connect_servers`) on a real two-node RabbitMQ cluster (3.10, MQTT
//! 3.1.1), with mqtt-sync on both ends: the publisher is given [A, B] and connects to A; the
//! subscriber is on B (clean_session=false, QoS 1); node A is stopped (gracefully, or
//! killed) while the publisher publishes QoS 1 messages; the publisher moves to B by itself,
//! `on_connect` (through `Client::port()`) tells which node it reached, and every message
//! published before, during and after the stop reaches the subscriber at least once.
//!
//! Why this holds on two nodes (classic queue on B, the MQTT plugin's client-ID tracking):
//! docs/rabbitmq-failover.md. The same scenario with independent clients is in
//! tests/rabbitmq_cluster_selftest.rs; the mosquitto (bridge) version is tests/failover.rs.
//!
//! Opt-in, as a cluster takes ~30 s to start: skipped (with a note) unless
//! `MQTT_SYNC_RABBITMQ=1`. `scripts/rabbitmq-cluster-test` installs RabbitMQ and runs them.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mqtt_sync::{Client, Protocol, QoS, ReasonCode, Server};
use support::broker_client::{client, finish, Probe};
use support::rabbitmq::{opted_in, unique, RabbitCluster, A, B};
use support::wait::wait_until_msg;
use support::{Events, T};

/// Messages the subscriber must have (all through A) before A is stopped.
const BEFORE: usize = 30;
/// Messages published after the publisher reached B, before it stops publishing.
const AFTER: u32 = 30;
/// How long the failover and the delivery of everything may take.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);
/// The publisher's pace: one QoS 1 message every PACE, so that the stop of A falls in the
/// middle of the stream.
const PACE: Duration = Duration::from_millis(5);

/// A client for the cluster: MQTT 3.1.1, guest/guest (loopback only), fast reconnects.
fn rabbit_client(id: &str, clean_session: bool) -> Client {
    let c = if clean_session {
        client(Protocol::V311, id)
    } else {
        let c = Client::builder()
            .client_id(id)
            .protocol(Protocol::V311)
            .clean_session(false)
            .build()
            .expect("build client");
        c.reconnect_delay_set(Duration::from_millis(50), Duration::from_millis(500))
            .unwrap();
        c
    };
    c.username_pw_set("guest", Some("guest")).unwrap();
    c
}

enum Stop {
    Graceful,
    Kill,
}

fn failover(test: &str, how: Stop) {
    let mut cluster = RabbitCluster::start();
    eprintln!("{test}: {}", cluster.timings());
    let (port_a, port_b) = (cluster.mqtt_port(A), cluster.mqtt_port(B));
    let topic = unique("fo");

    // The subscriber, on B, with a persistent session: its queue is a durable classic queue
    // on B, the node that survives.
    let subscriber = rabbit_client(&unique("fo-sub"), false);
    let sp = Probe::attach(&subscriber);
    subscriber.connect(cluster.host(), port_b, 60).unwrap();
    subscriber.loop_start().unwrap();
    sp.connected();
    let mid = subscriber.subscribe(&topic, QoS::AtLeastOnce).unwrap();
    assert_eq!(sp.suback(mid), vec![ReasonCode::GRANTED_QOS_1]);

    // The publisher, given both nodes, A first.
    let publisher = rabbit_client(&unique("fo-pub"), true);
    let reached: Events<u16> = Events::new();
    let tx = reached.sender();
    publisher.on_connect(move |c, _flags, rc, _props| {
        if !rc.is_failure() {
            // on_connect tells which server of the list the client reached.
            let _ = tx.send(c.port());
        }
    });
    publisher
        .connect_servers(
            &[
                Server::new(cluster.host(), port_a),
                Server::new(cluster.host(), port_b),
            ],
            60,
        )
        .unwrap();
    publisher.loop_start().unwrap();
    assert_eq!(reached.wait(T), port_a, "connected to the first server, A");

    let next = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let publishing = {
        let (publisher, next, stop, topic) =
            (publisher.clone(), next.clone(), stop.clone(), topic.clone());
        thread::spawn(move || {
            let start = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                let i = next.load(Ordering::SeqCst);
                // Offline (between A and B) a QoS 1 publish is queued and still Ok.
                publisher
                    .publish(&topic, format!("m{i}"), QoS::AtLeastOnce, false)
                    .unwrap_or_else(|e| panic!("publish of m{i}: {e}"));
                next.store(i + 1, Ordering::SeqCst);
                let due = start + PACE * (i + 1);
                thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        })
    };

    let mut got = HashSet::new();
    let mut deliveries = 0usize;
    let mut receive = |got: &mut HashSet<u32>, m: mqtt_sync::Message| {
        deliveries += 1;
        let n = m
            .payload_str()
            .and_then(|p| p.strip_prefix('m'))
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("unexpected payload {:?}", m.payload()));
        got.insert(n);
    };
    while got.len() < BEFORE {
        let m = sp.msg();
        receive(&mut got, m);
    }

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
    assert_eq!(
        reached.wait(FAILOVER_TIMEOUT),
        port_b,
        "the publisher failed over to B"
    );
    let on_b = stopped.elapsed();
    assert_eq!(publisher.port(), port_b);
    let at_failover = next.load(Ordering::SeqCst);
    wait_until_msg(FAILOVER_TIMEOUT, "messages published on B", || {
        next.load(Ordering::SeqCst) >= at_failover + AFTER
    });
    stop.store(true, Ordering::SeqCst);
    publishing.join().expect("publishing thread");
    let total = next.load(Ordering::SeqCst);

    let deadline = Instant::now() + FAILOVER_TIMEOUT;
    while got.len() < total as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        match sp.msgs.recv_timeout(left) {
            Some(m) => receive(&mut got, m),
            None => {
                let missing: Vec<u32> = (0..total).filter(|i| !got.contains(i)).collect();
                panic!(
                    "{test}: {} of {total} messages reached the subscriber within \
                     {FAILOVER_TIMEOUT:?}; missing (first 50): {:?}",
                    got.len(),
                    &missing[..missing.len().min(50)]
                );
            }
        }
    }
    assert!(
        (0..total).all(|i| got.contains(&i)),
        "only m0..m{total} were published"
    );
    wait_until_msg(T, "publisher's queue empty", || {
        publisher.queued_messages() == 0
    });
    // The publisher is still on B: no further failover happened.
    assert!(reached.try_recv().is_none(), "one failover only");
    eprintln!(
        "{test}: on B {on_b:.1?} after the stop began; {total} messages, {at_failover} \
         published before the failover; subscriber on B got all ({deliveries} deliveries, \
         {} duplicates)",
        deliveries - total as usize
    );
    finish(&publisher);
    finish(&subscriber);
}

/// Node A stopped with `rabbitmqctl shutdown` while the publisher publishes to it.
#[test]
fn connect_servers_fails_over_when_node_a_is_stopped() {
    if opted_in("connect_servers_fails_over_when_node_a_is_stopped") {
        failover("graceful", Stop::Graceful);
    }
}

/// Node A killed (SIGKILL) while the publisher publishes to it.
#[test]
fn connect_servers_fails_over_when_node_a_is_killed() {
    if opted_in("connect_servers_fails_over_when_node_a_is_killed") {
        failover("kill", Stop::Kill);
    }
}
