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
use crate::types::Transport;
use crate::{Error, Result};

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

/// The proxy to use for this attempt: the explicit one (`proxy_set`); else, as Paho, the
/// `mqtt_proxy` (or `MQTT_PROXY`) environment variable unless the broker host is listed in
/// `no_proxy` (or `NO_PROXY`). Unix sockets never use a proxy.
pub(crate) fn effective_proxy(p: &ConnectParams<'_>) -> Option<ProxyOptions> {
    if p.transport == Transport::Unix {
        return None;
    }
    if let Some(px) = &p.config.proxy {
        return Some(px.clone());
    }
    let env = |lower: &str, upper: &str| {
        std::env::var(lower)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| std::env::var(upper).ok())
    };
    proxy_from_env(
        p.host,
        env("mqtt_proxy", "MQTT_PROXY").as_deref(),
        env("no_proxy", "NO_PROXY").as_deref(),
    )
}

/// `effective_proxy` without the environment: the proxy for `host` given the values of
/// `mqtt_proxy` and `no_proxy`. A value that does not parse is ignored (with a log line), as
/// Paho ignores schemes it does not know.
pub(crate) fn proxy_from_env(
    host: &str,
    mqtt_proxy: Option<&str>,
    no_proxy: Option<&str>,
) -> Option<ProxyOptions> {
    let url = mqtt_proxy.map(str::trim).filter(|s| !s.is_empty())?;
    if no_proxy.is_some_and(|np| bypass(host, np)) {
        return None;
    }
    match parse_proxy_url(url) {
        Ok(px) => Some(px),
        Err(e) => {
            log::warn!("ignoring the mqtt_proxy environment variable: {e}");
            None
        }
    }
}

/// Parses a proxy URL as Paho reads `mqtt_proxy`: `socks://`, `socks5://`, `socks5h://` or
/// `http://`, then optional `user:password@` (percent-encoded), host (IPv6 in brackets) and
/// optional port (default 1080 for SOCKS, 8080 for HTTP). `socks://` and `socks5h://` let the
/// proxy resolve the broker's name (Paho's default); `socks5://` resolves it locally (as curl).
pub(crate) fn parse_proxy_url(url: &str) -> Result<ProxyOptions> {
    // Every message quotes the URL without its user name and password.
    let shown = redacted(url);
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        Error::invalid(format!(
            "proxy URL {shown:?} has no scheme (socks5:// or http://)"
        ))
    })?;
    let (proxy_type, rdns, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "socks" | "socks5h" => (ProxyType::Socks5, true, 1080),
        "socks5" => (ProxyType::Socks5, false, 1080),
        "http" => (ProxyType::Http, false, 8080),
        other => {
            return Err(Error::invalid(format!(
                "proxy URL {shown:?}: unsupported scheme {other:?} (socks://, socks5://, socks5h:// or http://)"
            )))
        }
    };
    // Drop any path, query or fragment.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (Some(percent_decode(user)?), Some(percent_decode(pass)?)),
            None => (Some(percent_decode(u)?), None),
        },
    };
    let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
        let (h, tail) = after
            .split_once(']')
            .ok_or_else(|| Error::invalid(format!("proxy URL {shown:?}: unclosed '['")))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => Some(p),
            None if tail.is_empty() => None,
            None => {
                return Err(Error::invalid(format!(
                    "proxy URL {shown:?}: junk after ']'"
                )))
            }
        };
        (h, port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| Error::invalid(format!("proxy URL {shown:?}: bad port {p:?}")))?,
    };
    if host.is_empty() {
        return Err(Error::invalid(format!("proxy URL {shown:?} has no host")));
    }
    Ok(ProxyOptions {
        proxy_type,
        addr: host.to_string(),
        port,
        username,
        password,
        rdns,
    })
}

fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    Error::invalid("proxy URL: bad percent-encoding in the user name or password")
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        Error::invalid("proxy URL: the user name or password is not UTF-8 once decoded")
    })
}

/// `url` with everything before the host hidden (`socks5://***@proxy:1080`): what error
/// messages and log lines may quote.
pub(crate) fn redacted(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let rest = match rest.rfind('@') {
        Some(i) => format!("***{}", &rest[i..]),
        None => rest.to_string(),
    };
    match scheme {
        Some(s) => format!("{s}://{rest}"),
        None => rest,
    }
}

/// Whether `host` is listed in a `no_proxy` value (as Python's `proxy_bypass_environment`):
/// comma-separated names, `*` for every host, an entry matches the host itself or, as a
/// suffix, any name below it (`example.com` and `.example.com` both match
/// `broker.example.com`); an entry may carry a `:port`, which is ignored; case-insensitive.
pub(crate) fn bypass(host: &str, no_proxy: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    for entry in no_proxy.split(',') {
        let entry = entry.trim();
        if entry == "*" {
            return true;
        }
        let entry = entry.strip_prefix("*.").unwrap_or(entry);
        let entry = entry.trim_start_matches('.');
        // Strip a ":port" (not from a bare IPv6 address).
        let entry = if let Some(inner) = entry.strip_prefix('[') {
            inner.split(']').next().unwrap_or("")
        } else if entry.matches(':').count() == 1 {
            entry.split(':').next().unwrap_or("")
        } else {
            entry
        };
        let entry = entry.trim_end_matches('.').to_ascii_lowercase();
        if entry.is_empty() {
            continue;
        }
        if host == entry
            || (host.ends_with(&entry) && host[..host.len() - entry.len()].ends_with('.'))
        {
            return true;
        }
    }
    false
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
mod tests {
    use super::*;

    /// Reliability I, defect 10: no error or log line of a proxy URL quotes its password.
    #[test]
    fn proxy_url_errors_hide_the_credentials() {
        for url in [
            "socks5://user:s3cret@proxy:notaport",
            "socks5://user:s3cret@",
            "ftp://user:s3cret@proxy:1080",
            "user:s3cret@proxy:1080",
            "socks5://user:s3cret@[::1",
            "socks5://user:s3cret@[::1]x",
            "socks5://user:s3%ZZcret@proxy",
            "http://user:s3cret%FF@proxy",
        ] {
            let e = parse_proxy_url(url).unwrap_err().to_string();
            assert!(!e.contains("s3"), "{url}: {e}");
            let warned = proxy_from_env("broker", Some(url), None);
            assert!(warned.is_none());
        }
        assert_eq!(
            redacted("socks5://u:p@proxy:1080/x"),
            "socks5://***@proxy:1080/x"
        );
        assert_eq!(redacted("u:p@proxy"), "***@proxy");
        assert_eq!(redacted("http://proxy:8080"), "http://proxy:8080");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("user:pass", "dXNlcjpwYXNz"),
        ] {
            assert_eq!(base64(i.as_bytes()), o, "{i}");
        }
    }

    #[test]
    fn parses_proxy_urls() {
        let p = parse_proxy_url("socks5h://proxy.example:1081").unwrap();
        assert_eq!(
            p,
            ProxyOptions {
                proxy_type: ProxyType::Socks5,
                addr: "proxy.example".into(),
                port: 1081,
                username: None,
                password: None,
                rdns: true
            }
        );
        let p = parse_proxy_url("socks://u%40x:p%3Aw@10.0.0.1").unwrap();
        assert_eq!((p.port, p.rdns), (1080, true));
        assert_eq!(p.username.as_deref(), Some("u@x"));
        assert_eq!(p.password.as_deref(), Some("p:w"));
        let p = parse_proxy_url("socks5://h:1").unwrap();
        assert!(!p.rdns);
        let p = parse_proxy_url("HTTP://user@[::1]/").unwrap();
        assert_eq!(
            (p.proxy_type, p.addr.as_str(), p.port),
            (ProxyType::Http, "::1", 8080)
        );
        assert_eq!(
            (p.username.as_deref(), p.password.as_deref()),
            (Some("user"), None)
        );
        let p = parse_proxy_url("http://[::1]:3128").unwrap();
        assert_eq!((p.addr.as_str(), p.port), ("::1", 3128));
        for bad in [
            "proxy:1080",
            "ftp://h",
            "http://",
            "http://h:0",
            "http://h:x",
            "socks://h:99999",
        ] {
            assert!(parse_proxy_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_proxy_matching() {
        assert!(bypass("broker.example.com", "example.com"));
        assert!(bypass("broker.example.com", ".example.com"));
        assert!(bypass("broker.example.com", "*.example.com"));
        assert!(bypass("Broker.Example.COM", "other, EXAMPLE.com:1883"));
        assert!(bypass("example.com", "example.com"));
        assert!(!bypass("badexample.com", "example.com"));
        assert!(!bypass("example.com.evil", "example.com"));
        assert!(bypass("anything", "*"));
        assert!(bypass("127.0.0.1", "localhost,127.0.0.1"));
        assert!(bypass("::1", "[::1]:1883"));
        assert!(bypass("::1", "::1"));
        assert!(!bypass("host", ""));
        assert!(!bypass("host", " , ,"));
    }

    #[test]
    fn env_values_pick_the_proxy() {
        assert_eq!(proxy_from_env("b", None, None), None);
        assert_eq!(proxy_from_env("b", Some(""), None), None);
        let p = proxy_from_env("b.example", Some("http://p:3128"), Some("other")).unwrap();
        assert_eq!((p.proxy_type, p.port), (ProxyType::Http, 3128));
        assert_eq!(
            proxy_from_env("b.example", Some("http://p:3128"), Some("example")),
            None
        );
        assert_eq!(
            proxy_from_env("b.example", Some("http://p:3128"), Some("*")),
            None
        );
        assert_eq!(proxy_from_env("b", Some("gopher://p"), None), None);
    }

    #[test]
    fn validate_rejects_bad_options() {
        let ok = ProxyOptions {
            addr: "p".into(),
            port: 1080,
            ..Default::default()
        };
        validate(&ok).unwrap();
        assert!(validate(&ProxyOptions {
            addr: "".into(),
            ..ok.clone()
        })
        .is_err());
        assert!(validate(&ProxyOptions {
            port: 0,
            ..ok.clone()
        })
        .is_err());
        assert!(validate(&ProxyOptions {
            password: Some("x".into()),
            ..ok.clone()
        })
        .is_err());
        assert!(validate(&ProxyOptions {
            username: Some("u".repeat(256)),
            ..ok
        })
        .is_err());
    }

    /// A scripted peer: replays `input`, records what was written.
    struct Script {
        input: std::io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }
    impl Read for Script {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(b)
        }
    }
    impl Write for Script {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.output.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    fn script(input: &[u8]) -> Script {
        Script {
            input: std::io::Cursor::new(input.to_vec()),
            output: Vec::new(),
        }
    }

    #[test]
    fn socks5_bytes_with_auth_and_rdns() {
        let px = ProxyOptions {
            addr: "p".into(),
            port: 1,
            username: Some("u".into()),
            password: Some("pw".into()),
            rdns: true,
            ..Default::default()
        };
        let mut s = script(&[5, 2, 1, 0, 5, 0, 0, 1, 1, 2, 3, 4, 0, 80, 0xAA]);
        socks5(&mut s, &px, "broker", 1883).unwrap();
        let mut want = vec![5, 2, 0, 2, 1, 1, b'u', 2, b'p', b'w', 5, 1, 0, 3, 6];
        want.extend_from_slice(b"broker");
        want.extend_from_slice(&1883u16.to_be_bytes());
        assert_eq!(s.output, want);
        // Nothing past the reply was consumed.
        assert_eq!(s.input.position(), 14);
    }

    #[test]
    fn socks5_refusals() {
        let px = ProxyOptions {
            addr: "p".into(),
            port: 1,
            ..Default::default()
        };
        let mut s = script(&[5, 0xFF]);
        assert!(
            matches!(socks5(&mut s, &px, "1.2.3.4", 1), Err(Error::Proxy(m)) if m.contains("requires authentication"))
        );
        let mut s = script(&[5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert!(
            matches!(socks5(&mut s, &px, "1.2.3.4", 1), Err(Error::Proxy(m)) if m.contains("connection refused"))
        );
        assert_eq!(&s.output[3..], &[5, 1, 0, 1, 1, 2, 3, 4, 0, 1]);
        let mut s = script(&[5, 0, 5]);
        assert!(
            matches!(socks5(&mut s, &px, "1.2.3.4", 1), Err(Error::Proxy(m)) if m.contains("closed"))
        );
    }

    #[test]
    fn http_connect_bytes_and_status() {
        let px = ProxyOptions {
            proxy_type: ProxyType::Http,
            addr: "p".into(),
            port: 1,
            username: Some("user".into()),
            password: Some("pass".into()),
            ..Default::default()
        };
        let mut s = script(b"HTTP/1.1 200 Connection established\r\nX: y\r\n\r\n\x20\x02");
        http_connect(&mut s, &px, "::1", 1883).unwrap();
        assert_eq!(
            String::from_utf8(s.output).unwrap(),
            "CONNECT [::1]:1883 HTTP/1.1\r\nHost: [::1]:1883\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n"
        );
        let mut rest = Vec::new();
        s.input.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"\x20\x02");
        let mut s = script(b"HTTP/1.0 407 Proxy Authentication Required\r\n\r\n");
        let e = http_connect(&mut s, &px, "h", 1).unwrap_err();
        assert!(matches!(&e, Error::Proxy(m) if m.contains("407")), "{e}");
    }
}
