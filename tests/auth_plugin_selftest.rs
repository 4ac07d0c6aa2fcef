//! Self-test of the enhanced-authentication test infrastructure, without the crate's client:
//! the SCRAM-SHA-256 plugin (`tests/plugins/scram_auth.c`) in a real mosquitto, driven over
//! a raw TCP socket with hand-encoded MQTT 5 packets, and the SCRAM client of
//! `support::scram` against the RFC 7677 test vector.
//!
//! What mosquitto 2.0.11 sends, as asserted below:
//! - success: AUTH 0x18 (method + server-first), then after the client's AUTH 0x18
//!   CONNACK 0x00 with properties Topic Alias Maximum, Authentication Method,
//!   Authentication Data (server-final), Receive Maximum;
//! - wrong password, unknown user, bad or missing auth data: CONNACK `20 03 00 87 00`
//!   (0x87 Not authorized, no properties), then the connection is closed;
//! - unknown method: CONNACK `20 03 00 8c 00` (0x8C Bad authentication method), closed;
//! - re-authentication (AUTH 0x19 with the same method): AUTH 0x18 (server-first), then
//!   AUTH 0x00 Success with Authentication Method + Data (server-final); the connection
//!   stays up;
//! - re-authentication refused by the plugin (wrong password, another user, or
//!   `plugin_opt_reauth deny`): a CONNACK `20 03 00 87 00` on the established connection
//!   (not a DISCONNECT: a mosquitto 2.0.11 quirk), then the connection is closed;
//! - re-authentication with another method: DISCONNECT `e0 01 82` (0x82 Protocol error);
//! - AUTH 0x19 on a connection that did not use enhanced authentication: the connection is
//!   closed without any packet.
//!
//! Plugin quirk: mosquitto 2.0.11 gives MOSQ_EVT_EXT_AUTH_CONTINUE a NULL auth_method, so
//! the plugin recognises its handshakes by the connection (see the C file).

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

use support::auth_plugin::{self, AuthBroker, METHOD};
use support::bytes::{encode_varint, hex, mqtt_bin, mqtt_str};
use support::scram::{self, ScramClient, ScramError};
use support::wait::T;

// --- Raw MQTT 5 --------------------------------------------------------------------------

const CONNACK: u8 = 0x20;
const PINGRESP: u8 = 0xd0;
const DISCONNECT: u8 = 0xe0;
const AUTH: u8 = 0xf0;

const AUTH_METHOD: u8 = 0x15;
const AUTH_DATA: u8 = 0x16;

/// Reason codes.
const SUCCESS: u8 = 0x00;
const CONTINUE_AUTHENTICATION: u8 = 0x18;
const REAUTHENTICATE: u8 = 0x19;
const NOT_AUTHORIZED: u8 = 0x87;
const BAD_AUTHENTICATION_METHOD: u8 = 0x8c;
const PROTOCOL_ERROR: u8 = 0x82;

/// A property value, by the types of MQTT 5 §2.2.2.2.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Byte(u8),
    U16(u16),
    U32(u32),
    Varint(u32),
    Str(String),
    Bin(Vec<u8>),
    Pair(String, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Packet {
    /// First byte: type and flags.
    first: u8,
    body: Vec<u8>,
}

impl Packet {
    /// The whole packet as sent, for exact comparisons.
    fn wire(&self) -> Vec<u8> {
        let mut v = vec![self.first];
        encode_varint(self.body.len() as u64, &mut v);
        v.extend_from_slice(&self.body);
        v
    }

    /// Reason code and properties of a CONNACK, AUTH or DISCONNECT (MQTT 5).
    fn reason_and_props(&self) -> (u8, Vec<(u8, Value)>) {
        let b = &self.body;
        let (reason, rest) = match self.first {
            CONNACK => (b[1], &b[2..]),
            AUTH | DISCONNECT if b.is_empty() => return (SUCCESS, Vec::new()),
            AUTH | DISCONNECT => (b[0], &b[1..]),
            other => panic!("packet type {other:#04x} has no reason code"),
        };
        (
            reason,
            if rest.is_empty() {
                Vec::new()
            } else {
                props(rest)
            },
        )
    }

    fn reason(&self) -> u8 {
        self.reason_and_props().0
    }

    /// The value of property `id`, if present.
    fn prop(&self, id: u8) -> Option<Value> {
        self.reason_and_props()
            .1
            .into_iter()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| v)
    }

    /// The Authentication Data property; panics if missing.
    #[track_caller]
    fn auth_data(&self) -> Vec<u8> {
        match self.prop(AUTH_DATA) {
            Some(Value::Bin(d)) => d,
            other => panic!("no Authentication Data in {self:?}: {other:?}"),
        }
    }
}

/// Decodes a property block (length varint first).
fn props(block: &[u8]) -> Vec<(u8, Value)> {
    let (len, used) = support::bytes::decode_varint(block)
        .expect("property length")
        .expect("property length complete");
    let mut p = &block[used..used + len as usize];
    assert_eq!(
        block.len(),
        used + len as usize,
        "bytes after the properties"
    );
    let take = |p: &mut &[u8], n: usize| -> Vec<u8> {
        let (a, b) = p.split_at(n);
        *p = b;
        a.to_vec()
    };
    let u16_of = |p: &mut &[u8]| u16::from_be_bytes(take(p, 2).try_into().unwrap());
    let string = |p: &mut &[u8]| {
        let n = u16_of(p) as usize;
        String::from_utf8(take(p, n)).expect("UTF-8 property")
    };
    let mut out = Vec::new();
    while !p.is_empty() {
        let id = take(&mut p, 1)[0];
        let v = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => {
                Value::Byte(take(&mut p, 1)[0])
            }
            0x13 | 0x21 | 0x22 | 0x23 => Value::U16(u16_of(&mut p)),
            0x02 | 0x11 | 0x18 | 0x27 => {
                Value::U32(u32::from_be_bytes(take(&mut p, 4).try_into().unwrap()))
            }
            0x0b => {
                let (v, n) = support::bytes::decode_varint(p).unwrap().unwrap();
                p = &p[n..];
                Value::Varint(v)
            }
            0x03 | 0x08 | 0x12 | 0x15 | 0x1a | 0x1c | 0x1f => Value::Str(string(&mut p)),
            0x09 | 0x16 => {
                let n = u16_of(&mut p) as usize;
                Value::Bin(take(&mut p, n))
            }
            0x26 => Value::Pair(string(&mut p), string(&mut p)),
            other => panic!("unknown property {other:#04x}"),
        };
        out.push((id, v));
    }
    out
}

/// A property block with Authentication Method / Data.
fn auth_props(method: Option<&str>, data: Option<&[u8]>) -> Vec<u8> {
    let mut p = Vec::new();
    if let Some(m) = method {
        p.push(AUTH_METHOD);
        p.extend(mqtt_str(m));
    }
    if let Some(d) = data {
        p.push(AUTH_DATA);
        p.extend(mqtt_bin(d));
    }
    let mut out = Vec::new();
    encode_varint(p.len() as u64, &mut out);
    out.extend(p);
    out
}

fn packet(first: u8, body: Vec<u8>) -> Vec<u8> {
    Packet { first, body }.wire()
}

/// MQTT 5 CONNECT, clean start, keep alive 60, with optional enhanced-auth properties.
fn connect(client_id: &str, method: Option<&str>, data: Option<&[u8]>) -> Vec<u8> {
    let mut body = mqtt_str("MQTT");
    body.extend([5, 0x02, 0, 60]);
    body.extend(auth_props(method, data));
    body.extend(mqtt_str(client_id));
    packet(0x10, body)
}

/// AUTH with a reason code, method and data.
fn auth(reason: u8, method: &str, data: &[u8]) -> Vec<u8> {
    let mut body = vec![reason];
    body.extend(auth_props(Some(method), Some(data)));
    packet(AUTH, body)
}

/// A raw connection with time-bounded reads.
struct Raw {
    s: TcpStream,
}

impl Raw {
    #[track_caller]
    fn open(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect_timeout(&addr, T).expect("connect to the broker");
        s.set_read_timeout(Some(T)).unwrap();
        s.set_nodelay(true).unwrap();
        Raw { s }
    }

    #[track_caller]
    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send");
    }

    /// The next packet, or `None` if the broker closed the connection. Panics after [`T`].
    #[track_caller]
    fn read(&mut self) -> Option<Packet> {
        let mut first = [0u8; 1];
        match self.s.read(&mut first) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("no packet within {T:?}: {e}"),
        }
        let mut len_bytes = Vec::new();
        let len = loop {
            let mut b = [0u8; 1];
            self.s.read_exact(&mut b).expect("remaining length");
            len_bytes.push(b[0]);
            if let Some((n, _)) = support::bytes::decode_varint(&len_bytes).unwrap() {
                break n as usize;
            }
        };
        let mut body = vec![0u8; len];
        self.s.read_exact(&mut body).expect("packet body");
        Some(Packet {
            first: first[0],
            body,
        })
    }

    /// The next packet; panics if the connection closed instead.
    #[track_caller]
    fn expect(&mut self) -> Packet {
        self.read().expect("broker closed the connection")
    }

    /// Asserts that the broker closes the connection without sending anything else.
    #[track_caller]
    fn expect_closed(&mut self) {
        if let Some(p) = self.read() {
            panic!("expected the connection to close, got {}", hex(&p.wire()));
        }
    }

    /// PINGREQ → PINGRESP: the connection is up and the broker serves it.
    #[track_caller]
    fn ping(&mut self) {
        self.send(&[0xc0, 0x00]);
        let p = self.expect();
        assert_eq!(p.wire(), [PINGRESP, 0x00], "PINGRESP expected");
    }
}

/// Sends CONNECT with the client-first-message and answers the server-first; returns the
/// packet after the client-final (CONNACK on success) and the SCRAM state.
fn scram_connect(raw: &mut Raw, client_id: &str, scram: &mut ScramClient) -> Packet {
    raw.send(&connect(
        client_id,
        Some(METHOD),
        Some(scram.client_first().as_bytes()),
    ));
    let challenge = raw.expect();
    assert_continue(&challenge);
    let client_final = scram
        .client_final(&challenge.auth_data())
        .expect("server-first-message");
    raw.send(&auth(
        CONTINUE_AUTHENTICATION,
        METHOD,
        client_final.as_bytes(),
    ));
    raw.expect()
}

/// Asserts an AUTH 0x18 carrying exactly the method and a server-first-message.
#[track_caller]
fn assert_continue(p: &Packet) {
    assert_eq!(p.first, AUTH, "AUTH expected, got {}", hex(&p.wire()));
    let (reason, props) = p.reason_and_props();
    assert_eq!(reason, CONTINUE_AUTHENTICATION);
    let ids: Vec<u8> = props.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [AUTH_METHOD, AUTH_DATA], "properties of {p:?}");
    assert_eq!(props[0].1, Value::Str(METHOD.into()));
    let sf = scram::parse_server_first(&p.auth_data()).expect("server-first-message");
    assert_eq!(sf.iterations, 4096);
    assert_eq!(sf.salt.len(), 16);
}

/// Connects and authenticates `user`; returns the open connection after a verified
/// CONNACK 0x00.
#[track_caller]
fn authenticated(broker: &support::Mosquitto, client_id: &str, user: &str, password: &str) -> Raw {
    let mut raw = Raw::open(broker.addr());
    let mut scram = ScramClient::new(user, password);
    let connack = scram_connect(&mut raw, client_id, &mut scram);
    assert_eq!(connack.first, CONNACK, "{}", hex(&connack.wire()));
    assert_eq!(connack.reason(), SUCCESS, "{}", broker.log());
    scram
        .verify_server_final(&connack.auth_data())
        .expect("server signature");
    raw
}

/// AUTH 0x19 → AUTH 0x18 → AUTH 0x18 → returns the broker's answer to the client-final.
fn reauthenticate(raw: &mut Raw, scram: &mut ScramClient) -> Packet {
    raw.send(&auth(
        REAUTHENTICATE,
        METHOD,
        scram.client_first().as_bytes(),
    ));
    let challenge = raw.expect();
    assert_continue(&challenge);
    let client_final = scram.client_final(&challenge.auth_data()).unwrap();
    raw.send(&auth(
        CONTINUE_AUTHENTICATION,
        METHOD,
        client_final.as_bytes(),
    ));
    raw.expect()
}

/// The refusal of a first authentication: CONNACK with `reason`, no properties.
#[track_caller]
fn assert_connack_refusal(p: &Packet, reason: u8) {
    support::bytes::assert_bytes_eq(&[CONNACK, 0x03, 0x00, reason, 0x00], &p.wire(), "CONNACK");
}

// --- Plugin build ------------------------------------------------------------------------

#[test]
fn plugin_compiles_without_warnings() {
    let plugin = auth_plugin::plugin();
    eprintln!(
        "scram_auth.so built in {:?} at {}",
        plugin.build_time,
        plugin.path.display()
    );
    assert!(plugin.path.is_file());
    assert!(
        plugin.compiler_output.trim().is_empty(),
        "cc -Wall -Wextra printed:\n{}",
        plugin.compiler_output
    );
}

// --- SCRAM client ------------------------------------------------------------------------

/// RFC 7677 §3.
#[test]
fn scram_client_matches_rfc7677_test_vector() {
    let mut c = ScramClient::with_nonce("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
    assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    let client_final = c
        .client_final(
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        )
        .unwrap();
    assert_eq!(
        client_final,
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
    assert!(!c.is_done());
    c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        .unwrap();
    assert!(c.is_done());
}

#[test]
fn scram_client_refuses_bad_server_messages() {
    let server_first =
        |nonce: &str| format!("r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096").into_bytes();
    let client = || ScramClient::with_nonce("user", "pencil", "abc");

    // The server must extend our nonce.
    assert_eq!(
        client().client_final(&server_first("xyz123")),
        Err(ScramError::NonceMismatch)
    );
    assert_eq!(
        client().client_final(&server_first("abc")),
        Err(ScramError::NonceMismatch)
    );
    // Iteration count bounds.
    assert_eq!(
        client().client_final(b"r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0"),
        Err(ScramError::IterationCount(0))
    );
    assert_eq!(
        client().client_final(b"r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4000000"),
        Err(ScramError::IterationCount(4_000_000))
    );
    // Malformed messages.
    for bad in [
        &b"m=ext,r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"[..],
        b"r=abcdef,i=4096",
        b"r=abcdef,s=not*base64,i=4096",
        b"r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=many",
        b"",
    ] {
        assert!(
            matches!(client().client_final(bad), Err(ScramError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Server-final: a wrong signature, an error, out of order.
    let mut c = client();
    assert_eq!(
        c.verify_server_final(b"v=AAAA"),
        Err(ScramError::OutOfOrder)
    );
    c.client_final(&server_first("abcdef")).unwrap();
    assert_eq!(
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
        Err(ScramError::BadServerSignature)
    );
    assert_eq!(
        c.verify_server_final(b"e=invalid-proof"),
        Err(ScramError::Server("invalid-proof".into()))
    );
    assert_eq!(
        c.client_final(&server_first("abcdef")),
        Err(ScramError::OutOfOrder)
    );
}

#[test]
fn scram_helpers() {
    for (raw, b64) in [
        (&b""[..], ""),
        (b"f", "Zg=="),
        (b"fo", "Zm8="),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg=="),
        (b"n,,", "biws"),
    ] {
        assert_eq!(scram::base64_encode(raw), b64);
        if !b64.is_empty() {
            assert_eq!(scram::base64_decode(b64).as_deref(), Some(raw));
        }
    }
    for bad in ["", "Zg=", "Z===", "Zg==Zg==", "Zm9v!", "Z=g="] {
        assert_eq!(scram::base64_decode(bad), None, "{bad:?}");
    }
    assert_eq!(scram::escape_saslname("a,b=c"), "a=2Cb=3Dc");
    let (a, b) = (scram::random_nonce(), scram::random_nonce());
    assert_eq!(a.len(), 24);
    assert_ne!(a, b);
}

// --- First authentication ----------------------------------------------------------------

#[test]
fn scram_authentication_succeeds() {
    let broker = AuthBroker::start(&[("alice", "secret"), ("bob", "pw:with:colons")]);
    let mut raw = Raw::open(broker.addr());
    let mut scram = ScramClient::new("alice", "secret");
    let connack = scram_connect(&mut raw, "scram-ok", &mut scram);

    assert_eq!(connack.first, CONNACK, "{}", hex(&connack.wire()));
    let (reason, props) = connack.reason_and_props();
    assert_eq!(reason, SUCCESS, "{}", broker.log());
    assert_eq!(connack.body[0], 0x00, "session present flag");
    // mosquitto 2.0.11 sends Topic Alias Maximum, the method, the data, Receive Maximum.
    let ids: Vec<u8> = props.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [0x22, AUTH_METHOD, AUTH_DATA, 0x21], "{props:?}");
    assert_eq!(connack.prop(AUTH_METHOD), Some(Value::Str(METHOD.into())));
    let server_final = connack.auth_data();
    assert!(server_final.starts_with(b"v="));
    scram.verify_server_final(&server_final).unwrap();

    raw.ping();
    // The plugin set the user name, which the broker logs and uses for ACLs.
    broker.wait_for_log("as scram-ok (p5, c1, k60, u'alice')", T);
    broker.wait_for_log("scram_auth: scram-ok authenticated as alice", T);

    // A second user, whose password contains ':'.
    let mut bob = authenticated(&broker, "scram-bob", "bob", "pw:with:colons");
    bob.ping();
}

#[test]
fn wrong_password_is_refused_with_connack_0x87() {
    let broker = AuthBroker::start(&[("alice", "secret")]);
    let mut raw = Raw::open(broker.addr());
    let mut scram = ScramClient::new("alice", "not-the-password");
    let connack = scram_connect(&mut raw, "scram-bad-pw", &mut scram);
    assert_connack_refusal(&connack, NOT_AUTHORIZED);
    raw.expect_closed();
    broker.wait_for_log("authentication of scram-bad-pw refused: wrong proof", T);
}

#[test]
fn unknown_user_is_refused_like_a_wrong_password() {
    let broker = AuthBroker::start(&[("alice", "secret")]);
    let mut raw = Raw::open(broker.addr());
    let mut scram = ScramClient::new("mallory", "secret");
    // The server-first looks like any other (a made-up salt, stable for the name).
    let connack = scram_connect(&mut raw, "scram-unknown", &mut scram);
    assert_connack_refusal(&connack, NOT_AUTHORIZED);
    raw.expect_closed();
    broker.wait_for_log("refused: unknown user", T);
}

#[test]
fn unknown_method_is_refused_with_connack_0x8c() {
    let broker = AuthBroker::start(&[("alice", "secret")]);
    let mut raw = Raw::open(broker.addr());
    raw.send(&connect("scram-method", Some("TOKEN"), Some(b"anything")));
    assert_connack_refusal(&raw.expect(), BAD_AUTHENTICATION_METHOD);
    raw.expect_closed();
}

#[test]
fn bad_client_first_messages_are_refused_with_connack_0x87() {
    let broker = AuthBroker::start(&[("alice", "secret")]);
    let oversized = format!("n,,n=alice,r={}", "x".repeat(2000));
    // (case, data, the plugin's reason in the log)
    let cases: [(&str, Option<&[u8]>, &str); 7] = [
        ("no data", None, "missing, oversized or binary"),
        (
            "channel binding",
            Some(b"p=tls-unique,,n=alice,r=abc"),
            "unsupported gs2 header",
        ),
        (
            "authzid",
            Some(b"n,a=alice,n=alice,r=abc"),
            "unsupported gs2 header",
        ),
        (
            "mandatory extension",
            Some(b"n,,m=ext,n=alice,r=abc"),
            "mandatory extension",
        ),
        ("no nonce", Some(b"n,,n=alice"), "no nonce"),
        (
            "NUL byte",
            Some(b"n,,n=alice\0,r=abc"),
            "missing, oversized or binary",
        ),
        (
            "oversized",
            Some(oversized.as_bytes()),
            "missing, oversized or binary",
        ),
    ];
    for (what, data, why) in cases {
        let mark = broker.log_mark();
        let mut raw = Raw::open(broker.addr());
        raw.send(&connect("scram-bad-first", Some(METHOD), data));
        let p = raw.expect();
        assert_eq!(
            p.wire(),
            [CONNACK, 0x03, 0x00, NOT_AUTHORIZED, 0x00],
            "{what}: {}",
            hex(&p.wire())
        );
        raw.expect_closed();
        broker.wait_for_log_after(mark, &format!("refused: {why}"), T);
    }
}

#[test]
fn tampered_client_final_messages_are_refused_with_connack_0x87() {
    let broker = AuthBroker::start(&[("alice", "secret")]);
    type Tamper = fn(&str) -> String;
    // (case, change to the client-final, the plugin's reason in the log)
    let cases: [(&str, Tamper, &str); 5] = [
        (
            "channel binding",
            |m| m.replacen("c=biws", "c=eSws", 1),
            "channel binding mismatch",
        ),
        ("nonce", |m| m.replacen(",r=", ",r=X", 1), "nonce mismatch"),
        ("proof not base64", |m| format!("{m}*"), "malformed proof"),
        (
            "short proof",
            |m| format!("{}AAAA", &m[..m.find(",p=").unwrap() + 3]),
            "malformed proof",
        ),
        (
            "no proof",
            |m| m[..m.find(",p=").unwrap()].to_string(),
            "no proof",
        ),
    ];
    for (what, tamper, why) in cases {
        let mark = broker.log_mark();
        let mut raw = Raw::open(broker.addr());
        let mut scram = ScramClient::new("alice", "secret");
        raw.send(&connect(
            "scram-tamper",
            Some(METHOD),
            Some(scram.client_first().as_bytes()),
        ));
        let challenge = raw.expect();
        assert_continue(&challenge);
        let client_final = scram.client_final(&challenge.auth_data()).unwrap();
        raw.send(&auth(
            CONTINUE_AUTHENTICATION,
            METHOD,
            tamper(&client_final).as_bytes(),
        ));
        let p = raw.expect();
        assert_eq!(
            p.wire(),
            [CONNACK, 0x03, 0x00, NOT_AUTHORIZED, 0x00],
            "{what}: {}",
            hex(&p.wire())
        );
        raw.expect_closed();
        broker.wait_for_log_after(mark, &format!("refused: {why}"), T);
    }
}

#[test]
fn iteration_count_option_reaches_the_server_first_message() {
    let broker = AuthBroker::new(&[("alice", "secret")])
        .iterations(1000)
        .launch();
    let mut raw = Raw::open(broker.addr());
    let scram = ScramClient::new("alice", "secret");
    raw.send(&connect(
        "scram-iter",
        Some(METHOD),
        Some(scram.client_first().as_bytes()),
    ));
    let p = raw.expect();
    let sf = scram::parse_server_first(&p.auth_data()).unwrap();
    assert_eq!(sf.iterations, 1000);
}

// --- Re-authentication -------------------------------------------------------------------

#[test]
fn reauthentication_succeeds_with_auth_0x00() {
    let broker = AuthBroker::start(&[("alice", "secret")]);
    let mut raw = authenticated(&broker, "scram-reauth", "alice", "secret");
    for round in 0..2 {
        let mut scram = ScramClient::new("alice", "secret");
        let p = reauthenticate(&mut raw, &mut scram);
        assert_eq!(p.first, AUTH, "round {round}: {}", hex(&p.wire()));
        let (reason, props) = p.reason_and_props();
        assert_eq!(reason, SUCCESS);
        let ids: Vec<u8> = props.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [AUTH_METHOD, AUTH_DATA]);
        assert_eq!(p.prop(AUTH_METHOD), Some(Value::Str(METHOD.into())));
        scram.verify_server_final(&p.auth_data()).unwrap();
        raw.ping();
    }
    broker.wait_for_log("scram_auth: scram-reauth re-authenticated as alice", T);
}

#[test]
fn reauthentication_with_wrong_password_gets_connack_0x87_and_close() {
    let broker = AuthBroker::start(&[("alice", "secret")]);
    let mut raw = authenticated(&broker, "scram-reauth-bad", "alice", "secret");
    let mut scram = ScramClient::new("alice", "wrong");
    let p = reauthenticate(&mut raw, &mut scram);
    // mosquitto 2.0.11 answers a failed re-authentication with a CONNACK, not a DISCONNECT.
    assert_connack_refusal(&p, NOT_AUTHORIZED);
    raw.expect_closed();
    broker.wait_for_log(
        "re-authentication of scram-reauth-bad refused: wrong proof",
        T,
    );
}

#[test]
fn reauthentication_as_another_user_gets_connack_0x87_and_close() {
    let broker = AuthBroker::start(&[("alice", "secret"), ("bob", "pw")]);
    let mut raw = authenticated(&broker, "scram-reauth-bob", "alice", "secret");
    let scram = ScramClient::new("bob", "pw");
    raw.send(&auth(
        REAUTHENTICATE,
        METHOD,
        scram.client_first().as_bytes(),
    ));
    // Refused at the first step.
    assert_connack_refusal(&raw.expect(), NOT_AUTHORIZED);
    raw.expect_closed();
    broker.wait_for_log("refused: re-authentication as another user", T);
}

#[test]
fn reauthentication_refused_by_plugin_gets_connack_0x87_and_close() {
    let broker = AuthBroker::new(&[("alice", "secret")])
        .refuse_reauth()
        .launch();
    let mut raw = authenticated(&broker, "scram-noreauth", "alice", "secret");
    raw.ping();
    let scram = ScramClient::new("alice", "secret");
    raw.send(&auth(
        REAUTHENTICATE,
        METHOD,
        scram.client_first().as_bytes(),
    ));
    assert_connack_refusal(&raw.expect(), NOT_AUTHORIZED);
    raw.expect_closed();
    broker.wait_for_log(
        "scram_auth: re-authentication of scram-noreauth refused (plugin_opt_reauth deny)",
        T,
    );
    broker.wait_for_log(
        "Client scram-noreauth disconnected due to protocol error.",
        T,
    );
}

#[test]
fn reauthentication_with_another_method_gets_disconnect_0x82() {
    let broker = AuthBroker::start(&[("alice", "secret")]);
    let mut raw = authenticated(&broker, "scram-reauth-method", "alice", "secret");
    raw.send(&auth(REAUTHENTICATE, "TOKEN", b"anything"));
    let p = raw.expect();
    assert_eq!(
        p.wire(),
        [DISCONNECT, 0x01, PROTOCOL_ERROR],
        "{}",
        hex(&p.wire())
    );
    raw.expect_closed();
}

#[test]
fn reauthentication_without_enhanced_auth_closes_the_connection() {
    let broker = AuthBroker::start(&[("alice", "secret")]);
    let mut raw = Raw::open(broker.addr());
    raw.send(&connect("scram-plain", None, None));
    let connack = raw.expect();
    assert_eq!(connack.first, CONNACK);
    assert_eq!(connack.reason(), SUCCESS);
    let scram = ScramClient::new("alice", "secret");
    raw.send(&auth(
        REAUTHENTICATE,
        METHOD,
        scram.client_first().as_bytes(),
    ));
    // No DISCONNECT: mosquitto 2.0.11 just closes.
    raw.expect_closed();
    broker.wait_for_log("Client scram-plain disconnected due to protocol error.", T);
}
