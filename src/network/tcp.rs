//! TCP (socket2) and Unix-socket connection set-up.

use crate::error::Detail;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol as SockProtocol, SockAddr, Socket, Type};

use super::{remaining, Attempt, ConnectParams, NetStream};
use crate::{Error, Result};

impl NetStream for TcpStream {
    fn raw_fd(&self) -> RawFd {
        self.as_raw_fd()
    }
    fn ack_now(&self) -> io::Result<()> {
        socket2::SockRef::from(self).set_tcp_quickack(true)
    }
    fn shutdown(&mut self) {
        let _ = TcpStream::shutdown(self, Shutdown::Both);
    }
    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        if nonblocking {
            self.set_read_timeout(None)?;
            self.set_write_timeout(None)?;
        }
        TcpStream::set_nonblocking(self, nonblocking)
    }
    fn set_io_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(timeout)?;
        self.set_write_timeout(timeout)
    }
}

impl NetStream for UnixStream {
    fn raw_fd(&self) -> RawFd {
        self.as_raw_fd()
    }
    fn shutdown(&mut self) {
        let _ = UnixStream::shutdown(self, Shutdown::Both);
    }
    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        if nonblocking {
            self.set_read_timeout(None)?;
            self.set_write_timeout(None)?;
        }
        UnixStream::set_nonblocking(self, nonblocking)
    }
    fn set_io_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(timeout)?;
        self.set_write_timeout(timeout)
    }
}

/// Resolves `host:port` with the system resolver, on a helper thread the attempt stops
/// waiting for at its deadline (getaddrinfo has no timeout of its own).
pub(crate) fn resolve(attempt: &Attempt, host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let name = host.to_string();
    attempt.bounded(move || resolve_now(&name, port))?
}

fn resolve_now(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| {
            Error::Dns(Detail::caused(
                format!("cannot resolve {host}:{port}: {e}"),
                e,
            ))
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Error::Dns(format!("{host} has no address").into()));
    }
    Ok(addrs)
}

/// Connects a blocking TCP socket to `host:port` within `deadline`, honouring the bind
/// address/port; returns it still in blocking mode (proxies and TLS handshake on it next).
pub(crate) fn connect_blocking(
    host: &str,
    port: u16,
    p: &ConnectParams<'_>,
    deadline: Instant,
) -> Result<TcpStream> {
    let addrs = resolve(p.attempt, host, port)?;
    let bind = match p.bind_address {
        Some(a) if !a.is_empty() => Some(resolve(p.attempt, a, p.bind_port)?),
        _ => None,
    };
    let mut last_err: Option<Error> = None;
    for addr in addrs {
        let domain = Domain::for_address(addr);
        let sock = Socket::new(domain, Type::STREAM, Some(SockProtocol::TCP))?;
        // Shut down at the deadline or on cancellation, also in the middle of the connect.
        p.attempt.watch(&sock)?;
        if let Some(bind) = &bind {
            if let Some(b) = bind.iter().find(|b| b.is_ipv4() == addr.is_ipv4()) {
                sock.bind(&SockAddr::from(*b))?;
            }
        } else if p.bind_port != 0 {
            let any: SocketAddr = if addr.is_ipv4() {
                SocketAddr::from(([0, 0, 0, 0], p.bind_port))
            } else {
                SocketAddr::from(([0u16; 8], p.bind_port))
            };
            sock.bind(&SockAddr::from(any))?;
        }
        let left = remaining(deadline)?;
        match sock.connect_timeout(&SockAddr::from(addr), left) {
            Ok(()) => {
                sock.set_tcp_nodelay(p.config.nodelay)?;
                sock.set_keepalive(true)?;
                let stream: TcpStream = sock.into();
                return Ok(stream);
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                last_err = Some(Error::Timeout);
            }
            Err(e) => last_err = Some(Error::Io(explain_connect(e, addr))),
        }
    }
    Err(last_err.unwrap_or(Error::NoConnection))
}

/// Connects TCP directly; the socket stays blocking, with read/write timeouts at the
/// deadline, for the handshakes that follow (`open` makes it non-blocking at the end).
pub(crate) fn connect_tcp(p: &ConnectParams<'_>, deadline: Instant) -> Result<TcpStream> {
    let s = connect_blocking(p.host, p.port, p, deadline)?;
    set_deadline(&s, deadline)?;
    Ok(s)
}

/// Connects a Unix domain socket at `path`.
pub(crate) fn connect_unix(path: &str) -> Result<UnixStream> {
    Ok(UnixStream::connect(path)?)
}

/// Sets a blocking stream's read/write timeouts to what is left of `deadline`.
pub(crate) fn set_deadline(s: &TcpStream, deadline: Instant) -> Result<()> {
    let left = remaining(deadline)?;
    s.set_read_timeout(Some(left))?;
    s.set_write_timeout(Some(left))?;
    Ok(())
}

/// Reads exactly `buf.len()` bytes from a blocking stream before `deadline`.
pub(crate) fn read_exact_by<S: Read>(s: &mut S, buf: &mut [u8]) -> Result<()> {
    s.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout,
        _ => Error::Io(e),
    })
}

/// Writes all of `buf` to a blocking stream.
pub(crate) fn write_all_by<S: Write>(s: &mut S, buf: &[u8]) -> Result<()> {
    s.write_all(buf).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout,
        _ => Error::Io(e),
    })?;
    s.flush().map_err(Error::Io)
}

/// A failed TCP connect, naming the address and the likely cause; the OS error stays its
/// source (and its kind stays the `io::Error`'s kind).
#[derive(Debug)]
struct ConnectFailed {
    addr: SocketAddr,
    source: io::Error,
}

impl std::fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connecting to {}: {}", self.addr, self.source)?;
        match self.source.kind() {
            io::ErrorKind::ConnectionRefused => {
                f.write_str(" (no broker is listening there: is it running, and on this port?)")
            }
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                f.write_str(" (no route to that address: check the host name and the network)")
            }
            io::ErrorKind::AddrInUse | io::ErrorKind::AddrNotAvailable => {
                f.write_str(" (check bind_address / bind_port)")
            }
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ConnectFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn explain_connect(e: io::Error, addr: SocketAddr) -> io::Error {
    io::Error::new(e.kind(), ConnectFailed { addr, source: e })
}
