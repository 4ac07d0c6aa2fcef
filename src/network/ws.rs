//! MQTT over WebSockets with tungstenite (feature `websockets`).
//!
//! `wrap` performs the client upgrade (path, `Sec-WebSocket-Protocol: mqtt`, Host, extra
//! headers) in blocking mode before the deadline, over any `NetStream` (plain TCP gives
//! `ws://`, TLS gives `wss://`), and returns [`WsStream`], a byte-stream adapter: each `write`
//! is sent as one binary frame, `read` returns the payload of binary frames (keeping the rest
//! of a frame for the next read), pings are answered by tungstenite, and a Close frame reads as
//! end of stream.

use std::time::Instant;

use super::{ConnectParams, NetStream};
use crate::{Error, Result};

/// The default WebSocket path (as Paho).
#[cfg_attr(not(feature = "websockets"), allow(dead_code))]
pub(crate) const DEFAULT_PATH: &str = "/mqtt";

/// Performs the WebSocket upgrade over `inner` and returns a byte-stream adapter.
#[cfg(not(feature = "websockets"))]
pub(crate) fn wrap(
    _inner: Box<dyn NetStream>,
    _p: &ConnectParams<'_>,
    _deadline: Instant,
) -> Result<Box<dyn NetStream>> {
    Err(Error::NotSupported(
        "built without the websockets feature".into(),
    ))
}

/// Performs the WebSocket upgrade over `inner` and returns a byte-stream adapter.
#[cfg(feature = "websockets")]
pub(crate) fn wrap(
    mut inner: Box<dyn NetStream>,
    p: &ConnectParams<'_>,
    deadline: Instant,
) -> Result<Box<dyn NetStream>> {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::handshake::HandshakeError;
    use tungstenite::http::{HeaderName, HeaderValue};

    let path = match p.config.ws_path.as_deref() {
        None | Some("") => DEFAULT_PATH.to_string(),
        Some(s) if s.starts_with('/') => s.to_string(),
        Some(s) => format!("/{s}"),
    };
    let scheme = if p.config.tls.is_some() { "wss" } else { "ws" };
    let bare = p.host.trim_start_matches('[').trim_end_matches(']');
    let authority = if bare.contains(':') {
        format!("[{bare}]:{}", p.port)
    } else {
        format!("{bare}:{}", p.port)
    };
    let url = format!("{scheme}://{authority}{path}");
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::invalid(format!("bad WebSocket URL {url}: {e}")))?;
    {
        let h = req.headers_mut();
        // Paho sends Host as host:port, whatever the port.
        h.insert(
            "Host",
            HeaderValue::from_str(&authority)
                .map_err(|e| Error::invalid(format!("bad WebSocket host {authority}: {e}")))?,
        );
        h.insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
        for (k, v) in &p.config.ws_headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| Error::invalid(format!("bad WebSocket header name {k:?}: {e}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| Error::invalid(format!("bad WebSocket header value for {k}: {e}")))?;
            h.insert(name, value);
        }
    }

    inner.set_io_timeout(Some(super::remaining(deadline)?))?;
    match tungstenite::client::client_with_config(req, inner, Some(ws_config(p.max_packet))) {
        Ok((ws, _response)) => Ok(Box::new(WsStream::new(ws))),
        Err(HandshakeError::Interrupted(_)) => Err(Error::Timeout),
        Err(HandshakeError::Failure(e)) => Err(handshake_error(e, &url)),
    }
}

/// The WebSocket settings of a connection whose largest incoming packet is `max_packet`.
#[cfg(feature = "websockets")]
fn ws_config(max_packet: usize) -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default()
        // Write each frame at once (the loop has its own buffering).
        .write_buffer_size(0)
        // A frame or message may hold the largest packet the client accepts (and a little
        // more: a broker may put a few packets in one message). tungstenite reserves a whole
        // frame's length from its header, so this limit is what bounds the memory a broker
        // can make the client take with one header.
        .max_message_size(Some(ws_limit(max_packet)))
        .max_frame_size(Some(ws_limit(max_packet)))
        .read_buffer_size(READ_BUFFER)
}

/// A [`WsStream`] over a stream whose client upgrade is already done, with the settings of
/// `wrap` (the entry point of the fuzz targets to the read path).
#[cfg(all(feature = "websockets", feature = "fuzzing"))]
pub(crate) fn after_upgrade(inner: Box<dyn NetStream>, max_packet: usize) -> WsStream {
    WsStream::new(tungstenite::WebSocket::from_raw_socket(
        inner,
        tungstenite::protocol::Role::Client,
        Some(ws_config(max_packet)),
    ))
}

/// Largest incoming WebSocket message or frame accepted: the client's largest incoming
/// packet plus 64 KiB (room for small packets sharing a message with a large one).
#[cfg(feature = "websockets")]
pub(crate) fn ws_limit(max_packet: usize) -> usize {
    max_packet.saturating_add(64 << 10)
}
/// tungstenite's read chunk size.
#[cfg(feature = "websockets")]
const READ_BUFFER: usize = 64 << 10;
/// Largest frame `write` sends at once; a longer buffer is written in several calls.
#[cfg(feature = "websockets")]
const MAX_OUT_FRAME: usize = 1 << 20;

#[cfg(feature = "websockets")]
fn handshake_error(e: tungstenite::Error, url: &str) -> Error {
    use tungstenite::error::{Error as WsError, ProtocolError};
    match e {
        WsError::Http(resp) => {
            let status = resp.status();
            let body = resp
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
                .unwrap_or_default();
            Error::WebSocket(
                format!(
                    "the server refused the WebSocket upgrade at {url}: HTTP {} {}{}{}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or(""),
                    if body.is_empty() { "" } else { ": " },
                    body.trim()
                )
                .into(),
            )
        }
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(sub)) => Error::WebSocket(
            format!("the server at {url} did not accept the WebSocket subprotocol \"mqtt\": {sub}")
                .into(),
        ),
        WsError::Io(io)
            if io.kind() == std::io::ErrorKind::WouldBlock
                || io.kind() == std::io::ErrorKind::TimedOut =>
        {
            Error::Timeout
        }
        WsError::Io(io) => Error::Io(io),
        other => Error::WebSocket(crate::error::Detail::caused(
            format!("WebSocket upgrade at {url} failed: {other}"),
            other,
        )),
    }
}

/// A WebSocket connection used as a byte stream (MQTT over binary frames).
#[cfg(feature = "websockets")]
pub(crate) struct WsStream {
    ws: tungstenite::WebSocket<Box<dyn NetStream>>,
    /// The unread rest of the last binary frame.
    rbuf: tungstenite::Bytes,
    /// tungstenite may hold further frames read with the last one: true after a message was
    /// read, false after a read found nothing (`WouldBlock`).
    maybe_more: bool,
    /// A Close frame was received.
    closed: bool,
    /// A frame accepted by `write` sits (partly) in tungstenite's write buffer.
    pending: bool,
}

#[cfg(feature = "websockets")]
fn to_io(e: tungstenite::Error) -> std::io::Error {
    use std::io::{Error as IoError, ErrorKind};
    use tungstenite::error::Error as WsError;
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => IoError::new(
            ErrorKind::ConnectionAborted,
            "the WebSocket connection is closed",
        ),
        WsError::Capacity(c) => IoError::new(ErrorKind::InvalidData, format!("WebSocket: {c}")),
        other => IoError::other(format!("WebSocket: {other}")),
    }
}

#[cfg(feature = "websockets")]
impl WsStream {
    fn new(ws: tungstenite::WebSocket<Box<dyn NetStream>>) -> Self {
        WsStream {
            ws,
            rbuf: tungstenite::Bytes::new(),
            maybe_more: false,
            closed: false,
            pending: false,
        }
    }

    /// Pushes what tungstenite still holds; `Ok(true)` when everything went out.
    fn push_pending(&mut self) -> std::io::Result<()> {
        match self.ws.flush() {
            Ok(()) => {
                self.pending = false;
                Ok(())
            }
            Err(e) => {
                let e = to_io(e);
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    self.pending = true;
                }
                Err(e)
            }
        }
    }
}

#[cfg(feature = "websockets")]
impl std::io::Read for WsStream {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use std::io::{Error as IoError, ErrorKind};
        use tungstenite::error::Error as WsError;
        use tungstenite::Message;
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.rbuf.is_empty() {
                let n = out.len().min(self.rbuf.len());
                out[..n].copy_from_slice(&self.rbuf.split_to(n));
                return Ok(n);
            }
            if self.closed {
                return Ok(0);
            }
            match self.ws.read() {
                Ok(Message::Binary(b)) => {
                    self.maybe_more = true;
                    self.rbuf = b;
                }
                Ok(Message::Text(_)) => {
                    return Err(IoError::new(
                        ErrorKind::InvalidData,
                        "the broker sent a WebSocket text frame; MQTT uses binary frames only",
                    ))
                }
                Ok(Message::Close(_)) => {
                    // tungstenite queued the reply; it goes out with the next flush.
                    self.closed = true;
                    let _ = self.ws.flush();
                    return Ok(0);
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {
                    self.maybe_more = true;
                }
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                    self.closed = true;
                    return Ok(0);
                }
                Err(e) => {
                    let e = to_io(e);
                    if e.kind() == ErrorKind::WouldBlock {
                        self.maybe_more = false;
                    }
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(feature = "websockets")]
impl std::io::Write for WsStream {
    /// Sends `buf` (at most 1 MiB of it) as one binary frame. A frame is accepted whole or not
    /// at all: when tungstenite still holds an earlier frame that the socket does not take,
    /// this returns `WouldBlock` and accepts nothing; once accepted, the bytes are never lost
    /// or repeated, and `has_pending_write`/`flush` deal with what the socket did not take.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::io::ErrorKind;
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pending {
            self.push_pending()?;
        }
        let n = buf.len().min(MAX_OUT_FRAME);
        match self
            .ws
            .write(tungstenite::Message::binary(buf[..n].to_vec()))
        {
            Ok(()) => {}
            // tungstenite keeps the frame in its write buffer on a stream error.
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                self.pending = true;
                return Ok(n);
            }
            Err(e) => return Err(to_io(e)),
        }
        match self.push_pending() {
            Ok(()) => Ok(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(n),
            Err(e) => Err(e),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.push_pending()
    }
}

#[cfg(feature = "websockets")]
impl NetStream for WsStream {
    fn raw_fd(&self) -> std::os::fd::RawFd {
        self.ws.get_ref().raw_fd()
    }
    fn has_buffered_read(&self) -> bool {
        !self.rbuf.is_empty() || self.maybe_more || self.ws.get_ref().has_buffered_read()
    }
    fn has_pending_write(&self) -> bool {
        self.pending || self.ws.get_ref().has_pending_write()
    }
    fn shutdown(&mut self) {
        self.ws.get_mut().shutdown();
    }
    fn set_nonblocking(&mut self, nonblocking: bool) -> std::io::Result<()> {
        self.ws.get_mut().set_nonblocking(nonblocking)
    }
    fn set_io_timeout(&mut self, timeout: Option<std::time::Duration>) -> std::io::Result<()> {
        self.ws.get_mut().set_io_timeout(timeout)
    }
    fn ack_now(&self) -> std::io::Result<()> {
        self.ws.get_ref().ack_now()
    }
}
