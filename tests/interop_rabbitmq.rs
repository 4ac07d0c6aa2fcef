//! The client-level interop scenarios (tests/support/interop.rs) against RabbitMQ 3.10's
//! MQTT plugin (MQTT 3.1 and 3.1.1; no MQTT 5 before RabbitMQ 3.13): the RabbitMQ column
//! of docs/interop.md. A node takes ~15 s to start, so one node (a one-node cluster of
//! tests/support/rabbitmq.rs) serves every scenario, one after the other; each scenario's
//! result is printed, and the test fails if any failed. Where RabbitMQ differs from
//! mosquitto the scenarios assert what it does (its quirks in `RabbitBroker`).
//!
//! Opt-in: skipped (with a note) unless `MQTT_SYNC_RABBITMQ=1`; `scripts/rabbitmq-cluster-test`
//! installs RabbitMQ and runs it.

#[macro_use]
mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use mqtt_sync::Protocol::{self, V31, V311, V5};
use support::interop::{self, Broker, RabbitBroker};
use support::rabbitmq::{opted_in, RabbitCluster};

type Scenario = fn(&dyn Broker, Protocol);

const SCENARIOS: &[(&str, Protocol, Scenario)] = &[
    ("connect", V31, interop::connect),
    ("connect", V311, interop::connect),
    ("connect", V5, interop::connect),
    ("qos_matrix", V31, interop::qos_matrix),
    ("qos_matrix", V311, interop::qos_matrix),
    ("retained", V31, interop::retained),
    ("retained", V311, interop::retained),
    ("will", V31, interop::will),
    ("will", V311, interop::will),
    ("session_resume", V31, interop::session_resume),
    ("session_resume", V311, interop::session_resume),
];

#[test]
fn scenarios_on_one_rabbitmq_node() {
    if !opted_in("scenarios_on_one_rabbitmq_node") {
        return;
    }
    let cluster = RabbitCluster::builder().nodes(1).start();
    eprintln!("{}", cluster.timings());
    let broker = RabbitBroker::new(&cluster);
    let mut failed = Vec::new();
    let all = Instant::now();
    for (name, proto, scenario) in SCENARIOS {
        let t = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| scenario(&broker, *proto)));
        let result = if r.is_ok() { "pass" } else { "FAILED" };
        eprintln!("RabbitMQ {name} {proto:?}: {result} ({:.1?})", t.elapsed());
        if r.is_err() {
            failed.push(format!("{name} {proto:?}"));
        }
    }
    eprintln!("RabbitMQ scenarios: {:.1?}", all.elapsed());
    assert!(
        failed.is_empty(),
        "failed on RabbitMQ: {failed:?}\n{}",
        cluster.logs()
    );
}
