mod support;

// Self-tests of the test harness (`tests/support`). They use only std, the mosquitto CLI
// tools and openssl — not the `mqtt_sync` crate — so they run even while the library is
// being changed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::bytes::{hex, parse_payload, try_parse_payload, varint};
use support::certs::Certs;
use support::corpus;
use support::scripted::{self, ScriptedBroker};
use support::wait::{poll_until, wait_until, Events, T};
use support::Mosquitto;

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn pub_ok(args: &[&str]) -> Output {
    run(Command::new("mosquitto_pub").args(args))
}

/// Reads one CONNACK (4 bytes for 3.1.1) from a raw stream.
fn read_connack(s: &mut impl Read) -> [u8; 4] {
    let mut b = [0u8; 4];
    s.read_exact(&mut b).expect("read CONNACK");
    b
}

/// Starts mosquitto_sub in the background and waits until the broker has its subscription.
fn subscriber(broker: &Mosquitto, id: &str, topic: &str, extra: &[&str]) -> std::process::Child {
    let mark = broker.log_mark();
    let port = broker.port().to_string();
    let child = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-i",
            id,
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            "10",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mosquitto_sub");
    broker.wait_for_log_after(mark, &format!("Received SUBSCRIBE from {id}"), T);
    child
}

#[test]
fn mosquitto_delivers_between_cli_clients() {
    let broker = Mosquitto::start();
    let sub = subscriber(&broker, "selftest-sub", "selftest/a", &[]);
    let port = broker.port().to_string();
    let out = pub_ok(&[
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-i",
        "selftest-pub",
        "-t",
        "selftest/a",
        "-m",
        "hello",
    ]);
    assert!(
        out.status.success(),
        "pub failed: {out:?}\n{}",
        broker.log()
    );
    let out = sub.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sub failed: {out:?}\n{}",
        broker.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
}

#[test]
fn mosquitto_restarts_on_the_same_port() {
    let mut broker = Mosquitto::start();
    let port = broker.port();
    // A connected client sees the broker go away.
    let mut raw = TcpStream::connect(broker.addr()).unwrap();
    raw.write_all(&scripted::connect_v311("selftest-restart", 60, true))
        .unwrap();
    assert_eq!(read_connack(&mut raw), [0x20, 2, 0, 0]);
    let pid = broker.pid().unwrap();
    broker.restart();
    assert_ne!(broker.pid().unwrap(), pid);
    assert_eq!(broker.port(), port);
    raw.set_read_timeout(Some(T)).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(
        raw.read(&mut b).unwrap_or(0),
        0,
        "old connection should be closed"
    );
    let mut raw = TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.write_all(&scripted::connect_v311("selftest-restart", 60, true))
        .unwrap();
    assert_eq!(read_connack(&mut raw), [0x20, 2, 0, 0]);
    broker.stop();
    assert!(!broker.is_running());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    broker.start_again();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(
        broker.log().contains("mosquitto version"),
        "{}",
        broker.log()
    );
}

#[test]
fn mosquitto_persistence_survives_restart() {
    let mut broker = Mosquitto::builder()
        .persistence(true)
        .unix_listener()
        .start();
    let port = broker.port().to_string();
    let out = pub_ok(&[
        "-p",
        &port,
        "-t",
        "selftest/retained",
        "-m",
        "kept",
        "-r",
        "-q",
        "1",
    ]);
    assert!(out.status.success(), "{out:?}");
    broker.restart();
    assert!(
        broker.dir().join("mosquitto.db").exists(),
        "{}",
        broker.log()
    );
    let out = run(Command::new("mosquitto_sub").args([
        "-p",
        &port,
        "-t",
        "selftest/retained",
        "-C",
        "1",
        "-W",
        "10",
    ]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "kept\n",
        "{out:?}\n{}",
        broker.log()
    );
}

#[test]
fn mosquitto_websockets_and_unix_listeners() {
    let broker = Mosquitto::builder()
        .listener("ws", &["protocol websockets"])
        .unix_listener()
        .start();
    let ws = broker.port_of("ws");
    assert_ne!(ws, broker.port());
    assert_eq!(broker.port_of("default"), broker.port());

    // WebSocket upgrade handshake by hand.
    let mut s = TcpStream::connect(("127.0.0.1", ws)).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(
        b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: mqtt\r\n\r\n",
    )
    .unwrap();
    let mut resp = Vec::new();
    let mut buf = [0u8; 512];
    while !resp.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "ws listener closed: {}",
            String::from_utf8_lossy(&resp)
        );
        resp.extend_from_slice(&buf[..n]);
    }
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 101"), "{resp}");

    // MQTT over the unix socket, by hand and with mosquitto_pub --unix.
    let path = broker.unix_path();
    assert!(path.starts_with(broker.dir()));
    let mut u = UnixStream::connect(path).unwrap();
    u.write_all(&scripted::connect_v311("selftest-unix", 60, true))
        .unwrap();
    assert_eq!(read_connack(&mut u), [0x20, 2, 0, 0]);
    let out = pub_ok(&[
        "--unix",
        path.to_str().unwrap(),
        "-t",
        "selftest/unix",
        "-m",
        "x",
    ]);
    assert!(out.status.success(), "{out:?}\n{}", broker.log());
}

#[test]
fn mosquitto_password_file_and_acl() {
    let broker = Mosquitto::builder()
        .user("alice", "secret")
        .user("bob", "hunter2")
        .allow_anonymous(false)
        .acl("user alice\ntopic readwrite selftest/#\n")
        .start();
    let port = broker.port().to_string();
    let base = ["-p", port.as_str(), "-t", "selftest/pw", "-m", "x"];
    let ok = pub_ok(&[&base[..], &["-u", "alice", "-P", "secret"]].concat());
    assert!(ok.status.success(), "{ok:?}\n{}", broker.log());
    let ok = pub_ok(&[&base[..], &["-u", "bob", "-P", "hunter2"]].concat());
    assert!(ok.status.success(), "{ok:?}\n{}", broker.log());
    let bad = pub_ok(&[&base[..], &["-u", "alice", "-P", "wrong"]].concat());
    assert!(
        !bad.status.success(),
        "wrong password accepted\n{}",
        broker.log()
    );
    let anon = pub_ok(&base);
    assert!(
        !anon.status.success(),
        "anonymous accepted\n{}",
        broker.log()
    );
    // The ACL gives bob nothing: mosquitto 2.0.11 still grants his SUBSCRIBE (acl_file is
    // checked on delivery, not on subscribe) but denies his PUBLISH, which the log shows.
    broker.wait_for_log("Denied PUBLISH from", T);
}

#[test]
fn mosquitto_tls_listener_with_client_certificates() {
    let b = Mosquitto::builder();
    let certs = Certs::generate(b.dir());
    let broker = b.tls_listener("tls", &certs, true).start();
    let port = broker.port_of("tls").to_string();
    let tls = |extra: &[&str]| {
        let mut args = vec![
            "-h",
            "localhost",
            "-p",
            &port,
            "-t",
            "selftest/tls",
            "-m",
            "x",
        ];
        args.extend_from_slice(extra);
        pub_ok(&args)
    };
    let ca = certs.ca.to_str().unwrap();
    let ok = tls(&[
        "--cafile",
        ca,
        "--cert",
        certs.client_cert.to_str().unwrap(),
        "--key",
        certs.client_key.to_str().unwrap(),
    ]);
    assert!(ok.status.success(), "{ok:?}\n{}", broker.log());
    let no_cert = tls(&["--cafile", ca]);
    assert!(
        !no_cert.status.success(),
        "client without certificate accepted\n{}",
        broker.log()
    );
}

#[test]
fn mosquitto_many_brokers_in_parallel() {
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                Mosquitto::builder()
                    .listener("ws", &["protocol websockets"])
                    .start()
            })
        })
        .collect();
    let brokers: Vec<Mosquitto> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut ports: Vec<u16> = brokers
        .iter()
        .flat_map(|b| [b.port(), b.port_of("ws")])
        .collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 8);
}

#[test]
fn mosquitto_missing_config_fails_loudly() {
    let r = std::panic::catch_unwind(|| Mosquitto::builder().config("no_such_option 1").start());
    let msg = r
        .err()
        .and_then(|e| e.downcast::<String>().ok())
        .expect("start should panic");
    assert!(msg.contains("no_such_option"), "{msg}");
}

#[test]
fn scripted_broker_reads_and_answers() {
    let broker = ScriptedBroker::bind();
    let mut client = TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
    let mut conn = broker.accept(T);
    assert_eq!(conn.peer_port(), client.local_addr().unwrap().port());

    let connect = scripted::connect_v311("raw", 30, true);
    assert_eq!(
        connect,
        parse_payload("10 r15 s4 'MQTT' 04 02 k30 s3 'raw'"),
        "hand-built CONNECT vs mini-language"
    );
    client.write_all(&connect).unwrap();
    conn.expect_packet(&connect, T);
    conn.send(&scripted::connack(false, 0));
    assert_eq!(read_connack(&mut client), [0x20, 2, 0, 0]);

    // A packet with a 2-byte remaining length, written in pieces, then two packets at once.
    let big = scripted::publish("a/b", &[7u8; 300], 1, 42, false, false);
    assert_eq!(&big[..3], &[0x32, 0xb3, 0x02]);
    client.write_all(&big[..2]).unwrap();
    client.flush().unwrap();
    let (tail_start, tail_end) = (big[2..100].to_vec(), big[100..].to_vec());
    let writer = std::thread::spawn(move || {
        let mut c = client;
        c.write_all(&tail_start).unwrap();
        c.write_all(&tail_end).unwrap();
        c.write_all(&[
            0xc0, 0x00, 0x82, 0x08, 0x00, 0x05, 0x00, 0x03, b'x', b'/', b'y', 0x01,
        ])
        .unwrap();
        c
    });
    let p = conn.read_packet(T);
    assert_eq!(p, big);
    assert_eq!(scripted::parse_client_packet_type(&p), 3);
    assert_eq!(scripted::packet_id(&p), Some(42));
    assert_eq!(scripted::publish_topic(&p), "a/b");
    assert_eq!(scripted::publish_qos(&p), 1);
    let client = writer.join().unwrap();
    let ping = conn.read_packet(T);
    assert_eq!(ping, [0xc0, 0x00]);
    assert_eq!(scripted::packet_id(&ping), None);
    let sub = conn.read_packet(T);
    assert_eq!(scripted::parse_client_packet_type(&sub), 8);
    assert_eq!(scripted::packet_id(&sub), Some(5));

    conn.expect_silence(Duration::from_millis(50));
    drop(client);
    conn.expect_closed(T);
    broker.expect_no_connection(Duration::from_millis(20));
}

#[test]
fn scripted_conn_reports_mismatch_with_hex_diff() {
    let broker = ScriptedBroker::bind();
    let mut client = TcpStream::connect(broker.addr()).unwrap();
    let mut conn = broker.accept(T);
    client.write_all(&[0xe0, 0x00]).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        conn.expect_packet(&[0xc0, 0x00], T)
    }));
    let msg = r
        .err()
        .and_then(|e| e.downcast::<String>().ok())
        .expect("mismatch should panic");
    assert!(msg.contains("expected (     2 bytes): c0 00"), "{msg}");
    assert!(msg.contains("actual   (     2 bytes): e0 00"), "{msg}");
    // accept() times out loudly.
    let r = std::panic::catch_unwind(|| {
        ScriptedBroker::bind().accept(Duration::from_millis(20));
    });
    assert!(r.is_err());
}

#[test]
fn broker_packet_builders() {
    assert_eq!(scripted::connack(true, 5), [0x20, 2, 1, 5]);
    assert_eq!(
        scripted::connack_v5(false, 0, &[0x21, 0x00, 0x14]),
        parse_payload("20 r6 00 00 v3 21 H20")
    );
    assert_eq!(scripted::puback(0x1234), [0x40, 2, 0x12, 0x34]);
    assert_eq!(scripted::pubrec(1), [0x50, 2, 0, 1]);
    assert_eq!(scripted::pubrel(1), [0x62, 2, 0, 1]);
    assert_eq!(scripted::pubcomp(1), [0x70, 2, 0, 1]);
    assert_eq!(
        scripted::suback(1, &[0, 1, 0x80]),
        [0x90, 5, 0, 1, 0, 1, 0x80]
    );
    assert_eq!(scripted::unsuback(9), [0xb0, 2, 0, 9]);
    assert_eq!(scripted::pingresp(), [0xd0, 0]);
    assert_eq!(
        scripted::publish("alive check", b"payload", 1, 65535, false, false),
        parse_payload("32 r22 s11 'alive check' m65535 'payload'")
    );
    assert_eq!(
        scripted::publish("t", b"p", 0, 7, true, true),
        [0x39, 4, 0, 1, b't', b'p']
    );
    assert_eq!(
        scripted::publish("t", b"", 2, 7, false, false),
        [0x34, 5, 0, 1, b't', 0, 7]
    );
    assert_eq!(
        scripted::ack_v5(0x40, 65535, 0x10, &[]),
        parse_payload("40 r4 m65535 10 v0")
    );
    assert_eq!(
        scripted::suback_v5(1, &[], &[2]),
        parse_payload("90 r4 m1 v0 02")
    );
    assert_eq!(
        scripted::unsuback_v5(1, &[], &[0x11]),
        parse_payload("B0 r4 m1 v0 11")
    );
    assert_eq!(scripted::disconnect_v5(0x8e, &[]), [0xe0, 2, 0x8e, 0]);
    assert_eq!(
        scripted::publish_v5("t", b"p", 1, 3, false, false, &[0x01, 0x01]),
        parse_payload("32 r9 s1 't' m3 v2 01 01 'p'")
    );
}

#[test]
fn byte_language_on_corpus_lines() {
    assert_eq!(parse_payload("20 r2 00 00"), [0x20, 2, 0, 0]);
    // Remaining length >= 2^28 is written anyway, as 5 bytes.
    assert_eq!(
        parse_payload("20 r268435456"),
        [0x20, 0x80, 0x80, 0x80, 0x80, 0x01]
    );
    assert_eq!(varint(127), [0x7f]);
    assert_eq!(varint(128), [0x80, 0x01]);
    assert_eq!(varint(268_435_455), [0xff, 0xff, 0xff, 0x7f]);
    assert_eq!(varint(u32::MAX as u64), [0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_eq!(
        parse_payload("20 r7 00 00 v4 1F s1 'p'"),
        [0x20, 7, 0, 0, 4, 0x1f, 0, 1, b'p']
    );
    assert_eq!(
        parse_payload("20 r6 00 00 v3 21 H10"),
        [0x20, 6, 0, 0, 3, 0x21, 0, 10]
    );
    assert_eq!(
        parse_payload("10 r14 s6 'MQIsdp' 03 02 k10 0000")[..4],
        [0x10, 14, 0, 6]
    );
    assert_eq!(
        parse_payload("10 FFFFFFFF7F s4 'MQTT'")[..6],
        [0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]
    );
    assert_eq!(
        parse_payload("30 r14 m5 41F0AA9B94 'payload'")[..9],
        [0x30, 14, 0, 5, 0x41, 0xf0, 0xaa, 0x9b, 0x94]
    );
    assert_eq!(
        parse_payload("i255 i0 L4294967295 m65535"),
        [255, 0, 255, 255, 255, 255, 255, 255]
    );
    assert_eq!(parse_payload("  'a b  c'  'd' "), b"a b  cd");
    assert_eq!(parse_payload("''"), b"");
    assert_eq!(parse_payload(""), b"");
    // The big v5 PUBLISH from PUBACK.json: its remaining length is right.
    let p = parse_payload(
        "32 r116 s12 'test/publish' m1 v92 01 i1 02 ffffffff 23 ffff 08 s14 'response/topic' 09 H36 \
         '7deac5c5-8802-44ff-86ce-11479f337419' 03 s10 'text/plain' 26 s3 'key' s5 'value' 'message'",
    );
    assert_eq!(p.len(), 2 + 116, "{}", hex(&p));
    for bad in [
        "i256", "H65536", "x1", "0", "abc", "'open", "r", "'a'b", "s-1",
    ] {
        assert!(try_parse_payload(bad).is_err(), "{bad:?} should not parse");
    }
}

#[test]
fn corpus_loads_with_inheritance() {
    let cases = corpus::load_all(corpus::default_dir());
    assert_eq!(cases.len(), 1523);
    let find = |file: &str, group: &str, name: &str| {
        cases
            .iter()
            .find(|c| c.file == file && c.group == group && c.name == name)
            .unwrap_or_else(|| panic!("no case {file} / {group} / {name}"))
    };
    let c = find("CONNACK.json", "v3.1.1 CONNACK", "20 [MQTT-3.1.0-1]");
    assert_eq!(
        (
            c.ver,
            c.connect,
            c.connack,
            c.expect_disconnect,
            c.clean_start
        ),
        (4, true, false, false, true)
    );
    assert_eq!(c.command, None);
    assert_eq!(c.msgs.len(), 1);
    assert!(c.msgs[0].send);
    assert_eq!(c.msgs[0].bytes, [0x20, 2, 0, 0]);
    let c = find("CONNACK.json", "v3.1.1 CONNACK", "issue 2163 v3");
    assert_eq!(c.ver, 3, "per-case ver overrides the group's");
    assert!(c.expect_disconnect, "default expect_disconnect");

    // group_msgs come first, then the case's msgs; command is inherited.
    let c = find("PUBACK.json", "v3.1.1 PUBACK", "40 long");
    assert_eq!(c.command.as_deref(), Some("publish-1"));
    assert_eq!(c.msgs.len(), 2);
    assert!(!c.msgs[0].send);
    assert_eq!(
        c.msgs[0].bytes,
        parse_payload("32 r23 s12 'test/publish' m1 'message'")
    );
    assert!(c.msgs[1].send);
    assert_eq!(c.msgs[1].bytes, [0x40, 3, 0, 1, 0]);

    assert!(cases.iter().any(|c| !c.connect));
    assert!(cases.iter().all(|c| matches!(c.ver, 3..=5)));
    let v5 = cases.iter().filter(|c| c.ver == 5).count();
    assert!(v5 > 0 && v5 < cases.len());
}

#[test]
fn events_and_wait_helpers() {
    let events: Events<u32> = Events::new();
    let tx = events.sender();
    std::thread::spawn(move || {
        for i in 0..5 {
            tx.send(i).unwrap();
        }
    });
    assert_eq!(events.wait(T), 0);
    assert_eq!(events.wait_for(T, |&e| e == 3), 3);
    assert_eq!(events.wait(T), 4);
    events.assert_none_within(Duration::from_millis(20));
    assert_eq!(events.try_recv(), None);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        events.wait(Duration::from_millis(10))
    }));
    assert!(r.is_err());

    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = flag.clone();
    std::thread::spawn(move || f.store(true, std::sync::atomic::Ordering::SeqCst));
    wait_until(T, || flag.load(std::sync::atomic::Ordering::SeqCst));
    assert!(!poll_until(Duration::from_millis(20), || false));
}
