//! A real rumqttd broker (the `rumqttd` crate, version 0.20.0) as a child process on free
//! ports of 127.0.0.1, configured in a temporary folder that also holds its log.
//!
//! ```ignore
//! let broker = Rumqttd::start();                 // a v4 (3.1.1) and a v5 listener
//! let broker = Rumqttd::builder()
//!     .max_payload_size(1024)
//!     .max_inflight_count(2)
//!     .start();
//! client.connect(broker.host(), broker.port(Protocol::V5), 60)?;
//! ```
//!
//! rumqttd speaks one protocol per listener: MQTT 3.1.1 on the `v4` listener, MQTT 5 on the
//! `v5` one ([`Rumqttd::port`] picks by protocol). It has no MQTT 3.1 and keeps nothing on
//! disk: see `docs/interop-rumqttd.md` for what else differs from mosquitto.
//!
//! The broker binary is `mqtt-sync-rumqttd`, the workspace member `interop/rumqttd` (a thin
//! `main` around rumqttd's `Router` and `Server`). The first [`RumqttdBuilder::start`] of a
//! test process builds it with `cargo build -p mqtt-sync-rumqttd --locked --target-dir
//! <target>/rumqttd --config profile.dev.debug=0` (a no-op once built; its own target
//! folder, so that it never waits for the lock of the `cargo test` that runs us). `MQTT_SYNC_RUMQTTD=/path/to/binary` skips the
//! build and uses that binary.

use std::fs::{self, OpenOptions};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mqtt_sync::{Client, Protocol};
use tempfile::TempDir;

use super::broker_client::{client, Probe};

/// How long a broker gets to become ready (every listener accepting).
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a start is retried when a just-picked port turned out to be taken.
const PORT_TRIES: usize = 5;
/// The line the runner prints once every listener accepts.
const READY_LINE: &str = "rumqttd-runner ready";
/// The environment variable naming a prebuilt runner binary.
pub const BIN_ENV: &str = "MQTT_SYNC_RUMQTTD";

/// The runner binary: `$MQTT_SYNC_RUMQTTD`, or built once per test process.
#[track_caller]
pub fn runner_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os(BIN_ENV) {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "{BIN_ENV}={} is not a file", p.display());
            return p;
        }
        build_runner()
    })
}

fn build_runner() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("rumqttd");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let started = Instant::now();
    // Without debug info (the broker's backtraces don't matter here) the build takes ~15%
    // less time and half the disk; no incremental either, whatever the caller's setting, so
    // that every run agrees on the fingerprints and nothing is rebuilt needlessly.
    let out = Command::new(&cargo)
        .args(["build", "--quiet", "--locked", "-p", "mqtt-sync-rumqttd"])
        .args(["--config", "profile.dev.debug=0"])
        .arg("--target-dir")
        .arg(&target)
        .env("CARGO_INCREMENTAL", "0")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo:?} to build mqtt-sync-rumqttd: {e}"));
    assert!(
        out.status.success(),
        "cargo build -p mqtt-sync-rumqttd failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = target.join("debug").join("mqtt-sync-rumqttd");
    assert!(bin.is_file(), "no {} after the build", bin.display());
    eprintln!(
        "rumqttd runner: {} (cargo build took {:?})",
        bin.display(),
        started.elapsed()
    );
    bin
}

/// Configures a broker before starting it. Values are rumqttd's config keys; the defaults
/// suit tests (short connection timeout, 16 MiB packets, 100 in flight).
pub struct RumqttdBuilder {
    dir: TempDir,
    v4: bool,
    v5: bool,
    connection_timeout_ms: u16,
    max_payload_size: usize,
    max_inflight_count: usize,
    max_connections: usize,
    max_outgoing_packet_count: u64,
    users: Vec<(String, String)>,
    log_filter: String,
}

impl Default for RumqttdBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RumqttdBuilder {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mqtt-sync-rumqttd-")
            .tempdir()
            .expect("create temp dir for rumqttd");
        RumqttdBuilder {
            dir,
            v4: true,
            v5: true,
            connection_timeout_ms: 5_000,
            max_payload_size: 16 * 1024 * 1024,
            max_inflight_count: 100,
            max_connections: 1_000,
            max_outgoing_packet_count: 200,
            users: Vec::new(),
            log_filter: "rumqttd=debug".to_string(),
        }
    }

    /// The temporary folder that will hold the config and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether to have the MQTT 3.1.1 (`[v4.1]`) listener (default true).
    pub fn v4(mut self, on: bool) -> Self {
        self.v4 = on;
        self
    }

    /// Whether to have the MQTT 5 (`[v5.1]`) listener (default true).
    pub fn v5(mut self, on: bool) -> Self {
        self.v5 = on;
        self
    }

    /// `connection_timeout_ms`: how long a new TCP connection may wait before its CONNECT
    /// (default 5000).
    pub fn connection_timeout_ms(mut self, ms: u16) -> Self {
        self.connection_timeout_ms = ms;
        self
    }

    /// `max_payload_size`: the largest *remaining length* of an incoming packet, in bytes
    /// (default 16 MiB). A bigger packet closes the connection (no CONNACK property
    /// announces it, no DISCONNECT 0x95 is sent).
    pub fn max_payload_size(mut self, bytes: usize) -> Self {
        self.max_payload_size = bytes;
        self
    }

    /// `max_inflight_count`: outgoing QoS 1/2 messages in flight per connection (default
    /// 100); not announced as Receive Maximum.
    pub fn max_inflight_count(mut self, n: usize) -> Self {
        self.max_inflight_count = n;
        self
    }

    /// `[router] max_connections` (default 1000).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// `[router] max_outgoing_packet_count`: QoS 0 messages read per batch (default 200).
    pub fn max_outgoing_packet_count(mut self, n: u64) -> Self {
        self.max_outgoing_packet_count = n;
        self
    }

    /// Adds a user to the listeners' `auth` table; once there is one, a CONNECT without a
    /// matching username and password is refused.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_string(), password.to_string()));
        self
    }

    /// The `RUST_LOG`-style filter of the broker's log (default `rumqttd=debug`; `trace`
    /// logs every packet).
    pub fn log_filter(mut self, filter: &str) -> Self {
        self.log_filter = filter.to_string();
        self
    }

    /// Starts the broker and waits until every listener accepts connections.
    #[track_caller]
    pub fn start(self) -> Rumqttd {
        assert!(self.v4 || self.v5, "rumqttd needs a v4 or a v5 listener");
        let bin = runner_binary().to_path_buf();
        let dir_path = self.dir.path().to_path_buf();
        let mut listeners = Vec::new();
        if self.v4 {
            listeners.push(Listener {
                kind: "v4",
                port: 0,
            });
        }
        if self.v5 {
            listeners.push(Listener {
                kind: "v5",
                port: 0,
            });
        }
        let mut r = Rumqttd {
            bin,
            conf_path: dir_path.join("rumqttd.toml"),
            log_path: dir_path.join("rumqttd.log"),
            listeners,
            settings: self.settings(),
            log_filter: self.log_filter,
            dir: self.dir,
            child: None,
        };
        let mut last = String::new();
        for _ in 0..PORT_TRIES {
            r.pick_ports();
            r.write_config();
            match r.launch() {
                Ok(()) => return r,
                Err(Launch::AddrInUse(log)) => last = log,
                Err(Launch::Failed(why)) => panic!(
                    "rumqttd did not start: {why}\n--- config ---\n{}\n--- log ---\n{}",
                    r.config_text(),
                    r.log()
                ),
            }
        }
        panic!("rumqttd could not bind free ports in {PORT_TRIES} tries; last log:\n{last}");
    }

    /// The `[vN.1.connections]` table's body and the `[router]` table's body.
    fn settings(&self) -> Settings {
        let mut connections = format!(
            "connection_timeout_ms = {}\nmax_payload_size = {}\nmax_inflight_count = {}\n\
             dynamic_filters = true\n",
            self.connection_timeout_ms, self.max_payload_size, self.max_inflight_count
        );
        if !self.users.is_empty() {
            connections.push_str("auth = { ");
            let pairs: Vec<String> = self
                .users
                .iter()
                .map(|(u, p)| format!("{} = {}", toml_str(u), toml_str(p)))
                .collect();
            connections.push_str(&pairs.join(", "));
            connections.push_str(" }\n");
        }
        let router = format!(
            "id = 0\nmax_connections = {}\nmax_outgoing_packet_count = {}\n\
             max_segment_size = 104857600\nmax_segment_count = 10\n",
            self.max_connections, self.max_outgoing_packet_count
        );
        Settings {
            connections,
            router,
        }
    }
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Settings {
    connections: String,
    router: String,
}

struct Listener {
    /// "v4" or "v5".
    kind: &'static str,
    port: u16,
}

enum Launch {
    AddrInUse(String),
    Failed(String),
}

/// A running rumqttd. Killed (and reaped) on drop; its folder is removed then.
pub struct Rumqttd {
    bin: PathBuf,
    dir: TempDir,
    conf_path: PathBuf,
    log_path: PathBuf,
    listeners: Vec<Listener>,
    settings: Settings,
    log_filter: String,
    child: Option<Child>,
}

impl Rumqttd {
    /// A broker with an MQTT 3.1.1 and an MQTT 5 listener on 127.0.0.1, anonymous clients
    /// allowed.
    #[track_caller]
    pub fn start() -> Rumqttd {
        RumqttdBuilder::new().start()
    }

    pub fn builder() -> RumqttdBuilder {
        RumqttdBuilder::new()
    }

    /// Always `"127.0.0.1"`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The port of the listener for `proto`: the v4 one for MQTT 3.1.1 (and 3.1, which
    /// rumqttd refuses), the v5 one for MQTT 5. Panics if the broker has no such listener.
    #[track_caller]
    pub fn port(&self, proto: Protocol) -> u16 {
        let kind = match proto {
            Protocol::V31 | Protocol::V311 => "v4",
            Protocol::V5 => "v5",
        };
        self.listeners
            .iter()
            .find(|l| l.kind == kind)
            .unwrap_or_else(|| panic!("this broker has no {kind} listener"))
            .port
    }

    /// The MQTT 3.1.1 listener's port.
    #[track_caller]
    pub fn v4_port(&self) -> u16 {
        self.port(Protocol::V311)
    }

    /// The MQTT 5 listener's port.
    #[track_caller]
    pub fn v5_port(&self) -> u16 {
        self.port(Protocol::V5)
    }

    /// `127.0.0.1:port(proto)`.
    #[track_caller]
    pub fn addr(&self, proto: Protocol) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port(proto)))
    }

    /// The temporary folder holding the config and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file's text.
    pub fn config_text(&self) -> String {
        fs::read_to_string(&self.conf_path).unwrap_or_default()
    }

    /// Everything the broker wrote (stdout and stderr, all starts). Meant for assertion
    /// messages.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// The current length of the log, to wait for lines written after this point with
    /// [`Rumqttd::wait_for_log_after`].
    pub fn log_mark(&self) -> usize {
        fs::metadata(&self.log_path)
            .map(|m| m.len() as usize)
            .unwrap_or(0)
    }

    /// Waits until the log contains `needle` (anywhere); panics with the log on timeout.
    #[track_caller]
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        self.wait_for_log_after(0, needle, timeout)
    }

    /// Waits until the log, from byte `mark` on, contains `needle`; panics with the log on
    /// timeout. E.g. `"Client connection registered"`, `"Disconnecting connection"` (with
    /// the default `rumqttd=debug` filter lines carry `client_id=...`).
    #[track_caller]
    pub fn wait_for_log_after(&self, mark: usize, needle: &str, timeout: Duration) {
        let found = super::wait::poll_until(timeout, || self.log_since(mark).contains(needle));
        if !found {
            panic!(
                "rumqttd log has no {needle:?} within {timeout:?}; log:\n{}",
                self.log()
            );
        }
    }

    fn log_since(&self, mark: usize) -> String {
        let bytes = fs::read(&self.log_path).unwrap_or_default();
        let from = if bytes.len() >= mark { mark } else { 0 };
        String::from_utf8_lossy(&bytes[from..]).into_owned()
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the broker process is still alive.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().map(|s| s.is_none()).unwrap_or(false),
            None => false,
        }
    }

    /// Stops the broker with SIGTERM (waiting up to 5 s, then SIGKILL) and waits for the
    /// process to end. rumqttd has no shutdown of its own: SIGTERM ends it at once, its
    /// sockets are closed by the kernel, it sends no DISCONNECT and keeps no state, so this
    /// is the same as [`Rumqttd::kill`] for the clients.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let ended = super::wait::poll_until(Duration::from_secs(5), || {
                !matches!(child.try_wait(), Ok(None))
            });
            if !ended {
                let _ = child.kill();
            }
        }
        let _ = child.wait();
    }

    /// Kills the broker with SIGKILL and waits for the process to end.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the broker and starts it again on the same ports, waiting until it is ready.
    /// Nothing carries over: retained messages and sessions are lost (rumqttd keeps them in
    /// memory only).
    #[track_caller]
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts a stopped broker again with the same config and ports; see
    /// [`Rumqttd::restart`].
    #[track_caller]
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "broker still running");
        let mut last = String::new();
        for attempt in 0..PORT_TRIES {
            match self.launch() {
                Ok(()) => return,
                Err(Launch::AddrInUse(log)) => last = log,
                Err(Launch::Failed(why)) => {
                    panic!(
                        "rumqttd did not restart: {why}\n--- log ---\n{}",
                        self.log()
                    )
                }
            }
            // Someone else holds one of our ports for now (e.g. a client socket that got it
            // as its ephemeral port): back off a little and try again.
            std::thread::sleep(Duration::from_millis(100 * (attempt as u64 + 1)));
        }
        panic!("rumqttd could not bind its previous ports again; last log:\n{last}");
    }

    fn pick_ports(&mut self) {
        // Bind them all at once so they differ, then free them for rumqttd.
        let held: Vec<TcpListener> = self
            .listeners
            .iter()
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
            .collect();
        for (l, h) in self.listeners.iter_mut().zip(&held) {
            l.port = h.local_addr().unwrap().port();
        }
    }

    fn write_config(&self) {
        let mut text = format!(
            "# generated by tests/support/rumqttd.rs\nid = 0\n\n[router]\n{}",
            self.settings.router
        );
        for l in &self.listeners {
            text.push_str(&format!(
                "\n[{kind}.1]\nname = \"{kind}\"\nlisten = \"127.0.0.1:{port}\"\n\
                 next_connection_delay_ms = 0\n\n[{kind}.1.connections]\n{conn}",
                kind = l.kind,
                port = l.port,
                conn = self.settings.connections
            ));
        }
        fs::write(&self.conf_path, text).expect("write rumqttd.toml");
    }

    /// Spawns the runner and waits until it says it is ready and every listener accepts.
    fn launch(&mut self) -> Result<(), Launch> {
        let mark = self.log_mark();
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open rumqttd.log");
        let child = Command::new(&self.bin)
            .arg(&self.conf_path)
            .current_dir(self.dir.path())
            .env("RUST_LOG", &self.log_filter)
            .env_remove("RUST_LOG_STYLE")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let new_log = self.log_since(mark);
            if let Ok(Some(status)) = self.child.as_mut().unwrap().try_wait() {
                self.child = None;
                let new_log = self.log_since(mark);
                let msg = format!("rumqttd exited ({status}) during start-up:\n{new_log}");
                return Err(
                    if new_log.contains("AddrInUse") || new_log.contains("Address already in use") {
                        Launch::AddrInUse(msg)
                    } else {
                        Launch::Failed(msg)
                    },
                );
            }
            if new_log.contains(READY_LINE) && self.all_listeners_accept() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(Launch::Failed(format!(
                    "not ready within {READY_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn all_listeners_accept(&self) -> bool {
        self.listeners.iter().all(|l| {
            TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], l.port)),
                Duration::from_millis(200),
            )
            .is_ok()
        })
    }
}

impl Drop for Rumqttd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A client (from [`super::broker_client::client`]) with a probe, connected to the listener of
/// `proto` with `loop_start`.
#[track_caller]
pub fn started(broker: &Rumqttd, proto: Protocol, id: &str) -> (Client, Probe) {
    let c = client(proto, id);
    let p = Probe::attach(&c);
    c.connect(broker.host(), broker.port(proto), 60)
        .expect("connect");
    c.loop_start().expect("loop_start");
    p.connected();
    (c, p)
}
