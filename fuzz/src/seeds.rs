//! Seed inputs: `decode` seeds from the JSON conformance corpus of the crate's tests
//! (`tests/data/mosquitto-msg-sequence`), hand-made ones for `proxy_replies` and `ws_read`.
//! `seed.rs` writes them to `corpus/TARGET/`; `tests/replay.rs` replays them directly.

use std::path::{Path, PathBuf};

use mqtt_sync::codec::{Connect, LastWill, Packet};
use mqtt_sync::{Properties, Protocol, QoS};

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/ has a parent")
        .to_path_buf()
}

/// The conformance corpus folder.
pub fn corpus_dir() -> PathBuf {
    repo_root().join("tests/data/mosquitto-msg-sequence")
}

/// The seeds of target `name` (empty for an unknown name).
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    match name {
        "decode" => decode_seeds(&corpus_dir()),
        "session" => session_seeds(&corpus_dir()),
        "proxy_replies" => proxy_seeds(),
        "proxy_url" => proxy_url_seeds(),
        "ws_read" => ws_seeds(),
        _ => Vec::new(),
    }
}

fn dedup(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v.dedup();
    v
}

/// Every message of every case (both directions), and the concatenation of the bytes the
/// broker sends in each case (a packet stream), each prefixed with the case's protocol level
/// (3, 4 or 5, which `decode` maps to its protocol); plus CONNECT packets for each level,
/// which the corpus never spells out.
pub fn decode_seeds(corpus_dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for case in super::corpus::load_all(corpus_dir) {
        let mut stream = vec![case.ver];
        for step in &case.msgs {
            let mut one = vec![case.ver];
            one.extend_from_slice(&step.bytes);
            out.push(one);
            if step.send {
                stream.extend_from_slice(&step.bytes);
            }
        }
        if stream.len() > 1 {
            out.push(stream);
        }
    }
    for protocol in [Protocol::V31, Protocol::V311, Protocol::V5] {
        let mut props = Properties::default();
        if protocol == Protocol::V5 {
            props.session_expiry_interval = Some(60);
            props.user_properties.push(("k".into(), "v".into()));
        }
        let connect = Connect {
            protocol,
            clean_start: true,
            keep_alive: 60,
            client_id: "fuzz".into(),
            will: Some(LastWill {
                topic: "will/t".into(),
                payload: b"gone".to_vec(),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: Properties::default(),
            }),
            username: Some("user".into()),
            password: Some(b"pw".to_vec()),
            properties: props,
            bridge: false,
        };
        let mut bytes = vec![protocol.level()];
        Packet::Connect(connect)
            .encode(protocol, &mut bytes)
            .expect("seed CONNECT encodes");
        out.push(bytes);
    }
    dedup(out)
}

/// The bytes a broker sends after its CONNACK in each case of the conformance corpus that
/// has a successful CONNACK, each with two shapes (see `fuzzing::session`): the case's
/// protocol, all at once; and the case's protocol with a 4 KiB packet limit and manual acks,
/// 3 bytes per read and 250 ms between reads. Plus a few hand-made flows the corpus does not
/// hold (QoS 2 in, acks of the client's messages, topic aliases, keepalive).
pub fn session_seeds(corpus_dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut with = |ver: u8, stream: &[u8]| {
        let proto = ver.saturating_sub(3) % 3;
        for (opts, shape) in [(proto, 0x07), (proto | 0x70, 0x0A)] {
            let mut v = vec![opts, shape];
            v.extend_from_slice(stream);
            out.push(v);
        }
    };
    for case in super::corpus::load_all(corpus_dir) {
        if !case.connack {
            continue;
        }
        let stream: Vec<u8> = case
            .msgs
            .iter()
            .filter(|m| m.send)
            .flat_map(|m| m.bytes.iter().copied())
            .collect();
        if !stream.is_empty() {
            with(case.ver, &stream);
        }
    }
    // QoS 2 in (PUBLISH, PUBREL twice), PUBACK for mid 1, PUBREC/PUBCOMP for mid 2, SUBACK,
    // UNSUBACK, PINGRESP: MQTT 3.1.1.
    let v311: &[u8] = &[
        0x34, 0x07, 0, 1, b't', 0, 9, b'h', b'i', 0x62, 2, 0, 9, 0x62, 2, 0, 9, 0x40, 2, 0, 1,
        0x50, 2, 0, 2, 0x70, 2, 0, 2, 0x90, 4, 0, 6, 2, 0x80, 0xB0, 2, 0, 7, 0xD0, 0,
    ];
    with(4, v311);
    // MQTT 5: a topic alias set then used, a QoS 1 message, a failed PUBACK, DISCONNECT.
    let v5: &[u8] = &[
        0x30, 0x09, 0, 3, b'a', b'/', b'b', 3, 0x23, 0, 1, 0x30, 0x06, 0, 0, 3, 0x23, 0, 1, 0x32,
        0x07, 0, 1, b'q', 0, 5, 0, b'x', 0x40, 3, 0, 1, 0x80, 0xE0, 1, 0x8B,
    ];
    with(5, v5);
    out.push([&[0x02, 0x01][..], v5].concat());
    // Silence: the keepalive (5 s) sends PINGREQ, then gives up without PINGRESP.
    out.push(vec![0x01, 0xF8, 0, 0, 0, 0, 0, 0, 0, 0]);
    dedup(out)
}

/// SOCKS5 and HTTP CONNECT exchanges (see `proxy_replies`).
pub fn proxy_seeds() -> Vec<Vec<u8>> {
    let with = |sel: u8, opts: u8, reply: &[u8]| {
        let mut v = vec![sel, opts];
        v.extend_from_slice(reply);
        v
    };
    vec![
        // SOCKS5, no authentication, bound IPv4 address, broker bytes after the reply.
        with(0, 0x00, &[5, 0, 5, 0, 0, 1, 1, 2, 3, 4, 0, 80, 0x20]),
        // SOCKS5 user/password, bound domain name, IPv4 broker.
        with(
            0,
            0x07,
            &[5, 2, 1, 0, 5, 0, 0, 3, 4, b'h', b'o', b's', b't', 0, 80],
        ),
        // Bound IPv6 address, IPv6 broker.
        with(
            0,
            0x08,
            &[
                5, 0, 5, 0, 0, 4, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 7, 91,
            ],
        ),
        // No acceptable method; connection refused; wrong version; short reply.
        with(0, 0x00, &[5, 0xFF]),
        with(0, 0x10, &[5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0]),
        with(0, 0x01, &[4, 0]),
        with(0, 0x03, &[5, 2, 1, 1]),
        with(0, 0x00, &[5, 0, 5]),
        // HTTP CONNECT.
        with(
            1,
            0x03,
            b"HTTP/1.1 200 Connection established\r\nX: y\r\n\r\n\x20\x02\x00\x00",
        ),
        with(1, 0x04, b"HTTP/1.0 200 OK\r\n\r\n"),
        with(
            1,
            0x01,
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
        ),
        with(1, 0x10, b"SSH-2.0-OpenSSH\r\n"),
        with(1, 0x00, b"HTTP/1.1 200\r\n\r\n"),
    ]
}

/// `mqtt_proxy` URLs with a `no_proxy` list and a host (see `proxy_url`).
pub fn proxy_url_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for url in [
        "socks5h://u%40x:p%3Aw@proxy.example:1081/path\nexample.com,.local\nbroker.example.com",
        "socks://10.0.0.1\n\nb",
        "socks5://h:1\n*\nanything",
        "HTTP://user@[::1]/\n[::1]:1883\n::1",
        "http://[::1]:3128\nlocalhost,127.0.0.1\n127.0.0.1",
        "ftp://h\n\nh",
        "http://h:0\n*.example.com\nBroker.Example.COM.",
    ] {
        out.push(url.as_bytes().to_vec());
    }
    out
}

/// What a broker sends after the WebSocket upgrade, with a few delivery options each (see
/// `ws_read`).
pub fn ws_seeds() -> Vec<Vec<u8>> {
    let mut long = vec![0x82, 126, 0, 200, 0x30, 0x80, 0x01, 0, 3, b'a', b'/', b'b'];
    long.resize(4 + 200, 0x55);
    let frames: Vec<Vec<u8>> = vec![
        // One binary frame (CONNACK).
        vec![0x82, 4, 0x20, 2, 0, 0],
        // Two packets in one frame, then a second frame.
        vec![0x82, 6, 0x20, 2, 0, 0, 0xD0, 0, 0x82, 2, 0xD0, 0],
        // A fragmented binary message with a ping in the middle.
        vec![0x02, 2, 0x20, 2, 0x89, 1, b'p', 0x80, 2, 0, 0],
        // A 200-byte frame with a 16-bit length.
        long,
        // Close with status 1000 after a binary frame.
        vec![0x82, 2, 0xD0, 0, 0x88, 2, 0x03, 0xE8],
        // A text frame (not MQTT), a pong, an empty binary frame.
        vec![0x8A, 0, 0x82, 0, 0x81, 2, b'h', b'i'],
        // A masked frame (servers must not mask).
        vec![0x82, 0x84, 1, 2, 3, 4, 0x21, 0, 3, 4],
        // A 64-bit length, truncated payload.
        vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0, 0x30, 0],
    ];
    let mut out = Vec::new();
    for f in &frames {
        for opts in [0x00u8, 0x2F, 0x53, 0xD1] {
            let mut v = vec![opts];
            v.extend_from_slice(f);
            out.push(v);
        }
    }
    out
}
