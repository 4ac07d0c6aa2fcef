//! The `mqtt_proxy` / `no_proxy` environment variables (as Paho) end to end through the
//! public `Client` API. Environment variables are process-wide and tests of one binary run
//! in parallel, so this file holds exactly one test, which restores the variables it
//! changes. Needs no feature: runs with `--no-default-features` too.

mod support;

use mqtt_sync::{Error, ProxyOptions, ProxyType, QoS, ReasonCode, Transport};
use support::proxies::Proxy;
use support::{Mosquitto, T};

use support::transport_probe::{Conn, TransportProbe};

// ---------------------------------------------------------------------------------------

const VARS: [&str; 4] = ["mqtt_proxy", "MQTT_PROXY", "no_proxy", "NO_PROXY"];

/// Restores the proxy variables as they were, also when the test panics.
struct RestoreEnv(Vec<(&'static str, Option<std::ffi::OsString>)>);

impl RestoreEnv {
    fn save() -> RestoreEnv {
        let saved = VARS.iter().map(|v| (*v, std::env::var_os(v))).collect();
        for v in VARS {
            std::env::remove_var(v);
        }
        RestoreEnv(saved)
    }
}

impl Drop for RestoreEnv {
    fn drop(&mut self) {
        for (k, v) in &self.0 {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
    }
}

/// Runs one connection with the current environment: Ok after a full QoS 0/1/2 echo, or the
/// error of `connect()`.
fn attempt(id: &str, broker: &Mosquitto, proxy: Option<ProxyOptions>) -> Result<(), Error> {
    let p = TransportProbe::tcp(id);
    if let Some(px) = proxy {
        p.client.proxy_set(px).unwrap();
    }
    p.client.connect("localhost", broker.port(), 60)?;
    p.client.loop_start().unwrap();
    match p.conn.recv_timeout(T) {
        Some(Conn::Up(rc)) if rc == ReasonCode::SUCCESS => {}
        other => panic!("{id}: expected a successful CONNACK, got {other:?}"),
    }
    p.echo(&format!("env/{id}"), id.as_bytes());
    p.close();
    Ok(())
}

#[test]
fn mqtt_proxy_environment_variable() {
    let _restore = RestoreEnv::save();
    let broker = Mosquitto::start();
    // Both proxies require credentials, so a wrong password in the variable proves that the
    // connection went through the proxy it names.
    let socks = Proxy::microsocks(Some(("alice", "s3cret")));
    let http = Proxy::tinyproxy(Some(("bob", "pa55")));

    // socks5h:// with credentials: through microsocks.
    std::env::set_var(
        "mqtt_proxy",
        format!("socks5h://alice:s3cret@127.0.0.1:{}", socks.port()),
    );
    attempt("env-socks", &broker, None).expect("through the SOCKS5 proxy of mqtt_proxy");
    std::env::set_var(
        "mqtt_proxy",
        format!("socks5h://alice:wrong@127.0.0.1:{}", socks.port()),
    );
    let e = attempt("env-socks-wrong", &broker, None).unwrap_err();
    assert!(matches!(e, Error::Proxy(_)), "{e:?}");

    // no_proxy lists the broker: connect directly, the (wrong) proxy is not asked.
    std::env::set_var("no_proxy", "example.com, localhost");
    attempt("env-no-proxy", &broker, None).expect("no_proxy bypasses mqtt_proxy");
    std::env::remove_var("no_proxy");

    // An explicit proxy_set wins over the variable.
    attempt(
        "env-explicit",
        &broker,
        Some(ProxyOptions {
            proxy_type: ProxyType::Socks5,
            addr: "127.0.0.1".into(),
            port: socks.port(),
            username: Some("alice".into()),
            password: Some("s3cret".into()),
            rdns: true,
        }),
    )
    .expect("proxy_set wins over mqtt_proxy");

    // http:// with basic authentication: through tinyproxy (percent-encoded user info).
    std::env::set_var(
        "mqtt_proxy",
        format!("http://b%6Fb:pa55@127.0.0.1:{}", http.port()),
    );
    attempt("env-http", &broker, None).expect("through the HTTP proxy of mqtt_proxy");
    std::env::set_var(
        "mqtt_proxy",
        format!("http://bob:nope@127.0.0.1:{}", http.port()),
    );
    let e = attempt("env-http-wrong", &broker, None).unwrap_err();
    assert!(matches!(e, Error::Proxy(_)), "{e:?}");

    // The upper-case spelling is honoured too.
    std::env::remove_var("mqtt_proxy");
    std::env::set_var(
        "MQTT_PROXY",
        format!("socks://alice:wrong@127.0.0.1:{}", socks.port()),
    );
    let e = attempt("env-upper", &broker, None).unwrap_err();
    assert!(matches!(e, Error::Proxy(_)), "{e:?}");
    std::env::remove_var("MQTT_PROXY");

    // A Unix socket never goes through a proxy.
    let unix_broker = Mosquitto::builder().unix_listener().start();
    std::env::set_var(
        "mqtt_proxy",
        format!("socks5h://alice:wrong@127.0.0.1:{}", socks.port()),
    );
    let p = TransportProbe::with("env-unix", Transport::Unix);
    p.connect_ok(unix_broker.unix_path().to_str().unwrap(), 0);
    p.echo_with("env/unix", b"direct", &[QoS::AtLeastOnce], T);
    p.close();

    // Unset: direct again.
    std::env::remove_var("mqtt_proxy");
    attempt("env-unset", &broker, None).expect("direct without mqtt_proxy");
}
