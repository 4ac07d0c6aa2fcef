//! TLS with rustls (feature `rustls`; `TlsBackend::Rustls`).
//!
//! Crypto comes from ring. Without `TlsOptions::ca_certs` the broker is checked against the
//! system's CA store (rustls-native-certs reads the same files OpenSSL would, honouring
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`), so both backends trust the same CAs, as Paho does.
//!
//! `load` reads and checks everything when `tls_set` runs and builds the two client
//! configurations (host name checked, and `tls_insecure_set(true)`'s: chain checked, host name
//! not), so `wrap` only picks one. The handshake runs in blocking mode before the deadline;
//! afterwards [`RustlsStream`] drives the `ClientConnection` by hand (`read_tls` /
//! `process_new_packets` / `write_tls`) over the non-blocking socket of the network loop.
//!
//! What rustls cannot do is refused with `Error::NotSupported` by `tls_set`: encrypted keys
//! (encrypted PKCS#8 or legacy `Proc-Type: 4,ENCRYPTED` PEM). TLS 1.0 and 1.1 do not exist in
//! rustls: a minimum of `Tls10`/`Tls11` offers TLS 1.2 and 1.3, which satisfies it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, InconsistentKeys,
    RootCertStore, SignatureScheme, SupportedProtocolVersion,
};

use super::{is_key_label, pem_blocks, read_file, CertReqs, TlsOptions, TlsVersion};
use crate::network::{tcp, NetStream};
use crate::{Error, Result};

/// The two configurations made from `TlsOptions`.
#[derive(Clone)]
pub(super) struct Loaded {
    /// Chain and host name verified (or nothing, with `CertReqs::None`).
    secure: Arc<ClientConfig>,
    /// `tls_insecure_set(true)`: the chain is verified, the host name is not.
    insecure: Arc<ClientConfig>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("rustls::Loaded")
            .field("alpn", &self.secure.alpn_protocols.len())
            .field(
                "client_auth",
                &self.secure.client_auth_cert_resolver.has_certs(),
            )
            .finish()
    }
}

/// Reads the files of `o` and builds the configurations (`tls_set`, `tls_set_with`).
pub(super) fn load(o: &TlsOptions) -> Result<Loaded> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&SupportedProtocolVersion] = match o.tls_version {
        Some(TlsVersion::Tls13) => &[&rustls::version::TLS13],
        // rustls has nothing older than TLS 1.2: offering 1.2 and 1.3 honours any lower minimum.
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let identity = match &o.certfile {
        Some(certfile) => Some(client_identity(o, certfile)?),
        None => None,
    };
    let (secure, insecure): (Arc<dyn ServerCertVerifier>, Arc<dyn ServerCertVerifier>) =
        match o.cert_reqs {
            CertReqs::None => {
                let v = Arc::new(NoVerification(provider.signature_verification_algorithms));
                (v.clone(), v)
            }
            CertReqs::Required => {
                let roots = Arc::new(roots(o)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| {
                        Error::Tls(crate::error::Detail::caused(
                            format!("cannot set up certificate verification: {e}"),
                            e,
                        ))
                    })?;
                (webpki.clone(), Arc::new(SkipHostName(webpki)))
            }
        };
    let build = |verifier: Arc<dyn ServerCertVerifier>| -> Result<Arc<ClientConfig>> {
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| {
                Error::Tls(crate::error::Detail::caused(
                    format!("cannot set up TLS: {e}"),
                    e,
                ))
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &identity {
            None => builder.with_no_client_auth(),
            Some(id) => builder
                .with_client_auth_cert(id.certs.clone(), id.key.clone_key())
                .map_err(|e| id.error(e))?,
        };
        config.alpn_protocols = o
            .alpn_protocols
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect();
        Ok(Arc::new(config))
    };
    Ok(Loaded {
        secure: build(secure)?,
        insecure: build(insecure)?,
    })
}

/// The CAs to trust: only those of `ca_certs` when given (as Paho), else the system's.
fn roots(o: &TlsOptions) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match &o.ca_certs {
        Some(ca) => {
            let pem = read_file(ca, "CA file")?;
            let certs = parse_certs(&pem, ca, "CA file")?;
            for c in certs {
                roots.add(c).map_err(|e| {
                    Error::Tls(crate::error::Detail::caused(
                        format!("cannot use a CA certificate of {}: {e}", ca.display()),
                        e,
                    ))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err(Error::Tls(
                    format!(
                        "no CA certificate found in the system store{}; give TlsOptions::ca_certs",
                        if why.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", why.join("; "))
                        }
                    )
                    .into(),
                ));
            }
        }
    }
    Ok(roots)
}

/// The certificates of a PEM file; an error naming the file when there is none.
fn parse_certs(pem: &[u8], path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::Tls(crate::error::Detail::caused(
                format!("cannot parse {what} {}: {e}", path.display()),
                e,
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Tls(
            format!("{what} {} holds no PEM certificate", path.display()).into(),
        ));
    }
    Ok(certs)
}

/// A client certificate chain and its key, with the paths for error messages.
struct Identity<'a> {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    certfile: &'a Path,
    keyfile: &'a Path,
}

impl Identity<'_> {
    fn error(&self, e: rustls::Error) -> Error {
        match e {
            rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => Error::Tls(
                format!(
                    "the key in {} does not belong to the certificate in {}",
                    self.keyfile.display(),
                    self.certfile.display()
                )
                .into(),
            ),
            e => Error::Tls(
                format!(
                    "cannot use client certificate {} with key {}: {e}",
                    self.certfile.display(),
                    self.keyfile.display()
                )
                .into(),
            ),
        }
    }
}

/// Reads the client certificate and its key (from `keyfile`, or from `certfile` when there is
/// no `keyfile`): PKCS#8, PKCS#1 RSA or SEC1 EC, unencrypted.
fn client_identity<'a>(o: &'a TlsOptions, certfile: &'a Path) -> Result<Identity<'a>> {
    let cert_raw = read_file(certfile, "certfile")?;
    let certs = parse_certs(&cert_raw, certfile, "certfile")?;
    let (key_raw, keyfile) = match &o.keyfile {
        Some(k) => (read_file(k, "keyfile")?, k.as_path()),
        None => (cert_raw, certfile),
    };
    let key_pem = pem_blocks(&String::from_utf8_lossy(&key_raw), is_key_label);
    if key_pem.is_empty() {
        return Err(Error::invalid(format!(
            "no private key in {} (give TlsOptions::keyfile, or put the key in the certfile)",
            keyfile.display()
        )));
    }
    // "BEGIN ENCRYPTED PRIVATE KEY" (PKCS#8) or a legacy "Proc-Type: 4,ENCRYPTED" header.
    if key_pem.contains("ENCRYPTED") {
        return Err(Error::NotSupported(format!(
            "the key in {} is encrypted, which the rustls backend cannot read: decrypt it \
             first (openssl pkey -in KEY -out PLAIN_KEY), or use the native-tls backend \
             (feature tls) with TlsOptions::keyfile_password",
            keyfile.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
        Error::Tls(crate::error::Detail::caused(
            format!("cannot parse the key in {}: {e}", keyfile.display()),
            e,
        ))
    })?;
    Ok(Identity {
        certs,
        key,
        certfile,
        keyfile,
    })
}

/// `CertReqs::None`: any certificate is accepted; the handshake signatures are still
/// checked (the peer must hold the key of the certificate it sent).
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `tls_insecure_set(true)`: the webpki verifier, except that a certificate valid for another
/// name is accepted. The chain is checked before the name, so a name error means the chain
/// passed.
#[derive(Debug)]
struct SkipHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for SkipHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.0.root_hint_subjects()
    }
}

/// Wraps a connected, blocking TCP stream in TLS: the handshake runs before `deadline`, with
/// `host` as SNI (none for an IP address) and for the certificate check.
pub(super) fn wrap(
    loaded: &Loaded,
    insecure: bool,
    host: &str,
    mut sock: TcpStream,
    deadline: Instant,
) -> Result<Box<dyn NetStream>> {
    let config = if insecure {
        loaded.insecure.clone()
    } else {
        loaded.secure.clone()
    };
    // An IPv6 literal may come bracketed from a URL-like host.
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| Error::invalid(format!("{host:?} is not a valid TLS server name: {e}")))?;
    let mut conn = ClientConnection::new(config, server_name).map_err(|e| {
        Error::Tls(crate::error::Detail::caused(
            format!("cannot set up TLS: {e}"),
            e,
        ))
    })?;
    let plaintext = handshake(&mut conn, &mut sock, host, deadline)?;
    Ok(Box::new(RustlsStream {
        conn,
        sock,
        plaintext,
    }))
}

/// Runs the handshake on the blocking socket, each read and write bounded by `deadline`;
/// returns the number of application bytes that arrived with it.
fn handshake(
    conn: &mut ClientConnection,
    sock: &mut TcpStream,
    host: &str,
    deadline: Instant,
) -> Result<usize> {
    let io_error = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout,
        _ => Error::Tls(crate::error::Detail::caused(
            format!("TLS handshake with {host} failed: {e}"),
            e,
        )),
    };
    let mut plaintext = 0;
    loop {
        while conn.wants_write() {
            tcp::set_deadline(sock, deadline)?;
            match conn.write_tls(sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        if !conn.is_handshaking() {
            return Ok(plaintext);
        }
        tcp::set_deadline(sock, deadline)?;
        match conn.read_tls(sock) {
            Ok(0) => {
                return Err(Error::Tls(
                    format!("TLS handshake with {host} failed: the server closed the connection")
                        .into(),
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(e)),
        }
        match conn.process_new_packets() {
            Ok(state) => plaintext = state.plaintext_bytes_to_read(),
            Err(e) => {
                // Best effort: tell the server why (rustls queued an alert).
                let _ = conn.write_tls(sock);
                return Err(handshake_error(host, e));
            }
        }
    }
}

fn handshake_error(host: &str, e: rustls::Error) -> Error {
    match e {
        // OpenSSL's words, which the native-tls backend reports too.
        rustls::Error::InvalidCertificate(c) => Error::Tls(crate::error::Detail::caused(
            format!("TLS handshake with {host} failed: certificate verify failed ({c:?})"),
            rustls::Error::InvalidCertificate(c),
        )),
        e => Error::Tls(crate::error::Detail::caused(
            format!("TLS handshake with {host} failed: {e}"),
            e,
        )),
    }
}

/// A rustls connection over a TCP socket, blocking or not.
///
/// `read` returns decrypted bytes, reading and processing TLS records from the socket only
/// when none are left (so `WouldBlock` means: nothing buffered, the socket is empty).
/// `write` first pushes the TLS bytes still queued (`WouldBlock` while the socket is full:
/// backpressure), then hands the plaintext to rustls, which encrypts it at once and queues
/// what the socket does not take; `has_pending_write` reports that and `flush` pushes it.
struct RustlsStream {
    conn: ClientConnection,
    sock: TcpStream,
    /// Decrypted bytes inside `conn` that `read` has not returned yet.
    plaintext: usize,
}

impl RustlsStream {
    /// Writes the queued TLS bytes to the socket, all of them or up to `WouldBlock`.
    fn push_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Read for RustlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => {
                    self.plaintext = self.plaintext.saturating_sub(n);
                    return Ok(n);
                }
                // No decrypted bytes: read more records below.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.plaintext = 0,
                // The peer closed TCP without close_notify: for MQTT, whose packets carry
                // their length, an end of stream like any other (as with native-tls).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            // Ok(0) (end of stream) too is processed: the next reader().read reports it.
            self.conn.read_tls(&mut self.sock)?;
            match self.conn.process_new_packets() {
                Ok(state) => self.plaintext = state.plaintext_bytes_to_read(),
                Err(e) => {
                    let _ = self.push_tls();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            // Records that want an answer (a key update) queue it: send it if the socket
            // takes it now; otherwise has_pending_write() makes the loop flush it.
            match self.push_tls() {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                _ => {}
            }
        }
    }
}

impl Write for RustlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push_tls()?;
        let n = self.conn.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            // rustls's buffer is full (cannot happen once push_tls emptied it).
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match self.push_tls() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(n),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.push_tls()?;
        self.sock.flush()
    }
}

impl NetStream for RustlsStream {
    fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.sock.as_raw_fd()
    }
    fn has_buffered_read(&self) -> bool {
        self.plaintext > 0
    }
    fn has_pending_write(&self) -> bool {
        self.conn.wants_write()
    }
    fn shutdown(&mut self) {
        // Best effort close_notify, then close the socket.
        self.conn.send_close_notify();
        let _ = self.conn.write_tls(&mut self.sock);
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
    fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        NetStream::set_nonblocking(&mut self.sock, nonblocking)
    }
    fn set_io_timeout(&mut self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        NetStream::set_io_timeout(&mut self.sock, timeout)
    }
    fn ack_now(&self) -> io::Result<()> {
        NetStream::ack_now(&self.sock)
    }
}
