//! Test certificates made at test time with the `openssl` command-line tool.
//!
//! `Certs::generate(dir)` writes into `dir` (for example a `MosquittoBuilder::dir()`, so the
//! files go away with the broker):
//! - `ca` / `ca_key`: the test CA;
//! - `server_cert` / `server_key`: for `localhost`, with IP SANs 127.0.0.1 and ::1, signed by
//!   the CA;
//! - `wrong_host_cert` / `wrong_host_key`: signed by the CA but for `wrong.example` only;
//! - `client_cert` with the same RSA key in several encodings: `client_key` (PKCS#8),
//!   `client_key_pkcs1` (`BEGIN RSA PRIVATE KEY`), `client_key_encrypted` (encrypted PKCS#8,
//!   password [`KEY_PASSWORD`]), `client_key_legacy_encrypted` (PKCS#1 in legacy encrypted
//!   PEM, `Proc-Type: 4,ENCRYPTED`, same password) and `client_combined` (certificate and key
//!   in one file);
//! - `client_ec_cert` / `client_ec_key`: a client certificate with a SEC1 EC key
//!   (`BEGIN EC PRIVATE KEY`);
//! - `other_ca`: an unrelated CA that signed nothing we use.
//!
//! `Certs::shared()` makes one set per test binary in a temporary directory (RSA key
//! generation takes a moment).
//! `mosquitto_tls()` gives the lines of a mosquitto TLS listener using these files.
//! Uses only std and `tempfile`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Password of `client_key_encrypted`.
pub const KEY_PASSWORD: &str = "s3cret-pass";

pub struct Certs {
    /// Where the files are.
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub wrong_host_cert: PathBuf,
    pub wrong_host_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub client_key_pkcs1: PathBuf,
    pub client_key_encrypted: PathBuf,
    pub client_key_legacy_encrypted: PathBuf,
    pub client_combined: PathBuf,
    pub client_ec_cert: PathBuf,
    pub client_ec_key: PathBuf,
    pub other_ca: PathBuf,
    pub other_ca_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("cannot run the openssl command (install the openssl package)");
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn random_serial() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(1);
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("0x{:x}{:04x}", nanos & 0xffff_ffff_ffff, n)
}

/// Makes a self-signed CA `name`.pem / `name`.key.
fn make_ca(dir: &Path, name: &str, cn: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "3650",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// Signs a certificate `name`.pem for the existing key `name`.key with `ca`.
fn sign(dir: &Path, ca: &str, name: &str, cn: &str, ext: &str) {
    let ext_file = format!("{name}.ext");
    std::fs::write(dir.join(&ext_file), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-sha256",
            "-days",
            "365",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            &random_serial(),
            "-extfile",
            &ext_file,
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

fn rsa_key(dir: &Path, name: &str) {
    // OpenSSL 3 writes PKCS#8 ("BEGIN PRIVATE KEY").
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &format!("{name}.key"),
        ],
    );
}

const SERVER_EXT: &str =
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n";
const WRONG_EXT: &str =
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
extendedKeyUsage=serverAuth\nsubjectAltName=DNS:wrong.example\n";
const CLIENT_EXT: &str =
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
extendedKeyUsage=clientAuth\n";

impl Certs {
    /// Generates everything into `dir` (which must exist).
    pub fn generate(dir: &Path) -> Certs {
        let d = dir;
        make_ca(d, "ca", "mqtt-sync test CA");
        make_ca(d, "other-ca", "unrelated test CA");
        rsa_key(d, "server");
        sign(d, "ca", "server", "localhost", SERVER_EXT);
        rsa_key(d, "wrong-host");
        sign(d, "ca", "wrong-host", "wrong.example", WRONG_EXT);
        rsa_key(d, "client");
        sign(d, "ca", "client", "test-client", CLIENT_EXT);
        openssl(
            d,
            &[
                "rsa",
                "-in",
                "client.key",
                "-traditional",
                "-out",
                "client-pkcs1.key",
            ],
        );
        openssl(
            d,
            &[
                "pkcs8",
                "-topk8",
                "-v2",
                "aes-256-cbc",
                "-in",
                "client.key",
                "-passout",
                &format!("pass:{KEY_PASSWORD}"),
                "-out",
                "client-encrypted.key",
            ],
        );
        openssl(
            d,
            &[
                "rsa",
                "-in",
                "client.key",
                "-traditional",
                "-aes256",
                "-passout",
                &format!("pass:{KEY_PASSWORD}"),
                "-out",
                "client-legacy-encrypted.key",
            ],
        );
        let combined = format!(
            "{}{}",
            std::fs::read_to_string(d.join("client.pem")).unwrap(),
            std::fs::read_to_string(d.join("client-pkcs1.key")).unwrap()
        );
        std::fs::write(d.join("client-combined.pem"), combined).unwrap();
        openssl(
            d,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "client-ec.key",
            ],
        );
        sign(d, "ca", "client-ec", "test-client-ec", CLIENT_EXT);
        let p = |n: &str| d.join(n);
        let certs = Certs {
            ca: p("ca.pem"),
            ca_key: p("ca.key"),
            server_cert: p("server.pem"),
            server_key: p("server.key"),
            wrong_host_cert: p("wrong-host.pem"),
            wrong_host_key: p("wrong-host.key"),
            client_cert: p("client.pem"),
            client_key: p("client.key"),
            client_key_pkcs1: p("client-pkcs1.key"),
            client_key_encrypted: p("client-encrypted.key"),
            client_key_legacy_encrypted: p("client-legacy-encrypted.key"),
            client_combined: p("client-combined.pem"),
            client_ec_cert: p("client-ec.pem"),
            client_ec_key: p("client-ec.key"),
            other_ca: p("other-ca.pem"),
            other_ca_key: p("other-ca.key"),
            dir: dir.to_path_buf(),
        };
        // Readable by a broker that dropped its privileges.
        for f in certs.files() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644));
        }
        certs.check_formats();
        certs
    }

    /// One set per test binary, in a temporary directory that lives as long as the process
    /// (under cargo's target/tmp when available). The directory is named after the process
    /// id; as statics are never dropped, each binary removes the directories of processes
    /// that have exited.
    pub fn shared() -> &'static Certs {
        static CERTS: OnceLock<(tempfile::TempDir, Certs)> = OnceLock::new();
        &CERTS
            .get_or_init(|| {
                let root = option_env!("CARGO_TARGET_TMPDIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(std::env::temp_dir);
                let _ = std::fs::create_dir_all(&root);
                sweep_stale(&root);
                let dir = tempfile::Builder::new()
                    .prefix(&format!("certs-{}-", std::process::id()))
                    .tempdir_in(&root)
                    .expect("temp dir");
                use std::os::unix::fs::PermissionsExt;
                let _ =
                    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
                let certs = Certs::generate(dir.path());
                (dir, certs)
            })
            .1
    }

    fn files(&self) -> [&Path; 16] {
        [
            &self.ca,
            &self.ca_key,
            &self.server_cert,
            &self.server_key,
            &self.wrong_host_cert,
            &self.wrong_host_key,
            &self.client_cert,
            &self.client_key,
            &self.client_key_pkcs1,
            &self.client_key_encrypted,
            &self.client_key_legacy_encrypted,
            &self.client_combined,
            &self.client_ec_cert,
            &self.client_ec_key,
            &self.other_ca,
            &self.other_ca_key,
        ]
    }

    fn check_formats(&self) {
        let first_line = |p: &Path| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(first_line(&self.client_key), "-----BEGIN PRIVATE KEY-----");
        assert_eq!(
            first_line(&self.client_key_pkcs1),
            "-----BEGIN RSA PRIVATE KEY-----"
        );
        assert_eq!(
            first_line(&self.client_key_encrypted),
            "-----BEGIN ENCRYPTED PRIVATE KEY-----"
        );
        let legacy = std::fs::read_to_string(&self.client_key_legacy_encrypted).unwrap();
        assert!(
            legacy.starts_with("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED"),
            "{legacy}"
        );
        assert_eq!(
            first_line(&self.client_ec_key),
            "-----BEGIN EC PRIVATE KEY-----"
        );
    }

    /// mosquitto listener lines for TLS with `cert`/`key` as the server identity, trusting
    /// the test CA for client certificates, requiring one when `require_certificate`.
    pub fn mosquitto_tls_with(&self, cert: &Path, key: &Path, require_certificate: bool) -> String {
        format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
            self.ca.display(),
            cert.display(),
            key.display(),
            require_certificate
        )
    }

    /// mosquitto listener lines for TLS with the `localhost` server certificate.
    pub fn mosquitto_tls(&self, require_certificate: bool) -> String {
        self.mosquitto_tls_with(&self.server_cert, &self.server_key, require_certificate)
    }
}

/// Removes `certs-<pid>-*` directories whose process is gone (and older unnamed ones).
fn sweep_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("certs-") else {
            continue;
        };
        let alive = rest
            .split('-')
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
