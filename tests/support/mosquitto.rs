//! A real mosquitto broker as a child process, on free ports of 127.0.0.1, configured in a
//! temporary folder that also holds its log, password file, ACL file, persistence file and
//! unix socket.
//!
//! ```ignore
//! let broker = Mosquitto::start();                      // plain TCP, anonymous allowed
//! let broker = Mosquitto::builder()
//!     .listener("ws", &["protocol websockets"])
//!     .unix_listener()
//!     .user("alice", "secret")
//!     .allow_anonymous(false)
//!     .start();
//! broker.port_of("ws");
//! ```
//!
//! Lines given to the builder may contain `{dir}`, replaced with the temporary folder.
//! mosquitto runs in the foreground (`mosquitto -c <conf>`); the config says `user root` so
//! that, when the tests run as root, it does not drop to user `mosquitto` (which could
//! neither write its log nor bind a socket in the 0700 temporary folder, nor read keys).

use std::fs::{self, OpenOptions};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::certs::Certs;

/// How long a broker gets to become ready (every listener accepting).
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a start is retried when a just-picked port turned out to be taken.
const PORT_TRIES: usize = 5;
/// The name of the plain TCP listener every broker has.
pub const DEFAULT_LISTENER: &str = "default";

/// Configures a broker before starting it. The temporary folder exists from
/// [`MosquittoBuilder::new`] on ([`MosquittoBuilder::dir`]), so files (certificates…) can be
/// put there first.
pub struct MosquittoBuilder {
    dir: TempDir,
    global: Vec<String>,
    default_lines: Vec<String>,
    listeners: Vec<(String, Vec<String>)>,
    unix: bool,
    users: Vec<(String, String)>,
    acl: Option<String>,
    persistence: bool,
    allow_anonymous: bool,
}

impl Default for MosquittoBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MosquittoBuilder {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mqtt-sync-mosq-")
            .tempdir()
            .expect("create temp dir for mosquitto");
        MosquittoBuilder {
            dir,
            global: Vec::new(),
            default_lines: Vec::new(),
            listeners: Vec::new(),
            unix: false,
            users: Vec::new(),
            acl: None,
            persistence: false,
            allow_anonymous: true,
        }
    }

    /// The temporary folder that will hold the config and files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A global config line, written before any `listener` (e.g. `max_inflight_messages 1`,
    /// `max_keepalive 10`, `retain_available false`).
    pub fn config(mut self, line: &str) -> Self {
        self.global.push(line.to_string());
        self
    }

    /// A line for the default plain TCP listener (e.g. `max_connections 1`).
    pub fn default_listener_config(mut self, line: &str) -> Self {
        self.default_lines.push(line.to_string());
        self
    }

    /// An extra TCP listener on its own free port of 127.0.0.1, followed by `lines`
    /// (e.g. `protocol websockets`, `cafile {dir}/ca.crt`, `require_certificate true`).
    pub fn listener(mut self, name: &str, lines: &[&str]) -> Self {
        assert!(
            name != DEFAULT_LISTENER,
            "listener name {DEFAULT_LISTENER:?} is taken"
        );
        assert!(
            self.listeners.iter().all(|(n, _)| n != name),
            "duplicate listener {name:?}"
        );
        self.listeners.push((
            name.to_string(),
            lines.iter().map(|l| l.to_string()).collect(),
        ));
        self
    }

    /// A TLS listener using `certs` (made with [`Certs::generate`], normally in
    /// [`MosquittoBuilder::dir`]); with `require_certificate` the client must present a
    /// certificate signed by the CA.
    pub fn tls_listener(self, name: &str, certs: &Certs, require_certificate: bool) -> Self {
        let lines = [
            format!("cafile {}", certs.ca.display()),
            format!("certfile {}", certs.server_cert.display()),
            format!("keyfile {}", certs.server_key.display()),
            format!("require_certificate {require_certificate}"),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        self.listener(name, &refs)
    }

    /// A unix-socket listener at `{dir}/mosquitto.sock` (`listener 0 <path>`).
    pub fn unix_listener(mut self) -> Self {
        self.unix = true;
        self
    }

    /// Adds a user to the password file (made with `mosquitto_passwd -b`). Anonymous clients
    /// stay allowed unless [`MosquittoBuilder::allow_anonymous`]`(false)`.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_string(), password.to_string()));
        self
    }

    /// The text of the ACL file (`acl_file`), e.g. `"user alice\ntopic readwrite a/#\n"`.
    pub fn acl(mut self, text: &str) -> Self {
        self.acl = Some(text.to_string());
        self
    }

    /// Persistence to `{dir}/mosquitto.db` (off by default); kept across [`Mosquitto::restart`].
    pub fn persistence(mut self, on: bool) -> Self {
        self.persistence = on;
        self
    }

    /// `allow_anonymous` (true by default).
    pub fn allow_anonymous(mut self, on: bool) -> Self {
        self.allow_anonymous = on;
        self
    }

    /// Starts the broker and waits until every listener accepts connections.
    #[track_caller]
    pub fn start(self) -> Mosquitto {
        let dir_path = self.dir.path().to_path_buf();
        let d = dir_path.display().to_string();
        let subst = |l: &String| l.replace("{dir}", &d);

        if !self.users.is_empty() {
            let passwd = dir_path.join("passwd");
            for (i, (user, pass)) in self.users.iter().enumerate() {
                let mut cmd = Command::new("mosquitto_passwd");
                cmd.arg("-b");
                if i == 0 {
                    cmd.arg("-c");
                }
                let out = cmd
                    .arg(&passwd)
                    .arg(user)
                    .arg(pass)
                    .output()
                    .unwrap_or_else(|e| {
                        panic!("cannot run mosquitto_passwd (is mosquitto installed?): {e}")
                    });
                assert!(
                    out.status.success(),
                    "mosquitto_passwd failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        if let Some(acl) = &self.acl {
            fs::write(dir_path.join("acl"), acl).expect("write acl file");
        }

        let mut global = vec![
            "# generated by tests/support/mosquitto.rs".to_string(),
            "user root".to_string(),
            format!("log_dest file {d}/mosquitto.log"),
            "log_type all".to_string(),
            format!("allow_anonymous {}", self.allow_anonymous),
        ];
        if self.persistence {
            global.push("persistence true".to_string());
            global.push(format!("persistence_location {d}/"));
            global.push("persistence_file mosquitto.db".to_string());
        } else {
            global.push("persistence false".to_string());
        }
        if !self.users.is_empty() {
            global.push(format!("password_file {d}/passwd"));
        }
        if self.acl.is_some() {
            global.push(format!("acl_file {d}/acl"));
        }
        global.extend(self.global.iter().map(subst));

        let mut listeners = vec![Listener {
            name: DEFAULT_LISTENER.to_string(),
            port: 0,
            lines: self.default_lines.iter().map(subst).collect(),
        }];
        for (name, lines) in &self.listeners {
            listeners.push(Listener {
                name: name.clone(),
                port: 0,
                lines: lines.iter().map(subst).collect(),
            });
        }

        let mut m = Mosquitto {
            conf_path: dir_path.join("mosquitto.conf"),
            log_path: dir_path.join("mosquitto.log"),
            output_path: dir_path.join("mosquitto.out"),
            unix: self.unix.then(|| dir_path.join("mosquitto.sock")),
            dir: self.dir,
            global,
            listeners,
            child: None,
        };
        let mut last = String::new();
        for _ in 0..PORT_TRIES {
            m.pick_ports();
            m.write_config();
            match m.launch() {
                Ok(()) => return m,
                Err(Launch::AddrInUse(log)) => last = log,
                Err(Launch::Failed(why)) => panic!(
                    "mosquitto did not start: {why}\n--- config ---\n{}\n--- log ---\n{}",
                    m.config_text(),
                    m.log()
                ),
            }
        }
        panic!("mosquitto could not bind free ports in {PORT_TRIES} tries; last log:\n{last}");
    }
}

struct Listener {
    name: String,
    port: u16,
    lines: Vec<String>,
}

enum Launch {
    AddrInUse(String),
    Failed(String),
}

/// A running mosquitto. Killed (and reaped) on drop.
pub struct Mosquitto {
    dir: TempDir,
    conf_path: PathBuf,
    log_path: PathBuf,
    output_path: PathBuf,
    global: Vec<String>,
    listeners: Vec<Listener>,
    unix: Option<PathBuf>,
    child: Option<Child>,
}

impl Mosquitto {
    /// A broker with one plain TCP listener on 127.0.0.1, anonymous clients allowed, no
    /// persistence.
    #[track_caller]
    pub fn start() -> Mosquitto {
        MosquittoBuilder::new().start()
    }

    pub fn builder() -> MosquittoBuilder {
        MosquittoBuilder::new()
    }

    /// Always `"127.0.0.1"`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The port of the default plain TCP listener.
    pub fn port(&self) -> u16 {
        self.listeners[0].port
    }

    /// `127.0.0.1:port()`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port()))
    }

    /// The port of the listener named `name` (`"default"` is the plain TCP one).
    #[track_caller]
    pub fn port_of(&self, name: &str) -> u16 {
        self.listeners
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("no listener named {name:?}"))
            .port
    }

    /// The path of the unix socket; panics if the broker has no unix listener.
    #[track_caller]
    pub fn unix_path(&self) -> &Path {
        self.unix
            .as_deref()
            .expect("this broker has no unix listener (use .unix_listener())")
    }

    /// The temporary folder holding the config, log and other files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file's text.
    pub fn config_text(&self) -> String {
        fs::read_to_string(&self.conf_path).unwrap_or_default()
    }

    /// The broker's log so far (all starts), followed by anything it wrote to
    /// stdout/stderr. Meant for assertion messages.
    pub fn log(&self) -> String {
        let mut s =
            String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned();
        let out = fs::read(&self.output_path).unwrap_or_default();
        if !out.is_empty() {
            s.push_str("\n--- stdout/stderr ---\n");
            s.push_str(&String::from_utf8_lossy(&out));
        }
        s
    }

    /// The current length of the log, to wait for lines written after this point with
    /// [`Mosquitto::wait_for_log_after`].
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
    /// timeout. E.g. `"Client my-id disconnected"`, `"Received SUBSCRIBE from my-id"`.
    #[track_caller]
    pub fn wait_for_log_after(&self, mark: usize, needle: &str, timeout: Duration) {
        let found = super::wait::poll_until(timeout, || self.log_since(mark).contains(needle));
        if !found {
            panic!(
                "mosquitto log has no {needle:?} within {timeout:?}; log:\n{}",
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

    /// Stops the broker: SIGTERM (so it closes client connections and saves persistence),
    /// waiting up to 5 s, then SIGKILL. Waits for the process to end.
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

    /// Kills the broker with SIGKILL (a crash: no goodbye to clients, no persistence save)
    /// and waits for the process to end.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again (after [`Mosquitto::stop`] or [`Mosquitto::kill`]; stops it
    /// first if it runs) with the same config and ports, and waits until it is ready.
    /// Persistence, when enabled, carries over.
    #[track_caller]
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts a stopped broker again on the same ports; see [`Mosquitto::restart`].
    #[track_caller]
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "broker still running");
        let mut last = String::new();
        for attempt in 0..PORT_TRIES {
            match self.launch() {
                Ok(()) => return,
                Err(Launch::AddrInUse(log)) => last = log,
                Err(Launch::Failed(why)) => panic!(
                    "mosquitto did not restart: {why}\n--- log ---\n{}",
                    self.log()
                ),
            }
            // Someone else holds one of our ports for now (e.g. a client socket that got it
            // as its ephemeral port): back off a little and try again.
            std::thread::sleep(Duration::from_millis(100 * (attempt as u64 + 1)));
        }
        panic!("mosquitto could not bind its previous ports again; last log:\n{last}");
    }

    fn pick_ports(&mut self) {
        // Bind them all at once so they differ, then free them for mosquitto.
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
        let mut text = self.global.join("\n");
        text.push('\n');
        for l in &self.listeners {
            text.push_str(&format!(
                "\n# listener {:?}\nlistener {} 127.0.0.1\n",
                l.name, l.port
            ));
            for line in &l.lines {
                text.push_str(line);
                text.push('\n');
            }
        }
        if let Some(p) = &self.unix {
            text.push_str(&format!(
                "\n# unix socket listener\nlistener 0 {}\n",
                p.display()
            ));
        }
        fs::write(&self.conf_path, text).expect("write mosquitto.conf");
    }

    /// Spawns mosquitto and waits until it logs that it runs and every listener accepts.
    fn launch(&mut self) -> Result<(), Launch> {
        let mark = self.log_mark();
        let out_mark = fs::metadata(&self.output_path)
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        if let Some(p) = &self.unix {
            let _ = fs::remove_file(p);
        }
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.output_path)
            .expect("open mosquitto.out");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf_path)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `mosquitto` (is it installed? apt-get install mosquitto): {e}")
            });
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let new_log = self.log_since(mark);
            let output = fs::read(&self.output_path).unwrap_or_default();
            let new_out =
                String::from_utf8_lossy(output.get(out_mark..).unwrap_or(&[])).into_owned();
            let exited = match self.child.as_mut().unwrap().try_wait() {
                Ok(Some(status)) => Some(status),
                _ => None,
            };
            if let Some(status) = exited {
                self.child = None;
                let both = format!("{new_log}\n{new_out}");
                let msg = format!("mosquitto exited ({status}) during start-up:\n{both}");
                return Err(if both.contains("Address already in use") {
                    Launch::AddrInUse(msg)
                } else {
                    Launch::Failed(msg)
                });
            }
            if new_log.lines().any(|l| l.ends_with(" running")) && self.all_listeners_accept() {
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
        let tcp = self.listeners.iter().all(|l| {
            TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], l.port)),
                Duration::from_millis(200),
            )
            .is_ok()
        });
        tcp && match &self.unix {
            Some(p) => UnixStream::connect(p).is_ok(),
            None => true,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}
