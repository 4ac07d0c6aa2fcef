//! Support code shared by the integration tests.
//!
//! Every integration test file is its own crate and pulls this in with `mod support;`, so
//! items that a given test does not use must not warn: hence the crate-wide allow below.
//!
//! Brokers and servers the tests start:
//! - [`mosquitto`]: a real broker (mosquitto 2.x) as a child process on free ports.
//! - [`rumqttd`]: a second real broker (the rumqttd crate, built as the workspace member
//!   `interop/rumqttd`) as a child process on free ports, one listener per protocol.
//! - [`scripted`]: a hand-driven fake broker for exact-byte tests, with independent
//!   packet builders.
//! - [`proxies`]: dante, microsocks and tinyproxy; [`dns`]: dnsmasq with SRV records.
//! - [`drip`]: a peer that answers one byte at a time (slow proxies, TLS, WebSocket).
//! - [`certs`]: a throw-away CA, server and client certificates made with the openssl CLI.
//! - [`auth_plugin`]: a mosquitto with the SCRAM-SHA-256 enhanced-authentication plugin of
//!   `tests/plugins/scram_auth.c`, compiled at test time.
//! - [`interop`]: the client-level interop scenarios, one function each, run against
//!   mosquitto, rumqttd and RabbitMQ by the `interop_*` files (`interop_tests!`).
//! - [`rabbitmq`]: a real two-node RabbitMQ cluster (MQTT plugin) on loopback, for failover
//!   tests; opt-in, see `tests/rabbitmq_cluster_selftest.rs`.
//!
//! Clients wired for tests:
//! - [`broker_client`]: for the `mosquitto_*` suites — `Probe` (one channel per callback
//!   kind), `client`/`started`/`persistent` makers, `sub`, `finish`, `per_protocol!`.
//! - [`scripted_client`]: for the `scripted_*` and `callbacks_safety` suites — `Ev`, the
//!   record of every callback (`hook`), CONNECT/CONNACK helpers, packet and property
//!   builders, log capture.
//! - [`transport_probe`]: for the `transport_*` suites — `TransportProbe`, a client that
//!   connects through any transport and checks its own echo at QoS 0/1/2.
//! - [`scram`]: a SCRAM-SHA-256 client (RFC 5802 / RFC 7677) for MQTT 5 enhanced
//!   authentication.
//!
//! Data and waiting:
//! - [`bytes`]: the byte mini-language of the mosquitto conformance corpus, hex helpers.
//! - [`corpus`]: loader of `tests/data/mosquitto-msg-sequence/*.json`.
//! - [`wait`]: event channels and polling helpers with timeouts, default timeout [`T`].
#![allow(dead_code)]
#![allow(unused_imports)]

#[macro_use]
pub mod broker_client;
pub mod auth_plugin;
pub mod bytes;
pub mod certs;
pub mod corpus;
pub mod dns;
pub mod drip;
#[macro_use]
pub mod interop;
pub mod mosquitto;
pub mod proxies;
pub mod rabbitmq;
pub mod rumqttd;
pub mod scram;
pub mod scripted;
pub mod scripted_client;
pub mod tls_backends;
pub mod transport_probe;
pub mod wait;

pub use mosquitto::{Mosquitto, MosquittoBuilder};
pub use rumqttd::{Rumqttd, RumqttdBuilder};
pub use scripted::{ScriptedBroker, ScriptedConn};
pub use wait::{wait_until, Events, T};
