//! # mqtt-sync
//!
//! A synchronous MQTT 3.1 / 3.1.1 / 5.0 client that mirrors the Python Paho client
//! (`paho-mqtt` 2.x): plain threads and callbacks, no async runtime. Every Paho method and
//! callback has a counterpart with the same name and meaning, so a script ports line by line
//! (`import paho.mqtt.client as mqtt` becomes `use mqtt_sync as mqtt;`). The full table is in
//! `docs/porting.md`.
//!
//! ## Quick start
//!
//! ```no_run
//! use mqtt_sync as mqtt;
//!
//! let client = mqtt::Client::new("quick-start");
//! client.on_connect(|client, _flags, reason_code, _props| {
//!     println!("connected: {reason_code}");
//!     // Subscribing here renews the subscription after every reconnect.
//!     client.subscribe("$SYS/broker/version", mqtt::QoS::AtMostOnce).ok();
//! });
//! client.on_message(|client, msg| {
//!     println!("{} {}", msg.topic(), String::from_utf8_lossy(msg.payload()));
//!     client.disconnect().ok();
//! });
//! client.connect("localhost", 1883, 60)?;
//! client.loop_forever()?; // returns after disconnect()
//! # Ok::<(), mqtt::Error>(())
//! ```
//!
//! Publishing and waiting for the acknowledgement:
//!
//! ```no_run
//! # use mqtt_sync as mqtt;
//! # use std::time::Duration;
//! let client = mqtt::Client::new("publisher");
//! client.connect("localhost", 1883, 60)?;
//! client.loop_start()?;
//! let info = client.publish("sensors/temp", "21.5", mqtt::QoS::AtLeastOnce, false)?;
//! info.wait_for_publish(Some(Duration::from_secs(5)))?;
//! client.disconnect()?;
//! client.loop_stop()?;
//! # Ok::<(), mqtt::Error>(())
//! ```
//!
//! One-shot helpers mirror Python's modules: [`publish::single`], [`publish::multiple`],
//! [`subscribe::simple`] and [`subscribe::callback`].
//!
//! ## Threading model
//!
//! [`Client`] is a cheap handle (`Clone + Send + Sync`); every method takes `&self`, from any
//! thread. The network is driven by one of the loops, as in Paho:
//!
//! - [`Client::loop_start`] runs a background network thread (stop it with
//!   [`Client::loop_stop`]);
//! - [`Client::loop_forever`] blocks the calling thread until [`Client::disconnect`];
//! - [`Client::loop_once`] (Python's `loop()`) runs one pass, for your own loop;
//! - [`Client::socket`], [`Client::loop_read`], [`Client::loop_write`], [`Client::loop_misc`]
//!   and [`Client::want_write`] plug the client into an external `select`/`poll` loop.
//!
//! Callbacks run on the thread that drives the loop, one at a time, with **no internal lock
//! held**: a callback may call any method — `publish`, `subscribe`, `disconnect`,
//! `loop_stop`, `reconnect` — without deadlock. A call that would wait for that very thread
//! ([`MessageInfo::wait_for_publish`], a nested `loop_once`/`loop_forever`) returns
//! `Err(InvalidState)` there instead of hanging. A panicking callback is caught and logged
//! (`on_log` and the `log` crate at error level); the loop goes on and the callback keeps its
//! slot. `publish()` writes to the socket at once from the calling thread; the loop thread is
//! woken only when it has something to do, and sleeps between keepalives when idle.
//!
//! State that Python keeps in `userdata` lives in what the closure captures. A closure that
//! needs the client should use the `&Client` it is given, or hold a [`WeakClient`]: a closure
//! that owns a `Client` keeps it alive. Dropping the last user handle stops the network
//! thread and closes the socket without DISCONNECT (the broker then publishes the will).
//!
//! ## Reconnects
//!
//! `loop_start` and `loop_forever` reconnect after a lost connection, waiting
//! [`Client::reconnect_delay_set`] (1 s doubling up to 120 s by default, reset by a
//! successful CONNACK). After a reconnect the client re-sends unacknowledged QoS 1/2
//! messages with DUP set, in order and never more than the in-flight window at once, and
//! completes QoS 2 messages past PUBREC with PUBREL. `on_disconnect` runs exactly once per
//! lost connection. Subscriptions are the broker's business: subscribe in `on_connect` (as
//! Paho recommends) so they are renewed on every reconnect, or use a persistent session.
//!
//! ## Offline behaviour
//!
//! A QoS 1 or 2 publish while disconnected is queued and returns `Ok(MessageInfo)`; it is
//! sent after the next CONNACK and its `wait_for_publish` completes when it is acknowledged.
//! A QoS 0 publish, `subscribe` and `unsubscribe` while disconnected return
//! `Err(NoConnection)`. Queues are bounded: [`Client::max_queued_messages_set`] limits stored
//! QoS 1/2 messages (`Err(QueueSize)` past it) and [`Client::max_outgoing_bytes_set`] limits
//! the bytes waiting for the socket (a publisher on another thread then waits for room).
//!
//! ## Persistence (opt-in)
//!
//! By default, as in Paho Python, the session state lives in memory: a crashed process loses
//! its queued QoS 1/2 messages. [`Client::persistence_set`] attaches a store (see
//! [`persistence`]): outgoing QoS 1/2 messages and incoming QoS 2 messages not yet released
//! are recorded as their state changes, and a client restarted with the same client id and
//! store sends them again after its next CONNACK. [`persistence::FileStore`] is an
//! append-only, checksummed log with a [`persistence::SyncPolicy`] and compaction.
//!
//! ## What a broker can make the client do
//!
//! Nothing without bound. Incoming packets are limited to [`DEFAULT_MAX_INCOMING_PACKET`]
//! (16 MiB; [`Client::max_incoming_packet_size_set`] changes it and, with MQTT 5, announces
//! it as Maximum Packet Size), also for WebSocket frames; a packet that would take more than
//! 8 times its wire size once decoded is refused. Incoming QoS 2 messages waiting for PUBREL
//! stay within the client's Receive Maximum and 64 MiB (DISCONNECT 0x93 past them). While
//! the broker reads nothing the client stops reading too, and a connection whose output made
//! no progress for a keepalive is closed. One deadline ([`Client::connect_timeout_set`])
//! bounds a whole connect: DNS, TCP, proxy, TLS, WebSocket upgrade and CONNACK.
//!
//! ## MQTT 5 enhanced authentication
//!
//! Challenge/response methods (SCRAM, Kerberos, ...) of MQTT 5 §4.12, which Paho Python
//! lacks: put the Authentication Method and initial data in the properties of
//! [`Client::connect_with`], answer the broker's AUTH packets from [`Client::on_auth`] with an
//! [`AuthReply`], read the broker's final data in `on_connect`'s properties, and
//! re-authenticate while connected with [`Client::reauthenticate`].
//! [`Client::authentication_set`] called from `on_pre_connect` gives every attempt fresh
//! initial data. `examples/auth_scram.rs`
//! is a complete SCRAM-SHA-256 client.
//!
//! ## Features
//!
//! - `tls` (default): TLS through `native-tls` ([`Client::tls_set`], `tls_set_context`).
//! - `rustls` (opt-in): TLS through `rustls` with `ring` instead (no OpenSSL; the system's CA
//!   store through `rustls-native-certs`). With both built, native-tls stays the default and
//!   [`TlsOptions::backend`] = [`TlsBackend::Rustls`] picks rustls per client. rustls reads
//!   PKCS#8, PKCS#1 and SEC1 keys but no encrypted key (`Err(NotSupported)`).
//! - `websockets` (default): MQTT over WebSockets through `tungstenite`
//!   ([`Transport::WebSockets`], [`Client::ws_set_options`]).
//! - `srv` (opt-in): [`Client::connect_srv`] through `hickory-resolver`, which brings a
//!   current-thread tokio runtime that lives only inside that call (about 90 more crates;
//!   without the feature `connect_srv` returns `Err(NotSupported)`).
//!
//! TCP, Unix sockets ([`Transport::Unix`]) and SOCKS5/HTTP CONNECT proxies
//! ([`Client::proxy_set`]) need no feature. `--no-default-features` builds a lean TCP-only
//! client.
//!
//! ## Logging
//!
//! Internal lines ("Sending CONNECT ...", "Received CONNACK ...") go to `on_log` and to the
//! `log` crate under the target `mqtt_sync` (turn the latter off with
//! [`Client::disable_logger`]). Passwords are never logged.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]
#![doc(test(attr(deny(warnings))))]

#[cfg(not(unix))]
compile_error!(
    "mqtt-sync supports Unix only: it uses Unix file descriptors and Unix-domain sockets (Linux is tested)"
);

mod client;
/// The packet codec (encode/decode of every MQTT 3.1/3.1.1/5 packet), for tests and tools.
/// Not part of the stable API: behind the `unstable-codec` feature, and it may change in any
/// release.
#[cfg(feature = "unstable-codec")]
#[cfg_attr(docsrs, doc(cfg(feature = "unstable-codec")))]
pub mod codec;
#[cfg(not(feature = "unstable-codec"))]
#[allow(dead_code, unused_imports)]
pub(crate) mod codec;
mod completion;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod helpers;
mod loop_thread;
mod message;
mod network;
mod options;
pub mod persistence;
mod session;
#[cfg(feature = "simulation")]
#[doc(hidden)]
pub mod sim;
#[cfg(not(feature = "simulation"))]
mod sim;
mod time;
mod topic;
mod types;

pub use client::{
    Client, ClientBuilder, MessageIter, MessageReceiver, WeakClient, DEFAULT_MAX_INCOMING_PACKET,
};
pub use error::*;
pub use helpers::{publish, subscribe};
pub use message::{Message, MessageInfo};
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use native_tls;
pub use network::{CertReqs, ProxyOptions, ProxyType, TlsBackend, TlsOptions, TlsVersion};
pub use options::{Auth, ConnectOptions, Server, Will};
pub use topic::topic_matches_sub;
pub use types::{
    AuthReply, CleanStart, ConnectFlags, DisconnectFlags, LogLevel, Properties, Protocol, QoS,
    ReasonCode, RetainHandling, Stats, SubscribeOptions, Transport,
};

/// Guides, as on the project's pages: the porting guide from Paho Python and the architecture
/// notes. (Documentation only; the module holds no items.)
#[cfg(all(doc, not(doctest)))]
pub mod docs {
    #[doc = include_str!("../docs/porting.md")]
    pub mod porting {}
    #[doc = include_str!("../docs/architecture.md")]
    pub mod architecture {}
}
