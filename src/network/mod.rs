//! The only code that touches sockets: opening a byte stream to the broker (TCP, TLS,
//! WebSockets, Unix sockets, through proxies) and the small trait the poll loop drives.
//!
//! Every opener is blocking with a deadline and returns a *non-blocking* stream, ready for
//! MQTT bytes, whose file descriptor the network loop registers with its poller.

use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::types::Transport;
use crate::{Error, Result};

pub(crate) mod attempt;
pub(crate) mod proxy;
pub(crate) mod srv;
pub(crate) mod tcp;
pub(crate) mod tls;
pub(crate) mod ws;

pub(crate) use attempt::Attempt;
pub use proxy::{ProxyOptions, ProxyType};
pub use tls::{CertReqs, TlsBackend, TlsOptions, TlsVersion};

/// A connected byte stream to the broker.
pub(crate) trait NetStream: Read + Write + Send {
    /// The socket's file descriptor, for the poller and for `Client::socket()`.
    fn raw_fd(&self) -> RawFd;
    /// Bytes already received and decrypted/unframed inside the stream, which a `read` would
    /// return even though the socket is not readable (TLS records, WebSocket frames).
    fn has_buffered_read(&self) -> bool {
        false
    }
    /// Bytes accepted by `write` that still sit inside the stream; `flush` pushes them and
    /// returns `WouldBlock` while the socket is full.
    fn has_pending_write(&self) -> bool {
        false
    }
    /// Acknowledges the bytes just read at once (TCP_QUICKACK) instead of delaying the ACK;
    /// an error when the socket has no such option (Unix sockets).
    fn ack_now(&self) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
    /// Closes the connection at once, without an MQTT DISCONNECT (best effort).
    fn shutdown(&mut self) {}
    /// Switches the underlying socket between blocking (set-up) and non-blocking (loop) mode.
    fn set_nonblocking(&mut self, nonblocking: bool) -> std::io::Result<()>;
    /// Sets the read/write timeouts of the underlying socket while it is blocking (set-up
    /// handshakes layered on top use it to honour the deadline).
    #[cfg_attr(not(feature = "websockets"), allow(dead_code))]
    fn set_io_timeout(&mut self, _timeout: Option<Duration>) -> std::io::Result<()> {
        Ok(())
    }
}

/// Transport settings that apply to every connection attempt.
#[derive(Clone, Debug, Default)]
pub(crate) struct NetConfig {
    /// TLS, when `tls_set`, `tls_set_with` or `tls_set_context` was called.
    pub tls: Option<tls::TlsSettings>,
    /// WebSocket path (default `/mqtt`).
    pub ws_path: Option<String>,
    /// Extra WebSocket handshake headers.
    pub ws_headers: Vec<(String, String)>,
    /// An explicit proxy (`proxy_set`); `None` means: honour `mqtt_proxy` / `no_proxy`.
    pub proxy: Option<ProxyOptions>,
    /// TCP_NODELAY on the socket.
    pub nodelay: bool,
}

/// One connection attempt.
pub(crate) struct ConnectParams<'a> {
    pub host: &'a str,
    pub port: u16,
    pub transport: Transport,
    pub bind_address: Option<&'a str>,
    pub bind_port: u16,
    /// The attempt: one deadline for the whole set-up (DNS, TCP, proxy, TLS, WebSocket
    /// upgrade), and its cancellation.
    pub attempt: &'a Attempt,
    pub config: &'a NetConfig,
    /// The largest packet the client accepts (bounds WebSocket frames too).
    #[cfg_attr(not(feature = "websockets"), allow(dead_code))]
    pub max_packet: usize,
}

/// Opens a stream to the broker as configured: TCP or Unix, through a proxy if any, then TLS
/// if configured, then the WebSocket upgrade for `Transport::WebSockets` — all before the
/// attempt's deadline, and stopped at once if the attempt is cancelled.
pub(crate) fn open(p: &ConnectParams<'_>) -> Result<Box<dyn NetStream>> {
    if let Some(simulated) = crate::sim::open(p.host, p.port) {
        let _ = p.attempt.finish();
        return simulated;
    }
    match open_steps(p) {
        Ok(s) => {
            p.attempt.finish()?;
            Ok(s)
        }
        Err(e) => {
            let e = p.attempt.explain(e);
            let _ = p.attempt.finish();
            Err(e)
        }
    }
}

fn open_steps(p: &ConnectParams<'_>) -> Result<Box<dyn NetStream>> {
    let deadline = p.attempt.deadline();
    match p.transport {
        Transport::Unix => {
            if p.config.tls.is_some() {
                return Err(Error::NotSupported(
                    "TLS over a Unix socket is not supported".into(),
                ));
            }
            let mut s: Box<dyn NetStream> = Box::new(tcp::connect_unix(p.host)?);
            s.set_nonblocking(true)?;
            Ok(s)
        }
        Transport::Tcp | Transport::WebSockets => {
            let tcp = match proxy::effective_proxy(p) {
                Some(px) => proxy::connect_via(&px, p, deadline)?,
                None => tcp::connect_tcp(p, deadline)?,
            };
            let base: Box<dyn NetStream> = match &p.config.tls {
                Some(t) => tls::wrap(t, p.host, tcp, deadline)?,
                None => Box::new(tcp),
            };
            let mut s = if p.transport == Transport::WebSockets {
                ws::wrap(base, p, deadline)?
            } else {
                base
            };
            s.set_nonblocking(true)?;
            Ok(s)
        }
    }
}

/// Time left until `deadline`, or `Error::Timeout` when it has passed.
pub(crate) fn remaining(deadline: Instant) -> Result<Duration> {
    let now = Instant::now();
    if now >= deadline {
        Err(Error::Timeout)
    } else {
        Ok(deadline - now)
    }
}
