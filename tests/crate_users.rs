//! What a newcomer meets first: Paho's getters, and errors that say what to do.

use std::error::Error as _;
use std::time::Duration;

use mqtt_sync::{Client, Error, QoS};

/// Paho's readable properties have getters that reflect their setters.
#[test]
fn paho_getters_reflect_their_setters() {
    let c = Client::new("getters");
    assert_eq!(c.connect_timeout(), Duration::from_secs(5));
    assert_eq!(c.max_inflight_messages(), 20);
    assert_eq!(c.max_queued_messages(), 0);
    assert_eq!(c.will_topic(), None);
    assert_eq!(c.will_payload(), None);
    c.connect_timeout_set(Duration::from_millis(1500)).unwrap();
    c.max_inflight_messages_set(7).unwrap();
    c.max_queued_messages_set(100).unwrap();
    c.will_set("last/will", "gone", QoS::AtLeastOnce, true)
        .unwrap();
    assert_eq!(c.connect_timeout(), Duration::from_millis(1500));
    assert_eq!(c.max_inflight_messages(), 7);
    assert_eq!(c.max_queued_messages(), 100);
    assert_eq!(c.will_topic().as_deref(), Some("last/will"));
    assert_eq!(c.will_payload().as_deref(), Some(&b"gone"[..]));
    c.will_clear().unwrap();
    assert_eq!(c.will_topic(), None);
}

/// A refused TCP connect names the address and the likely cause; the OS error stays in the
/// chain and in the `io::Error`'s kind.
#[test]
fn a_refused_connect_names_the_address_and_the_cause() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = Client::new("refused");
    let e = c.connect("127.0.0.1", port, 10).unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("no broker is listening there"), "{text}");
    match &e {
        Error::Io(io) => assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("{other:?}"),
    }
    // Error -> io::Error -> the OS error.
    let mut depth = 0;
    let mut cur: Option<&dyn std::error::Error> = e.source();
    while let Some(s) = cur {
        depth += 1;
        cur = s.source();
    }
    assert!(depth >= 1, "the cause is kept as a source");
}

/// Arguments are checked before the connection state: a wildcard topic is reported as such
/// while offline, not as "not connected".
#[test]
fn a_wildcard_topic_is_an_argument_error_also_offline() {
    let c = Client::new("offline-args");
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let e = c.publish("a/#", "x", qos, false).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        assert!(e.to_string().contains("wildcard"), "{e}");
    }
    let e = c.subscribe("a/#/b", QoS::AtMostOnce).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}

/// Timeout, Protocol, Tls and Dns messages say what to do next.
#[test]
fn error_messages_say_what_to_do_next() {
    let t = Error::Timeout.to_string();
    assert!(t.contains("connect_timeout_set"), "{t}");
    let p = Error::Protocol("x".into()).to_string();
    assert!(
        p.starts_with("protocol error: x") && p.contains("check"),
        "{p}"
    );
    let tls = Error::Tls("x".into()).to_string();
    assert!(
        tls.starts_with("TLS error: x") && tls.contains("CA file"),
        "{tls}"
    );
    let d = Error::Dns("x".into()).to_string();
    assert!(
        d.starts_with("DNS lookup failed: x") && d.contains("host name"),
        "{d}"
    );
}

/// Errors keep their cause as `source()` (for `anyhow` / `eyre` chains), while the message
/// still says it all: a CA file that cannot be read is a `Tls` error whose source is the
/// `io::Error`.
#[cfg(feature = "tls")]
#[test]
fn errors_keep_their_cause_as_source() {
    let c = Client::new("chain");
    let missing = std::path::Path::new("/nonexistent/mqtt-sync/ca.pem");
    let e = c
        .tls_set(Some(missing), None, None)
        .expect_err("a missing CA file is refused");
    assert!(matches!(e, Error::Tls(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("TLS error: cannot read") && msg.contains("ca.pem"),
        "{msg}"
    );
    let io = e
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .unwrap_or_else(|| panic!("no io::Error source in {e:?}"));
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    // A CA file that is not PEM: the TLS library's error is the source.
    let bad = std::env::temp_dir().join(format!("mqtt-sync-bad-ca-{}.pem", std::process::id()));
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = c
        .tls_set(Some(&bad), None, None)
        .expect_err("garbage CA refused");
    let _ = std::fs::remove_file(&bad);
    assert!(matches!(e, Error::Tls(_)), "{e:?}");
    let src = e.source().unwrap_or_else(|| panic!("no source in {e:?}"));
    assert!(
        e.to_string().contains(&src.to_string()),
        "the message includes its cause: {e} / {src}"
    );
    // An error without a cause has none.
    assert!(Error::Tls("x".into()).source().is_none());
    assert!(Error::Timeout.source().is_none());
}
