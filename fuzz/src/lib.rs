//! The fuzz targets of mqtt-sync, as plain functions: each takes the fuzzer's input, never
//! returns an error, and panics only when the crate broke one of the invariants checked here.
//! The binaries in `src/bin/` wrap them for libFuzzer (feature `libfuzzer`) or replay files
//! ([`replay_main`]); `tests/replay.rs` replays the seeds and regressions under `cargo test`.

use std::path::{Path, PathBuf};

// The conformance corpus loader of the crate's tests, for the `decode` seeds.
#[allow(dead_code)]
#[path = "../../tests/support/bytes.rs"]
mod bytes;
#[allow(dead_code, unused_imports)]
#[path = "../../tests/support/corpus.rs"]
mod corpus;
pub mod seeds;

use mqtt_sync::codec::{self, Packet};
use mqtt_sync::fuzzing;
use mqtt_sync::{Protocol, ProxyOptions, ProxyType};

/// A fuzz target: takes any input, panics only on a broken invariant.
pub type Target = fn(&[u8]);

/// The targets by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("decode", decode),
    ("session", session),
    ("proxy_replies", proxy_replies),
    ("proxy_url", proxy_url),
    ("ws_read", ws_read),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

// ---------------------------------------------------------------------------------------
// decode

/// The protocol picked by the first input byte of `decode`: its value modulo 3, so that the
/// protocol levels 3, 4 and 5 pick MQTT 3.1, 3.1.1 and 5.
pub fn protocol_of(selector: u8) -> Protocol {
    [Protocol::V31, Protocol::V311, Protocol::V5][usize::from(selector % 3)]
}

/// `decode`: byte 0 picks the protocol (see [`protocol_of`]) and, in its top two bits, the
/// maximum packet size (no limit, 16, 128 or 1024 bytes); the rest is a stream of packets,
/// decoded one after the other as the client's read loop does.
///
/// Invariants checked for every packet that decodes:
/// - it used at least 1 and at most the available bytes;
/// - every shorter prefix of it decodes as "incomplete" (`Ok(None)`), never as an error or a
///   different packet (the read loop relies on this to wait for more bytes);
/// - `Packet::encode` accepts it (CONNECT with the protocol it announces) and decoding that
///   encoding gives back an equal packet, using all of the encoding.
pub fn decode(data: &[u8]) {
    let Some((&sel, mut buf)) = data.split_first() else {
        return;
    };
    let protocol = protocol_of(sel);
    let max = [usize::MAX, 16, 128, 1024][usize::from(sel >> 6)];
    while !buf.is_empty() {
        let Ok(Some((packet, used))) = codec::decode(buf, protocol, max) else {
            return;
        };
        assert!(
            used >= 1 && used <= buf.len(),
            "decode used {used} of {} bytes",
            buf.len()
        );
        check_prefixes(&buf[..used], protocol, max);
        check_roundtrip(&packet, protocol);
        buf = &buf[used..];
    }
}

fn check_prefixes(packet: &[u8], protocol: Protocol, max: usize) {
    // Every prefix for short packets; for long ones the header, the first bytes of the body
    // and the last few (the full scan would make the target quadratic).
    let n = packet.len();
    let check = |k: usize| {
        let r = codec::decode(&packet[..k], protocol, max);
        assert!(
            matches!(r, Ok(None)),
            "the first {k} of the {n} bytes of a packet that decodes gave {r:?}, not Ok(None)"
        );
    };
    if n <= 64 {
        (0..n).for_each(check);
    } else {
        (0..16).chain(n - 16..n).for_each(check);
    }
}

fn check_roundtrip(packet: &Packet, protocol: Protocol) {
    let enc_protocol = match packet {
        Packet::Connect(c) => c.protocol,
        _ => protocol,
    };
    let mut out = Vec::new();
    if let Err(e) = packet.encode(enc_protocol, &mut out) {
        panic!("decoded {packet:?} ({protocol:?}), but encode refuses it: {e}");
    }
    match codec::decode(&out, protocol, usize::MAX) {
        Ok(Some((again, used))) => {
            assert_eq!(
                used,
                out.len(),
                "re-decoding {packet:?} used {used} of the {} bytes of its encoding {out:02X?}",
                out.len()
            );
            assert_eq!(
                &again, packet,
                "decode(encode(p)) != p ({protocol:?}); encoding {out:02X?}"
            );
        }
        other => panic!(
            "decoded {packet:?} ({protocol:?}); its encoding {out:02X?} decodes as {other:?}"
        ),
    }
}

// ---------------------------------------------------------------------------------------
// proxy_replies

// ---------------------------------------------------------------------------------------
// session

/// `session`: the client's sans-I/O session receiving what a broker sends after a CONNACK
/// (see [`fuzzing::session`] for the input layout and the invariants, which it checks
/// itself). Here: what it reports is consistent.
pub fn session(data: &[u8]) {
    let out = fuzzing::session(data);
    if data.len() >= 2 {
        // Every connection but the last ended for a reason the session gave.
        let (conns, closes) = (out.connections as usize, out.closes.len());
        assert!(
            conns >= 1 && (closes..=closes + 1).contains(&conns),
            "{out:?}"
        );
        if conns == closes + 1 {
            assert!(out.bytes_in >= data.len() - 2, "input left unread: {out:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// proxy_replies

/// `proxy_replies`: byte 0 modulo 2 picks the parser:
/// - 0: SOCKS5: byte 1 is the option byte of [`fuzzing::socks5_reply`], the rest the proxy's
///   replies. On success exactly the reply bytes that RFC 1928/1929 define must have been
///   consumed, no more (the broker's bytes follow them on the same socket);
/// - 1: HTTP CONNECT: byte 1 the option byte, the rest the proxy's response. On success the
///   consumed bytes are a 2xx status line and headers ending at the first blank line.
pub fn proxy_replies(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Some((&opts, reply)) = rest.split_first() else {
        return;
    };
    if sel % 2 == 0 {
        let (r, used) = fuzzing::socks5_reply(opts, reply);
        assert!(used <= reply.len());
        if r.is_ok() {
            let want = socks5_reply_len(reply, opts & 1 != 0);
            assert_eq!(
                Some(used),
                want,
                "SOCKS5 handshake succeeded on {reply:02X?} after consuming {used} bytes"
            );
        }
    } else {
        let (r, used) = fuzzing::http_connect_reply(opts, reply);
        assert!(used <= reply.len());
        if r.is_ok() {
            let head = &reply[..used];
            let first_blank = head.windows(4).position(|w| w == b"\r\n\r\n");
            assert_eq!(
                first_blank.map(|p| p + 4),
                Some(used),
                "HTTP CONNECT succeeded after consuming {:?}",
                String::from_utf8_lossy(head)
            );
            let text = String::from_utf8_lossy(head);
            let status = text.lines().next().unwrap_or("");
            let mut parts = status.splitn(3, ' ');
            let version = parts.next().unwrap_or("");
            let code: Option<u16> = parts.next().and_then(|c| c.parse().ok());
            assert!(
                version.starts_with("HTTP/") && code.is_some_and(|c| (200..300).contains(&c)),
                "HTTP CONNECT succeeded on {status:?}"
            );
        }
    }
}

/// How many bytes a successful SOCKS5 exchange reads: method selection, optional RFC 1929
/// status, CONNECT reply with its bound address. `None` if `reply` is not a success.
fn socks5_reply_len(reply: &[u8], with_auth: bool) -> Option<usize> {
    let mut i = 0;
    let method = reply.get(1)?;
    if reply[0] != 5 {
        return None;
    }
    i += 2;
    match method {
        0 => {}
        2 if with_auth => {
            if *reply.get(i + 1)? != 0 {
                return None;
            }
            i += 2;
        }
        _ => return None,
    }
    let head = reply.get(i..i + 4)?;
    if head[0] != 5 || head[1] != 0 {
        return None;
    }
    i += 4;
    let addr = match head[3] {
        1 => 4,
        4 => 16,
        3 => {
            let l = usize::from(*reply.get(i)?);
            i += 1;
            l
        }
        _ => return None,
    };
    i += addr + 2;
    (i <= reply.len()).then_some(i)
}

// ---------------------------------------------------------------------------------------
// proxy_url

/// `proxy_url`: the `mqtt_proxy` URL parser and the `no_proxy` matching. The input, as UTF-8
/// (lossy), is `URL\nNO_PROXY\nHOST`. A parsed URL has a host and a non-zero port, `rdns`
/// only for SOCKS5 and, written back as a URL, parses to the same options;
/// `proxy_from_env` uses exactly what the trimmed URL parses to; `no_proxy` matching is
/// consistent with `proxy_from_env`, `*` matches every host, and adding entries to the list
/// never removes a match.
pub fn proxy_url(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let url = parts.next().unwrap_or("");
    let no_proxy = parts.next().unwrap_or("");
    let host = parts.next().unwrap_or("");

    let parsed = fuzzing::parse_proxy_url(url);
    if let Ok(px) = &parsed {
        assert!(!px.addr.is_empty() && px.port != 0, "{url:?} gave {px:?}");
        assert!(
            px.proxy_type == ProxyType::Socks5 || !px.rdns,
            "{url:?} gave {px:?}"
        );
        if let Some(again) = unparse(px) {
            let reparsed = fuzzing::parse_proxy_url(&again);
            assert_eq!(
                reparsed.as_ref().ok(),
                Some(px),
                "{url:?} parses to {px:?}, written back as {again:?} it parses to {reparsed:?}"
            );
        }
        // What validate() refuses is what proxy_set refuses; it must not panic.
        let _ = fuzzing::validate_proxy(px);
    }

    // The environment variable path: trimmed, ignored when it does not parse.
    let trimmed = url.trim();
    let from_env = fuzzing::proxy_from_env(host, Some(url), None);
    if trimmed.is_empty() {
        assert_eq!(from_env, None);
    } else {
        assert_eq!(
            from_env.as_ref(),
            fuzzing::parse_proxy_url(trimmed).as_ref().ok(),
            "mqtt_proxy={url:?}"
        );
    }

    let bypassed = fuzzing::bypass(host, no_proxy);
    if bypassed {
        assert_eq!(
            fuzzing::proxy_from_env(host, Some(url), Some(no_proxy)),
            None,
            "host {host:?} is in no_proxy={no_proxy:?} but a proxy is used"
        );
    } else {
        assert_eq!(
            fuzzing::proxy_from_env(host, Some(url), Some(no_proxy)),
            from_env,
            "host {host:?}, no_proxy={no_proxy:?}"
        );
    }
    assert!(
        fuzzing::bypass(host, "*"),
        "no_proxy=* does not match {host:?}"
    );
    if bypassed {
        // Adding entries to the list never removes a match.
        assert!(fuzzing::bypass(host, &format!("other.invalid,{no_proxy}")));
    }
}

/// Writes proxy options back as a URL, percent-encoding the credentials; `None` for host
/// names that a URL cannot carry unambiguously (characters other than letters, digits, `.`,
/// `-`, `_` and, for IPv6, `:`).
fn unparse(px: &ProxyOptions) -> Option<String> {
    let host_ok = px
        .addr
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if !host_ok {
        return None;
    }
    let scheme = match (px.proxy_type, px.rdns) {
        (ProxyType::Socks5, true) => "socks5h",
        (ProxyType::Socks5, false) => "socks5",
        (ProxyType::Http, _) => "http",
        // ProxyType is non_exhaustive: a new kind has no URL form known here.
        _ => return None,
    };
    let enc = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let userinfo = match (&px.username, &px.password) {
        (None, None) => String::new(),
        (Some(u), None) => format!("{}@", enc(u)),
        (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p)),
        (None, Some(_)) => return None,
    };
    let host = if px.addr.contains(':') {
        format!("[{}]", px.addr)
    } else {
        px.addr.clone()
    };
    Some(format!("{scheme}://{userinfo}{host}:{}", px.port))
}

// ---------------------------------------------------------------------------------------
// ws_read

/// `ws_read`: byte 0 is the option byte of [`fuzzing::ws_read`] (how the socket delivers
/// the bytes and how much the caller reads at once), the rest what the broker sends after
/// the WebSocket upgrade. Invariants: `read` never spins, and the bytes it returns are a
/// prefix of the concatenated binary messages of the input (checked against a small,
/// more lenient frame parser below).
pub fn ws_read(data: &[u8]) {
    let Some((&opts, frames)) = data.split_first() else {
        return;
    };
    let out = fuzzing::ws_read(opts, frames);
    assert!(!out.livelock, "WsStream::read spins on {frames:02X?}");
    let reference = binary_messages(frames);
    assert!(
        reference.starts_with(&out.data),
        "WsStream::read returned {:02X?}, not a prefix of the binary messages {reference:02X?}",
        out.data
    );
}

/// The concatenated payloads of the complete binary messages in `frames`, read leniently
/// (masked frames are unmasked, reserved bits and unknown opcodes ignored) up to a Close
/// frame or the first incomplete frame.
fn binary_messages(frames: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut current: Option<Vec<u8>> = None; // the binary message being reassembled
    let mut in_text = false;
    let mut i = 0;
    loop {
        let Some(&[b0, b1]) = frames.get(i..i + 2) else {
            return out;
        };
        i += 2;
        let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0F);
        let len = match b1 & 0x7F {
            126 => {
                let Some(b) = frames.get(i..i + 2) else {
                    return out;
                };
                i += 2;
                u64::from(u16::from_be_bytes([b[0], b[1]]))
            }
            127 => {
                let Some(b) = frames.get(i..i + 8) else {
                    return out;
                };
                i += 8;
                u64::from_be_bytes(b.try_into().unwrap())
            }
            l => u64::from(l),
        };
        let mask = if b1 & 0x80 != 0 {
            let Some(m) = frames.get(i..i + 4) else {
                return out;
            };
            i += 4;
            Some([m[0], m[1], m[2], m[3]])
        } else {
            None
        };
        let Some(end) = usize::try_from(len).ok().and_then(|l| i.checked_add(l)) else {
            return out;
        };
        let Some(payload) = frames.get(i..end) else {
            return out;
        };
        i = end;
        let payload: Vec<u8> = match mask {
            Some(m) => payload
                .iter()
                .enumerate()
                .map(|(k, b)| b ^ m[k % 4])
                .collect(),
            None => payload.to_vec(),
        };
        match opcode {
            0 => {
                if let Some(cur) = current.as_mut() {
                    cur.extend_from_slice(&payload);
                    if fin {
                        out.extend_from_slice(&current.take().unwrap());
                    }
                } else if in_text && fin {
                    in_text = false;
                }
            }
            1 => {
                current = None;
                in_text = !fin;
            }
            2 => {
                in_text = false;
                if fin {
                    current = None;
                    out.extend_from_slice(&payload);
                } else {
                    current = Some(payload);
                }
            }
            8 => return out,
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------
// replay

/// The files of each path: a file itself, the regular files of a directory (sorted; no
/// recursion, dot files skipped).
pub fn input_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && !f
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            v.sort();
            files.extend(v);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// Runs `f` on each file, catching panics; returns the files that panicked.
pub fn replay(f: Target, files: &[PathBuf]) -> Vec<(PathBuf, String)> {
    let mut failed = Vec::new();
    for file in files {
        let data = match std::fs::read(file) {
            Ok(d) => d,
            Err(e) => {
                failed.push((file.clone(), format!("cannot read: {e}")));
                continue;
            }
        };
        if let Err(p) = std::panic::catch_unwind(|| f(&data)) {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            failed.push((file.clone(), msg));
        }
    }
    failed
}

/// The `main` of a target binary built without libFuzzer: replays the files and directories named
/// on the command line (default: `corpus/NAME` and `regressions/NAME` of this crate) and
/// returns the exit code (1 if any input panicked).
pub fn replay_main(name: &str, f: Target) -> i32 {
    let mut paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if paths.is_empty() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        paths = ["corpus", "regressions"]
            .iter()
            .map(|d| here.join(d).join(name))
            .filter(|p| p.is_dir())
            .collect();
    }
    let files = match input_files(&paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{name}: {e}");
            return 2;
        }
    };
    // The panic messages are reported below, once per file.
    std::panic::set_hook(Box::new(|_| {}));
    let failed = replay(f, &files);
    for (file, msg) in &failed {
        eprintln!("{name}: {} panicked: {msg}", file.display());
    }
    println!(
        "{name}: replayed {} inputs, {} failed",
        files.len(),
        failed.len()
    );
    i32::from(!failed.is_empty())
}
