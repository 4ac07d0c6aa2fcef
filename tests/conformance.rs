mod support;

// Runs the Eclipse Mosquitto broker-to-client packet-sequence corpus
// (`tests/data/mosquitto-msg-sequence/`, see its README.md) against `mqtt_sync::Client`.
//
// Each case gets its own [`ScriptedBroker`] and client; a pool of worker threads runs the
// cases concurrently, each under a hard time limit. A case ends as
// - a pass: the client behaved as libmosquitto does in that case;
// - a deviation: listed in [`DEVIATIONS`] with the reason and the MQTT spec clause; the case
//   runs in its adjusted form (what the client does instead) and must pass that way; it is
//   counted apart from the passes;
// - a failure, reported grouped by cause.
//
// `cargo test --test conformance -- --nocapture` prints the summary and the failure groups.
// Environment:
// - `CONFORMANCE_REPORT_ONLY=1`: print everything but do not fail the test;
// - `CONFORMANCE_FILTER=text`: run only the cases whose id contains `text`;
// - `CONFORMANCE_WORKERS=n`: size of the worker pool (default 8);
// - `CONFORMANCE_VERBOSE=1`: list every failing case, not only two per group.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mqtt_sync::{CleanStart, Client, ConnectOptions, Properties, Protocol, QoS, SubscribeOptions};
use support::bytes::{hex, hex_diff, parse_payload};
use support::corpus::{self, Case};
use support::scripted::{ReadError, ScriptedBroker, ScriptedConn};

/// How long the broker waits for one reaction of the client (a packet, a close).
const STEP: Duration = Duration::from_secs(2);
/// Hard limit of one case, set-up and tear-down included.
const CASE_LIMIT: Duration = Duration::from_secs(20);
/// The client id every case uses.
const CLIENT_ID: &str = "fuzzish";
const KEEPALIVE: u16 = 60;

// ---------------------------------------------------------------------------------------
// Deliberate deviations from libmosquitto.

/// How a deviating case is run instead of as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Adjust {
    /// The v5 `publish-1`/`publish-2` command is sent without its Topic Alias property, and the
    /// expected PUBLISH of the case loses that property too; its properties are compared in
    /// any order (see [`same_publish_any_property_order`]). Everything else is checked as
    /// written.
    NoTopicAlias,
    /// The client must end connected (`false`) or disconnected (`true`), the opposite of the
    /// case.
    ExpectDisconnect(bool),
    /// Where the case expects the client to send `case` (mini-language), it must send
    /// `client` instead.
    RecvInstead {
        case: &'static str,
        client: &'static str,
    },
}

struct Deviation {
    /// Which cases, in words (printed in the table).
    scope: &'static str,
    applies: fn(&Case) -> bool,
    adjust: Adjust,
    reason: &'static str,
    clause: &'static str,
}

/// Cases where the client deliberately behaves otherwise than libmosquitto, because the MQTT
/// specification or `/work/shared/API.md` asks for it. Each runs in its adjusted form and
/// must pass that way; it is counted apart from the passes.
const DEVIATIONS: &[Deviation] = &[
    Deviation {
        scope: "every v5 case with command publish-1 / publish-2 (PUBACK.json: v5.0 PUBACK, \
                PUBACK ALLOWED/DISALLOWED PROPERTIES; PUBREC.json: v5.0 PUBREC valid, invalid, \
                ALLOWED PROPERTIES)",
        applies: |c| c.ver == 5 && matches!(c.command.as_deref(), Some("publish-1" | "publish-2")),
        adjust: Adjust::NoTopicAlias,
        reason:
            "the command asks for Topic Alias 65535, but the corpus CONNACK has no Topic Alias \
                 Maximum (so 0): the client refuses that publish with an Error and sends nothing \
                 (API.md, 'The client honours the broker's MQTT 5 limits'); libmosquitto sends it. \
                 The case runs with the same publish minus the Topic Alias. The client also writes \
                 the properties in identifier order (01 02 03 08 09 26, as Paho does) where \
                 libmosquitto keeps the order they were added (01 02 08 09 03 26); the spec fixes \
                 no order, so they are compared as a list sorted by identifier (User Properties \
                 keep their relative order).",
        clause: "MQTT 5.0 3.3.2.3.4 [MQTT-3.3.2-9] (a Client MUST NOT send a Topic Alias greater \
                 than the Topic Alias Maximum of the CONNACK), 3.2.2.3.8 (absent means 0); \
                 2.2.2.2 (no property order)",
    },
    Deviation {
        scope: "PUBLISH.json: v3.1.1 PUBLISH / 30 [MQTT-3.1.0-1], v5.0 PUBLISH / 30 [MQTT-3.1.0-1]",
        applies: |c| c.file == "PUBLISH.json" && c.name == "30 [MQTT-3.1.0-1]" && !c.connect,
        adjust: Adjust::ExpectDisconnect(false),
        reason: "the case sets connect:false (the broker does not read the CONNECT) but not \
                 connack:false, so the default CONNACK goes out first (mosquitto's \
                 msg_sequence_test.py does the same) and the QoS 0 PUBLISH that follows is legal: \
                 the client rightly stays connected. In mosquitto's run the verdict reads the \
                 unread CONNECT bytes instead of a PUBACK, so the case passes whatever the client \
                 does; here the CONNECT is read, and the client must stay connected.",
        clause: "MQTT 3.1.1 3.2.0-1 / MQTT 5.0 [MQTT-3.2.0-1] (CONNACK first, which it is); \
                 3.1.1 3.3 and 5.0 3.3 (a well-formed QoS 0 PUBLISH is no protocol error)",
    },
    Deviation {
        scope: "PUBREC.json: v5.0 PUBREC unsolicited / 50 len=2, 50 len=3, 50 len=4 ok",
        applies: |c| {
            c.file == "PUBREC.json"
                && c.group == "v5.0   PUBREC unsolicited"
                && matches!(c.name.as_str(), "50 len=2" | "50 len=3" | "50 len=4 ok")
        },
        adjust: Adjust::RecvInstead {
            case: "62 r2 m1",
            client: "62 r3 m1 92",
        },
        reason: "a successful PUBREC for a packet id the client never used: libmosquitto answers \
                 PUBREL Success, the client answers PUBREL 0x92 (Packet Identifier not found), \
                 the reason code the spec defines for exactly this case; both stay connected.",
        clause: "MQTT 5.0 3.6.2.1 (PUBREL Reason Code 0x92: 'The Packet Identifier is not known \
                 ... indicates a mismatch between the Session State on the Client and Server')",
    },
];

fn deviation_for(case: &Case) -> Option<&'static Deviation> {
    DEVIATIONS.iter().find(|d| (d.applies)(case))
}

// ---------------------------------------------------------------------------------------
// Expected client packets and broker packets.

/// The CONNECT the client must send: id `fuzzish`, keepalive 60, no will, no credentials,
/// clean start as asked, and for v5 no properties.
fn expected_connect(ver: u8, clean: bool) -> Vec<u8> {
    let mut body = Vec::new();
    let name: &[u8] = if ver == 3 { b"MQIsdp" } else { b"MQTT" };
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name);
    body.push(ver);
    body.push(if clean { 0x02 } else { 0x00 });
    body.extend_from_slice(&KEEPALIVE.to_be_bytes());
    if ver == 5 {
        body.push(0);
    }
    body.extend_from_slice(&(CLIENT_ID.len() as u16).to_be_bytes());
    body.extend_from_slice(CLIENT_ID.as_bytes());
    support::scripted::packet(0x10, &body)
}

/// CONNACK success; for v5 with Receive Maximum = 20.
fn default_connack(ver: u8) -> Vec<u8> {
    if ver == 5 {
        support::scripted::connack_v5(false, 0, &[0x21, 0x00, 0x14])
    } else {
        support::scripted::connack(false, 0)
    }
}

/// The alive check: PUBLISH QoS 1, mid 65535, topic `alive check`, payload `payload`.
fn alive_publish(ver: u8) -> Vec<u8> {
    if ver == 5 {
        support::scripted::publish_v5("alive check", b"payload", 1, 65535, false, false, &[])
    } else {
        support::scripted::publish("alive check", b"payload", 1, 65535, false, false)
    }
}

const ALIVE_PUBACK: [u8; 4] = [0x40, 0x02, 0xff, 0xff];

/// The v5 PUBLISH of `publish-1|2` as the corpus writes it (with Topic Alias 65535), and as
/// the client sends it without the Topic Alias.
fn v5_command_publish(qos: u8, with_alias: bool) -> Vec<u8> {
    let alias = if with_alias { "23 ffff" } else { "" };
    let props = format!(
        "01 i1 02 ffffffff {alias} 08 s14 'response/topic' 09 H36 \
         '7deac5c5-8802-44ff-86ce-11479f337419' 03 s10 'text/plain' 26 s3 'key' s5 'value'"
    );
    let props = parse_payload(&props);
    support::scripted::publish_v5("test/publish", b"message", qos, 1, false, false, &props)
}

/// The v5 PUBLISH `p` with its properties sorted by identifier (stable, so repeated User
/// Properties keep their order). `None` if it does not parse.
fn sorted_publish_properties(p: &[u8]) -> Option<Vec<u8>> {
    let (_, used) = support::bytes::decode_varint(p.get(1..)?).ok()??;
    let mut at = 1 + used;
    let tlen = u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]) as usize;
    at += 2 + tlen;
    if (p[0] >> 1) & 3 > 0 {
        at += 2;
    }
    let (plen, pused) = support::bytes::decode_varint(p.get(at..)?).ok()??;
    let start = at + pused;
    let end = start + plen as usize;
    let props = p.get(start..end)?;
    let mut entries: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    while i < props.len() {
        let len16 = |o: usize| -> Option<usize> {
            Some(u16::from_be_bytes([*props.get(o)?, *props.get(o + 1)?]) as usize)
        };
        let size = match props[i] {
            0x01 => 1,
            0x23 => 2,
            0x02 => 4,
            0x03 | 0x08 | 0x09 => 2 + len16(i + 1)?,
            0x26 => {
                let k = len16(i + 1)?;
                2 + k + 2 + len16(i + 3 + k)?
            }
            0x0b => support::bytes::decode_varint(props.get(i + 1..)?).ok()??.1,
            _ => return None,
        };
        entries.push(props.get(i..i + 1 + size)?);
        i += 1 + size;
    }
    entries.sort_by_key(|e| e[0]);
    let mut out = p[..start].to_vec();
    out.extend(entries.concat());
    out.extend_from_slice(&p[end..]);
    Some(out)
}

/// Whether two v5 PUBLISH packets are equal but for the order of their properties.
fn same_publish_any_property_order(expected: &[u8], actual: &[u8]) -> bool {
    match (
        sorted_publish_properties(expected),
        sorted_publish_properties(actual),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn v5_publish_properties(with_alias: bool) -> Properties {
    Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(u32::MAX),
        topic_alias: with_alias.then_some(65535),
        response_topic: Some("response/topic".into()),
        correlation_data: Some(b"7deac5c5-8802-44ff-86ce-11479f337419".to_vec()),
        content_type: Some("text/plain".into()),
        user_properties: vec![("key".into(), "value".into())],
        ..Default::default()
    }
}

fn user_property() -> Properties {
    Properties {
        user_properties: vec![("key".into(), "value".into())],
        ..Default::default()
    }
}

fn packet_name(p: &[u8]) -> String {
    let Some(&b) = p.first() else {
        return "nothing".into();
    };
    let name = match b >> 4 {
        1 => "CONNECT",
        2 => "CONNACK",
        3 => "PUBLISH",
        4 => "PUBACK",
        5 => "PUBREC",
        6 => "PUBREL",
        7 => "PUBCOMP",
        8 => "SUBSCRIBE",
        9 => "SUBACK",
        10 => "UNSUBSCRIBE",
        11 => "UNSUBACK",
        12 => "PINGREQ",
        13 => "PINGRESP",
        14 => "DISCONNECT",
        15 => "AUTH",
        _ => "reserved",
    };
    // For DISCONNECT and the acks, the reason code is telling.
    match (b >> 4, p.len()) {
        (14, 3..) => format!("{name}(rc {:#04x})", p[2]),
        (4..=7, 5..) => format!("{name}(rc {:#04x})", p[4]),
        _ => name.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Running one case.

/// Why a case failed: `cause` groups failures, `detail` is for this case only.
#[derive(Debug, Clone)]
struct Failure {
    cause: String,
    detail: String,
}

fn fail<T>(cause: impl Into<String>, detail: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        cause: cause.into(),
        detail: detail.into(),
    })
}

fn protocol(ver: u8) -> Protocol {
    match ver {
        3 => Protocol::V31,
        5 => Protocol::V5,
        _ => Protocol::V311,
    }
}

/// Performs the case's command. Returns the error text if the client refused it.
fn perform_command(client: &Client, case: &Case, adjust: Option<Adjust>) -> Result<(), String> {
    let Some(cmd) = case.command.as_deref() else {
        return Ok(());
    };
    let v5 = case.ver == 5;
    let sub_props = || {
        v5.then(|| Properties {
            subscription_identifiers: vec![268_435_455],
            user_properties: vec![("key".into(), "value".into())],
            ..Default::default()
        })
    };
    let r = match cmd {
        "subscribe-0" | "subscribe-1" | "subscribe-2" => {
            let qos = QoS::try_from(cmd.as_bytes()[10] - b'0').expect("qos");
            client
                .subscribe_with_options("test/subscribe", SubscribeOptions::qos(qos), sub_props())
                .map(|_| ())
        }
        "subscribe-multiple" => {
            let o = SubscribeOptions::qos(QoS::ExactlyOnce);
            client
                .subscribe_many_with_options(
                    &[("test/subscribe1", o), ("test/subscribe2", o)],
                    sub_props(),
                )
                .map(|_| ())
        }
        "unsubscribe" => client
            .unsubscribe_with_properties(&["test/subscribe"], user_property())
            .map(|_| ()),
        "unsubscribe-multiple" => client
            .unsubscribe_with_properties(&["test/subscribe1", "test/subscribe2"], user_property())
            .map(|_| ()),
        "publish-0" | "publish-1" | "publish-2" => {
            let qos = QoS::try_from(cmd.as_bytes()[8] - b'0').expect("qos");
            if v5 {
                let alias = adjust != Some(Adjust::NoTopicAlias);
                client
                    .publish_with_properties(
                        "test/publish",
                        "message",
                        qos,
                        false,
                        v5_publish_properties(alias),
                    )
                    .map(|_| ())
            } else {
                client
                    .publish("test/publish", "message", qos, false)
                    .map(|_| ())
            }
        }
        other => panic!("{}: unknown command {other:?}", case.id()),
    };
    r.map_err(|e| format!("{e:?}"))
}

fn read_error_text(e: &ReadError) -> String {
    match e {
        ReadError::Timeout { partial } if partial.is_empty() => {
            format!("nothing within {STEP:?}")
        }
        ReadError::Timeout { partial } => format!("only partial bytes [{}]", hex(partial)),
        ReadError::Closed { partial, reset } => format!(
            "the connection closed ({}){}",
            if *reset { "reset" } else { "EOF" },
            if partial.is_empty() {
                String::new()
            } else {
                format!(" after partial bytes [{}]", hex(partial))
            }
        ),
        ReadError::Malformed { bytes, why } => format!("malformed bytes ({why}) [{}]", hex(bytes)),
        ReadError::Io(e) => format!("read error {e}"),
    }
}

/// The short form of a read error for grouping.
fn read_error_kind(e: &ReadError) -> &'static str {
    match e {
        ReadError::Timeout { .. } => "nothing (timeout)",
        ReadError::Closed { .. } => "a close",
        ReadError::Malformed { .. } => "malformed bytes",
        ReadError::Io(_) => "a read error",
    }
}

fn run_case(case: &Case, adjust: Option<Adjust>) -> Result<Option<String>, Failure> {
    let broker = ScriptedBroker::bind();
    let mut builder = Client::builder()
        .client_id(CLIENT_ID)
        .protocol(protocol(case.ver))
        .reconnect_on_failure(false);
    if case.ver != 5 {
        // MQTT 5 takes clean start from ConnectOptions (below).
        builder = builder.clean_session(case.clean_start);
    }
    let client = builder.build().map_err(|e| Failure {
        cause: "client build failed".into(),
        detail: format!("{e:?}"),
    })?;
    let (conn_tx, conn_rx) = mpsc::channel();
    client.on_connect(move |_c, _flags, rc, _props| {
        let _ = conn_tx.send(rc);
    });
    let _ = client.connect_timeout_set(Duration::from_secs(5));
    let mut opts = ConnectOptions::new("127.0.0.1");
    opts.port = broker.port();
    opts.keepalive = KEEPALIVE;
    if case.ver == 5 {
        opts.clean_start = CleanStart::from(case.clean_start);
    }
    if let Err(e) = client.connect_with(opts) {
        return fail("connect() failed", format!("{e:?}"));
    }
    if let Err(e) = client.loop_start() {
        return fail("loop_start() failed", format!("{e:?}"));
    }
    let Some(mut conn) = broker.try_accept(STEP) else {
        return fail("the client did not connect", "");
    };
    let result = drive(case, adjust, &client, &mut conn, &conn_rx);
    // Tear down: close the broker side first so that nothing waits on a healthy connection.
    conn.close();
    drop(client);
    result
}

fn drive(
    case: &Case,
    adjust: Option<Adjust>,
    client: &Client,
    conn: &mut ScriptedConn,
    conn_rx: &mpsc::Receiver<mqtt_sync::ReasonCode>,
) -> Result<Option<String>, Failure> {
    // 1. The client's CONNECT.
    match conn.try_read_packet(STEP) {
        Ok(p) => {
            let want = expected_connect(case.ver, case.clean_start);
            if case.connect && p != want {
                return fail(
                    "CONNECT not as expected",
                    format!("\n{}", hex_diff(&want, &p)),
                );
            }
        }
        Err(e) => return fail("no CONNECT from the client", read_error_text(&e)),
    }
    // 2. CONNACK and on_connect.
    if case.connack {
        if conn.try_send(&default_connack(case.ver)).is_err() {
            return fail("connection closed before CONNACK", "");
        }
        match conn_rx.recv_timeout(STEP) {
            Ok(rc) if rc.value() == 0 => {}
            Ok(rc) => return fail("on_connect reported a failure", format!("{rc:?}")),
            Err(_) => {
                return fail(
                    "on_connect not called after the default CONNACK",
                    format!("within {STEP:?}"),
                )
            }
        }
    }
    // 3. The command.
    if let Err(e) = perform_command(client, case, adjust) {
        return fail(
            format!("command {} refused", case.command.as_deref().unwrap_or("")),
            e,
        );
    }
    // 4. The messages.
    let (alias1, alias2) = (v5_command_publish(1, true), v5_command_publish(2, true));
    for (i, step) in case.msgs.iter().enumerate() {
        let mut bytes = step.bytes.clone();
        let mut any_property_order = false;
        match adjust {
            Some(Adjust::NoTopicAlias) if !step.send => {
                if bytes == alias1 {
                    bytes = v5_command_publish(1, false);
                    any_property_order = true;
                } else if bytes == alias2 {
                    bytes = v5_command_publish(2, false);
                    any_property_order = true;
                }
            }
            Some(Adjust::RecvInstead { case: from, client })
                if !step.send && bytes == parse_payload(from) =>
            {
                bytes = parse_payload(client);
            }
            _ => {}
        }
        if step.send {
            if let Err(e) = conn.try_send(&bytes) {
                return fail(
                    format!("client closed before step {i} (send) could be written"),
                    format!("send [{}]: {e}", step.payload),
                );
            }
        } else {
            match conn.try_read_packet(STEP) {
                Ok(p) if p == bytes => {}
                Ok(p) if any_property_order && same_publish_any_property_order(&bytes, &p) => {}
                Ok(p) => {
                    return fail(
                        format!(
                            "recv step: expected {}, client sent {}",
                            packet_name(&bytes),
                            packet_name(&p)
                        ),
                        format!("step {i} [{}]\n{}", step.payload, hex_diff(&bytes, &p)),
                    )
                }
                Err(e) => {
                    return fail(
                        format!(
                            "recv step: expected {}, got {}",
                            packet_name(&bytes),
                            read_error_kind(&e)
                        ),
                        format!("step {i} [{}]: {}", step.payload, read_error_text(&e)),
                    )
                }
            }
        }
    }
    // 5. The verdict.
    let expect_disconnect = match adjust {
        Some(Adjust::ExpectDisconnect(d)) => d,
        _ => case.expect_disconnect,
    };
    let sent = conn.try_send(&alive_publish(case.ver)).is_ok();
    if expect_disconnect {
        let mut before = Vec::new();
        loop {
            match conn.try_read_packet(STEP) {
                Err(ReadError::Closed { partial, .. }) if partial.is_empty() => {
                    return Ok((!before.is_empty()).then(|| {
                        format!(
                            "sent {} before closing; the case lists none",
                            before.join(", ")
                        )
                    }))
                }
                Ok(p) if p == ALIVE_PUBACK => {
                    return fail(
                        "stays connected where libmosquitto disconnects",
                        format!(
                            "answered the alive check with PUBACK{}",
                            if before.is_empty() {
                                String::new()
                            } else {
                                format!(" after [{}]", before.join(", "))
                            }
                        ),
                    )
                }
                // A DISCONNECT before the close is a disconnect (the corpus checks only that
                // the client is gone; mosquitto's check accepts any answer but the PUBACK).
                Ok(p) if p[0] == 0xe0 => before.push(packet_name(&p)),
                Ok(p) => {
                    return fail(
                        format!(
                            "expected a disconnect, client sent {} instead",
                            packet_name(&p)
                        ),
                        format!("[{}]", hex(&p)),
                    )
                }
                Err(e) => {
                    return fail(
                        format!(
                            "expected a disconnect, got {} (alive check {})",
                            read_error_kind(&e),
                            if sent { "sent" } else { "not sent" }
                        ),
                        read_error_text(&e),
                    )
                }
            }
        }
    } else {
        match conn.try_read_packet(STEP) {
            Ok(p) if p == ALIVE_PUBACK => Ok(None),
            Ok(p) if p[0] == 0xe0 => fail(
                format!(
                    "disconnects where libmosquitto stays connected (sent {})",
                    packet_name(&p)
                ),
                format!("[{}]", hex(&p)),
            ),
            Ok(p) => fail(
                format!(
                    "alive check: expected PUBACK 65535, client sent {}",
                    packet_name(&p)
                ),
                format!("\n{}", hex_diff(&ALIVE_PUBACK, &p)),
            ),
            Err(e) => fail(
                format!(
                    "disconnects where libmosquitto stays connected ({} at the alive check)",
                    read_error_kind(&e)
                ),
                read_error_text(&e),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The runner.

enum Outcome {
    /// With a note on something allowed but worth knowing.
    Pass(Option<String>),
    Deviation,
    Fail(Failure),
}

/// Runs one case on its own thread under [`CASE_LIMIT`]. A case past the limit is reported
/// and its thread left behind (it ends by itself once the client's timeouts fire).
fn run_limited(case: Case) -> Outcome {
    let dev = deviation_for(&case);
    let adjust = dev.map(|d| d.adjust);
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    thread::Builder::new()
        .name(format!("case {}", case.name))
        .spawn(move || {
            let r =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(&case, adjust)));
            let _ = tx.send(r);
        })
        .expect("spawn case thread");
    let result = match rx.recv_timeout(CASE_LIMIT) {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(Failure {
                cause: "the case panicked".into(),
                detail: msg,
            })
        }
        Err(_) => Err(Failure {
            cause: format!("hard time limit {CASE_LIMIT:?} exceeded (client hangs?)"),
            detail: format!("after {:?}", started.elapsed()),
        }),
    };
    match (result, dev) {
        (Ok(note), None) => Outcome::Pass(note),
        (Ok(_), Some(_)) => Outcome::Deviation,
        (Err(mut f), Some(d)) => {
            f.cause = format!("{} [run adjusted for deviation: {:?}]", f.cause, d.adjust);
            Outcome::Fail(f)
        }
        (Err(f), None) => Outcome::Fail(f),
    }
}

#[test]
fn mosquitto_msg_sequence_corpus() {
    let started = Instant::now();
    let mut cases = corpus::load_all(corpus::default_dir());
    let total_loaded = cases.len();
    if let Ok(filter) = std::env::var("CONFORMANCE_FILTER") {
        cases.retain(|c| c.id().contains(&filter));
    }
    let workers: usize = std::env::var("CONFORMANCE_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
        .max(1);
    let cases = Arc::new(cases);
    let next = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<Vec<(usize, Outcome)>>> = Arc::default();
    let pool: Vec<_> = (0..workers)
        .map(|_| {
            let (cases, next, results) = (cases.clone(), next.clone(), results.clone());
            thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let outcome = run_limited(case.clone());
                results.lock().unwrap().push((i, outcome));
            })
        })
        .collect();
    for w in pool {
        w.join().expect("worker thread");
    }
    let mut results = std::mem::take(&mut *results.lock().unwrap());
    results.sort_by_key(|(i, _)| *i);

    let (mut passed, mut deviations) = (0, 0);
    let mut deviation_counts = vec![0usize; DEVIATIONS.len()];
    let mut notes: BTreeMap<String, usize> = BTreeMap::new();
    // cause -> case ids with details
    let mut groups: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (i, outcome) in &results {
        let case = &cases[*i];
        match outcome {
            Outcome::Pass(note) => {
                passed += 1;
                if let Some(n) = note {
                    *notes
                        .entry(format!("{} v{}: {n}", case.file, case.ver))
                        .or_default() += 1;
                }
            }
            Outcome::Deviation => {
                deviations += 1;
                let d = DEVIATIONS
                    .iter()
                    .position(|d| (d.applies)(case))
                    .expect("deviation");
                deviation_counts[d] += 1;
            }
            Outcome::Fail(f) => {
                let file = case.file.trim_end_matches(".json");
                let v = match case.ver {
                    3 => "v3.1",
                    4 => "v3.1.1",
                    _ => "v5",
                };
                groups
                    .entry(format!("{file} {v}: {}", f.cause))
                    .or_default()
                    .push((case.id(), f.detail.clone()));
            }
        }
    }
    let failed: usize = groups.values().map(Vec::len).sum();
    let verbose = std::env::var_os("CONFORMANCE_VERBOSE").is_some();

    println!("\n== deviations from libmosquitto (counted apart from passes) ==");
    for (d, n) in DEVIATIONS.iter().zip(&deviation_counts) {
        println!(
            "- {n} case(s): {}\n  adjusted run: {:?}\n  reason: {}\n  spec: {}",
            d.scope, d.adjust, d.reason, d.clause
        );
    }
    println!(
        "\n== passes with a note (allowed: MQTT 5.0 4.13.1 lets the client send DISCONNECT \
         with a reason code before it closes; mosquitto's own check accepts it too) =="
    );
    for (n, count) in &notes {
        println!("- {count:>4} x {n}");
    }
    let mut report = String::new();
    if failed > 0 {
        report.push_str(&format!(
            "\n== {failed} failing case(s) in {} group(s) ==\n",
            groups.len()
        ));
        for (cause, list) in &groups {
            report.push_str(&format!("\n[{} case(s)] {cause}\n", list.len()));
            let shown = if verbose { list.len() } else { 2 };
            for (id, detail) in list.iter().take(shown) {
                report.push_str(&format!(
                    "    e.g. {id}: {}\n",
                    detail.replace('\n', "\n      ")
                ));
            }
        }
    }
    println!("{report}");
    println!(
        "conformance: {passed} passed, {deviations} deviations, {failed} failed \
         ({} of {total_loaded} cases run, {workers} workers, {:.1?})",
        cases.len(),
        started.elapsed()
    );
    if std::env::var_os("CONFORMANCE_REPORT_ONLY").is_none() {
        assert!(
            failed == 0,
            "{failed} conformance case(s) failed (set CONFORMANCE_REPORT_ONLY=1 to only \
             report):{report}"
        );
    }
}
