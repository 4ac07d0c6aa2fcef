//! MQTT 5 enhanced authentication (§4.12), client side: Authentication Method and Data in
//! CONNECT, AUTH exchanges before CONNACK, re-authentication while connected, the
//! `on_auth` callback, and the protocol errors of an AUTH that no exchange expects.
//!
//! Two halves: exact bytes against the scripted broker (every branch), and SCRAM-SHA-256
//! against a real mosquitto with the plugin of `tests/plugins/scram_auth.c`.

#[macro_use]
mod support;

use std::sync::mpsc::Sender;

use mqtt_sync::AuthReply;
use support::auth_plugin::{AuthBroker, METHOD};
use support::scram::ScramClient;
use support::scripted_client::*;
use support::wait_until;

const AUTH_METHOD: u8 = 0x15;
const AUTH_DATA: u8 = 0x16;
const SCRIPTED_METHOD: &str = "TEST-CHALLENGE";

// ---------------------------------------------------------------------------------------
// Helpers

/// What `on_auth` saw.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    rc: u8,
    method: Option<String>,
    data: Option<Vec<u8>>,
}

/// Installs `on_auth`: records each call and answers with `answer(rc, data)`.
fn on_auth(
    c: &Client,
    mut answer: impl FnMut(u8, &[u8]) -> AuthReply + Send + 'static,
) -> Events<Seen> {
    let seen = Events::new();
    let tx: Sender<Seen> = seen.sender();
    c.on_auth(move |_c, rc, p| {
        let _ = tx.send(Seen {
            rc: rc.value(),
            method: p.authentication_method.clone(),
            data: p.authentication_data.clone(),
        });
        answer(
            rc.value(),
            p.authentication_data.as_deref().unwrap_or_default(),
        )
    });
    seen
}

/// Connect options with an Authentication Method and initial data.
fn auth_options(port: u16, method: &str, data: &[u8]) -> ConnectOptions {
    ConnectOptions {
        port,
        keepalive: 60,
        properties: Some(Properties {
            authentication_method: Some(method.into()),
            authentication_data: Some(data.to_vec()),
            ..Properties::default()
        }),
        ..ConnectOptions::new(HOST)
    }
}

/// An AUTH packet built by hand: reason code, then Authentication Method / Data.
fn auth_pkt(reason: u8, method: Option<&str>, data: Option<&[u8]>) -> Vec<u8> {
    let mut parts = Vec::new();
    if let Some(m) = method {
        parts.push(p_str(AUTH_METHOD, m));
    }
    if let Some(d) = data {
        let mut b = vec![AUTH_DATA];
        b.extend_from_slice(&mqtt_bin(d));
        parts.push(b);
    }
    let mut body = vec![reason];
    body.extend_from_slice(&props(&parts));
    s::packet(0xf0, &body)
}

/// The CONNECT the client must send: MQTT 5, clean start, keepalive 60, the method and
/// data as its only properties.
fn expected_connect(id: &str, method: &str, data: &[u8]) -> Vec<u8> {
    let mut body = mqtt_str("MQTT");
    body.extend([5, 0x02, 0, 60]);
    let mut d = vec![AUTH_DATA];
    d.extend_from_slice(&mqtt_bin(data));
    body.extend_from_slice(&props(&[p_str(AUTH_METHOD, method), d]));
    body.extend_from_slice(&mqtt_str(id));
    s::packet(0x10, &body)
}

/// DISCONNECT with a reason code and no properties, as the client sends it.
fn disconnect_rc(rc: u8) -> Vec<u8> {
    vec![0xe0, 0x01, rc]
}

/// A v5 client with callbacks hooked, connecting with `SCRIPTED_METHOD` and `b"hello"` to
/// `broker`; returns the broker side after checking the CONNECT bytes.
fn auth_connect(broker: &ScriptedBroker, id: &str, c: &Client) -> ScriptedConn {
    c.connect_with(auth_options(broker.port(), SCRIPTED_METHOD, b"hello"))
        .unwrap();
    c.loop_start().unwrap();
    let mut conn = broker.accept(T);
    conn.expect_packet(&expected_connect(id, SCRIPTED_METHOD, b"hello"), T);
    conn
}

/// `auth_connect`, then one round (challenge "who?" → answer "me") and CONNACK success.
fn authenticated(broker: &ScriptedBroker, id: &str, c: &Client, ev: &Events<Ev>) -> ScriptedConn {
    let mut conn = auth_connect(broker, id, c);
    conn.send(&auth_pkt(0x18, Some(SCRIPTED_METHOD), Some(b"who?")));
    conn.expect_packet(&auth_pkt(0x18, Some(SCRIPTED_METHOD), Some(b"me")), T);
    conn.send(&s::connack_v5(false, 0, &[]));
    assert_eq!(
        wait_connect(ev),
        Ev::Connect {
            rc: 0,
            session_present: false
        }
    );
    conn
}

/// The answers of a scripted exchange: "who?" → "me", "again?" → "still me", success →
/// Done, anything else → Abort(0x87).
fn scripted_answers(rc: u8, data: &[u8]) -> AuthReply {
    match (rc, data) {
        (0x18, b"who?") => AuthReply::Continue(b"me".to_vec()),
        (0x18, b"again?") => AuthReply::Continue(b"still me".to_vec()),
        (0x00, _) => AuthReply::Done,
        _ => AuthReply::Abort(ReasonCode::NOT_AUTHORIZED),
    }
}

#[track_caller]
fn wait_disconnect(ev: &Events<Ev>) -> Ev {
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }))
}

#[track_caller]
fn assert_disconnect(ev: &Events<Ev>, rc: u8, from_server: bool) {
    match wait_disconnect(ev) {
        Ev::Disconnect {
            rc: got,
            from_server: f,
            ..
        } => {
            assert_eq!(got, rc, "on_disconnect reason code");
            assert_eq!(f, from_server, "is_disconnect_packet_from_server");
        }
        other => unreachable!("{other:?}"),
    }
}

#[track_caller]
fn assert_connect_fail_protocol(ev: &Events<Ev>, needle: &str) {
    let e = ev.wait_for(T, |e| matches!(e, Ev::ConnectFail(_)));
    let Ev::ConnectFail(text) = e else {
        unreachable!()
    };
    assert!(
        text.contains("Protocol") && text.contains(needle),
        "on_connect_fail: {text}"
    );
}

/// A client that does not reconnect on its own during the test.
fn slow_v5(id: &str) -> (Client, Events<Ev>) {
    let c = v5(id);
    c.reconnect_delay_set(Duration::from_secs(60), Duration::from_secs(60))
        .unwrap();
    let ev = hook(&c);
    (c, ev)
}

// ---------------------------------------------------------------------------------------
// Scripted broker: before CONNACK

/// CONNECT carries the method and the initial data; two rounds of AUTH 0x18; CONNACK
/// success with the broker's final data reaches on_connect's properties.
#[test]
fn exchange_before_connack_succeeds() {
    let broker = ScriptedBroker::bind();
    let (c, _ev) = slow_v5("auth-ok");
    let props_seen = Events::new();
    let tx = props_seen.sender();
    c.on_connect(move |_c, _f, rc, p| {
        let _ = tx.send((rc.value(), p.authentication_data.clone()));
    });
    let seen = on_auth(&c, scripted_answers);
    let mut conn = auth_connect(&broker, "auth-ok", &c);
    conn.send(&auth_pkt(0x18, Some(SCRIPTED_METHOD), Some(b"who?")));
    conn.expect_packet(&auth_pkt(0x18, Some(SCRIPTED_METHOD), Some(b"me")), T);
    conn.send(&auth_pkt(0x18, Some(SCRIPTED_METHOD), Some(b"again?")));
    conn.expect_packet(&auth_pkt(0x18, Some(SCRIPTED_METHOD), Some(b"still me")), T);
    assert!(!c.is_connected());
    let mut cprops = vec![p_str(AUTH_METHOD, SCRIPTED_METHOD)];
    let mut d = vec![AUTH_DATA];
    d.extend_from_slice(&mqtt_bin(b"welcome"));
    cprops.push(d);
    conn.send(&s::connack_v5(false, 0, &cprops.concat()));
    assert_eq!(props_seen.wait(T), (0, Some(b"welcome".to_vec())));
    assert!(c.is_connected());
    assert_eq!(
        seen.drain(),
        vec![
            Seen {
                rc: 0x18,
                method: Some(SCRIPTED_METHOD.into()),
                data: Some(b"who?".to_vec())
            },
            Seen {
                rc: 0x18,
                method: Some(SCRIPTED_METHOD.into()),
                data: Some(b"again?".to_vec())
            },
        ]
    );
    // The connection works: a QoS 0 publish goes out after the exchange.
    c.publish("t", "x", QoS::AtMostOnce, false).unwrap();
    conn.expect_packet(&s::packet(0x30, &[0, 1, b't', 0, b'x']), T);
    c.disconnect().unwrap();
    conn.expect_packet(&s::disconnect(), T);
    c.loop_stop().unwrap();
}

/// A refusal in the middle of the exchange (CONNACK 0x87 after the client's answer, or
/// 0x8C Bad authentication method) reaches on_connect with that code.
#[test]
fn refusal_mid_exchange_reaches_on_connect() {
    for code in [0x87u8, 0x8C] {
        let broker = ScriptedBroker::bind();
        let id = format!("auth-refused-{code:x}");
        let (c, ev) = slow_v5(&id);
        let seen = on_auth(&c, scripted_answers);
        let mut conn = auth_connect(&broker, &id, &c);
        conn.send(&auth_pkt(0x18, Some(SCRIPTED_METHOD), Some(b"who?")));
        conn.expect_packet(&auth_pkt(0x18, Some(SCRIPTED_METHOD), Some(b"me")), T);
        conn.send(&s::connack_v5(false, code, &[]));
        assert_eq!(
            wait_connect(&ev),
            Ev::Connect {
                rc: code,
                session_present: false
            }
        );
        conn.expect_closed(T);
        assert!(!c.is_connected());
        assert_eq!(seen.drain().len(), 1);
        c.loop_stop().unwrap();
    }
}

/// on_auth answering Abort: DISCONNECT with its reason code, closed, no reconnect.
#[test]
fn abort_from_on_auth_sends_disconnect() {
    let broker = ScriptedBroker::bind();
    let (c, ev) = slow_v5("auth-abort");
    fast_reconnect(&c);
    let seen = on_auth(&c, scripted_answers);
    let mut conn = auth_connect(&broker, "auth-abort", &c);
    conn.send(&auth_pkt(
        0x18,
        Some(SCRIPTED_METHOD),
        Some(b"unknown challenge"),
    ));
    conn.expect_packet(&disconnect_rc(0x87), T);
    conn.expect_closed(T);
    assert_eq!(seen.wait(T).rc, 0x18);
    expect_clean_disconnect(&ev);
    // Abort stops the client, as disconnect_with does: no new attempt.
    broker.expect_no_connection(QUIET);
    c.loop_stop().unwrap();
}

/// AUTH with another method before CONNACK: DISCONNECT 0x82, on_connect_fail (Protocol).
#[test]
fn wrong_method_before_connack_is_a_protocol_error() {
    let broker = ScriptedBroker::bind();
    let (c, ev) = slow_v5("auth-wrong-method");
    let seen = on_auth(&c, scripted_answers);
    let mut conn = auth_connect(&broker, "auth-wrong-method", &c);
    expect_protocol_close(&mut conn, &auth_pkt(0x18, Some("OTHER"), Some(b"who?")));
    assert_connect_fail_protocol(&ev, "Authentication Method");
    seen.assert_none_within(QUIET);
    c.loop_stop().unwrap();
}

/// AUTH without any method, and AUTH 0x00 before CONNACK: protocol errors too.
#[test]
fn malformed_exchange_before_connack_is_a_protocol_error() {
    for (pkt, needle) in [
        (
            auth_pkt(0x18, None, Some(b"who?")),
            "no Authentication Method",
        ),
        (
            auth_pkt(0x00, Some(SCRIPTED_METHOD), None),
            "before CONNACK",
        ),
    ] {
        let broker = ScriptedBroker::bind();
        let (c, ev) = slow_v5("auth-malformed");
        let seen = on_auth(&c, scripted_answers);
        let mut conn = auth_connect(&broker, "auth-malformed", &c);
        expect_protocol_close(&mut conn, &pkt);
        assert_connect_fail_protocol(&ev, needle);
        assert!(seen.try_recv().is_none());
        c.loop_stop().unwrap();
    }
}

/// A client that set no Authentication Method gets AUTH before CONNACK: DISCONNECT 0x82,
/// on_connect_fail names the missing method.
#[test]
fn auth_to_client_without_method_before_connack() {
    let broker = ScriptedBroker::bind();
    let (c, ev) = slow_v5("auth-none-pre");
    let seen = on_auth(&c, scripted_answers);
    c.connect(HOST, broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    let mut conn = broker.accept(T);
    let _connect = conn.read_packet(T);
    expect_protocol_close(
        &mut conn,
        &auth_pkt(0x18, Some(SCRIPTED_METHOD), Some(b"who?")),
    );
    assert_connect_fail_protocol(&ev, "no Authentication Method");
    assert!(seen.try_recv().is_none());
    c.loop_stop().unwrap();
}

// ---------------------------------------------------------------------------------------
// Scripted broker: after CONNACK

/// A connected client without a method gets AUTH: DISCONNECT 0x82, on_disconnect 0x82.
#[test]
fn auth_to_client_without_method_after_connack() {
    let broker = ScriptedBroker::bind();
    let (c, ev) = slow_v5("auth-none-post");
    let seen = on_auth(&c, scripted_answers);
    let mut conn = start(&broker, &c, &ev, 60);
    expect_protocol_close(
        &mut conn,
        &auth_pkt(0x18, Some(SCRIPTED_METHOD), Some(b"who?")),
    );
    assert_disconnect(&ev, 0x82, false);
    assert!(seen.try_recv().is_none());
    c.loop_stop().unwrap();
}

/// AUTH after CONNACK although the client requested no re-authentication: protocol error.
#[test]
fn auth_after_connack_without_reauth_is_a_protocol_error() {
    let broker = ScriptedBroker::bind();
    let (c, ev) = slow_v5("auth-unasked");
    let seen = on_auth(&c, scripted_answers);
    let mut conn = authenticated(&broker, "auth-unasked", &c, &ev);
    assert_eq!(seen.wait(T).rc, 0x18);
    expect_protocol_close(
        &mut conn,
        &auth_pkt(0x18, Some(SCRIPTED_METHOD), Some(b"who?")),
    );
    assert_disconnect(&ev, 0x82, false);
    assert!(seen.try_recv().is_none());
    c.loop_stop().unwrap();
}

/// Re-authentication: AUTH 0x19 with the method and data, a challenge round, AUTH 0x00
/// with the broker's final data; the connection stays up.
#[test]
fn reauthentication_succeeds() {
    let broker = ScriptedBroker::bind();
    let (c, ev) = slow_v5("auth-reauth");
    let seen = on_auth(&c, scripted_answers);
    let mut conn = authenticated(&broker, "auth-reauth", &c, &ev);
    seen.wait(T);
    c.reauthenticate(b"hello again").unwrap();
    conn.expect_packet(
        &auth_pkt(0x19, Some(SCRIPTED_METHOD), Some(b"hello again")),
        T,
    );
    // One at a time.
    assert!(matches!(
        c.reauthenticate(b"x"),
        Err(Error::InvalidState(m)) if m.contains("already in progress")
    ));
    conn.send(&auth_pkt(0x18, Some(SCRIPTED_METHOD), Some(b"again?")));
    conn.expect_packet(&auth_pkt(0x18, Some(SCRIPTED_METHOD), Some(b"still me")), T);
    conn.send(&auth_pkt(0x00, Some(SCRIPTED_METHOD), Some(b"fine")));
    assert_eq!(seen.wait(T).data.as_deref(), Some(&b"again?"[..]));
    assert_eq!(
        seen.wait(T),
        Seen {
            rc: 0,
            method: Some(SCRIPTED_METHOD.into()),
            data: Some(b"fine".to_vec())
        }
    );
    // Still connected, and a second re-authentication may start.
    c.publish("t", "x", QoS::AtMostOnce, false).unwrap();
    conn.expect_packet(&s::packet(0x30, &[0, 1, b't', 0, b'x']), T);
    assert!(c.is_connected());
    c.auth(ReasonCode::RE_AUTHENTICATE, Properties::default())
        .unwrap();
    conn.expect_packet(&auth_pkt(0x19, Some(SCRIPTED_METHOD), None), T);
    c.disconnect().unwrap();
    conn.expect_packet(&s::disconnect(), T);
    expect_clean_disconnect(&ev);
    c.loop_stop().unwrap();
}

/// The broker refuses a re-authentication with DISCONNECT 0x87: on_disconnect gets it.
#[test]
fn reauthentication_refused_with_disconnect() {
    let broker = ScriptedBroker::bind();
    let (c, ev) = slow_v5("auth-reauth-no");
    let seen = on_auth(&c, scripted_answers);
    let mut conn = authenticated(&broker, "auth-reauth-no", &c, &ev);
    seen.wait(T);
    c.reauthenticate(b"hello again").unwrap();
    let _auth = conn.read_packet(T);
    conn.send(&s::disconnect_v5(0x87, &[]));
    assert_disconnect(&ev, 0x87, true);
    assert!(!c.is_connected());
    c.loop_stop().unwrap();
}

/// mosquitto 2.0.11 refuses a re-authentication with a CONNACK 0x87 on the established
/// connection: taken as that refusal, reported by on_disconnect.
#[test]
fn reauthentication_refused_with_connack() {
    let broker = ScriptedBroker::bind();
    let (c, ev) = slow_v5("auth-reauth-connack");
    let seen = on_auth(&c, scripted_answers);
    let mut conn = authenticated(&broker, "auth-reauth-connack", &c, &ev);
    seen.wait(T);
    c.reauthenticate(b"hello again").unwrap();
    let _auth = conn.read_packet(T);
    conn.send(&s::connack_v5(false, 0x87, &[]));
    conn.expect_closed(T);
    assert_disconnect(&ev, 0x87, false);
    // No on_connect for it.
    assert!(!ev.drain().iter().any(|e| matches!(e, Ev::Connect { .. })));
    c.loop_stop().unwrap();
}

/// AUTH with another method during a re-authentication: DISCONNECT 0x82.
#[test]
fn wrong_method_during_reauthentication_is_a_protocol_error() {
    let broker = ScriptedBroker::bind();
    let (c, ev) = slow_v5("auth-reauth-method");
    let seen = on_auth(&c, scripted_answers);
    let mut conn = authenticated(&broker, "auth-reauth-method", &c, &ev);
    seen.wait(T);
    c.reauthenticate(b"hello again").unwrap();
    let _auth = conn.read_packet(T);
    expect_protocol_close(&mut conn, &auth_pkt(0x18, Some("OTHER"), Some(b"again?")));
    assert_disconnect(&ev, 0x82, false);
    assert!(seen.try_recv().is_none());
    c.loop_stop().unwrap();
}

/// Refusals of the calls: each a clear Error, nothing sent.
#[test]
fn auth_calls_refuse_what_cannot_be_sent() {
    // Offline.
    let c = v5("auth-calls-offline");
    assert!(matches!(c.reauthenticate(b"x"), Err(Error::NoConnection)));
    // Connected without a method.
    let broker = ScriptedBroker::bind();
    let (c, ev) = slow_v5("auth-calls-none");
    let mut conn = start(&broker, &c, &ev, 60);
    assert!(matches!(
        c.reauthenticate(b"x"),
        Err(Error::InvalidState(m)) if m.contains("Authentication Method")
    ));
    c.disconnect().unwrap();
    conn.expect_packet(&s::disconnect(), T);
    c.loop_stop().unwrap();
    // Connected with a method: wrong reason codes, another method, 0x18 outside an
    // exchange.
    let broker = ScriptedBroker::bind();
    let (c, ev) = slow_v5("auth-calls");
    on_auth(&c, scripted_answers);
    let mut conn = authenticated(&broker, "auth-calls", &c, &ev);
    assert!(matches!(
        c.auth(ReasonCode::SUCCESS, Properties::default()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        c.auth(
            ReasonCode::RE_AUTHENTICATE,
            Properties {
                authentication_method: Some("OTHER".into()),
                ..Properties::default()
            }
        ),
        Err(Error::InvalidArgument(m)) if m.contains("OTHER")
    ));
    assert!(matches!(
        c.auth(ReasonCode::CONTINUE_AUTHENTICATION, Properties::default()),
        Err(Error::InvalidState(m)) if m.contains("no authentication exchange")
    ));
    c.disconnect().unwrap();
    // Nothing was sent before the DISCONNECT.
    conn.expect_packet(&s::disconnect(), T);
    c.loop_stop().unwrap();
    // MQTT 3.1.1: AUTH does not exist.
    let broker = ScriptedBroker::bind();
    let c = v311("auth-calls-v3");
    let ev = hook(&c);
    let mut conn = start(&broker, &c, &ev, 60);
    assert!(matches!(
        c.reauthenticate(b"x"),
        Err(Error::NotSupported(_))
    ));
    c.disconnect().unwrap();
    conn.expect_packet(&s::disconnect(), T);
    c.loop_stop().unwrap();
}

// ---------------------------------------------------------------------------------------
// Real mosquitto with the SCRAM-SHA-256 plugin

/// The SCRAM state of the exchange in progress, shared with `on_auth`.
type Shared = Arc<Mutex<ScramClient>>;

/// A v5 client whose `on_auth` runs SCRAM with `scram` and reports every call.
fn scram_client(id: &str, scram: &Shared) -> (Client, Events<Ev>, Events<Seen>) {
    let (c, ev) = slow_v5(id);
    let s = scram.clone();
    let seen = on_auth(&c, move |rc, data| {
        let mut scram = s.lock().unwrap();
        match rc {
            0x18 => match scram.client_final(data) {
                Ok(msg) => AuthReply::Continue(msg.into_bytes()),
                Err(_) => AuthReply::Abort(ReasonCode::NOT_AUTHORIZED),
            },
            0x00 => match scram.verify_server_final(data) {
                Ok(()) => AuthReply::Done,
                Err(_) => AuthReply::Abort(ReasonCode::NOT_AUTHORIZED),
            },
            _ => AuthReply::Abort(ReasonCode::PROTOCOL_ERROR),
        }
    });
    (c, ev, seen)
}

/// Connects with SCRAM as `user`/`password`; returns on_connect's reason code and
/// Authentication Data.
fn scram_connect(
    broker: &support::Mosquitto,
    c: &Client,
    scram: &Shared,
    method: &str,
) -> (u8, Option<Vec<u8>>) {
    let connected = Events::new();
    let tx = connected.sender();
    c.on_connect(move |_c, _f, rc, p| {
        let _ = tx.send((rc.value(), p.authentication_data.clone()));
    });
    let first = scram.lock().unwrap().client_first();
    c.connect_with(auth_options(broker.port(), method, first.as_bytes()))
        .unwrap();
    c.loop_start().unwrap();
    connected.wait(T)
}

#[test]
fn mosquitto_scram_login_succeeds() {
    let broker = AuthBroker::start(&[("alice", "secret")]);
    let scram: Shared = Arc::new(Mutex::new(ScramClient::new("alice", "secret")));
    let (c, _ev, seen) = scram_client("scram-ok", &scram);
    let (rc, server_final) = scram_connect(&broker, &c, &scram, METHOD);
    assert_eq!(rc, 0, "{}", broker.log());
    // Two steps: one server-first (AUTH 0x18), then CONNACK with the server-final.
    let calls = seen.drain();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].rc, 0x18);
    assert_eq!(calls[0].method.as_deref(), Some(METHOD));
    let server_final = server_final.expect("CONNACK carries the server-final-message");
    scram
        .lock()
        .unwrap()
        .verify_server_final(&server_final)
        .unwrap();
    assert!(c.is_connected());
    // The session works: a QoS 1 publish is acknowledged.
    let info = c.publish("scram/t", "x", QoS::AtLeastOnce, false).unwrap();
    info.wait_for_publish(Some(T)).unwrap();
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
}

#[test]
fn mosquitto_scram_wrong_password_is_refused() {
    let broker = AuthBroker::start(&[("alice", "secret")]);
    let scram: Shared = Arc::new(Mutex::new(ScramClient::new("alice", "wrong")));
    let (c, _ev, seen) = scram_client("scram-wrong", &scram);
    let (rc, _) = scram_connect(&broker, &c, &scram, METHOD);
    assert_eq!(rc, 0x87, "{}", broker.log());
    assert_eq!(seen.drain().len(), 1);
    assert!(!c.is_connected());
    c.loop_stop().unwrap();
}

#[test]
fn mosquitto_unknown_method_is_refused_with_0x8c() {
    let broker = AuthBroker::start(&[("alice", "secret")]);
    let scram: Shared = Arc::new(Mutex::new(ScramClient::new("alice", "secret")));
    let (c, _ev, seen) = scram_client("scram-method", &scram);
    let (rc, _) = scram_connect(&broker, &c, &scram, "SCRAM-SHA-1");
    assert_eq!(rc, 0x8C, "{}", broker.log());
    assert!(seen.try_recv().is_none());
    c.loop_stop().unwrap();
}

#[test]
fn mosquitto_scram_reauthentication_succeeds() {
    let broker = AuthBroker::start(&[("alice", "secret")]);
    let scram: Shared = Arc::new(Mutex::new(ScramClient::new("alice", "secret")));
    let (c, ev, seen) = scram_client("scram-reauth", &scram);
    let (rc, _) = scram_connect(&broker, &c, &scram, METHOD);
    assert_eq!(rc, 0, "{}", broker.log());
    seen.drain();
    // A fresh exchange: new nonce.
    let first = {
        let mut s = scram.lock().unwrap();
        *s = ScramClient::new("alice", "secret");
        s.client_first()
    };
    c.reauthenticate(first.as_bytes()).unwrap();
    assert_eq!(seen.wait(T).rc, 0x18);
    let done = seen.wait(T);
    assert_eq!(done.rc, 0x00, "{}", broker.log());
    assert_eq!(done.method.as_deref(), Some(METHOD));
    wait_until(T, || scram.lock().unwrap().is_done());
    assert!(c.is_connected());
    let info = c.publish("scram/t", "x", QoS::AtLeastOnce, false).unwrap();
    info.wait_for_publish(Some(T)).unwrap();
    c.disconnect().unwrap();
    expect_clean_disconnect(&ev);
    c.loop_stop().unwrap();
}

#[test]
fn mosquitto_scram_reauthentication_refused() {
    let broker = AuthBroker::new(&[("alice", "secret")])
        .refuse_reauth()
        .launch();
    let scram: Shared = Arc::new(Mutex::new(ScramClient::new("alice", "secret")));
    let (c, ev, seen) = scram_client("scram-reauth-no", &scram);
    let (rc, _) = scram_connect(&broker, &c, &scram, METHOD);
    assert_eq!(rc, 0, "{}", broker.log());
    seen.drain();
    let first = {
        let mut s = scram.lock().unwrap();
        *s = ScramClient::new("alice", "secret");
        s.client_first()
    };
    c.reauthenticate(first.as_bytes()).unwrap();
    // mosquitto 2.0.11 answers with CONNACK 0x87 and closes.
    assert_disconnect(&ev, 0x87, false);
    assert!(!c.is_connected());
    c.loop_stop().unwrap();
}

/// `authentication_set` from `on_pre_connect`: every attempt's CONNECT carries fresh data
/// (a new nonce), also with a plain `connect()` that has no properties.
#[test]
fn authentication_set_gives_each_attempt_fresh_data() {
    let broker = ScriptedBroker::bind();
    let c = v5("auth-fresh");
    fast_reconnect(&c);
    let ev = hook(&c);
    let attempt = Arc::new(Mutex::new(0u32));
    let a = attempt.clone();
    c.on_pre_connect(move |c| {
        let mut n = a.lock().unwrap();
        *n += 1;
        c.authentication_set(SCRIPTED_METHOD, Some(format!("nonce-{n}").as_bytes()))
            .unwrap();
    });
    on_auth(&c, scripted_answers);
    c.connect(HOST, broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    let mut conn = broker.accept(T);
    conn.expect_packet(
        &expected_connect("auth-fresh", SCRIPTED_METHOD, b"nonce-1"),
        T,
    );
    conn.close();
    let mut conn = broker.accept(T);
    conn.expect_packet(
        &expected_connect("auth-fresh", SCRIPTED_METHOD, b"nonce-2"),
        T,
    );
    conn.send(&auth_pkt(0x18, Some(SCRIPTED_METHOD), Some(b"who?")));
    conn.expect_packet(&auth_pkt(0x18, Some(SCRIPTED_METHOD), Some(b"me")), T);
    conn.send(&s::connack_v5(false, 0, &[]));
    assert_eq!(
        wait_connect(&ev),
        Ev::Connect {
            rc: 0,
            session_present: false
        }
    );
    // Cleared: the next CONNECT has no method.
    c.authentication_clear();
    c.on_pre_connect(|_c| {});
    c.reconnect().unwrap();
    let mut conn = broker.accept(T);
    let connect = conn.read_packet(T);
    assert_eq!(connect[12], 0, "no CONNECT properties: [{}]", hex(&connect));
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
}

#[test]
fn authentication_set_refuses_bad_input() {
    let c = v5("auth-set");
    assert!(matches!(
        c.authentication_set("", None),
        Err(Error::InvalidArgument(_))
    ));
    let long = "m".repeat(70_000);
    assert!(matches!(
        c.authentication_set(&long, None),
        Err(Error::InvalidArgument(_) | Error::PayloadSize(_))
    ));
    let c = v311("auth-set-v3");
    assert!(matches!(
        c.authentication_set("M", Some(b"x")),
        Err(Error::InvalidArgument(m)) if m.contains("MQTT 5")
    ));
}

/// A reconnect authenticates again with a fresh SCRAM exchange: `authentication_set` in
/// `on_pre_connect`, mosquitto restarted under the connected client.
#[test]
fn mosquitto_scram_reconnect_authenticates_again() {
    let mut broker = AuthBroker::start(&[("alice", "secret")]);
    let scram: Shared = Arc::new(Mutex::new(ScramClient::new("alice", "secret")));
    let (c, ev, seen) = scram_client("scram-reconnect", &scram);
    fast_reconnect(&c);
    let s = scram.clone();
    c.on_pre_connect(move |c| {
        let mut s = s.lock().unwrap();
        *s = ScramClient::new("alice", "secret");
        c.authentication_set(METHOD, Some(s.client_first().as_bytes()))
            .unwrap();
    });
    let finals = Events::new();
    let tx = finals.sender();
    c.on_connect(move |_c, _f, rc, p| {
        let _ = tx.send((rc.value(), p.authentication_data.clone()));
    });
    c.connect(HOST, broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    for round in 0..2 {
        let (rc, server_final) = finals.wait(T);
        assert_eq!(rc, 0, "round {round}: {}", broker.log());
        let server_final = server_final.expect("server-final in CONNACK");
        scram
            .lock()
            .unwrap()
            .verify_server_final(&server_final)
            .unwrap();
        assert_eq!(seen.wait(T).rc, 0x18);
        if round == 0 {
            broker.restart();
            wait_disconnect(&ev);
        }
    }
    assert!(c.is_connected());
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
}

/// Sends `pkt` (an AUTH the client must refuse): the client answers DISCONNECT 0x82
/// (Protocol Error) and closes the connection.
fn expect_protocol_close(conn: &mut ScriptedConn, pkt: &[u8]) {
    conn.send(pkt);
    conn.expect_packet(&disconnect_rc(0x82), T);
    conn.expect_closed(T);
}
