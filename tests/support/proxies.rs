//! Real proxies on free 127.0.0.1 ports, each a child process killed on drop:
//!
//! - [`Proxy::microsocks`]: SOCKS5 (`microsocks`), with or without username/password;
//! - [`Proxy::dante`]: SOCKS5 without authentication (Debian's `danted`; its username method
//!   checks system accounts, so authenticated SOCKS5 tests use microsocks);
//! - [`Proxy::tinyproxy`]: HTTP CONNECT (`tinyproxy`), with or without basic authentication,
//!   allowing CONNECT to any port.
//!
//! ```ignore
//! let px = Proxy::microsocks(Some(("user", "pass")));
//! client.proxy_set(px.options())?;
//! ```
//!
//! Each runs in its own process group (danted forks helpers), and the whole group is killed
//! on drop. `options()` gives matching `ProxyOptions` field values as a [`ProxySpec`] that a
//! test turns into the crate's `ProxyOptions` (support code does not depend on the crate).
//! Uses only std and `tempfile`.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Socks5,
    Http,
}

/// What a test needs to configure the client for this proxy.
#[derive(Clone, Debug)]
pub struct ProxySpec {
    pub kind: Kind,
    pub addr: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

pub struct Proxy {
    child: Child,
    pub spec: ProxySpec,
    dir: tempfile::TempDir,
    log: PathBuf,
    name: &'static str,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Proxy {
    /// SOCKS5 by microsocks; with `auth`, clients must log in with that user and password.
    pub fn microsocks(auth: Option<(&str, &str)>) -> Proxy {
        Proxy::start_retrying("microsocks", Kind::Socks5, auth, |_dir, port| {
            let mut c = Command::new("microsocks");
            c.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
            if let Some((u, p)) = auth {
                c.args(["-u", u, "-P", p]);
            }
            c
        })
    }

    /// SOCKS5 without authentication by dante (`danted`).
    pub fn dante() -> Proxy {
        Proxy::start_retrying("danted", Kind::Socks5, None, |dir, port| {
            let conf = dir.join("danted.conf");
            let mut text = format!(
                "logoutput: {log}\n\
                 internal: 127.0.0.1 port = {port}\n\
                 external: 127.0.0.1\n\
                 clientmethod: none\n\
                 socksmethod: none\n",
                log = dir.join("proxy.log").display()
            );
            if running_as_root() {
                text.push_str("user.privileged: root\nuser.unprivileged: nobody\n");
            }
            text.push_str(
                "client pass {\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  log: error\n}\n\
                 socks pass {\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  command: connect\n  log: error connect\n}\n",
            );
            std::fs::write(&conf, text).unwrap();
            let mut c = Command::new("danted");
            // -N 1: one helper process is plenty for tests.
            c.arg("-f").arg(&conf).args(["-N", "1"]);
            c
        })
    }

    /// HTTP CONNECT by tinyproxy; with `auth`, clients must send basic authentication.
    pub fn tinyproxy(auth: Option<(&str, &str)>) -> Proxy {
        Proxy::start_retrying("tinyproxy", Kind::Http, auth, |dir, port| {
            let conf = dir.join("tinyproxy.conf");
            let mut text = format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 32\n\
                 LogFile \"{log}\"\nLogLevel Info\nPidFile \"{pid}\"\nAllow 127.0.0.1\n\
                 DisableViaHeader Yes\n",
                log = dir.join("proxy.log").display(),
                pid = dir.join("tinyproxy.pid").display()
            );
            // No ConnectPort line: CONNECT is allowed to every port.
            if let Some((u, p)) = auth {
                text.push_str(&format!("BasicAuth {u} {p}\n"));
            }
            if running_as_root() {
                text.push_str("User root\nGroup root\n");
            }
            std::fs::write(&conf, text).unwrap();
            let mut c = Command::new("tinyproxy");
            c.arg("-d").arg("-c").arg(&conf);
            c
        })
    }

    fn start_retrying(
        name: &'static str,
        kind: Kind,
        auth: Option<(&str, &str)>,
        make: impl Fn(&std::path::Path, u16) -> Command,
    ) -> Proxy {
        let mut last = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let mut cmd = make(dir.path(), port);
            let out_path = dir.path().join("proxy.out");
            let out = std::fs::File::create(&out_path).unwrap();
            cmd.stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .process_group(0);
            let child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => panic!("cannot run {name} (install it with apt-get): {e}"),
            };
            let spec = ProxySpec {
                kind,
                addr: "127.0.0.1".into(),
                port,
                username: auth.map(|a| a.0.to_string()),
                password: auth.map(|a| a.1.to_string()),
            };
            let mut px = Proxy {
                child,
                spec,
                log: dir.path().join("proxy.log"),
                dir,
                name,
            };
            match px.wait_ready() {
                Ok(()) => return px,
                Err(e) => last = e,
            }
        }
        panic!("{name} did not start: {last}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let until = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited with {status}: {}",
                    self.name,
                    self.output()
                ));
            }
            if TcpStream::connect(self.addr()).is_ok() {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(format!(
                    "{} does not listen on {}: {}",
                    self.name,
                    self.addr(),
                    self.output()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.spec.port))
    }

    pub fn port(&self) -> u16 {
        self.spec.port
    }

    /// The proxy's stdout/stderr and log file, for assertion messages.
    pub fn output(&self) -> String {
        format!(
            "{}{}",
            std::fs::read_to_string(self.dir.path().join("proxy.out")).unwrap_or_default(),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    /// The same proxy with other credentials (for refusal tests).
    pub fn spec_with_auth(&self, auth: Option<(&str, &str)>) -> ProxySpec {
        ProxySpec {
            username: auth.map(|a| a.0.to_string()),
            password: auth.map(|a| a.1.to_string()),
            ..self.spec.clone()
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The child leads its own process group (process_group(0)): end the group, which
        // holds only this proxy and the helpers it forked.
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
