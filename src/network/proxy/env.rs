//! Where the proxy comes from: `proxy_set`, or the `mqtt_proxy` / `no_proxy` environment
//! variables (their URL syntax, percent-decoding, redaction for messages and logs).

use super::{ProxyOptions, ProxyType};
use crate::network::ConnectParams;
use crate::types::Transport;
use crate::{Error, Result};

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
