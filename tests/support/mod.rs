//! Support code shared by the integration tests.
//!
//! Every integration test file is its own crate and pulls this in with `mod support;`, so
//! items that a given test does not use must not warn: hence the crate-wide allow below.
//!
//! - [`mosquitto`]: a real broker (mosquitto 2.x) as a child process on free ports.
//! - [`rumqttd`]: a second real broker (the rumqttd crate, built as the workspace member
//!   `interop/rumqttd`) as a child process on free ports, one listener per protocol.
//! - [`scripted`]: a hand-driven fake broker for exact-byte tests, with independent
//!   packet builders.
//! - [`bytes`]: the byte mini-language of the mosquitto conformance corpus, hex helpers.
//! - [`corpus`]: loader of `tests/data/mosquitto-msg-sequence/*.json`.
//! - [`wait`]: event channels and polling helpers with timeouts, default timeout [`T`].
//! - [`certs`]: a throw-away CA, server and client certificates made with the openssl CLI.
#![allow(dead_code)]
#![allow(unused_imports)]

#[macro_use]
pub mod mosq;
pub mod bytes;
pub mod certs;
pub mod corpus;
pub mod dns;
pub mod h;
pub mod mosquitto;
pub mod probe;
pub mod proxies;
pub mod rumqttd;
pub mod scripted;
pub mod wait;

pub use mosquitto::{Mosquitto, MosquittoBuilder};
pub use rumqttd::{Rumqttd, RumqttdBuilder};
pub use scripted::{ScriptedBroker, ScriptedConn};
pub use wait::{wait_until, Events, T};
