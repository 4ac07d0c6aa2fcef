//! Server-list failover (`connect_servers`) against two mosquittos joined by a bridge: the
//! publisher starts on A, A stops mid-stream, the publisher moves to B, and every QoS 1
//! message reaches a subscriber on B at least once. (The RabbitMQ cluster version is opt-in:
//! `scripts/rabbitmq-cluster-test`.)

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_sync::{Protocol, QoS, Server};
use support::broker_client::{client, finish, started, sub};
use support::{wait_until, Events, Mosquitto, T};

#[test]
fn a_publisher_fails_over_to_the_next_server_without_loss() {
    let mut a = Mosquitto::start();
    // B bridges fo/# both ways with A (B's bridge client subscribes on A).
    let b = Mosquitto::builder()
        .config("connection bridge-to-a")
        .config(&format!("address 127.0.0.1:{}", a.port()))
        .config("remote_clientid bridgeB")
        .config("topic fo/# both 1")
        .config("restart_timeout 1")
        .config("cleansession true")
        .start();
    a.wait_for_log("Received SUBSCRIBE from bridgeB", T);

    let (subscriber, sp) = started(&b, Protocol::V311, "fo-sub");
    sub(&subscriber, &sp, "fo/#", QoS::AtLeastOnce);

    let publisher = client(Protocol::V311, "fo-pub");
    let reached: Events<u16> = Events::new();
    let tx = reached.sender();
    publisher.on_connect(move |c, _f, rc, _p| {
        if !rc.is_failure() {
            // on_connect tells which server the client reached.
            let _ = tx.send(c.port());
        }
    });
    publisher
        .connect_servers(
            &[
                Server::new("127.0.0.1", a.port()),
                Server::new("127.0.0.1", b.port()),
            ],
            5,
        )
        .unwrap();
    publisher.loop_start().unwrap();
    assert_eq!(reached.wait(T), a.port());
    assert_eq!(publisher.port(), a.port());

    // Publish continuously from a thread; stop A once the subscriber has some of them.
    let n = 150u32;
    let next = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let publishing = {
        let (publisher, next, stop) = (publisher.clone(), next.clone(), stop.clone());
        std::thread::spawn(move || {
            let tick = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let i = next.load(Ordering::Relaxed);
                if i == n {
                    break;
                }
                publisher
                    .publish("fo/m", i.to_string(), QoS::AtLeastOnce, false)
                    .unwrap();
                next.store(i + 1, Ordering::Relaxed);
                // Paced, so that the stop of A falls in the middle of the stream.
                let due = tick + Duration::from_millis(5) * (i + 1);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        })
    };
    let mut got = HashSet::new();
    while got.len() < 30 {
        got.insert(sp.msg().payload_str().unwrap().to_string());
    }
    a.stop();
    assert_eq!(reached.wait(T), b.port(), "failed over to B");
    publishing.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < n as usize && Instant::now() < deadline {
        if let Some(m) = sp.msgs.recv_timeout(Duration::from_secs(1)) {
            got.insert(m.payload_str().unwrap().to_string());
        }
    }
    let missing: Vec<u32> = (0..n).filter(|i| !got.contains(&i.to_string())).collect();
    assert!(missing.is_empty(), "messages never delivered: {missing:?}");
    wait_until(T, || publisher.queued_messages() == 0);
    stop.store(true, Ordering::Relaxed);
    finish(&publisher);
    finish(&subscriber);
}
