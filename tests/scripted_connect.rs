mod support;
// Byte-exact CONNECT layouts, refused CONNACKs and connect logging, against a scripted broker.
use support::scripted_client::*;

fn connect_pkt(
    name: &str,
    level: u8,
    flags: u8,
    ka: u16,
    prop_block: Option<&[u8]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = mqtt_str(name);
    b.push(level);
    b.push(flags);
    b.extend_from_slice(&ka.to_be_bytes());
    if let Some(p) = prop_block {
        b.extend_from_slice(p);
    }
    b.extend_from_slice(payload);
    s::packet(0x10, &b)
}

/// connect() (no loop) and the CONNECT bytes as the broker reads them.
#[track_caller]
fn first_connect(c: &Client, ka: u16) -> (ScriptedBroker, ScriptedConn, Vec<u8>) {
    let broker = ScriptedBroker::bind();
    c.connect(HOST, broker.port(), ka).unwrap();
    let mut conn = broker.accept(T);
    let p = conn.read_packet(T);
    (broker, conn, p)
}

#[test]
fn connect_v311_minimal() {
    let c = v311("cid-1");
    let (_b, _conn, p) = first_connect(&c, 30);
    let expected = connect_pkt("MQTT", 4, 0x02, 30, None, &mqtt_str("cid-1"));
    assert_bytes_eq(&expected, &p, "3.1.1 CONNECT");
}

#[test]
fn connect_v311_keepalive_value_is_sent_big_endian() {
    let c = v311("k");
    let (_b, _conn, p) = first_connect(&c, 1234);
    assert_bytes_eq(
        &connect_pkt("MQTT", 4, 0x02, 1234, None, &mqtt_str("k")),
        &p,
        "keepalive 1234",
    );
}

#[test]
fn connect_v31_empty_id_gets_generated_22_char_id() {
    let c = Client::builder()
        .client_id("")
        .protocol(Protocol::V31)
        .build()
        .unwrap();
    let (_b, _conn, p) = first_connect(&c, 60);
    // 10 len, 00 06 MQIsdp, 03, flags 02, keepalive 00 3c, 00 16 + 22 chars
    let prefix = connect_pkt("MQIsdp", 3, 0x02, 60, None, &[0x00, 22]);
    let prefix = &prefix[2..]; // drop fixed header (checked below)
    assert_eq!(p[0], 0x10);
    assert_eq!(
        p[1] as usize,
        12 + 2 + 22,
        "remaining length: [{}]",
        hex(&p)
    );
    assert_bytes_eq(prefix, &p[2..2 + prefix.len()], "3.1 CONNECT header");
    let id = &p[2 + prefix.len()..];
    assert_eq!(id.len(), 22, "generated id [{}]", hex(id));
    assert!(
        id.iter().all(|b| b.is_ascii_alphanumeric()),
        "generated id {:?}",
        String::from_utf8_lossy(id)
    );
    assert_eq!(c.client_id().as_bytes(), id);
}

#[test]
fn connect_v31_with_id() {
    let c = Client::builder()
        .client_id("abc")
        .protocol(Protocol::V31)
        .build()
        .unwrap();
    let (_b, _conn, p) = first_connect(&c, 15);
    assert_bytes_eq(
        &connect_pkt("MQIsdp", 3, 0x02, 15, None, &mqtt_str("abc")),
        &p,
        "3.1 CONNECT",
    );
}

#[test]
fn connect_v311_empty_id_sent_as_is() {
    let c = v311("");
    let (_b, _conn, p) = first_connect(&c, 60);
    assert_bytes_eq(
        &connect_pkt("MQTT", 4, 0x02, 60, None, &[0, 0]),
        &p,
        "3.1.1 empty id",
    );
}

#[test]
fn connect_v5_empty_id_sent_as_is_and_no_properties_added() {
    let c = v5("");
    let (_b, _conn, p) = first_connect(&c, 60);
    assert_bytes_eq(
        &connect_pkt("MQTT", 5, 0x02, 60, Some(&[0]), &[0, 0]),
        &p,
        "5.0 empty id",
    );
}

#[test]
fn connect_v5_with_id_has_empty_property_block() {
    let c = v5("v5-client");
    let (_b, _conn, p) = first_connect(&c, 20);
    assert_bytes_eq(
        &connect_pkt("MQTT", 5, 0x02, 20, Some(&[0]), &mqtt_str("v5-client")),
        &p,
        "5.0 CONNECT",
    );
}

#[test]
fn connect_v311_clean_session_false() {
    let c = Client::builder()
        .client_id("persist")
        .clean_session(false)
        .build()
        .unwrap();
    let (_b, _conn, p) = first_connect(&c, 60);
    assert_bytes_eq(
        &connect_pkt("MQTT", 4, 0x00, 60, None, &mqtt_str("persist")),
        &p,
        "clean session false",
    );
}

#[test]
fn connect_v311_will_username_password() {
    let c = v311("w1");
    c.will_set("will/t", "bye", QoS::AtLeastOnce, true).unwrap();
    c.username_pw_set("user", Some("pass")).unwrap();
    let (_b, _conn, p) = first_connect(&c, 60);
    // user 0x80 | password 0x40 | will retain 0x20 | will qos 1 0x08 | will 0x04 | clean 0x02
    let payload = [
        mqtt_str("w1"),
        mqtt_str("will/t"),
        mqtt_bin(b"bye"),
        mqtt_str("user"),
        mqtt_bin(b"pass"),
    ]
    .concat();
    assert_bytes_eq(
        &connect_pkt("MQTT", 4, 0xEE, 60, None, &payload),
        &p,
        "will + credentials",
    );
}

#[test]
fn connect_v311_will_qos2_no_retain_username_only() {
    let c = Client::builder()
        .client_id("w2")
        .clean_session(false)
        .build()
        .unwrap();
    c.will_set("w", "", QoS::ExactlyOnce, false).unwrap();
    c.username_pw_set("only-user", None).unwrap();
    let (_b, _conn, p) = first_connect(&c, 60);
    // user 0x80 | will qos 2 0x10 | will 0x04
    let payload = [
        mqtt_str("w2"),
        mqtt_str("w"),
        mqtt_bin(b""),
        mqtt_str("only-user"),
    ]
    .concat();
    assert_bytes_eq(
        &connect_pkt("MQTT", 4, 0x94, 60, None, &payload),
        &p,
        "will qos 2 + user",
    );
}

#[test]
fn connect_v311_will_clear_removes_will() {
    let c = v311("w3");
    c.will_set("w", "x", QoS::AtLeastOnce, true).unwrap();
    c.will_clear().unwrap();
    let (_b, _conn, p) = first_connect(&c, 60);
    assert_bytes_eq(
        &connect_pkt("MQTT", 4, 0x02, 60, None, &mqtt_str("w3")),
        &p,
        "no will",
    );
}

#[test]
fn connect_v5_will_with_properties_and_credentials() {
    let c = v5("w5");
    let wp = Properties {
        content_type: Some("text".into()),
        will_delay_interval: Some(10),
        ..Default::default()
    };
    c.will_set_with_properties("will/5", "gone", QoS::ExactlyOnce, true, wp)
        .unwrap();
    c.username_pw_set("u5", Some("p5")).unwrap();
    let (_b, _conn, p) = first_connect(&c, 60);
    // 0x80 | 0x40 | 0x20 | qos2 0x10 | 0x04 | clean 0x02
    let will_props = props(&[p_str(0x03, "text"), p_u32(0x18, 10)]);
    let payload = [
        mqtt_str("w5"),
        will_props,
        mqtt_str("will/5"),
        mqtt_bin(b"gone"),
        mqtt_str("u5"),
        mqtt_bin(b"p5"),
    ]
    .concat();
    assert_bytes_eq(
        &connect_pkt("MQTT", 5, 0xF6, 60, Some(&[0]), &payload),
        &p,
        "5.0 will + properties",
    );
}

#[test]
fn connect_v5_empty_username_with_password() {
    let c = v5("pw");
    c.username_pw_set("", Some("secret")).unwrap();
    let (_b, _conn, p) = first_connect(&c, 60);
    let payload = [mqtt_str("pw"), mqtt_str(""), mqtt_bin(b"secret")].concat();
    assert_bytes_eq(
        &connect_pkt("MQTT", 5, 0xC2, 60, Some(&[0]), &payload),
        &p,
        "empty user + password",
    );
}

#[test]
fn connect_v5_connect_properties_from_options() {
    let c = v5("props");
    let broker = ScriptedBroker::bind();
    let cp = Properties {
        session_expiry_interval: Some(60),
        receive_maximum: Some(10),
        maximum_packet_size: Some(1000),
        user_properties: vec![("k".into(), "v".into())],
        ..Default::default()
    };
    c.connect_with(ConnectOptions {
        port: broker.port(),
        keepalive: 45,
        properties: Some(cp),
        ..ConnectOptions::new(HOST)
    })
    .unwrap();
    let mut conn = broker.accept(T);
    let p = conn.read_packet(T);
    // ascending identifiers: 0x11, 0x21, 0x26, 0x27
    let pb = props(&[
        p_u32(0x11, 60),
        p_u16(0x21, 10),
        p_pair("k", "v"),
        p_u32(0x27, 1000),
    ]);
    let alt = props(&[
        p_u32(0x11, 60),
        p_u16(0x21, 10),
        p_u32(0x27, 1000),
        p_pair("k", "v"),
    ]);
    let e1 = connect_pkt("MQTT", 5, 0x02, 45, Some(&pb), &mqtt_str("props"));
    let e2 = connect_pkt("MQTT", 5, 0x02, 45, Some(&alt), &mqtt_str("props"));
    if p != e2 {
        assert_bytes_eq(&e1, &p, "5.0 CONNECT properties");
    }
}

#[test]
fn connect_bridge_mode_sets_bit_7_of_level() {
    for (proto, name, level, id_payload) in [
        (Protocol::V31, "MQIsdp", 0x83u8, mqtt_str("br")),
        (Protocol::V311, "MQTT", 0x84, mqtt_str("br")),
    ] {
        let c = Client::builder()
            .client_id("br")
            .protocol(proto)
            .build()
            .unwrap();
        c.enable_bridge_mode();
        let (_b, _conn, p) = first_connect(&c, 60);
        assert_bytes_eq(
            &connect_pkt(name, level, 0x02, 60, None, &id_payload),
            &p,
            &format!("bridge {proto:?}"),
        );
    }
    let c = v5("br");
    c.enable_bridge_mode();
    let (_b, _conn, p) = first_connect(&c, 60);
    assert_bytes_eq(
        &connect_pkt("MQTT", 0x85, 0x02, 60, Some(&[0]), &mqtt_str("br")),
        &p,
        "bridge v5",
    );
}

/// Connects, acks, drops the connection and returns the CONNECT flags of both connections.
fn clean_flags_over_reconnect(c: &Client, opts_clean: Option<CleanStart>) -> (u8, u8) {
    let broker = ScriptedBroker::bind();
    fast_reconnect(c);
    let ev = hook(c);
    let mut o = ConnectOptions {
        port: broker.port(),
        ..ConnectOptions::new(HOST)
    };
    if let Some(cs) = opts_clean {
        o.clean_start = cs;
    }
    c.connect_with(o).unwrap();
    c.loop_start().unwrap();
    let (conn, p1) = accept_connack(&broker, &ev, &ok_connack(c));
    conn.close();
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    let mut conn2 = broker.accept(T);
    let p2 = conn2.read_packet(T);
    assert_eq!(p2[0], 0x10, "[{}]", hex(&p2));
    c.loop_stop().unwrap();
    // flags byte: after fixed header (2), name (6), level (1)
    (p1[9], p2[9])
}

#[test]
fn connect_v5_clean_start_first_only_then_false() {
    let c = v5("cs1");
    assert_eq!(clean_flags_over_reconnect(&c, None), (0x02, 0x00));
}

#[test]
fn connect_v5_clean_start_always() {
    let c = v5("cs2");
    assert_eq!(
        clean_flags_over_reconnect(&c, Some(CleanStart::Always)),
        (0x02, 0x02)
    );
}

#[test]
fn connect_v5_clean_start_never() {
    let c = v5("cs3");
    assert_eq!(
        clean_flags_over_reconnect(&c, Some(CleanStart::Never)),
        (0x00, 0x00)
    );
}

#[test]
fn connect_v311_clean_session_kept_on_reconnect() {
    let c = v311("cs4");
    assert_eq!(clean_flags_over_reconnect(&c, None), (0x02, 0x02));
    let c = Client::builder()
        .client_id("cs5")
        .clean_session(false)
        .build()
        .unwrap();
    assert_eq!(clean_flags_over_reconnect(&c, None), (0x00, 0x00));
}

// ----- refused CONNACKs

#[test]
fn connack_v311_refusals_map_to_reason_codes() {
    for (code, mapped) in [(1u8, 0x84u8), (2, 0x85), (3, 0x88), (4, 0x86), (5, 0x87)] {
        let broker = ScriptedBroker::bind();
        let c = Client::builder()
            .client_id("ref")
            .reconnect_on_failure(false)
            .build()
            .unwrap();
        let ev = hook(&c);
        c.connect(HOST, broker.port(), 60).unwrap();
        c.loop_start().unwrap();
        let mut conn = broker.accept(T);
        conn.read_packet(T);
        conn.send(&s::connack(false, code));
        let e = wait_connect(&ev);
        assert_eq!(
            e,
            Ev::Connect {
                rc: mapped,
                session_present: false
            },
            "3.1.1 return code {code}"
        );
        assert!(!c.is_connected());
        c.loop_stop().unwrap();
    }
}

#[test]
fn connack_v5_refusal_reason_code_as_sent() {
    for code in [0x80u8, 0x86, 0x87, 0x8C, 0x9C] {
        let broker = ScriptedBroker::bind();
        let c = Client::builder()
            .client_id("ref5")
            .protocol(Protocol::V5)
            .reconnect_on_failure(false)
            .build()
            .unwrap();
        let ev = hook(&c);
        c.connect(HOST, broker.port(), 60).unwrap();
        c.loop_start().unwrap();
        let mut conn = broker.accept(T);
        conn.read_packet(T);
        conn.send(&s::connack_v5(false, code, &[]));
        let e = wait_connect(&ev);
        assert_eq!(
            e,
            Ev::Connect {
                rc: code,
                session_present: false
            }
        );
        c.loop_stop().unwrap();
    }
}

#[test]
fn connack_refused_loop_forever_returns_connection_refused() {
    let broker = ScriptedBroker::bind();
    let c = Client::builder()
        .client_id("lf")
        .reconnect_on_failure(false)
        .build()
        .unwrap();
    let ev = hook(&c);
    fast_reconnect(&c);
    c.connect(HOST, broker.port(), 60).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let c2 = c.clone();
    let h = std::thread::spawn(move || {
        let _ = tx.send(c2.loop_forever());
    });
    let mut conn = broker.accept(T);
    conn.read_packet(T);
    conn.send(&s::connack(false, 5));
    let r = rx.recv_timeout(T).expect("loop_forever did not return");
    match r {
        Err(Error::ConnectionRefused(rc)) => assert_eq!(rc, ReasonCode(0x87)),
        other => panic!("expected Err(ConnectionRefused(0x87)), got {other:?}"),
    }
    assert_eq!(
        wait_connect(&ev),
        Ev::Connect {
            rc: 0x87,
            session_present: false
        }
    );
    broker.expect_no_connection(QUIET);
    h.join().unwrap();
}

#[test]
fn connack_refused_with_reconnect_on_failure_retries() {
    let broker = ScriptedBroker::bind();
    let c = v311("retry");
    let ev = hook(&c);
    fast_reconnect(&c);
    c.connect(HOST, broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    let mut conn = broker.accept(T);
    conn.read_packet(T);
    conn.send(&s::connack(false, 3));
    assert_eq!(
        wait_connect(&ev),
        Ev::Connect {
            rc: 0x88,
            session_present: false
        }
    );
    let (_conn2, _) = accept_connack(&broker, &ev, &s::connack(false, 0));
    assert!(c.is_connected());
    c.loop_stop().unwrap();
}

// ----- logging

#[test]
fn log_lines_for_connect_and_connack_without_password() {
    let broker = ScriptedBroker::bind();
    let c = v311("logger");
    let logs = capture_logs(&c);
    let ev = hook(&c);
    c.username_pw_set("log-user", Some("Sup3r-s3cret-PW"))
        .unwrap();
    c.will_set("w", "will-payload", QoS::AtMostOnce, false)
        .unwrap();
    let mut conn = start(&broker, &c, &ev, 60);
    let info = c.publish("t", "x", QoS::AtLeastOnce, false).unwrap();
    let p = conn.read_packet(T);
    conn.send(&s::puback(s::packet_id(&p).unwrap()));
    info.wait_for_publish(Some(T)).unwrap();
    c.disconnect().unwrap();
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    c.loop_stop().unwrap();
    let logs = logs.lock().unwrap().clone();
    assert!(
        logs.iter()
            .any(|(l, s)| *l == LogLevel::Debug && s.contains("Sending CONNECT")),
        "no Debug 'Sending CONNECT' line in {logs:#?}"
    );
    assert!(
        logs.iter()
            .any(|(l, s)| *l == LogLevel::Debug && s.contains("Received CONNACK")),
        "no Debug 'Received CONNACK' line in {logs:#?}"
    );
    for (_, line) in &logs {
        assert!(
            !line.contains("Sup3r-s3cret-PW"),
            "password in log line {line:?}"
        );
    }
}
