//! SOCKS5 and HTTP CONNECT proxies (`proxy_set`, or the `mqtt_proxy` environment variable).
//!
//! Both tunnels are set up in blocking mode before the deadline; what comes back is a plain
//! TCP stream to the broker, on which `open()` layers TLS and WebSockets as usual.

use crate::error::Detail;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::Instant;

use super::tcp::{connect_blocking, read_exact_by, resolve, set_deadline, write_all_by};
use super::ConnectParams;
use crate::{Error, Result};

mod env;
pub(crate) use env::effective_proxy;
#[cfg(feature = "fuzzing")]
pub(crate) use env::{bypass, parse_proxy_url, proxy_from_env};

/// The kind of proxy (Paho's `proxy_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProxyType {
    /// SOCKS5 (RFC 1928), with optional username/password (RFC 1929).
    #[default]
    Socks5,
    /// HTTP CONNECT, with optional basic authentication.
    Http,
}

/// Proxy settings for `Client::proxy_set` (Paho's `proxy_set(**proxy_args)`). `Default` is
/// a SOCKS5 proxy with `rdns: true`, as Paho's `proxy_rdns` default. `Debug` hides the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyOptions {
    /// SOCKS5 or HTTP CONNECT.
    pub proxy_type: ProxyType,
    /// The proxy's host name or address.
    pub addr: String,
    /// The proxy's port.
    pub port: u16,
    /// Proxy user name.
    pub username: Option<String>,
    /// Proxy password.
    pub password: Option<String>,
    /// SOCKS5: let the proxy resolve the broker's name. Default true, as in Paho.
    pub rdns: bool,
}

impl std::fmt::Debug for ProxyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyOptions")
            .field("proxy_type", &self.proxy_type)
            .field("addr", &self.addr)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("rdns", &self.rdns)
            .finish()
    }
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            proxy_type: ProxyType::Socks5,
            addr: String::new(),
            port: 0,
            username: None,
            password: None,
            rdns: true,
        }
    }
}

/// Checks `proxy_set`'s argument: `InvalidArgument` for an empty address, port 0, or SOCKS5
/// credentials longer than RFC 1929 allows.
pub(crate) fn validate(proxy: &ProxyOptions) -> Result<()> {
    if proxy.addr.trim().is_empty() {
        return Err(Error::invalid(
            "proxy_set: the proxy address (addr) is empty",
        ));
    }
    if proxy.port == 0 {
        return Err(Error::invalid("proxy_set: the proxy port is 0"));
    }
    if proxy.password.is_some() && proxy.username.is_none() {
        return Err(Error::invalid("proxy_set: a password needs a username"));
    }
    if proxy.proxy_type == ProxyType::Socks5 {
        let too_long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.len() > 255);
        if too_long(&proxy.username) || too_long(&proxy.password) {
            return Err(Error::invalid(
                "proxy_set: SOCKS5 user names and passwords are at most 255 bytes",
            ));
        }
    }
    Ok(())
}

/// Connects to the broker `p.host:p.port` through `proxy` before `deadline`; returns the
/// tunnel as a blocking TCP stream with read/write timeouts at the deadline.
pub(crate) fn connect_via(
    proxy: &ProxyOptions,
    p: &ConnectParams<'_>,
    deadline: Instant,
) -> Result<TcpStream> {
    let mut s = connect_blocking(&proxy.addr, proxy.port, p, deadline).map_err(|e| match e {
        Error::Timeout => Error::Timeout,
        other => Error::Proxy(
            format!(
                "cannot connect to the proxy {}:{}: {other}",
                proxy.addr, proxy.port
            )
            .into(),
        ),
    })?;
    set_deadline(&s, deadline)?;
    let host = p.host.trim_start_matches('[').trim_end_matches(']');
    // SOCKS5 without remote DNS: resolve here, bounded by the attempt (as PySocks'
    // socket.gethostbyname: an IPv4 address when there is one).
    let local_ip;
    let host = if proxy.proxy_type == ProxyType::Socks5
        && !proxy.rdns
        && host.parse::<IpAddr>().is_err()
    {
        let addrs = resolve(p.attempt, host, p.port)?;
        local_ip = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .unwrap_or(&addrs[0])
            .ip()
            .to_string();
        local_ip.as_str()
    } else {
        host
    };
    match proxy.proxy_type {
        ProxyType::Socks5 => socks5(&mut s, proxy, host, p.port)?,
        ProxyType::Http => http_connect(&mut s, proxy, host, p.port)?,
    }
    set_deadline(&s, deadline)?;
    Ok(s)
}

/// Maps an I/O failure during the proxy handshake: timeouts stay `Timeout`, the rest become
/// `Proxy` errors.
fn proxy_io(what: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Timeout => Error::Timeout,
        Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Proxy(format!("the proxy closed the connection during {what}").into())
        }
        other => Error::Proxy(Detail::caused(format!("{what}: {other}"), other)),
    }
}

/// The SOCKS5 handshake (RFC 1928, with RFC 1929 username/password authentication).
pub(crate) fn socks5<S: Read + Write>(
    s: &mut S,
    proxy: &ProxyOptions,
    host: &str,
    port: u16,
) -> Result<()> {
    let with_auth = proxy.username.is_some();
    let greeting: &[u8] = if with_auth { &[5, 2, 0, 2] } else { &[5, 1, 0] };
    write_all_by(s, greeting).map_err(proxy_io("the SOCKS5 greeting"))?;
    let mut rep = [0u8; 2];
    read_exact_by(s, &mut rep).map_err(proxy_io("the SOCKS5 greeting"))?;
    if rep[0] != 5 {
        return Err(Error::Proxy(
            format!("not a SOCKS5 proxy (version byte {})", rep[0]).into(),
        ));
    }
    match rep[1] {
        0 => {}
        2 if with_auth => {
            let user = proxy.username.as_deref().unwrap_or("").as_bytes();
            let pass = proxy.password.as_deref().unwrap_or("").as_bytes();
            if user.len() > 255 || pass.len() > 255 {
                return Err(Error::invalid(
                    "SOCKS5 user names and passwords are at most 255 bytes",
                ));
            }
            let mut msg = Vec::with_capacity(3 + user.len() + pass.len());
            msg.push(1);
            msg.push(user.len() as u8);
            msg.extend_from_slice(user);
            msg.push(pass.len() as u8);
            msg.extend_from_slice(pass);
            write_all_by(s, &msg).map_err(proxy_io("SOCKS5 authentication"))?;
            let mut st = [0u8; 2];
            read_exact_by(s, &mut st).map_err(proxy_io("SOCKS5 authentication"))?;
            if st[1] != 0 {
                return Err(Error::Proxy(
                    format!(
                        "the SOCKS5 proxy refused the user name or password (status {})",
                        st[1]
                    )
                    .into(),
                ));
            }
        }
        0xFF => {
            return Err(Error::Proxy(if with_auth {
                "the SOCKS5 proxy accepts none of our authentication methods".into()
            } else {
                "the SOCKS5 proxy requires authentication: set ProxyOptions::username and password"
                    .into()
            }))
        }
        m => {
            return Err(Error::Proxy(
                format!("the SOCKS5 proxy chose an unknown method {m}").into(),
            ))
        }
    }

    let mut req = vec![5, 1, 0];
    // A name: the proxy resolves it (`connect_via` resolved it already without rdns).
    let ip: Option<IpAddr> = host.parse::<IpAddr>().ok();
    match ip {
        Some(IpAddr::V4(v4)) => {
            req.push(1);
            req.extend_from_slice(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            req.push(4);
            req.extend_from_slice(&v6.octets());
        }
        None => {
            if host.len() > 255 {
                return Err(Error::invalid(format!(
                    "host name too long for SOCKS5: {host}"
                )));
            }
            req.push(3);
            req.push(host.len() as u8);
            req.extend_from_slice(host.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    write_all_by(s, &req).map_err(proxy_io("the SOCKS5 CONNECT request"))?;
    let mut head = [0u8; 4];
    read_exact_by(s, &mut head).map_err(proxy_io("the SOCKS5 CONNECT reply"))?;
    if head[0] != 5 {
        return Err(Error::Proxy(
            format!("bad SOCKS5 reply (version byte {})", head[0]).into(),
        ));
    }
    if head[1] != 0 {
        return Err(Error::Proxy(
            format!(
                "the SOCKS5 proxy could not connect to {host}:{port}: {} (reply {})",
                socks5_reply(head[1]),
                head[1]
            )
            .into(),
        ));
    }
    // Skip BND.ADDR and BND.PORT.
    let addr_len = match head[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut l = [0u8; 1];
            read_exact_by(s, &mut l).map_err(proxy_io("the SOCKS5 CONNECT reply"))?;
            l[0] as usize
        }
        t => {
            return Err(Error::Proxy(
                format!("bad SOCKS5 reply address type {t}").into(),
            ))
        }
    };
    let mut rest = vec![0u8; addr_len + 2];
    read_exact_by(s, &mut rest).map_err(proxy_io("the SOCKS5 CONNECT reply"))?;
    Ok(())
}

fn socks5_reply(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown error",
    }
}

/// The HTTP CONNECT handshake, with basic authentication when a user name is set.
pub(crate) fn http_connect<S: Read + Write>(
    s: &mut S,
    proxy: &ProxyOptions,
    host: &str,
    port: u16,
) -> Result<()> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(user) = &proxy.username {
        let cred = format!("{user}:{}", proxy.password.as_deref().unwrap_or(""));
        req.push_str(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64(cred.as_bytes())
        ));
    }
    req.push_str("\r\n");
    write_all_by(s, req.as_bytes()).map_err(proxy_io("the HTTP CONNECT request"))?;

    // Read the status line and headers up to the blank line, byte by byte so that nothing
    // past it (the broker's first bytes) is consumed.
    const MAX_HEAD: usize = 16 * 1024;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(Error::Proxy(
                "the HTTP proxy's response header is too long".into(),
            ));
        }
        read_exact_by(s, &mut byte).map_err(proxy_io("the HTTP CONNECT response"))?;
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(c) if version.starts_with("HTTP/") && (200..300).contains(&c) => Ok(()),
        Some(c) if version.starts_with("HTTP/") => Err(Error::Proxy(
            format!(
                "the HTTP proxy refused CONNECT {authority}: {}{}",
                status_line.trim(),
                if c == 407 || c == 401 {
                    " (check ProxyOptions::username and password)"
                } else {
                    ""
                }
            )
            .into(),
        )),
        _ => Err(Error::Proxy(
            format!("not an HTTP proxy response: {:?}", status_line.trim()).into(),
        )),
    }
}

/// Standard base64 with padding (RFC 4648), for `Proxy-Authorization: Basic`.
pub(crate) fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests;
