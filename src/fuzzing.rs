//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not a public API).
//!
//! Thin wrappers that feed untrusted bytes to crate-private parsers over in-memory streams:
//! the SOCKS5 and HTTP CONNECT reply parsers, the `mqtt_proxy` URL and `no_proxy` parsers,
//! and (with `websockets`) the WebSocket read path after the upgrade. None of them touches
//! the network or the clock: host names are such that no name is ever resolved.

use std::io::{self, Cursor, Read, Write};

use crate::network::proxy;
use crate::{ProxyOptions, ProxyType, Result};

/// What the fuzz target's option byte turns into: the proxy credentials and the broker host
/// of a proxy handshake. SOCKS5 always lets the proxy resolve names (`rdns`), so no DNS
/// look-up happens.
fn handshake_setup(opts: u8, proxy_type: ProxyType) -> (ProxyOptions, &'static str) {
    let username = (opts & 0x01 != 0).then(|| "user".to_string());
    let password = (opts & 0x03 == 0x03).then(|| "pass".to_string());
    let host = match (opts >> 2) & 0x03 {
        0 => "broker.example",
        1 => "192.0.2.1",
        2 => "2001:db8::1",
        _ => "b",
    };
    let px = ProxyOptions {
        proxy_type,
        addr: "proxy.example".into(),
        port: 1080,
        username,
        password,
        rdns: true,
    };
    (px, host)
}

/// A proxy peer that replays `input` and swallows what is written. At the end of the input
/// it reads as end of stream, or (`would_block`) as a socket whose timeout expired.
struct Peer<'a> {
    input: Cursor<&'a [u8]>,
    would_block: bool,
}

impl Read for Peer<'_> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(b)?;
        if n == 0 && !b.is_empty() && self.would_block {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}

impl Write for Peer<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs the client side of a SOCKS5 handshake against a proxy that answers `reply`.
/// `opts` picks credentials (bit 0: user name, bit 1: and password), the broker host (bits
/// 2-3: a name, an IPv4 or an IPv6 address) and what the end of `reply` looks like (bit 4:
/// a timeout instead of end of stream). Returns the handshake's result and how many bytes of
/// `reply` it consumed.
pub fn socks5_reply(opts: u8, reply: &[u8]) -> (Result<()>, usize) {
    let (px, host) = handshake_setup(opts, ProxyType::Socks5);
    let mut peer = Peer {
        input: Cursor::new(reply),
        would_block: opts & 0x10 != 0,
    };
    let r = proxy::socks5(&mut peer, &px, host, 1883);
    (r, peer.input.position() as usize)
}

/// Runs the client side of an HTTP CONNECT handshake against a proxy that answers `reply`;
/// `opts` as for [`socks5_reply`]. Returns the result and how many bytes were consumed.
pub fn http_connect_reply(opts: u8, reply: &[u8]) -> (Result<()>, usize) {
    let (px, host) = handshake_setup(opts, ProxyType::Http);
    let mut peer = Peer {
        input: Cursor::new(reply),
        would_block: opts & 0x10 != 0,
    };
    let r = proxy::http_connect(&mut peer, &px, host, 1883);
    (r, peer.input.position() as usize)
}

/// Parses a proxy URL as the `mqtt_proxy` environment variable is read.
pub fn parse_proxy_url(url: &str) -> Result<ProxyOptions> {
    proxy::parse_proxy_url(url)
}

/// The proxy for `host` given the values of `mqtt_proxy` and `no_proxy` (no environment).
pub fn proxy_from_env(
    host: &str,
    mqtt_proxy: Option<&str>,
    no_proxy: Option<&str>,
) -> Option<ProxyOptions> {
    proxy::proxy_from_env(host, mqtt_proxy, no_proxy)
}

/// Whether `host` is listed in the `no_proxy` value.
pub fn bypass(host: &str, no_proxy: &str) -> bool {
    proxy::bypass(host, no_proxy)
}

/// Checks `proxy_set`'s argument.
pub fn validate_proxy(px: &ProxyOptions) -> Result<()> {
    proxy::validate(px)
}

#[cfg(feature = "websockets")]
pub use ws::{ws_read, WsReadOutcome};

#[cfg(feature = "websockets")]
mod ws {
    use std::io::{self, Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use crate::network::NetStream;

    /// A non-blocking socket replaying the broker's bytes in chunks.
    struct Socket {
        input: Vec<u8>,
        pos: usize,
        /// Bytes handed out per `read` (at least 1).
        chunk: usize,
        /// Alternate data and `WouldBlock`, as a non-blocking socket between segments.
        stutter: bool,
        stalled: bool,
        /// At the end of the input: end of stream (`true`) or `WouldBlock` (`false`).
        eof: bool,
        /// Set once a read found the input exhausted.
        drained: Arc<AtomicBool>,
    }

    impl Read for Socket {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            if b.is_empty() {
                return Ok(0);
            }
            if self.pos >= self.input.len() {
                self.drained.store(true, Ordering::Relaxed);
                return if self.eof {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            if self.stutter {
                self.stalled = !self.stalled;
                if self.stalled {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
            }
            let n = b.len().min(self.chunk).min(self.input.len() - self.pos);
            b[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    impl Write for Socket {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl NetStream for Socket {
        fn raw_fd(&self) -> std::os::fd::RawFd {
            -1
        }
        fn set_nonblocking(&mut self, _nonblocking: bool) -> io::Result<()> {
            Ok(())
        }
    }

    /// What [`ws_read`] saw.
    #[derive(Debug, Default)]
    pub struct WsReadOutcome {
        /// The MQTT bytes read (binary frame payloads, in order).
        pub data: Vec<u8>,
        /// The stream ended (Close frame or end of stream): `read` returned 0.
        pub closed: bool,
        /// The error that ended the reading, if any (not `WouldBlock` at the end of input).
        pub error: Option<io::Error>,
        /// `read` kept returning without consuming input or producing output (a bug).
        pub livelock: bool,
    }

    /// Feeds `frames` (what the broker sends after the upgrade) to the client's WebSocket
    /// read path, as the network loop reads it: `read` until it returns 0, an error, or
    /// `WouldBlock` with nothing left. `opts` shapes the delivery: bits 0-3 the bytes per
    /// socket read (1..=16, 15 meaning 64 KiB), bit 4 a `WouldBlock` between reads, bit 5
    /// end of stream (rather than `WouldBlock`) at the end, bits 6-7 the caller's buffer size
    /// (1, 7, 4096 or 64 KiB).
    pub fn ws_read(opts: u8, frames: &[u8]) -> WsReadOutcome {
        let chunk = match opts & 0x0F {
            15 => 64 << 10,
            c => usize::from(c) + 1,
        };
        let drained = Arc::new(AtomicBool::new(false));
        let sock = Socket {
            input: frames.to_vec(),
            pos: 0,
            chunk,
            stutter: opts & 0x10 != 0,
            stalled: false,
            eof: opts & 0x20 != 0,
            drained: drained.clone(),
        };
        let mut ws = crate::network::ws::after_upgrade(Box::new(sock));
        let mut buf = vec![0u8; [1, 7, 4096, 64 << 10][usize::from(opts >> 6)]];
        let mut out = WsReadOutcome::default();
        // Each round either ends the loop, returns data or consumes input (a stuttering
        // socket blocks at most every other read), so this bound is never reached unless
        // `read` spins.
        let limit = 4 * (frames.len() + 4);
        for _ in 0..limit {
            match ws.read(&mut buf) {
                Ok(0) => {
                    out.closed = true;
                    return out;
                }
                Ok(n) => out.data.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if drained.load(Ordering::Relaxed) {
                        return out;
                    }
                }
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
            }
        }
        out.livelock = true;
        out
    }
}
