//! # mqtt-sync
//!
//! A synchronous MQTT 3.1 / 3.1.1 / 5.0 client that mirrors the Python Paho client
//! (`paho-mqtt` 2.x): plain threads and callbacks, no async runtime.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod callbacks;
mod client;
pub(crate) mod codec;
mod error;
mod message;
mod network;
mod options;
mod session;
mod topic;
mod types;

pub use client::{Client, WeakClient};
pub use error::*;
pub use message::{Message, MessageInfo};
pub use network::{CertReqs, ProxyOptions, ProxyType, TlsOptions, TlsVersion};
pub use options::{Auth, ClientBuilder, ConnectOptions, Will};
pub use topic::topic_matches_sub;
pub use types::{
    CleanStart, ConnectFlags, DisconnectFlags, LogLevel, Properties, Protocol, QoS, ReasonCode,
    RetainHandling, SubscribeOptions, Transport,
};
