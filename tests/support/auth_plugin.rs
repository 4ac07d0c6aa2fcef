//! A mosquitto with MQTT 5 enhanced authentication: the SCRAM-SHA-256 plugin of
//! `tests/plugins/scram_auth.c`, compiled once per test process, loaded into a broker from
//! [`super::mosquitto`].
//!
//! ```ignore
//! let broker = AuthBroker::start(&[("alice", "secret"), ("bob", "pw")]);
//! let broker = AuthBroker::new(&[("alice", "secret")]).refuse_reauth().launch();
//! let broker = AuthBroker::new(&[("alice", "secret")])
//!     .apply(Mosquitto::builder().listener("ws", &["protocol websockets"]))
//!     .start();
//! ```
//!
//! Building needs a C compiler (`cc`) and the headers of the Debian packages
//! `mosquitto-dev` (mosquitto_broker.h, mosquitto_plugin.h), `libmosquitto-dev`
//! (mosquitto.h) and `libssl-dev` (OpenSSL's libcrypto); a missing one is named in the
//! panic message. The plugin, its options and what mosquitto 2.0.11 answers in each case
//! are described in the C file and in `tests/auth_plugin_selftest.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::mosquitto::{Mosquitto, MosquittoBuilder};

/// The authentication method the plugin implements.
pub const METHOD: &str = "SCRAM-SHA-256";

/// The plugin's C source.
pub const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/plugins/scram_auth.c");

/// Prefix of the per-process directories (under cargo's target/tmp) holding the build.
const DIR_PREFIX: &str = "auth-plugin-";

/// The compiled plugin.
pub struct Plugin {
    /// The shared object to name in `plugin <path>`.
    pub path: PathBuf,
    /// What the compiler printed (warnings); empty for a clean build.
    pub compiler_output: String,
    /// How long the compile took.
    pub build_time: Duration,
}

/// The plugin, compiled on first use in this process into `target/tmp/auth-plugin-<pid>-*`.
/// Panics with the missing Debian package when the build fails for want of one.
pub fn plugin() -> &'static Plugin {
    static PLUGIN: OnceLock<(tempfile::TempDir, Plugin)> = OnceLock::new();
    &PLUGIN
        .get_or_init(|| {
            let root = option_env!("CARGO_TARGET_TMPDIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            let _ = std::fs::create_dir_all(&root);
            sweep_stale(&root);
            let dir = tempfile::Builder::new()
                .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
                .tempdir_in(&root)
                .expect("temp dir for the auth plugin");
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
            let plugin = build(dir.path()).unwrap_or_else(|e| panic!("{e}"));
            (dir, plugin)
        })
        .1
}

/// Compiles [`SOURCE`] into `dir/scram_auth.so`.
pub fn build(dir: &Path) -> Result<Plugin, String> {
    let out_path = dir.join("scram_auth.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let started = Instant::now();
    let out = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-o"])
        .arg(&out_path)
        .arg(SOURCE)
        .arg("-lcrypto")
        .output()
        .map_err(|e| {
            format!(
                "cannot run the C compiler `{cc}` to build the mosquitto auth plugin ({e}): \
                 install the Debian package gcc (or set CC)"
            )
        })?;
    let build_time = started.elapsed();
    let compiler_output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!(
            "building the mosquitto auth plugin failed{}\n--- {cc} output ---\n{compiler_output}",
            missing_package_hint(&compiler_output)
        ));
    }
    Ok(Plugin {
        path: out_path,
        compiler_output,
        build_time,
    })
}

/// Names the Debian package whose absence the compiler output shows.
fn missing_package_hint(output: &str) -> String {
    let missing_header = |h: &str| {
        output
            .lines()
            .any(|l| l.contains(h) && l.contains("No such file"))
    };
    let package = if missing_header("mosquitto_broker.h") || missing_header("mosquitto_plugin.h") {
        Some("mosquitto-dev")
    } else if missing_header("mosquitto.h") {
        Some("libmosquitto-dev")
    } else if missing_header("openssl/") || output.contains("cannot find -lcrypto") {
        Some("libssl-dev")
    } else {
        None
    };
    match package {
        Some(p) => format!(
            ": the Debian package {p} is missing (apt-get install {p}, or run scripts/install-deps)"
        ),
        None => String::new(),
    }
}

/// Removes `auth-plugin-<pid>-*` directories whose process is gone (statics are never
/// dropped, so each test binary cleans up after the earlier ones, as certs.rs does).
fn sweep_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
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

/// A broker with the SCRAM plugin (global `plugin` line, so it applies to every listener
/// of a builder without `per_listener_settings`).
pub struct AuthBroker {
    users: Vec<(String, String)>,
    iterations: Option<u32>,
    reauth: bool,
}

impl AuthBroker {
    /// Starts a broker whose plugin knows `users` (name, password) and allows
    /// re-authentication.
    #[track_caller]
    pub fn start(users: &[(&str, &str)]) -> Mosquitto {
        AuthBroker::new(users).launch()
    }

    /// Plugin settings for `users`; at least one. Names and passwords may not contain
    /// `,` or white space, names not `:` (the option syntax is `name:password,...`).
    #[track_caller]
    pub fn new(users: &[(&str, &str)]) -> AuthBroker {
        assert!(!users.is_empty(), "the plugin needs at least one user");
        for (name, password) in users {
            let bad = |s: &str| s.contains(',') || s.chars().any(char::is_whitespace);
            assert!(
                !name.is_empty() && !bad(name) && !name.contains(':') && !bad(password),
                "user {name:?}: names and passwords cannot hold ',' or white space, names \
                 not ':'"
            );
        }
        AuthBroker {
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            iterations: None,
            reauth: true,
        }
    }

    /// The PBKDF2 iteration count the server asks for (`plugin_opt_iterations`; the
    /// plugin's default is 4096).
    pub fn iterations(mut self, n: u32) -> AuthBroker {
        self.iterations = Some(n);
        self
    }

    /// Makes the plugin refuse every re-authentication (`plugin_opt_reauth deny`).
    pub fn refuse_reauth(mut self) -> AuthBroker {
        self.reauth = false;
        self
    }

    /// The mosquitto.conf lines loading the plugin (global, before any listener).
    pub fn config_lines(&self) -> Vec<String> {
        let plugin = plugin();
        let path = plugin.path.display().to_string();
        assert!(
            !path.chars().any(char::is_whitespace),
            "plugin path {path:?} has white space, which mosquitto.conf cannot hold"
        );
        let users: Vec<String> = self.users.iter().map(|(u, p)| format!("{u}:{p}")).collect();
        let mut lines = vec![
            format!("plugin {path}"),
            format!("plugin_opt_users {}", users.join(",")),
            format!(
                "plugin_opt_reauth {}",
                if self.reauth { "allow" } else { "deny" }
            ),
        ];
        if let Some(n) = self.iterations {
            lines.push(format!("plugin_opt_iterations {n}"));
        }
        lines
    }

    /// Adds the plugin lines to `builder` (to combine with other listeners or settings).
    pub fn apply(&self, builder: MosquittoBuilder) -> MosquittoBuilder {
        self.config_lines()
            .iter()
            .fold(builder, |b, line| b.config(line))
    }

    /// Starts the broker and waits until the plugin has logged its start-up line.
    #[track_caller]
    pub fn launch(self) -> Mosquitto {
        let broker = self.apply(Mosquitto::builder()).start();
        broker.wait_for_log("scram_auth: method SCRAM-SHA-256", super::wait::T);
        broker
    }
}
