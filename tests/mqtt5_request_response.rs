//! MQTT 5 request/response (`Client::request` / `Client::respond`) against mosquitto: many
//! threads request at once through one client and each gets its own answer.

mod support;

use std::time::Duration;

use mqtt_sync::{Error, Protocol, QoS};
use support::broker_client::{finish, started, sub};
use support::{Mosquitto, T};

#[test]
fn concurrent_requests_each_get_their_own_response() {
    let b = Mosquitto::start();
    let (server, sp) = started(&b, Protocol::V5, "rr-server");
    server.on_message(|c, m| {
        let text = m.payload_str().unwrap_or("");
        let sum: i64 = text.split('+').filter_map(|x| x.parse::<i64>().ok()).sum();
        c.respond(m, sum.to_string(), QoS::AtLeastOnce).unwrap();
    });
    sub(&server, &sp, "rr/add", QoS::AtLeastOnce);
    let (requester, _rp) = started(&b, Protocol::V5, "rr-client");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let c = requester.clone();
            std::thread::spawn(move || {
                for i in 0..25i64 {
                    let q = format!("{t}+{i}+1000");
                    let r = c
                        .request("rr/add", &q, QoS::AtLeastOnce, T)
                        .unwrap_or_else(|e| panic!("request {q}: {e}"));
                    assert_eq!(r.payload_str().unwrap(), (t + i + 1000).to_string(), "{q}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    finish(&requester);
    finish(&server);
}

#[test]
fn request_errors_are_clear() {
    let b = Mosquitto::start();
    // No responder: a timeout.
    let (c, _p) = started(&b, Protocol::V5, "rr-timeout");
    let e = c
        .request(
            "rr/nobody",
            "x",
            QoS::AtMostOnce,
            Duration::from_millis(200),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e:?}");
    // From inside a callback: refused at once.
    let (tx, rx) = std::sync::mpsc::channel();
    c.on_message(move |c, _m| {
        let _ = tx.send(c.request("rr/x", "y", QoS::AtMostOnce, T));
    });
    c.subscribe("rr/cb", QoS::AtMostOnce).unwrap();
    let (c2, _p2) = started(&b, Protocol::V5, "rr-cb-pub");
    support::wait_until(T, || {
        c2.publish("rr/cb", "go", QoS::AtMostOnce, false).unwrap();
        rx.recv_timeout(Duration::from_millis(100)).is_ok_and(|r| {
            assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
            true
        })
    });
    finish(&c2);
    finish(&c);
    // MQTT 3.1.1: not supported.
    let (v3, _p) = started(&b, Protocol::V311, "rr-v3");
    let e = v3.request("rr/x", "y", QoS::AtMostOnce, T).unwrap_err();
    assert!(matches!(e, Error::NotSupported(_)), "{e:?}");
    finish(&v3);
}
