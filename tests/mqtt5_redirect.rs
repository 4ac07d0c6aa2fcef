//! MQTT 5 server redirect: CONNACK or DISCONNECT with Use Another Server (0x9C) or Server
//! Moved (0x9D) and a Server Reference. The reference reaches the callbacks; with
//! `follow_redirects_set(true)` the next attempt goes there — here, from a scripted broker
//! to a real mosquitto.

#[macro_use]
mod support;

use support::scripted_client::*;
use support::Mosquitto;

const SERVER_REFERENCE: u8 = 0x1C;

fn redirected_client(id: &str, follow: bool) -> (Client, Events<Ev>) {
    let c = v5(id);
    fast_reconnect(&c);
    c.follow_redirects_set(follow).unwrap();
    let ev = hook(&c);
    (c, ev)
}

/// A refused CONNACK 0x9C with a Server Reference: the next attempt connects to mosquitto.
#[test]
fn connack_use_another_server_is_followed() {
    let target = Mosquitto::start();
    let broker = ScriptedBroker::bind();
    let (c, ev) = redirected_client("redir-connack", true);
    c.connect_async(HOST, broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    let mut conn = broker.accept(T);
    let _connect = conn.read_packet(T);
    let reference = format!("127.0.0.1:{}", target.port());
    conn.send(&s::connack_v5(
        false,
        0x9C,
        &p_str(SERVER_REFERENCE, &reference),
    ));
    assert_eq!(
        wait_connect(&ev),
        Ev::Connect {
            rc: 0x9C,
            session_present: false
        }
    );
    assert_eq!(
        wait_connect(&ev),
        Ev::Connect {
            rc: 0,
            session_present: false
        }
    );
    assert_eq!(c.port(), target.port());
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
}

/// DISCONNECT 0x9D (Server Moved) on a live connection: on_disconnect gets the reference,
/// and the reconnect goes to mosquitto.
#[test]
fn disconnect_server_moved_is_followed() {
    let target = Mosquitto::start();
    let broker = ScriptedBroker::bind();
    let (c, ev) = redirected_client("redir-disc", true);
    let mut conn = start(&broker, &c, &ev, 60);
    let reference = format!("127.0.0.1:{}", target.port());
    conn.send(&s::disconnect_v5(
        0x9D,
        &p_str(SERVER_REFERENCE, &reference),
    ));
    let e = ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    match e {
        Ev::Disconnect {
            rc,
            from_server,
            props,
        } => {
            assert_eq!(rc, 0x9D);
            assert!(from_server);
            assert_eq!(props.server_reference.as_deref(), Some(reference.as_str()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        wait_connect(&ev),
        Ev::Connect {
            rc: 0,
            session_present: false
        }
    );
    assert_eq!(c.port(), target.port());
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
}

/// Not followed by default: the client comes back to the same broker.
#[test]
fn redirects_are_not_followed_by_default() {
    let broker = ScriptedBroker::bind();
    let (c, ev) = redirected_client("redir-off", false);
    let mut conn = start(&broker, &c, &ev, 60);
    conn.send(&s::disconnect_v5(
        0x9D,
        &p_str(SERVER_REFERENCE, "127.0.0.1:1"),
    ));
    ev.wait_for(T, |e| matches!(e, Ev::Disconnect { .. }));
    let mut again = broker.accept(T);
    let connect = again.read_packet(T);
    assert_eq!(connect[0], 0x10);
    assert_eq!(c.port(), broker.port());
    c.loop_stop().unwrap();
}
