//! Shared helpers: the client command line, clocks, RSS, MQTT framing.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The common client command line (`key=value` pairs). `window=0` means the client's default.
#[derive(Clone, Debug)]
pub struct Args {
    pub host: String,
    pub port: u16,
    pub n: u64,
    pub qos: u8,
    pub size: usize,
    pub window: u16,
    pub topic: String,
    pub nodelay: bool,
    pub secs: u64,
    pub clients: usize,
    pub id: String,
    /// mqtt-sync only: `max_outgoing_bytes_set` (0 = the default).
    pub outgoing: usize,
    /// mqtt-sync only: the session store (`none`, `mem`, `file-never`, `file-every64`,
    /// `file-always`); file stores live in the system's temporary folder.
    pub store: String,
}

impl Args {
    pub fn parse(kv: &[String]) -> Args {
        let mut a = Args {
            host: "127.0.0.1".into(),
            port: 1883,
            n: 1000,
            qos: 0,
            size: 64,
            window: 0,
            topic: "bench/t".into(),
            nodelay: true,
            secs: 30,
            clients: 1000,
            id: format!("bench-{}", std::process::id()),
            outgoing: 0,
            store: "none".into(),
        };
        for s in kv {
            let Some((k, v)) = s.split_once('=') else {
                continue;
            };
            match k {
                "host" => a.host = v.into(),
                "port" => a.port = v.parse().expect("port"),
                "n" => a.n = v.parse().expect("n"),
                "qos" => a.qos = v.parse().expect("qos"),
                "size" => a.size = v.parse().expect("size"),
                "window" => a.window = v.parse().expect("window"),
                "topic" => a.topic = v.into(),
                "nodelay" => a.nodelay = v != "0",
                "secs" => a.secs = v.parse().expect("secs"),
                "clients" => a.clients = v.parse().expect("clients"),
                "id" => a.id = v.into(),
                "outgoing" => a.outgoing = v.parse().expect("outgoing"),
                "store" => a.store = v.into(),
                _ => {}
            }
        }
        a
    }
}

pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

pub fn ready() {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "READY");
    let _ = o.flush();
}

/// VmRSS of this process in KiB.
pub fn rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) of this process.
pub fn self_cpu() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the zeroed struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

pub fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Percentiles of latency samples in µs: (p50, p99, max).
pub fn percentiles(mut v: Vec<Duration>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort();
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[i].as_secs_f64() * 1e6
    };
    (at(0.5), at(0.99), at(1.0))
}

pub fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

/// Splits the first complete packet off `buf`: (byte1, header length, total length).
pub fn frame(buf: &[u8]) -> Option<(u8, usize, usize)> {
    let b1 = *buf.first()?;
    let mut len = 0usize;
    let mut mul = 1usize;
    for i in 1..5 {
        let b = *buf.get(i)?;
        len += (b & 0x7f) as usize * mul;
        mul *= 128;
        if b & 0x80 == 0 {
            let total = i + 1 + len;
            return (buf.len() >= total).then_some((b1, i + 1, total));
        }
    }
    None
}
