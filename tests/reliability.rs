#[macro_use]
mod support;

// Regression tests for the defects of the "Reliability I" review: each one failed before its
// fix. Named after the behaviour they guarantee.

use mqtt_sync::{Protocol, QoS};
use support::broker_client::{client, finish, sub, tag, Probe};
use support::{Mosquitto, T};

/// Connect, disconnect, loop_stop, reinitialise, connect again: messages of the new connection
/// reach on_message and are acknowledged (the marker that drops the messages of a connection
/// the user disconnected must not match the new connection).
fn reinitialise_then_reconnect_delivers(proto: Protocol) {
    let broker = Mosquitto::start();
    let t = tag(proto);
    let id = format!("reinit-{t}");
    let c = client(proto, &id);
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    c.disconnect().unwrap();
    p.disc.wait(T);
    c.loop_stop().unwrap();

    c.reinitialise(id.as_str(), true).unwrap();
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    let topic = format!("reinit/{t}");
    sub(&c, &p, &topic, QoS::AtLeastOnce);
    for i in 0..3 {
        c.publish(&topic, format!("m{i}"), QoS::AtLeastOnce, false)
            .unwrap();
    }
    for i in 0..3 {
        let m = p.msg();
        assert_eq!(m.payload(), format!("m{i}").as_bytes());
    }
    finish(&c);
}
per_protocol!(reinitialise_then_reconnect_delivers);
