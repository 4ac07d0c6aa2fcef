//! TLS with native-tls (feature `tls`) or rustls (feature `rustls`, in `tls/with_rustls.rs`).
//!
//! `TlsSettings::from_options` picks the backend (`TlsOptions::backend`: native-tls when
//! both are built, unless rustls is asked for), validates and loads everything eagerly (CA
//! file, client certificate and key, for native-tls converted to PKCS#8), so that `tls_set`
//! reports a bad file at once; `wrap` builds the native-tls connector at connect time (so
//! that a later `tls_insecure_set` applies) and performs the handshake in blocking mode
//! before the deadline.
//!
//! Without either feature the option types still exist and `from_options` still validates
//! its arguments, but connecting with TLS returns `Error::NotSupported`.

use crate::error::Detail;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::NetStream;
use crate::{Error, Result};

#[cfg(feature = "rustls")]
mod with_rustls;

/// Whether the broker's certificate is verified (Paho's `cert_reqs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CertReqs {
    /// Verify the chain (`ssl.CERT_REQUIRED`, the default).
    #[default]
    Required,
    /// Do not verify the chain at all (`ssl.CERT_NONE`).
    None,
}

/// Minimum TLS protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.0
    Tls10,
    /// TLS 1.1
    Tls11,
    /// TLS 1.2
    Tls12,
    /// TLS 1.3
    Tls13,
}

/// Which TLS implementation a connection uses (`TlsOptions::backend`).
///
/// `Auto` is native-tls when the `tls` feature is built (also when `rustls` is built too, as
/// with `--all-features`: enabling a second backend does not change what existing code
/// gets), else rustls. Asking for a backend that was not built: `Err(NotSupported)` from
/// `tls_set_with`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TlsBackend {
    /// native-tls if built (feature `tls`), else rustls (feature `rustls`).
    #[default]
    Auto,
    /// native-tls (OpenSSL on Linux; feature `tls`).
    NativeTls,
    /// rustls with ring (feature `rustls`). Refuses encrypted keys with `NotSupported`.
    Rustls,
}

/// TLS settings for `Client::tls_set_with` (Paho's `tls_set` keyword arguments).
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// CA certificates (PEM) to trust; `None` uses the system store.
    pub ca_certs: Option<PathBuf>,
    /// Client certificate (PEM), possibly with its key.
    pub certfile: Option<PathBuf>,
    /// Client private key (PEM: PKCS#1, PKCS#8 or EC).
    pub keyfile: Option<PathBuf>,
    /// Password of an encrypted `keyfile` (hidden by `Debug`).
    pub keyfile_password: Option<String>,
    /// Verification mode.
    pub cert_reqs: CertReqs,
    /// Minimum TLS version.
    pub tls_version: Option<TlsVersion>,
    /// ALPN protocols to offer.
    pub alpn_protocols: Vec<String>,
    /// A cipher list: neither backend can honour one, so setting it gives
    /// `Err(NotSupported)`.
    pub ciphers: Option<String>,
    /// The TLS implementation (`Auto`: native-tls if built, else rustls).
    pub backend: TlsBackend,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_certs", &self.ca_certs)
            .field("certfile", &self.certfile)
            .field("keyfile", &self.keyfile)
            .field(
                "keyfile_password",
                &self.keyfile_password.as_ref().map(|_| "<hidden>"),
            )
            .field("cert_reqs", &self.cert_reqs)
            .field("tls_version", &self.tls_version)
            .field("alpn_protocols", &self.alpn_protocols)
            .field("ciphers", &self.ciphers)
            .field("backend", &self.backend)
            .finish()
    }
}

/// The TLS configuration stored in the client.
#[derive(Clone, Debug)]
pub(crate) struct TlsSettings {
    /// The options it was made from (default for a user-supplied connector).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub options: TlsOptions,
    /// `tls_insecure_set(true)`: skip the host name check (the chain is still verified).
    pub insecure: bool,
    source: Source,
}

#[derive(Clone, Debug)]
enum Source {
    /// Built from `TlsOptions`; the files are loaded.
    Options(Loaded),
    /// A user-supplied connector (`tls_set_context`), used as is.
    #[cfg(feature = "tls")]
    Connector(native_tls::TlsConnector),
}

/// What `from_options` loaded from the files, for the backend it chose.
#[derive(Clone, Debug)]
enum Loaded {
    #[cfg(feature = "tls")]
    Native(NativeLoaded),
    #[cfg(feature = "rustls")]
    Rustls(with_rustls::Loaded),
    /// Built without a TLS backend: the files were checked; connecting fails.
    #[cfg(not(any(feature = "tls", feature = "rustls")))]
    Unavailable,
}

/// What native-tls needs.
#[cfg(feature = "tls")]
#[derive(Clone)]
struct NativeLoaded {
    roots: Vec<native_tls::Certificate>,
    identity: Option<native_tls::Identity>,
}

#[cfg(feature = "tls")]
impl std::fmt::Debug for NativeLoaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeLoaded")
            .field("roots", &self.roots.len())
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

/// Loads the files for the backend `o.backend` selects.
fn load(o: &TlsOptions) -> Result<Loaded> {
    match o.backend {
        TlsBackend::NativeTls => load_native(o),
        TlsBackend::Rustls => load_rustls(o),
        #[cfg(feature = "tls")]
        TlsBackend::Auto => load_native(o),
        #[cfg(all(not(feature = "tls"), feature = "rustls"))]
        TlsBackend::Auto => load_rustls(o),
        #[cfg(not(any(feature = "tls", feature = "rustls")))]
        TlsBackend::Auto => load_unavailable(o),
    }
}

#[cfg(feature = "tls")]
fn load_native(o: &TlsOptions) -> Result<Loaded> {
    native_load(o).map(Loaded::Native)
}

#[cfg(not(feature = "tls"))]
fn load_native(_: &TlsOptions) -> Result<Loaded> {
    Err(Error::NotSupported(
        "TlsBackend::NativeTls needs mqtt-sync's tls feature".into(),
    ))
}

#[cfg(feature = "rustls")]
fn load_rustls(o: &TlsOptions) -> Result<Loaded> {
    with_rustls::load(o).map(Loaded::Rustls)
}

#[cfg(not(feature = "rustls"))]
fn load_rustls(_: &TlsOptions) -> Result<Loaded> {
    Err(Error::NotSupported(
        "TlsBackend::Rustls needs mqtt-sync's rustls feature".into(),
    ))
}

impl TlsSettings {
    /// Validates `options` and loads its files (`tls_set`, `tls_set_with`).
    ///
    /// Errors: `NotSupported` for `ciphers`; `InvalidArgument` for a `keyfile` without a
    /// `certfile` or a `certfile` without a key; `Tls` (naming the path) for a file that cannot
    /// be read or parsed, or a key that cannot be decrypted.
    pub(crate) fn from_options(options: TlsOptions) -> Result<TlsSettings> {
        if options.ciphers.is_some() {
            return Err(Error::NotSupported(
                "mqtt-sync cannot set a cipher list (native-tls has no such setting; rustls \
                 offers only its own modern suites): leave TlsOptions::ciphers at None, or \
                 build a native_tls::TlsConnector yourself and pass it to tls_set_context"
                    .into(),
            ));
        }
        if options.keyfile.is_some() && options.certfile.is_none() {
            return Err(Error::invalid("TlsOptions::keyfile needs a certfile too"));
        }
        for p in [&options.ca_certs, &options.certfile, &options.keyfile]
            .into_iter()
            .flatten()
        {
            if !p.is_file() {
                return Err(Error::Tls(Detail::caused(
                    format!("cannot read {}: no such file", p.display()),
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                )));
            }
        }
        for a in &options.alpn_protocols {
            if a.is_empty() || a.len() > 255 {
                return Err(Error::invalid(format!(
                    "ALPN protocol {a:?} must be 1 to 255 bytes long"
                )));
            }
        }
        let loaded = load(&options)?;
        let settings = TlsSettings {
            options,
            insecure: false,
            source: Source::Options(loaded),
        };
        // Build a connector once so that a key not matching its certificate, or anything
        // else OpenSSL refuses, is reported by `tls_set` rather than at connect time (the
        // rustls configurations were built by `load`).
        #[cfg(feature = "tls")]
        if let Source::Options(Loaded::Native(_)) = &settings.source {
            settings.connector()?;
        }
        Ok(settings)
    }

    /// Settings that use a connector the user built (`tls_set_context`).
    #[cfg(feature = "tls")]
    pub(crate) fn from_connector(connector: native_tls::TlsConnector) -> TlsSettings {
        TlsSettings {
            options: TlsOptions::default(),
            insecure: false,
            source: Source::Connector(connector),
        }
    }

    /// `tls_insecure_set`: `Err(InvalidState)` for a user-supplied connector, whose settings
    /// cannot be changed.
    pub(crate) fn set_insecure(&mut self, insecure: bool) -> Result<()> {
        match self.source {
            Source::Options(_) => {
                self.insecure = insecure;
                Ok(())
            }
            #[cfg(feature = "tls")]
            Source::Connector(_) => Err(Error::state(
                "tls_insecure_set cannot change a connector given to tls_set_context; configure \
                 danger_accept_invalid_hostnames on the native_tls::TlsConnectorBuilder instead",
            )),
        }
    }

    /// The connector for one connection attempt.
    #[cfg(feature = "tls")]
    fn connector(&self) -> Result<native_tls::TlsConnector> {
        let loaded = match &self.source {
            Source::Connector(c) => return Ok(c.clone()),
            Source::Options(Loaded::Native(l)) => l,
            #[cfg(feature = "rustls")]
            Source::Options(Loaded::Rustls(_)) => {
                return Err(Error::Tls(
                    "internal: a rustls setting has no native-tls connector".into(),
                ))
            }
        };
        let o = &self.options;
        let mut b = native_tls::TlsConnector::builder();
        if o.cert_reqs == CertReqs::None {
            b.danger_accept_invalid_certs(true);
            b.danger_accept_invalid_hostnames(true);
        }
        if self.insecure {
            b.danger_accept_invalid_hostnames(true);
        }
        if o.ca_certs.is_some() {
            // As Paho (OpenSSL's load_verify_locations on a fresh context): trust only the CA
            // file that was given.
            b.disable_built_in_roots(true);
        }
        for c in &loaded.roots {
            b.add_root_certificate(c.clone());
        }
        if let Some(id) = &loaded.identity {
            b.identity(id.clone());
        }
        if let Some(v) = o.tls_version {
            b.min_protocol_version(Some(match v {
                TlsVersion::Tls10 => native_tls::Protocol::Tlsv10,
                TlsVersion::Tls11 => native_tls::Protocol::Tlsv11,
                TlsVersion::Tls12 => native_tls::Protocol::Tlsv12,
                TlsVersion::Tls13 => native_tls::Protocol::Tlsv13,
            }));
        }
        if !o.alpn_protocols.is_empty() {
            let alpns: Vec<&str> = o.alpn_protocols.iter().map(String::as_str).collect();
            b.request_alpns(&alpns);
        }
        b.build()
            .map_err(|e| Error::Tls(Detail::caused(format!("cannot set up TLS: {e}"), e)))
    }
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::Tls(Detail::caused(
            format!("cannot read {what} {}: {e}", path.display()),
            e,
        ))
    })
}

/// The PEM blocks of `pem` whose label satisfies `keep`, re-assembled as PEM text.
#[cfg_attr(not(any(feature = "tls", feature = "rustls")), allow(dead_code))]
fn pem_blocks(pem: &str, keep: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    let mut inside: Option<String> = None;
    for line in pem.lines() {
        let line = line.trim_end();
        match &inside {
            None => {
                if let Some(label) = line
                    .strip_prefix("-----BEGIN ")
                    .and_then(|l| l.strip_suffix("-----"))
                {
                    if keep(label) {
                        out.push_str(line);
                        out.push('\n');
                    }
                    inside = Some(label.to_string());
                }
            }
            Some(label) => {
                if keep(label) {
                    out.push_str(line);
                    out.push('\n');
                }
                if line.starts_with("-----END ") {
                    inside = None;
                }
            }
        }
    }
    out
}

#[cfg_attr(not(any(feature = "tls", feature = "rustls")), allow(dead_code))]
fn is_key_label(label: &str) -> bool {
    label.ends_with("PRIVATE KEY")
}

#[cfg(not(any(feature = "tls", feature = "rustls")))]
fn load_unavailable(o: &TlsOptions) -> Result<Loaded> {
    // Still read the files so that a build without TLS reports the same argument errors.
    let files = [
        (&o.ca_certs, "CA file"),
        (&o.certfile, "certfile"),
        (&o.keyfile, "keyfile"),
    ];
    for (p, what) in files
        .into_iter()
        .filter_map(|(p, w)| p.as_ref().map(|p| (p, w)))
    {
        read_file(p, what)?;
    }
    Ok(Loaded::Unavailable)
}

#[cfg(feature = "tls")]
fn native_load(o: &TlsOptions) -> Result<NativeLoaded> {
    let mut roots = Vec::new();
    if let Some(ca) = &o.ca_certs {
        let pem = read_file(ca, "CA file")?;
        roots = native_tls::Certificate::stack_from_pem(&pem).map_err(|e| {
            Error::Tls(Detail::caused(
                format!("cannot parse CA file {}: {e}", ca.display()),
                e,
            ))
        })?;
        if roots.is_empty() {
            return Err(Error::Tls(
                format!("CA file {} holds no PEM certificate", ca.display()).into(),
            ));
        }
    }
    let mut identity = None;
    if let Some(certfile) = &o.certfile {
        let cert_raw = read_file(certfile, "certfile")?;
        let cert_text = String::from_utf8_lossy(&cert_raw);
        let certs = pem_blocks(&cert_text, |l| {
            l == "CERTIFICATE" || l == "TRUSTED CERTIFICATE"
        });
        if certs.is_empty() {
            return Err(Error::Tls(
                format!("certfile {} holds no PEM certificate", certfile.display()).into(),
            ));
        }
        let (key_text, key_path) = match &o.keyfile {
            Some(k) => (
                String::from_utf8_lossy(&read_file(k, "keyfile")?).into_owned(),
                k,
            ),
            None => (cert_text.clone().into_owned(), certfile),
        };
        let key_pem = pem_blocks(&key_text, is_key_label);
        if key_pem.is_empty() {
            return Err(Error::invalid(format!(
                "no private key in {} (give TlsOptions::keyfile, or put the key in the certfile)",
                key_path.display()
            )));
        }
        let pkcs8 = to_pkcs8(&key_pem, o.keyfile_password.as_deref(), key_path)?;
        check_key_matches(certs.as_bytes(), &pkcs8, certfile, key_path)?;
        identity = Some(
            native_tls::Identity::from_pkcs8(certs.as_bytes(), &pkcs8).map_err(|e| {
                Error::Tls(
                    format!(
                        "cannot use client certificate {} with key {}: {e}",
                        certfile.display(),
                        key_path.display()
                    )
                    .into(),
                )
            })?,
        );
    }
    Ok(NativeLoaded { roots, identity })
}

/// Apple systems: native-tls does not use OpenSSL; the handshake checks the pair.
#[cfg(all(feature = "tls", target_vendor = "apple"))]
fn check_key_matches(_: &[u8], _: &[u8], _: &Path, _: &Path) -> Result<()> {
    Ok(())
}

/// OpenSSL would only notice at the handshake that the key is not the certificate's.
#[cfg(all(feature = "tls", not(target_vendor = "apple")))]
fn check_key_matches(cert_pem: &[u8], pkcs8: &[u8], certfile: &Path, keyfile: &Path) -> Result<()> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::Tls(format!("cannot parse {}: {e}", certfile.display()).into())
    };
    let cert = openssl::x509::X509::from_pem(cert_pem).map_err(|e| bad(&e))?;
    let key = openssl::pkey::PKey::private_key_from_pem(pkcs8).map_err(|e| bad(&e))?;
    if cert.public_key().map_err(|e| bad(&e))?.public_eq(&key) {
        Ok(())
    } else {
        Err(Error::Tls(
            format!(
                "the key in {} does not belong to the certificate in {}",
                keyfile.display(),
                certfile.display()
            )
            .into(),
        ))
    }
}

/// Apple systems (no OpenSSL): an unencrypted PKCS#8 key is used as it is; other formats
/// are refused with a clear error.
#[cfg(all(feature = "tls", target_vendor = "apple"))]
fn to_pkcs8(key_pem: &str, _password: Option<&str>, path: &Path) -> Result<Vec<u8>> {
    if key_pem.contains("-----BEGIN PRIVATE KEY-----") {
        Ok(key_pem.as_bytes().to_vec())
    } else {
        Err(Error::NotSupported(format!(
            "the key in {} is not an unencrypted PKCS#8 key; on this platform convert it first \
             (openssl pkcs8 -topk8 -nocrypt)",
            path.display()
        )))
    }
}

/// Converts a PEM private key (PKCS#1 RSA, SEC1 EC, PKCS#8, encrypted PKCS#8 or legacy
/// encrypted PEM) to unencrypted PKCS#8 PEM, which `native_tls::Identity::from_pkcs8` wants.
#[cfg(all(feature = "tls", not(target_vendor = "apple")))]
fn to_pkcs8(key_pem: &str, password: Option<&str>, path: &Path) -> Result<Vec<u8>> {
    let encrypted = key_pem.contains("ENCRYPTED");
    if encrypted && password.is_none() {
        return Err(Error::Tls(
            format!(
                "the key in {} is encrypted: set TlsOptions::keyfile_password",
                path.display()
            )
            .into(),
        ));
    }
    // Always pass a passphrase: with none, OpenSSL would prompt on the terminal.
    let pkey = openssl::pkey::PKey::private_key_from_pem_passphrase(
        key_pem.as_bytes(),
        password.unwrap_or("").as_bytes(),
    )
    .map_err(|e| {
        if encrypted {
            Error::Tls(Detail::caused(
                format!(
                    "cannot decrypt the key in {} (wrong keyfile_password?): {e}",
                    path.display()
                ),
                e,
            ))
        } else {
            Error::Tls(Detail::caused(
                format!("cannot parse the key in {}: {e}", path.display()),
                e,
            ))
        }
    })?;
    pkey.private_key_to_pem_pkcs8().map_err(|e| {
        Error::Tls(
            format!(
                "cannot convert the key in {} to PKCS#8: {e}",
                path.display()
            )
            .into(),
        )
    })
}

/// Wraps a connected, blocking TCP stream in TLS: the handshake runs before `deadline`, with
/// `host` (the connect host, or the SRV target) as SNI and for the certificate check.
pub(crate) fn wrap(
    t: &TlsSettings,
    host: &str,
    tcp: TcpStream,
    deadline: Instant,
) -> Result<Box<dyn NetStream>> {
    match &t.source {
        #[cfg(feature = "tls")]
        Source::Connector(_) | Source::Options(Loaded::Native(_)) => {
            native_wrap(t, host, tcp, deadline)
        }
        #[cfg(feature = "rustls")]
        Source::Options(Loaded::Rustls(l)) => with_rustls::wrap(l, t.insecure, host, tcp, deadline),
        #[cfg(not(any(feature = "tls", feature = "rustls")))]
        Source::Options(Loaded::Unavailable) => {
            let _ = (host, tcp, deadline);
            Err(Error::NotSupported(
                "built without a TLS backend (features tls, rustls)".into(),
            ))
        }
    }
}

#[cfg(feature = "tls")]
fn native_wrap(
    t: &TlsSettings,
    host: &str,
    tcp: TcpStream,
    deadline: Instant,
) -> Result<Box<dyn NetStream>> {
    let connector = t.connector()?;
    super::tcp::set_deadline(&tcp, deadline)?;
    // An IPv6 literal may come bracketed from a URL-like host; OpenSSL wants it bare.
    let name = host.trim_start_matches('[').trim_end_matches(']');
    match connector.connect(name, tcp) {
        Ok(s) => Ok(Box::new(TlsStream { inner: s })),
        Err(native_tls::HandshakeError::WouldBlock(_)) => Err(Error::Timeout),
        Err(native_tls::HandshakeError::Failure(e)) => Err(Error::Tls(Detail::caused(
            format!("TLS handshake with {host} failed: {e}"),
            e,
        ))),
    }
}

/// A TLS stream over TCP.
#[cfg(feature = "tls")]
pub(crate) struct TlsStream {
    inner: native_tls::TlsStream<TcpStream>,
}

#[cfg(feature = "tls")]
impl std::io::Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

#[cfg(feature = "tls")]
impl std::io::Write for TlsStream {
    /// As OpenSSL requires, after `WouldBlock` the caller must retry with the same bytes (the
    /// loop's outgoing buffer does: it retries from the same position). OpenSSL runs with
    /// partial writes and a moving write buffer allowed, so a longer retry is fine.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(feature = "tls")]
impl NetStream for TlsStream {
    fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.inner.get_ref().as_raw_fd()
    }
    /// Decrypted bytes of the current TLS record that a `read` returns without touching the
    /// socket (OpenSSL's `SSL_pending`; OpenSSL does not read ahead past the current record,
    /// so anything else is still in the kernel and makes the socket readable).
    fn has_buffered_read(&self) -> bool {
        self.inner
            .buffered_read_size()
            .map(|n| n > 0)
            .unwrap_or(false)
    }
    fn shutdown(&mut self) {
        // Best effort close_notify, then close the socket.
        let _ = self.inner.shutdown();
        let _ = self.inner.get_ref().shutdown(std::net::Shutdown::Both);
    }
    fn set_nonblocking(&mut self, nonblocking: bool) -> std::io::Result<()> {
        NetStream::set_nonblocking(self.inner.get_mut(), nonblocking)
    }
    fn set_io_timeout(&mut self, timeout: Option<std::time::Duration>) -> std::io::Result<()> {
        NetStream::set_io_timeout(self.inner.get_mut(), timeout)
    }
    fn ack_now(&self) -> std::io::Result<()> {
        NetStream::ack_now(self.inner.get_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_split_certs_and_keys() {
        let text = "junk\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n\
                    -----BEGIN RSA PRIVATE KEY-----\nBBB\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(
            pem_blocks(text, |l| l == "CERTIFICATE"),
            "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(
            pem_blocks(text, is_key_label),
            "-----BEGIN RSA PRIVATE KEY-----\nBBB\n-----END RSA PRIVATE KEY-----\n"
        );
    }

    #[test]
    fn ciphers_are_not_supported() {
        let o = TlsOptions {
            ciphers: Some("HIGH".into()),
            ..Default::default()
        };
        assert!(matches!(
            TlsSettings::from_options(o),
            Err(Error::NotSupported(_))
        ));
    }

    #[test]
    fn missing_files_name_the_path() {
        let o = TlsOptions {
            ca_certs: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let e = TlsSettings::from_options(o).unwrap_err();
        assert!(
            matches!(&e, Error::Tls(m) if m.contains("/nonexistent/ca.pem")),
            "{e}"
        );
        let o = TlsOptions {
            keyfile: Some("/k.pem".into()),
            ..Default::default()
        };
        assert!(matches!(
            TlsSettings::from_options(o),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn insecure_on_options() {
        let mut s = TlsSettings::from_options(TlsOptions::default()).unwrap();
        s.set_insecure(true).unwrap();
        assert!(s.insecure);
    }

    /// A backend that was not built is refused at once (the integration tests cover the
    /// builds with one backend; this covers the lean build too).
    #[test]
    fn a_backend_not_built_is_not_supported() {
        let missing: &[TlsBackend] = match (cfg!(feature = "tls"), cfg!(feature = "rustls")) {
            (true, true) => &[],
            (true, false) => &[TlsBackend::Rustls],
            (false, true) => &[TlsBackend::NativeTls],
            (false, false) => &[TlsBackend::NativeTls, TlsBackend::Rustls],
        };
        for &backend in missing {
            let o = TlsOptions {
                backend,
                ..Default::default()
            };
            assert!(
                matches!(TlsSettings::from_options(o), Err(Error::NotSupported(m)) if m.contains("feature")),
                "{backend:?}"
            );
        }
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn rustls_without_verification_needs_no_ca() {
        let o = TlsOptions {
            cert_reqs: CertReqs::None,
            tls_version: Some(TlsVersion::Tls10),
            alpn_protocols: vec!["mqtt".into()],
            backend: TlsBackend::Rustls,
            ..Default::default()
        };
        let mut s = TlsSettings::from_options(o).unwrap();
        assert!(matches!(s.source, Source::Options(Loaded::Rustls(_))));
        s.set_insecure(true).unwrap();
    }

    #[cfg(feature = "tls")]
    #[test]
    fn insecure_on_connector_is_refused() {
        let c = native_tls::TlsConnector::new().unwrap();
        let mut s = TlsSettings::from_connector(c);
        assert!(matches!(s.set_insecure(true), Err(Error::InvalidState(_))));
    }
}
