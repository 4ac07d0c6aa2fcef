//! The callback slots and their setters (Paho's `on_*` properties and
//! `message_callback_add`).
//!
//! Each slot holds an `Arc` of the closure so the dispatcher can take a reference, release
//! the slot lock and run the closure with no internal lock held; a setter called meanwhile
//! (even from inside that closure) replaces the slot for the next call.

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::Client;
use crate::topic::validate_topic_filter;
use crate::types::{AuthReply, ConnectFlags, DisconnectFlags, LogLevel, ReasonCode};
use crate::{Error, Message, Properties, Result};

pub(super) type Slot<F> = Option<Arc<Mutex<Box<F>>>>;

pub(super) type OnConnect = dyn FnMut(&Client, ConnectFlags, ReasonCode, &Properties) + Send;
pub(super) type OnConnectFail = dyn FnMut(&Client, &Error) + Send;
pub(super) type OnDisconnect = dyn FnMut(&Client, DisconnectFlags, ReasonCode, &Properties) + Send;
pub(super) type OnMessage = dyn FnMut(&Client, &Message) + Send;
pub(super) type OnAck = dyn FnMut(&Client, u16, ReasonCode, &Properties) + Send;
pub(super) type OnSubAck = dyn FnMut(&Client, u16, &[ReasonCode], &Properties) + Send;
pub(super) type OnLog = dyn Fn(&Client, LogLevel, &str) + Send + Sync;
pub(super) type OnClient = dyn FnMut(&Client) + Send;
pub(super) type OnSocket = dyn FnMut(&Client, RawFd) + Send;
pub(super) type OnAuth = dyn FnMut(&Client, ReasonCode, &Properties) -> AuthReply + Send;

/// Every user callback.
#[derive(Default)]
pub(super) struct Callbacks {
    pub on_connect: Slot<OnConnect>,
    pub on_connect_fail: Slot<OnConnectFail>,
    pub on_disconnect: Slot<OnDisconnect>,
    pub on_message: Slot<OnMessage>,
    pub on_publish: Slot<OnAck>,
    pub on_subscribe: Slot<OnSubAck>,
    pub on_unsubscribe: Slot<OnSubAck>,
    pub on_pre_connect: Slot<OnClient>,
    pub on_socket_open: Slot<OnSocket>,
    pub on_socket_close: Slot<OnSocket>,
    pub on_socket_register_write: Slot<OnSocket>,
    pub on_socket_unregister_write: Slot<OnSocket>,
    pub on_auth: Slot<OnAuth>,
    /// `message_callback_add` filters, in the order they were added.
    pub topic: Vec<(String, Arc<Mutex<Box<OnMessage>>>)>,
    pub on_log: Option<Arc<OnLog>>,
}

fn slot<F: ?Sized>(f: Box<F>) -> Slot<F> {
    Some(Arc::new(Mutex::new(f)))
}

macro_rules! setter {
    ($(#[$m:meta])* fn $name:ident: $ty:path, ($($arg:ty),*)) => {
        $(#[$m])*
        ///
        #[doc = concat!("Paho: `client.", stringify!($name), "`; see the porting guide's ")]
        /// [callbacks section](crate::docs::porting#24-callbacks).
        pub fn $name(&self, f: impl FnMut($($arg),*) + Send + 'static) {
            let b: Box<$ty> = Box::new(f);
            let (publish, sockets) = {
                let mut c = self.inner.callbacks();
                c.$name = slot(b);
                (
                    c.on_publish.is_some(),
                    c.on_socket_register_write.is_some() || c.on_socket_unregister_write.is_some(),
                )
            };
            let mut st = self.inner.lock();
            st.reporting.on_publish = publish;
            st.reporting.socket_write = sockets;
            st.sync_session();
        }
    };
}

impl Client {
    setter!(
        /// `on_connect(client, flags, reason_code, properties)`: CONNACK received (success or
        /// refusal).
        fn on_connect: OnConnect, (&Client, ConnectFlags, ReasonCode, &Properties));
    setter!(
        /// `on_connect_fail(client, error)`: a connection attempt made by a loop failed
        /// (TCP/TLS set-up, or no CONNACK in time).
        fn on_connect_fail: OnConnectFail, (&Client, &Error));
    setter!(
        /// `on_disconnect(client, flags, reason_code, properties)`: once per ended connection.
        fn on_disconnect: OnDisconnect, (&Client, DisconnectFlags, ReasonCode, &Properties));
    setter!(
        /// `on_message(client, message)`: a message that no `message_callback_add` filter matched.
        fn on_message: OnMessage, (&Client, &Message));
    setter!(
        /// `on_publish(client, mid, reason_code, properties)`: QoS 0 written, QoS 1 PUBACK,
        /// QoS 2 PUBCOMP, or a refusal.
        fn on_publish: OnAck, (&Client, u16, ReasonCode, &Properties));
    setter!(
        /// `on_subscribe(client, mid, reason_codes, properties)`: SUBACK received.
        fn on_subscribe: OnSubAck, (&Client, u16, &[ReasonCode], &Properties));
    setter!(
        /// `on_unsubscribe(client, mid, reason_codes, properties)`: UNSUBACK received (MQTT 3.x:
        /// an empty list).
        fn on_unsubscribe: OnSubAck, (&Client, u16, &[ReasonCode], &Properties));
    setter!(
        /// `on_pre_connect(client)`: just before a connection attempt; what it changes
        /// (proxy, TLS, WebSocket headers, credentials) applies to that attempt.
        fn on_pre_connect: OnClient, (&Client));
    setter!(
        /// `on_socket_open(client, fd)`: a socket was connected (external loops).
        fn on_socket_open: OnSocket, (&Client, RawFd));
    setter!(
        /// `on_socket_close(client, fd)`: the socket is about to be closed; `fd` is still open
        /// while this runs (unregister it from your loop here).
        fn on_socket_close: OnSocket, (&Client, RawFd));
    setter!(
        /// `on_socket_register_write(client, fd)`: output is waiting; watch the socket for
        /// writability and call `loop_write`.
        fn on_socket_register_write: OnSocket, (&Client, RawFd));
    setter!(
        /// `on_socket_unregister_write(client, fd)`: nothing left to write.
        fn on_socket_unregister_write: OnSocket, (&Client, RawFd));

    /// `on_auth(client, reason_code, properties) -> AuthReply`: the broker sent an MQTT 5
    /// AUTH packet of enhanced authentication (MQTT 5 §4.12); the closure's [`AuthReply`]
    /// is the answer. Paho Python has no such callback (see the porting guide's
    /// [enhanced authentication section](crate::docs::porting)).
    ///
    /// It runs, like every callback, on the thread that drives the loop with no internal
    /// lock held; the client sends the answer afterwards, if the connection that received
    /// the AUTH is still open. It is called for:
    /// - AUTH 0x18 (Continue authentication) before CONNACK, on a connection whose CONNECT
    ///   carried an Authentication Method (`ConnectOptions::properties`):
    ///   answer [`AuthReply::Continue`] with the next Authentication Data;
    /// - AUTH 0x18 during a re-authentication started with [`Client::reauthenticate`];
    /// - AUTH 0x00 (Success) at the end of a re-authentication, with the broker's final
    ///   data: answer [`AuthReply::Done`], or [`AuthReply::Abort`] if it does not verify.
    ///
    /// The broker's final data of the first authentication comes with CONNACK, in the
    /// properties of `on_connect`. A refusal reaches `on_connect` (CONNACK 0x87, 0x8C, ...)
    /// or, during a re-authentication, `on_disconnect` with the broker's reason code. An
    /// AUTH that no exchange expects (no Authentication Method, another method, no
    /// re-authentication requested) is a protocol error: the client sends DISCONNECT 0x82
    /// and closes; `on_connect_fail` reports it before CONNACK, `on_disconnect` (0x82) after.
    /// Without an `on_auth` callback nothing is answered (the application may answer with
    /// [`Client::auth`]); the connect timeout bounds the wait for CONNACK.
    ///
    /// ```no_run
    /// use mqtt_sync::{AuthReply, Client, ConnectOptions, Properties, Protocol, ReasonCode};
    ///
    /// # fn main() -> mqtt_sync::Result<()> {
    /// let client = Client::builder().client_id("auth-demo").protocol(Protocol::V5).build()?;
    /// client.on_auth(|_client, reason_code, props| {
    ///     let challenge = props.authentication_data.as_deref().unwrap_or_default();
    ///     if reason_code == ReasonCode::CONTINUE_AUTHENTICATION && challenge == b"who?" {
    ///         AuthReply::Continue(b"me".to_vec())
    ///     } else if reason_code == ReasonCode::SUCCESS {
    ///         AuthReply::Done // a re-authentication ended
    ///     } else {
    ///         AuthReply::Abort(ReasonCode::NOT_AUTHORIZED)
    ///     }
    /// });
    /// client.connect_with(ConnectOptions {
    ///     properties: Some(Properties {
    ///         authentication_method: Some("EXAMPLE-CHALLENGE".into()),
    ///         authentication_data: Some(b"hello".to_vec()),
    ///         ..Properties::default()
    ///     }),
    ///     ..ConnectOptions::new("localhost")
    /// })?;
    /// client.loop_forever()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_auth(
        &self,
        f: impl FnMut(&Client, ReasonCode, &Properties) -> AuthReply + Send + 'static,
    ) {
        let b: Box<OnAuth> = Box::new(f);
        self.inner.callbacks().on_auth = slot(b);
    }

    /// `on_log(client, level, line)`: internal log lines (also from user threads, so `Fn +
    /// Sync`).
    ///
    /// Paho: `client.on_log`; see the porting guide's
    /// [callbacks section](crate::docs::porting#24-callbacks).
    pub fn on_log(&self, f: impl Fn(&Client, LogLevel, &str) + Send + Sync + 'static) {
        self.inner.callbacks().on_log = Some(Arc::new(f));
        self.inner.has_on_log.store(true, Ordering::Relaxed);
        let mut st = self.inner.lock();
        st.reporting.on_log = true;
        st.sync_session();
    }

    /// Adds (or replaces) a callback for messages whose topic matches `sub`. Every matching
    /// filter's callback runs; `on_message` only when none matched.
    ///
    /// Paho: `client.message_callback_add`; see the porting guide's
    /// [callbacks section](crate::docs::porting#24-callbacks).
    pub fn message_callback_add(
        &self,
        sub: &str,
        f: impl FnMut(&Client, &Message) + Send + 'static,
    ) -> Result<()> {
        validate_topic_filter(sub)?;
        let b: Box<OnMessage> = Box::new(f);
        let entry = Arc::new(Mutex::new(b));
        let mut cbs = self.inner.callbacks();
        match cbs.topic.iter_mut().find(|(s, _)| s == sub) {
            Some(slot) => slot.1 = entry,
            None => cbs.topic.push((sub.to_string(), entry)),
        }
        Ok(())
    }

    /// Removes the callback added for exactly `sub`.
    pub fn message_callback_remove(&self, sub: &str) {
        self.inner.callbacks().topic.retain(|(s, _)| s != sub);
    }
}
