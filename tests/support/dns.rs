//! A real DNS server for SRV tests: `dnsmasq` on a free 127.0.0.1 port (UDP and TCP),
//! answering only from its command line, killed on drop.
//!
//! ```ignore
//! let dns = Dnsmasq::start(&[
//!     Srv::new("_mqtt._tcp.prio.test", "localhost", 1883, 10, 0),
//! ], &["prio.test", "empty.test"]);
//! dns.addr(); // the nameserver for srv::lookup / connect_srv
//! ```
//!
//! Every domain in `local_domains` is answered locally only (`--local=/d/`), so a name
//! without a record gets a clean NXDOMAIN instead of a REFUSED for a missing upstream.
//! Uses only std and `tempfile`.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One SRV record: `--srv-host=<name>,<target>,<port>,<priority>,<weight>`.
#[derive(Clone, Debug)]
pub struct Srv {
    pub name: String,
    pub target: String,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

impl Srv {
    pub fn new(name: &str, target: &str, port: u16, priority: u16, weight: u16) -> Srv {
        Srv {
            name: name.into(),
            target: target.into(),
            port,
            priority,
            weight,
        }
    }
}

pub struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A port free for both UDP and TCP on 127.0.0.1 (held by nobody once returned).
fn free_udp_tcp_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free UDP+TCP port on 127.0.0.1");
}

/// A DNS query for `name` type A, id 0x4242.
fn query(name: &str) -> Vec<u8> {
    let mut q = vec![0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

impl Dnsmasq {
    /// Starts dnsmasq with `records`, answering `local_domains` locally, and waits until it
    /// answers over UDP and accepts TCP.
    pub fn start(records: &[Srv], local_domains: &[&str]) -> Dnsmasq {
        let mut last = String::new();
        for _ in 0..5 {
            match Dnsmasq::try_start(records, local_domains) {
                Ok(d) => return d,
                Err(e) => last = e,
            }
        }
        panic!("dnsmasq did not start: {last}");
    }

    fn try_start(records: &[Srv], local_domains: &[&str]) -> Result<Dnsmasq, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        Dnsmasq::try_start_in(dir, free_udp_tcp_port(), records, local_domains)
    }

    /// Stops this dnsmasq and starts a new one on the same address with other records (a
    /// changed DNS answer for clients that keep the nameserver's address).
    pub fn restart_with(&mut self, records: &[Srv], local_domains: &[&str]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.addr.port();
        let mut last = String::new();
        for attempt in 0..10u64 {
            let dir = tempfile::tempdir().expect("temp dir for dnsmasq");
            match Dnsmasq::try_start_in(dir, port, records, local_domains) {
                Ok(new) => {
                    *self = new;
                    return;
                }
                // The port may still be held for a moment (or taken by someone else).
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(50 * (attempt + 1)));
        }
        panic!("dnsmasq did not start again on port {port}: {last}");
    }

    fn try_start_in(
        dir: tempfile::TempDir,
        port: u16,
        records: &[Srv],
        local_domains: &[&str],
    ) -> Result<Dnsmasq, String> {
        let log = dir.path().join("dnsmasq.log");
        let mut cmd = Command::new("dnsmasq");
        cmd.arg("--no-daemon")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg("--no-poll")
            .arg("--pid-file=")
            .arg(format!("--port={port}"))
            .arg("--listen-address=127.0.0.1")
            .arg("--bind-interfaces")
            .arg("--conf-file=/dev/null")
            .arg("--log-queries")
            .arg(format!("--log-facility={}", log.display()));
        for d in local_domains {
            cmd.arg(format!("--local=/{}/", d.trim_matches('.')));
        }
        for r in records {
            cmd.arg(format!(
                "--srv-host={},{},{},{},{}",
                r.name, r.target, r.port, r.priority, r.weight
            ));
        }
        let out =
            std::fs::File::create(dir.path().join("dnsmasq.out")).map_err(|e| e.to_string())?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(|e| e.to_string())?)
            .stderr(out)
            .spawn()
            .map_err(|e| format!("cannot run dnsmasq (install dnsmasq-base): {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let until = Instant::now() + READY_TIMEOUT;
        let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let out =
                    std::fs::read_to_string(dir.path().join("dnsmasq.out")).unwrap_or_default();
                return Err(format!("dnsmasq exited with {status}: {out}"));
            }
            let _ = sock.send_to(&query("ready.invalid"), addr);
            let mut buf = [0u8; 512];
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if n >= 2 && buf[..2] == [0x42, 0x42] && TcpStream::connect(addr).is_ok() {
                    return Ok(Dnsmasq { child, addr, dir });
                }
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                return Err("dnsmasq did not answer in time".into());
            }
        }
    }

    /// The server's address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// dnsmasq's query log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
