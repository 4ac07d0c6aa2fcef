#![cfg(any(feature = "tls", feature = "rustls"))]
//! TLS end to end through the public `Client` API against a real mosquitto on 127.0.0.1:
//! server authentication, client certificates in every key format, refusals (wrong CA, host
//! name mismatch, missing client certificate), `tls_insecure_set`, `tls_set_context`.
//! Each accepted connection subscribes, publishes and receives at QoS 0, 1 and 2 with
//! `loop_start()` and callbacks.
//!
//! Every test taking a `TlsBackend` runs once per backend built (`per_tls_backend!` at the
//! end: `with_native_tls::*`, `with_rustls::*`).
//!
//! Ported from the stream-level scratch harness (net-harness `tests/transports.rs`).

mod support;

use std::io::ErrorKind;
use std::path::Path;

#[cfg(feature = "tls")]
use mqtt_sync::native_tls;
use mqtt_sync::{CertReqs, Client, Error, TlsBackend, TlsOptions, Transport};
use support::certs::{Certs, KEY_PASSWORD};
use support::Mosquitto;

use support::transport_probe::TransportProbe;

// ---------------------------------------------------------------------------------------

fn certs() -> &'static Certs {
    Certs::shared()
}

/// Paho's three-argument `tls_set` with `backend`.
fn tls_set(
    client: &Client,
    backend: TlsBackend,
    ca: Option<&Path>,
    certfile: Option<&Path>,
    keyfile: Option<&Path>,
) -> mqtt_sync::Result<()> {
    client.tls_set_with(TlsOptions {
        ca_certs: ca.map(Path::to_path_buf),
        certfile: certfile.map(Path::to_path_buf),
        keyfile: keyfile.map(Path::to_path_buf),
        backend,
        ..Default::default()
    })
}

/// A client trusting `ca` (verification and the host name check on).
fn tls_probe(id: &str, backend: TlsBackend, ca: &Path) -> TransportProbe {
    let p = TransportProbe::tcp(id);
    tls_set(&p.client, backend, Some(ca), None, None).unwrap();
    p
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn tls_server_auth_only(backend: TlsBackend) {
    let c = certs();
    let broker = Mosquitto::builder().tls_listener("tls", c, false).start();
    let p = tls_probe("tls-server-auth", backend, &c.ca);
    p.connect_ok("localhost", broker.port_of("tls"));
    p.echo("tls/echo", b"over tls");
    p.close();
}

/// 1 MiB each way at QoS 0, 1 and 2: many TLS records, writes that the socket takes only in
/// part (the rest waits inside the TLS stream until the socket is writable) and reads that
/// leave decrypted bytes buffered.
fn tls_large_payload(backend: TlsBackend) {
    let c = certs();
    let broker = Mosquitto::builder().tls_listener("tls", c, false).start();
    let p = tls_probe("tls-large", backend, &c.ca);
    p.connect_ok("localhost", broker.port_of("tls"));
    let payload: Vec<u8> = (0..1usize << 20).map(|i| (i * 31 % 251) as u8).collect();
    p.echo("tls/large", &payload);
    p.close();
}

fn tls_by_ip_address_san(backend: TlsBackend) {
    let c = certs();
    let broker = Mosquitto::builder().tls_listener("tls", c, false).start();
    let p = tls_probe("tls-ip-san", backend, &c.ca);
    p.connect_ok("127.0.0.1", broker.port_of("tls"));
    p.echo("tls/ip", b"by IP SAN");
    p.close();
}

fn tls_client_certificate_required(backend: TlsBackend) {
    let c = certs();
    let broker = Mosquitto::builder().tls_listener("tls", c, true).start();
    let port = broker.port_of("tls");

    let with = TransportProbe::tcp("tls-with-cert");
    tls_set(
        &with.client,
        backend,
        Some(&c.ca),
        Some(&c.client_cert),
        Some(&c.client_key),
    )
    .unwrap();
    with.connect_ok("localhost", port);
    with.echo("tls/cert", b"with a client certificate");
    with.close();

    let without = tls_probe("tls-without-cert", backend, &c.ca);
    match without.connect_refused("localhost", port) {
        // TLS 1.2: the handshake itself fails.
        Err(Error::Tls(m)) => eprintln!("without a client certificate: Tls({m})"),
        // TLS 1.3: the client's handshake completes; the broker then sends its alert and
        // closes, so writing CONNECT inside connect() meets a reset socket.
        Err(Error::Io(e))
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof
            ) =>
        {
            eprintln!("without a client certificate: Io({e})")
        }
        Err(e) => panic!("expected Err(Tls(..)) or a reset connection, got {e:?}"),
        // TLS 1.3: the broker drops the connection after the client's handshake.
        Ok(ev) => eprintln!("without a client certificate: {ev:?}"),
    }
}

fn tls_client_key_formats(backend: TlsBackend) {
    let c = certs();
    let broker = Mosquitto::builder().tls_listener("tls", c, true).start();
    let port = broker.port_of("tls");
    let base = TlsOptions {
        ca_certs: Some(c.ca.clone()),
        backend,
        ..Default::default()
    };
    let mut cases: Vec<(&str, TlsOptions)> = vec![
        (
            "pkcs8",
            TlsOptions {
                certfile: Some(c.client_cert.clone()),
                keyfile: Some(c.client_key.clone()),
                ..base.clone()
            },
        ),
        (
            "pkcs1",
            TlsOptions {
                certfile: Some(c.client_cert.clone()),
                keyfile: Some(c.client_key_pkcs1.clone()),
                ..base.clone()
            },
        ),
        (
            "ec",
            TlsOptions {
                certfile: Some(c.client_ec_cert.clone()),
                keyfile: Some(c.client_ec_key.clone()),
                ..base.clone()
            },
        ),
        (
            "key-inside-certfile",
            TlsOptions {
                certfile: Some(c.client_combined.clone()),
                ..base.clone()
            },
        ),
    ];
    let encrypted = [
        ("encrypted-pkcs8", &c.client_key_encrypted),
        ("legacy-encrypted-pem", &c.client_key_legacy_encrypted),
    ]
    .map(|(name, key)| {
        (
            name,
            TlsOptions {
                certfile: Some(c.client_cert.clone()),
                keyfile: Some(key.clone()),
                keyfile_password: Some(KEY_PASSWORD.into()),
                ..base.clone()
            },
        )
    });
    if backend == TlsBackend::Rustls {
        // rustls cannot decrypt keys: a clear NotSupported naming the file, from tls_set_with.
        for (name, o) in encrypted {
            let file = o.keyfile.clone().unwrap();
            let e = Client::new("tls-key-encrypted")
                .tls_set_with(o)
                .unwrap_err();
            assert!(
                matches!(&e, Error::NotSupported(m)
                    if m.contains("encrypted") && m.contains(&*file.to_string_lossy())),
                "{name}: {e:?}"
            );
            assert_eq!(e.code(), mqtt_sync::MQTT_ERR_NOT_SUPPORTED);
        }
    } else {
        cases.extend(encrypted);
    }
    for (name, o) in cases {
        let p = TransportProbe::tcp(&format!("tls-key-{name}"));
        p.client
            .tls_set_with(o)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        p.connect_ok("localhost", port);
        p.echo(&format!("tls/key/{name}"), name.as_bytes());
        p.close();
    }
    // The key inside certfile also through the three-argument tls_set.
    let p = TransportProbe::tcp("tls-key-combined-tls-set");
    tls_set(
        &p.client,
        backend,
        Some(&c.ca),
        Some(&c.client_combined),
        None,
    )
    .unwrap();
    p.connect_ok("localhost", port);
    p.close();

    // Encrypted key: no or a wrong password is reported by tls_set_with, naming the file
    // (NotSupported with rustls, checked above).
    let client = Client::new("tls-key-errors");
    let passwords = if backend == TlsBackend::Rustls {
        vec![]
    } else {
        vec![None, Some("wrong".to_string())]
    };
    for pw in passwords {
        let e = client
            .tls_set_with(TlsOptions {
                certfile: Some(c.client_cert.clone()),
                keyfile: Some(c.client_key_encrypted.clone()),
                keyfile_password: pw,
                ..base.clone()
            })
            .unwrap_err();
        assert!(
            matches!(&e, Error::Tls(m) if m.contains("client-encrypted.key")),
            "{e:?}"
        );
    }
    // A key that does not belong to the certificate.
    let e = client
        .tls_set_with(TlsOptions {
            certfile: Some(c.client_cert.clone()),
            keyfile: Some(c.client_ec_key.clone()),
            ..base.clone()
        })
        .unwrap_err();
    assert!(
        matches!(&e, Error::Tls(m) if m.contains("does not belong to the certificate")),
        "{e:?}"
    );
}

fn tls_ciphers_not_supported(backend: TlsBackend) {
    let c = certs();
    let client = Client::new("tls-ciphers");
    let e = client
        .tls_set_with(TlsOptions {
            ca_certs: Some(c.ca.clone()),
            ciphers: Some("ECDHE-RSA-AES128-GCM-SHA256".into()),
            backend,
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(e, Error::NotSupported(_)), "{e:?}");
    assert_eq!(e.code(), mqtt_sync::MQTT_ERR_NOT_SUPPORTED);
}

fn tls_wrong_ca_is_refused(backend: TlsBackend) {
    let c = certs();
    let broker = Mosquitto::builder().tls_listener("tls", c, false).start();
    let port = broker.port_of("tls");
    let p = tls_probe("tls-wrong-ca", backend, &c.other_ca);
    let e = p
        .client
        .connect("localhost", port, 60)
        .expect_err("a server certificate from another CA must be refused");
    assert!(
        matches!(&e, Error::Tls(m) if m.contains("certificate verify failed")),
        "{e:?}"
    );
    assert!(!p.client.is_connected());

    // cert_reqs None skips the verification entirely.
    let p = TransportProbe::tcp("tls-cert-reqs-none");
    p.client
        .tls_set_with(TlsOptions {
            ca_certs: Some(c.other_ca.clone()),
            cert_reqs: CertReqs::None,
            backend,
            ..Default::default()
        })
        .unwrap();
    p.connect_ok("localhost", port);
    p.echo("tls/none", b"unverified");
    p.close();
}

#[cfg(feature = "tls")]
#[test]
fn tls_set_context_with_a_user_connector() {
    let c = certs();
    let broker = Mosquitto::builder().tls_listener("tls", c, false).start();
    let ca = native_tls::Certificate::from_pem(&std::fs::read(&c.ca).unwrap()).unwrap();
    let connector = native_tls::TlsConnector::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let p = TransportProbe::tcp("tls-context");
    p.client.tls_set_context(connector).unwrap();
    assert!(
        matches!(p.client.tls_insecure_set(true), Err(Error::InvalidState(_))),
        "tls_insecure_set after tls_set_context"
    );
    p.connect_ok("localhost", broker.port_of("tls"));
    p.echo("tls/context", b"user connector");
    p.close();

    // A user connector that trusts nothing of ours is refused like any other.
    let other = native_tls::Certificate::from_pem(&std::fs::read(&c.other_ca).unwrap()).unwrap();
    let connector = native_tls::TlsConnector::builder()
        .add_root_certificate(other)
        .disable_built_in_roots(true)
        .build()
        .unwrap();
    let client = Client::new("tls-context-wrong");
    client.tls_set_context(connector).unwrap();
    let e = client
        .connect("localhost", broker.port_of("tls"), 60)
        .unwrap_err();
    assert!(matches!(e, Error::Tls(_)), "{e:?}");
}

/// Paho's three-argument `tls_set` (`TlsBackend::Auto`: native-tls when built, else rustls).
#[test]
fn tls_set_with_the_default_backend() {
    let c = certs();
    let broker = Mosquitto::builder().tls_listener("tls", c, true).start();
    let p = TransportProbe::tcp("tls-auto");
    p.client
        .tls_set(Some(&c.ca), Some(&c.client_cert), Some(&c.client_key_pkcs1))
        .unwrap();
    p.connect_ok("localhost", broker.port_of("tls"));
    p.echo("tls/auto", b"default backend");
    p.close();
}

/// A backend that was not built is refused by tls_set_with, before any connection.
#[cfg(not(all(feature = "tls", feature = "rustls")))]
#[test]
fn tls_backend_not_built_is_not_supported() {
    let missing = if cfg!(feature = "tls") {
        TlsBackend::Rustls
    } else {
        TlsBackend::NativeTls
    };
    let e = Client::new("tls-missing-backend")
        .tls_set_with(TlsOptions {
            ca_certs: Some(certs().ca.clone()),
            backend: missing,
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(&e, Error::NotSupported(m) if m.contains("feature")),
        "{e:?}"
    );
}

#[test]
fn tls_insecure_set_before_tls_set_is_refused() {
    let client = Client::new("tls-insecure-first");
    assert!(matches!(
        client.tls_insecure_set(true),
        Err(Error::InvalidState(_))
    ));
}

fn tls_hostname_mismatch_and_insecure(backend: TlsBackend) {
    let c = certs();
    let tls = c.mosquitto_tls_with(&c.wrong_host_cert, &c.wrong_host_key, false);
    let broker = Mosquitto::builder().listener("tls", &lines(&tls)).start();
    let port = broker.port_of("tls");

    let p = tls_probe("tls-mismatch", backend, &c.ca);
    let e = p
        .client
        .connect("localhost", port, 60)
        .expect_err("a certificate for wrong.example must be refused for localhost");
    assert!(matches!(&e, Error::Tls(_)), "{e:?}");
    assert_eq!(e.code(), mqtt_sync::MQTT_ERR_TLS);

    // tls_insecure_set(true) skips the host name check only.
    p.client.tls_insecure_set(true).unwrap();
    p.connect_ok("localhost", port);
    p.echo("tls/insecure", b"insecure");
    p.close();

    // ... a wrong CA is still refused.
    let p = tls_probe("tls-insecure-wrong-ca", backend, &c.other_ca);
    p.client.tls_insecure_set(true).unwrap();
    let e = p.client.connect("localhost", port, 60).unwrap_err();
    assert!(matches!(&e, Error::Tls(_)), "{e:?}");
}

fn tls_over_a_unix_socket_is_not_supported(backend: TlsBackend) {
    let c = certs();
    let p = TransportProbe::with("tls-unix", Transport::Unix);
    tls_set(&p.client, backend, Some(&c.ca), None, None).unwrap();
    let e = p
        .client
        .connect("/nonexistent/mqtt.sock", 0, 60)
        .unwrap_err();
    assert!(matches!(e, Error::NotSupported(_)), "{e:?}");
}

per_tls_backend!(
    tls_server_auth_only,
    tls_by_ip_address_san,
    tls_large_payload,
    tls_client_certificate_required,
    tls_client_key_formats,
    tls_ciphers_not_supported,
    tls_wrong_ca_is_refused,
    tls_hostname_mismatch_and_insecure,
    tls_over_a_unix_socket_is_not_supported,
);
