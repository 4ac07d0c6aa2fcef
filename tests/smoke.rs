mod support;
use mqtt_sync::{Client, QoS};
use support::{Events, Mosquitto, T};

#[test]
fn smoke_pub_sub_loop_start() {
    let broker = Mosquitto::start();
    let c = Client::new("smoke");
    let ev: Events<String> = Events::new();
    let tx = ev.sender();
    c.on_message(move |_c, m| {
        let _ = tx.send(format!(
            "{}={}",
            m.topic(),
            String::from_utf8_lossy(m.payload())
        ));
    });
    let conn: Events<bool> = Events::new();
    let ctx = conn.sender();
    c.on_connect(move |c, _f, rc, _p| {
        c.subscribe("t/#", QoS::AtLeastOnce).unwrap();
        let _ = ctx.send(!rc.is_failure());
    });
    let sub: Events<u16> = Events::new();
    let stx = sub.sender();
    c.on_subscribe(move |_c, mid, _rcs, _p| {
        let _ = stx.send(mid);
    });
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.loop_start().unwrap();
    assert!(conn.wait(T));
    sub.wait(T);
    for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let info = c.publish("t/a", format!("q{}", q as u8), q, false).unwrap();
        info.wait_for_publish(Some(T)).unwrap();
        assert_eq!(ev.wait(T), format!("t/a=q{}", q as u8));
    }
    c.disconnect().unwrap();
    c.loop_stop().unwrap();
}
