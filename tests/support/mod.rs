//! Support code shared by the integration tests.
//!
//! Every integration test file is its own crate and pulls this in with `mod support;`, so
//! items that a given test does not use must not warn: hence the crate-wide allow below.
//!
//! - [`mosquitto`]: a real broker (mosquitto 2.x) as a child process on free ports.
//! - [`scripted`]: a hand-driven fake broker for exact-byte tests, with independent
//!   packet builders.
//! - [`bytes`]: the byte mini-language of the mosquitto conformance corpus, hex helpers.
//! - [`corpus`]: loader of `tests/data/mosquitto-msg-sequence/*.json`.
//! - [`wait`]: event channels and polling helpers with timeouts, default timeout [`T`].
//! - [`certs`]: a throw-away CA, server and client certificates made with the openssl CLI.
//! - [`auth_plugin`]: a mosquitto with the SCRAM-SHA-256 enhanced-authentication plugin of
//!   `tests/plugins/scram_auth.c`, compiled at test time.
//! - [`scram`]: a SCRAM-SHA-256 client (RFC 5802 / RFC 7677) for MQTT 5 enhanced
//!   authentication.
#![allow(dead_code)]
#![allow(unused_imports)]

#[macro_use]
pub mod mosq;
pub mod auth_plugin;
pub mod bytes;
pub mod certs;
pub mod corpus;
pub mod dns;
pub mod h;
pub mod mosquitto;
pub mod probe;
pub mod proxies;
pub mod scram;
pub mod scripted;
pub mod wait;

pub use mosquitto::{Mosquitto, MosquittoBuilder};
pub use scripted::{ScriptedBroker, ScriptedConn};
pub use wait::{wait_until, Events, T};
