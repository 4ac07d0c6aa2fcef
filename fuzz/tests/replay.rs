//! Replays every target's seeds and the inputs kept in `regressions/TARGET/` on stable Rust,
//! without a fuzzer: `cargo test` in fuzz/ (scripts/fuzz --replay runs it).

use std::path::Path;

fn replay_target(name: &str) {
    let f = mqtt_sync_fuzz::target(name).expect("known target");
    let seeds = mqtt_sync_fuzz::seeds::seeds(name);
    assert!(!seeds.is_empty(), "{name} has no seeds");
    let mut failed = Vec::new();
    for (i, s) in seeds.iter().enumerate() {
        if let Err(p) = std::panic::catch_unwind(|| f(s)) {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| format!("{p:?}"));
            failed.push(format!("seed #{i} {s:02X?}: {msg}"));
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(name);
    let mut regressions = 0;
    if dir.is_dir() {
        let files = mqtt_sync_fuzz::input_files(&[dir]).expect("read regressions");
        regressions = files.len();
        for (file, msg) in mqtt_sync_fuzz::replay(f, &files) {
            failed.push(format!("{}: {msg}", file.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "{name}: {} of {} inputs failed:\n{}",
        failed.len(),
        seeds.len() + regressions,
        failed.join("\n")
    );
    println!(
        "{name}: {} seeds and {regressions} regressions replayed",
        seeds.len()
    );
}

#[test]
fn decode() {
    replay_target("decode");
}

#[test]
fn session() {
    replay_target("session");
}

#[test]
fn proxy_url() {
    replay_target("proxy_url");
}

#[test]
fn proxy_replies() {
    replay_target("proxy_replies");
}

#[test]
fn ws_read() {
    replay_target("ws_read");
}

/// The wrappers reach the parsers: well-formed inputs succeed with the expected results.
#[test]
fn harness_sanity() {
    use mqtt_sync::fuzzing;
    for opts in [0x00, 0x0F, 0x13, 0x2F, 0x53, 0xD1, 0xFF] {
        let out = fuzzing::ws_read(
            opts,
            &[0x82, 6, 0x20, 2, 0, 0, 0xD0, 0, 0x02, 1, 9, 0x80, 1, 8],
        );
        assert_eq!(
            out.data,
            [0x20, 2, 0, 0, 0xD0, 0, 9, 8],
            "opts {opts:#x}: {out:?}"
        );
        // End of stream without a Close frame is an error; WouldBlock at the end is not.
        assert!(
            !out.livelock && out.error.is_some() == (opts & 0x20 != 0),
            "{out:?}"
        );
        let out = fuzzing::ws_read(opts, &[0x82, 1, 7, 0x88, 0]);
        assert!(out.closed && out.data == [7], "opts {opts:#x}: {out:?}");
    }
    let (r, used) = fuzzing::socks5_reply(0x03, &[5, 2, 1, 0, 5, 0, 0, 1, 1, 2, 3, 4, 0, 80, 0x20]);
    assert!(r.is_ok() && used == 14, "{r:?} {used}");
    let (r, used) = fuzzing::http_connect_reply(0, b"HTTP/1.1 200 OK\r\n\r\n\x20");
    assert!(r.is_ok() && used == 19, "{r:?} {used}");
    // The session: a QoS 2 message in (PUBREL twice), acks for mids 1 (QoS 1) and 2 (QoS 2),
    // SUBACK, UNSUBACK, PINGRESP: one delivery, two completions, no close.
    let flow = [
        0x34, 0x07, 0, 1, b't', 0, 9, b'h', b'i', 0x62, 2, 0, 9, 0x62, 2, 0, 9, 0x40, 2, 0, 1,
        0x50, 2, 0, 2, 0x70, 2, 0, 2, 0x90, 4, 0, 6, 2, 0x80, 0xB0, 2, 0, 7, 0xD0, 0,
    ];
    for shape in [0x00, 0x07] {
        let out = fuzzing::session(&[&[0x01, shape][..], &flow].concat());
        assert!(
            out.connections == 1
                && out.closes.is_empty()
                && out.messages == 1
                && out.published >= 2,
            "{out:?}"
        );
    }
    // Garbage after the CONNACK: a protocol error, then a reconnect with a CONNACK.
    let out = fuzzing::session(&[0x01, 0x07, 0x00, 0x00]);
    assert!(out.connections == 2 && out.closes.len() == 1, "{out:?}");
    let decodable = mqtt_sync_fuzz::seeds::seeds("decode")
        .iter()
        .filter(|s| {
            mqtt_sync::codec::decode(&s[1..], mqtt_sync_fuzz::protocol_of(s[0]), usize::MAX)
                .is_ok_and(|r| r.is_some())
        })
        .count();
    assert!(decodable > 100, "only {decodable} decode seeds decode");
    println!("{decodable} decode seeds decode");
}
