//! Callback slots. Each slot holds an `Arc` of the closure so the dispatcher can take a
//! reference, release the slot lock and run the closure with no internal lock held; a setter
//! called meanwhile (even from inside that closure) replaces the slot for the next call.

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use crate::types::{ConnectFlags, DisconnectFlags, LogLevel, ReasonCode};
use crate::{Client, Error, Message, Properties};

pub(crate) type Slot<F> = Option<Arc<Mutex<Box<F>>>>;

pub(crate) type OnConnect = dyn FnMut(&Client, ConnectFlags, ReasonCode, &Properties) + Send;
pub(crate) type OnConnectFail = dyn FnMut(&Client, &Error) + Send;
pub(crate) type OnDisconnect = dyn FnMut(&Client, DisconnectFlags, ReasonCode, &Properties) + Send;
pub(crate) type OnMessage = dyn FnMut(&Client, &Message) + Send;
pub(crate) type OnAck = dyn FnMut(&Client, u16, ReasonCode, &Properties) + Send;
pub(crate) type OnSubAck = dyn FnMut(&Client, u16, &[ReasonCode], &Properties) + Send;
pub(crate) type OnLog = dyn Fn(&Client, LogLevel, &str) + Send + Sync;
pub(crate) type OnClient = dyn FnMut(&Client) + Send;
pub(crate) type OnSocket = dyn FnMut(&Client, RawFd) + Send;

/// Every user callback.
#[derive(Default)]
pub(crate) struct Callbacks {
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
    /// `message_callback_add` filters, in the order they were added.
    pub topic: Vec<(String, Arc<Mutex<Box<OnMessage>>>)>,
    pub on_log: Option<Arc<OnLog>>,
}

pub(crate) fn slot<F: ?Sized>(f: Box<F>) -> Slot<F> {
    Some(Arc::new(Mutex::new(f)))
}
