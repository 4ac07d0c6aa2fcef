//! MQTT over a Unix socket end to end through the public `Client` API
//! (`Transport::Unix`, host = socket path): pub/sub at QoS 0, 1 and 2 against a mosquitto
//! unix listener. Needs no feature: runs with `--no-default-features` too.
//!
//! Ported from the stream-level scratch harness (net-harness `tests/transports.rs`).

mod support;

use mqtt_sync::{Error, QoS, Transport};
use support::{Mosquitto, T};

use support::transport_probe::TransportProbe;

// ---------------------------------------------------------------------------------------

#[test]
fn unix_socket_pub_sub_qos_0_1_2() {
    let broker = Mosquitto::builder().unix_listener().start();
    let path = broker.unix_path().to_str().unwrap().to_string();
    let p = TransportProbe::with("unix-pubsub", Transport::Unix);
    // The port is ignored with Transport::Unix.
    p.connect_ok(&path, 0);
    assert_eq!(p.client.transport(), Transport::Unix);
    p.echo("unix/echo", b"over a unix socket");
    // A second client on the same socket receives what the first publishes.
    let other = TransportProbe::with("unix-other", Transport::Unix);
    other.connect_ok(&path, 1883);
    other.echo_with("unix/other", b"", &[QoS::AtLeastOnce], T);
    other.close();
    p.close();
}

#[test]
fn unix_socket_missing_path_is_an_io_error() {
    let p = TransportProbe::with("unix-missing", Transport::Unix);
    let e = p
        .client
        .connect("/nonexistent/mqtt.sock", 0, 60)
        .expect_err("no such socket");
    assert!(matches!(e, Error::Io(_)), "{e:?}");
    assert_eq!(e.code(), mqtt_sync::MQTT_ERR_ERRNO);
    assert!(!p.client.is_connected());
}

#[test]
fn unix_socket_ignores_mqtt_proxy_settings() {
    // An explicit proxy does not apply to a Unix socket (there is nothing to tunnel).
    let broker = Mosquitto::builder().unix_listener().start();
    let path = broker.unix_path().to_str().unwrap().to_string();
    let p = TransportProbe::with("unix-proxy", Transport::Unix);
    p.client
        .proxy_set(mqtt_sync::ProxyOptions {
            proxy_type: mqtt_sync::ProxyType::Socks5,
            addr: "127.0.0.1".into(),
            port: 9, // discard: nothing listens
            ..Default::default()
        })
        .unwrap();
    p.connect_ok(&path, 0);
    p.echo_with("unix/proxy", b"direct", &[QoS::ExactlyOnce], T);
    p.close();
}
