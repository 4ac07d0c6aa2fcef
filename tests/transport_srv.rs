#![cfg(feature = "srv")]
//! `connect_srv` end to end through the public `Client` API against dnsmasq (a real DNS
//! server on 127.0.0.1, `srv_nameserver_set`) and real mosquittos: priority order, fallback
//! when a target is down, weight distribution, `_secure-mqtt` with TLS checked against the
//! SRV target name, and `Error::Dns` when there is no record.
//!
//! Which broker got a connection is observed on the brokers' side (their logs), not only
//! through `Client::port()`.
//!
//! Ported from the stream-level scratch harness (net-harness `tests/transports.rs`).

mod support;

use std::net::TcpListener;

use mqtt_sync::{Client, Error, Protocol, QoS, ReasonCode, Transport};
use support::broker_client::{client, finish, sub, trace_if_asked, Probe};
use support::dns::{Dnsmasq, Srv};
use support::{Mosquitto, T};

use support::transport_probe::{Conn, TransportProbe};

// ---------------------------------------------------------------------------------------

/// A port on which nothing listens.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How many connections from `id` the broker accepted (its log line
/// `New client connected from ... as <id> (...)`).
fn accepted(broker: &Mosquitto, id: &str) -> usize {
    broker
        .log()
        .lines()
        .filter(|l| l.contains("New client connected") && l.contains(&format!(" as {id} (")))
        .count()
}

/// `connect_srv`, `loop_start()`, then a successful CONNACK.
#[track_caller]
fn connect_srv_ok(p: &TransportProbe, domain: &str) {
    if let Err(e) = p.client.connect_srv(domain, 60) {
        panic!("connect_srv({domain}) failed: {e:?} / {e}");
    }
    p.client.loop_start().unwrap();
    match p.conn.recv_timeout(T) {
        Some(Conn::Up(rc)) if rc == ReasonCode::SUCCESS => {}
        other => panic!("expected a successful CONNACK after connect_srv({domain}), got {other:?}"),
    }
}

#[test]
fn srv_connects_to_the_highest_priority_target() {
    let first = Mosquitto::start();
    let second = Mosquitto::start();
    let dns = Dnsmasq::start(
        &[
            // Lower value = higher priority. The higher-priority record is listed second.
            Srv::new("_mqtt._tcp.prio.test", "localhost", second.port(), 20, 100),
            Srv::new("_mqtt._tcp.prio.test", "localhost", first.port(), 10, 1),
        ],
        &["prio.test"],
    );
    for i in 0..5 {
        let id = format!("srv-prio-{i}");
        let p = TransportProbe::tcp(&id);
        p.client.srv_nameserver_set(Some(dns.addr())).unwrap();
        connect_srv_ok(&p, "prio.test");
        assert_eq!(p.client.port(), first.port(), "{}", dns.log());
        assert_eq!(p.client.host(), "localhost");
        if i == 0 {
            p.echo("srv/prio", b"found by SRV");
        }
        p.close();
        assert_eq!(accepted(&first, &id), 1, "{}", first.log());
        assert_eq!(accepted(&second, &id), 0, "{}", second.log());
    }
}

/// After `connect_srv`, reconnects look the SRV records up again: dnsmasq is restarted on
/// the same address with a record naming another broker, the first broker stops, and the
/// client (loop_start, reconnect on) reconnects by itself to the new target, not to the
/// first answer.
#[test]
fn srv_reconnect_follows_a_changed_answer() {
    let mut first = Mosquitto::start();
    let second = Mosquitto::start();
    let domains = ["moved.test"];
    let record = |port| [Srv::new("_mqtt._tcp.moved.test", "localhost", port, 10, 0)];
    let mut dns = Dnsmasq::start(&record(first.port()), &domains);
    let id = "srv-moved";
    let c = client(Protocol::V311, id); // reconnects, 50..500 ms backoff
    let p = Probe::attach(&c);
    trace_if_asked(&c, id);
    c.srv_nameserver_set(Some(dns.addr())).unwrap();
    c.connect_srv("moved.test", 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    assert_eq!(c.port(), first.port());

    let nameserver = dns.addr();
    dns.restart_with(&record(second.port()), &domains);
    assert_eq!(dns.addr(), nameserver, "same address, new answer");
    first.stop();
    let (_, rc) = p.disc.wait(T);
    assert!(rc.is_failure());
    let (_, rc, _) = p.conn.wait(T);
    assert_eq!(
        rc,
        ReasonCode::SUCCESS,
        "reconnected\n--- dnsmasq ---\n{}",
        dns.log()
    );
    assert_eq!(c.port(), second.port(), "host()/port() name the new target");
    assert_eq!(c.host(), "localhost");
    assert_eq!(accepted(&second, id), 1, "{}", second.log());
    assert!(
        dns.log().contains("_mqtt._tcp.moved.test"),
        "the reconnect asked the new dnsmasq:\n{}",
        dns.log()
    );
    sub(&c, &p, "srv/moved", QoS::AtLeastOnce);
    c.publish("srv/moved", "after the move", QoS::AtLeastOnce, false)
        .unwrap();
    assert_eq!(p.msg().payload(), b"after the move");
    finish(&c);
}

/// A reconnect whose SRV look-up fails (the DNS server is gone) tries the last target.
#[test]
fn srv_reconnect_without_dns_uses_the_last_target() {
    let mut broker = Mosquitto::start();
    let dns = Dnsmasq::start(
        &[Srv::new(
            "_mqtt._tcp.nodns.test",
            "localhost",
            broker.port(),
            10,
            0,
        )],
        &["nodns.test"],
    );
    let id = "srv-nodns";
    let c = client(Protocol::V311, id);
    let p = Probe::attach(&c);
    trace_if_asked(&c, id);
    c.srv_nameserver_set(Some(dns.addr())).unwrap();
    c.connect_srv("nodns.test", 60).unwrap();
    c.loop_start().unwrap();
    p.connected();
    drop(dns);
    broker.restart();
    let (_, rc) = p.disc.wait(T);
    assert!(rc.is_failure());
    let (_, rc, _) = p.conn.wait(T);
    assert_eq!(rc, ReasonCode::SUCCESS, "reconnected to the last target");
    assert_eq!(c.port(), broker.port());
    assert_eq!(accepted(&broker, id), 2, "{}", broker.log());
    finish(&c);
}

#[test]
fn srv_falls_back_when_the_first_target_is_down() {
    let broker = Mosquitto::start();
    let dns = Dnsmasq::start(
        &[
            Srv::new(
                "_mqtt._tcp.fallback.test",
                "localhost",
                closed_port(),
                10,
                5,
            ),
            Srv::new(
                "_mqtt._tcp.fallback.test",
                "localhost.",
                broker.port(),
                20,
                5,
            ),
            Srv::new(
                "_mqtt._tcp.fallback.test",
                "localhost",
                closed_port(),
                30,
                0,
            ),
        ],
        &["fallback.test"],
    );
    let p = TransportProbe::tcp("srv-fallback");
    p.client.srv_nameserver_set(Some(dns.addr())).unwrap();
    // Trailing dot on the domain: a fully qualified name works the same.
    connect_srv_ok(&p, "fallback.test.");
    assert_eq!(p.client.port(), broker.port());
    assert_eq!(accepted(&broker, "srv-fallback"), 1, "{}", broker.log());
    p.echo("srv/fallback", b"second target");
    p.close();

    // Every target down: the last connection error (not a DNS error).
    let dns = Dnsmasq::start(
        &[
            Srv::new("_mqtt._tcp.down.test", "localhost", closed_port(), 10, 5),
            Srv::new("_mqtt._tcp.down.test", "localhost", closed_port(), 20, 5),
        ],
        &["down.test"],
    );
    let c = Client::new("srv-all-down");
    c.srv_nameserver_set(Some(dns.addr())).unwrap();
    let e = c.connect_srv("down.test", 60).unwrap_err();
    assert!(matches!(e, Error::Io(_)), "{e:?}");
}

#[test]
fn srv_weights_spread_the_connections() {
    let heavy = Mosquitto::start();
    let light = Mosquitto::start();
    let dns = Dnsmasq::start(
        &[
            Srv::new("_mqtt._tcp.weights.test", "localhost", heavy.port(), 1, 90),
            Srv::new("_mqtt._tcp.weights.test", "localhost", light.port(), 1, 10),
        ],
        &["weights.test"],
    );
    let p = TransportProbe::tcp("srv-weights");
    p.client.srv_nameserver_set(Some(dns.addr())).unwrap();
    p.client.loop_start().unwrap();
    let n = 100;
    let mut to_heavy = 0;
    for _ in 0..n {
        p.client.connect_srv("weights.test", 60).unwrap();
        match p.conn.recv_timeout(T) {
            Some(Conn::Up(rc)) if rc == ReasonCode::SUCCESS => {}
            other => panic!("expected a successful CONNACK, got {other:?}"),
        }
        let port = p.client.port();
        assert!(port == heavy.port() || port == light.port());
        if port == heavy.port() {
            to_heavy += 1;
        }
        p.client.disconnect().unwrap();
        match p.conn.recv_timeout(T) {
            Some(Conn::Down(rc)) => assert_eq!(rc, ReasonCode::SUCCESS),
            other => panic!("expected on_disconnect, got {other:?}"),
        }
    }
    p.client.loop_stop().unwrap();
    // The brokers saw the same split.
    assert_eq!(accepted(&heavy, "srv-weights"), to_heavy);
    assert_eq!(accepted(&light, "srv-weights"), n - to_heavy);
    // Expected ~90 of 100 (sd ~3): a wide band keeps this deterministic in practice (the
    // chance to fall outside is below 1e-4), while still failing for "always the first
    // record" or "uniform".
    assert!(
        (75..n).contains(&to_heavy),
        "heavy target chosen {to_heavy} times of {n}"
    );
}

/// With `TlsBackend::Auto` (native-tls when built, else rustls).
#[cfg(any(feature = "tls", feature = "rustls"))]
#[test]
fn srv_secure_mqtt_checks_the_certificate_against_the_target() {
    use support::certs::Certs;
    let c = Certs::shared();
    let good = Mosquitto::builder().tls_listener("tls", c, false).start();
    let wrong_tls = c.mosquitto_tls_with(&c.wrong_host_cert, &c.wrong_host_key, false);
    let wrong_lines: Vec<&str> = wrong_tls.lines().collect();
    let wrong = Mosquitto::builder().listener("tls", &wrong_lines).start();
    let dns = Dnsmasq::start(
        &[
            // The plain record is not used once TLS is configured.
            Srv::new("_mqtt._tcp.secure.test", "localhost", good.port(), 1, 1),
            Srv::new(
                "_secure-mqtt._tcp.secure.test",
                "localhost",
                good.port_of("tls"),
                1,
                1,
            ),
            Srv::new(
                "_secure-mqtt._tcp.wrong.test",
                "localhost",
                wrong.port_of("tls"),
                1,
                1,
            ),
            Srv::new("_mqtt._tcp.plain.test", "localhost", good.port(), 1, 1),
        ],
        &["secure.test", "wrong.test", "plain.test"],
    );

    // The certificate is for localhost (the SRV target), not for secure.test (the domain).
    let p = TransportProbe::tcp("srv-secure");
    p.client.tls_set(Some(&c.ca), None, None).unwrap();
    p.client.srv_nameserver_set(Some(dns.addr())).unwrap();
    connect_srv_ok(&p, "secure.test");
    assert_eq!(p.client.port(), good.port_of("tls"));
    p.echo("srv/secure", b"over tls, found by SRV");
    p.close();

    // A target whose certificate names another host is refused.
    let client = Client::new("srv-secure-wrong");
    client.tls_set(Some(&c.ca), None, None).unwrap();
    client.srv_nameserver_set(Some(dns.addr())).unwrap();
    let e = client.connect_srv("wrong.test", 60).unwrap_err();
    assert!(matches!(e, Error::Tls(_)), "{e:?}");

    // With TLS only _secure-mqtt is asked.
    let e = client.connect_srv("plain.test", 60).unwrap_err();
    assert!(
        matches!(&e, Error::Dns(m) if m.contains("_secure-mqtt._tcp.plain.test")),
        "{e:?}"
    );
}

#[test]
fn srv_no_record_is_a_dns_error() {
    let dns = Dnsmasq::start(
        &[Srv::new("_mqtt._tcp.other.test", "localhost", 1, 1, 1)],
        &["other.test", "nothing.test"],
    );
    let c = Client::new("srv-none");
    c.srv_nameserver_set(Some(dns.addr())).unwrap();
    // NXDOMAIN.
    let e = c.connect_srv("nothing.test", 60).unwrap_err();
    assert!(
        matches!(&e, Error::Dns(m) if m == "no SRV record for _mqtt._tcp.nothing.test"),
        "{e:?}"
    );
    assert_eq!(e.code(), mqtt_sync::MQTT_ERR_ERRNO);
    assert!(
        e.to_string()
            .contains("no SRV record for _mqtt._tcp.nothing.test"),
        "{e}"
    );
    // A name that exists without SRV records of that service (NOERROR, no answer).
    let e = c.connect_srv("sub.other.test", 60).unwrap_err();
    assert!(matches!(&e, Error::Dns(_)), "{e:?}");
    assert!(!c.is_connected());
    // An empty domain is an argument error.
    assert!(matches!(
        c.connect_srv("", 60),
        Err(Error::InvalidArgument(_))
    ));
}

/// connect_srv uses the client's transport for the chosen target.
#[cfg(feature = "websockets")]
#[test]
fn srv_with_websockets_transport() {
    let broker = Mosquitto::builder()
        .listener("ws", &["protocol websockets"])
        .start();
    let dns = Dnsmasq::start(
        &[Srv::new(
            "_mqtt._tcp.ws.test",
            "localhost",
            broker.port_of("ws"),
            1,
            1,
        )],
        &["ws.test"],
    );
    let p = TransportProbe::with("srv-ws", Transport::WebSockets);
    p.client.srv_nameserver_set(Some(dns.addr())).unwrap();
    connect_srv_ok(&p, "ws.test");
    p.echo("srv/ws", b"ws found by SRV");
    p.close();
}

/// The connect timeout bounds the whole of connect_srv: three targets whose TLS handshakes
/// drip take one timeout together, not one each.
/// With `TlsBackend::Auto` (native-tls when built, else rustls).
#[cfg(any(feature = "tls", feature = "rustls"))]
#[test]
fn srv_targets_share_one_deadline() {
    use support::drip::Drip;
    let drips: Vec<Drip> = (0..3)
        .map(|_| Drip::start(&[0x16, 0x03, 0x03, 0x40, 0x00], 0))
        .collect();
    let records: Vec<Srv> = drips
        .iter()
        .map(|d| Srv::new("_secure-mqtt._tcp.slow.test", "localhost", d.port, 10, 10))
        .collect();
    let dns = Dnsmasq::start(&records, &["slow.test"]);
    let client = Client::new("srv-deadline");
    client.srv_nameserver_set(Some(dns.addr())).unwrap();
    client.tls_set(None, None, None).unwrap();
    client
        .connect_timeout_set(std::time::Duration::from_secs(1))
        .unwrap();
    let start = std::time::Instant::now();
    let r = client.connect_srv("slow.test", 60);
    let took = start.elapsed();
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    assert!(
        took < std::time::Duration::from_millis(2500),
        "connect_srv took {took:?} for a 1 s connect timeout"
    );
}
