//! The driver: starts mosquitto and the sink, runs every client as its own process per run
//! (CPU and peak RSS from `wait4`'s rusage), aggregates rounds and writes the report.

use crate::util::tv;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Peer {
    name: &'static str,
    cmd: Vec<String>,
    /// Workloads this peer implements.
    can: &'static [&'static str],
}

#[derive(Default, Clone, Debug)]
struct Outcome {
    ok: bool,
    kv: HashMap<String, f64>,
    cpu_s: f64,
    maxrss_kb: f64,
    note: String,
}

impl Outcome {
    fn get(&self, k: &str) -> f64 {
        self.kv.get(k).copied().unwrap_or(f64::NAN)
    }
}

struct Proc {
    child: Child,
    lines: Receiver<String>,
}

fn spawn(cmd: &[String], args: &[String]) -> Result<Proc, String> {
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", cmd[0]))?;
    let out = child.stdout.take().expect("piped");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    Ok(Proc { child, lines: rx })
}

impl Proc {
    fn wait_ready(&self, t: Duration) -> bool {
        let end = Instant::now() + t;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l.trim() == "READY" => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// wait4 with a watchdog; parses the RESULT line.
    fn finish(self, timeout: Duration) -> Outcome {
        let pid = self.child.id() as libc::pid_t;
        let (wtx, wrx) = channel::<()>();
        let dog = std::thread::spawn(move || {
            if wrx.recv_timeout(timeout).is_err() {
                // SAFETY: plain kill(2) of our own child, which has not been reaped yet.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return true;
            }
            false
        });
        let mut status = 0;
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child pid with out-pointers to locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        let _ = wtx.send(());
        let killed = dog.join().unwrap_or(false);
        let mut o = Outcome {
            cpu_s: (tv(ru.ru_utime) + tv(ru.ru_stime)).as_secs_f64(),
            maxrss_kb: ru.ru_maxrss as f64,
            ..Outcome::default()
        };
        let exited_ok = r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            if let Some(rest) = l.strip_prefix("RESULT ") {
                for kv in rest.split_whitespace() {
                    if let Some((k, v)) = kv.split_once('=') {
                        if let Ok(v) = v.parse() {
                            o.kv.insert(k.to_string(), v);
                        }
                    }
                }
            }
        }
        o.ok = exited_ok && !o.kv.is_empty();
        if killed {
            o.note = format!("killed after {timeout:?}");
        } else if !exited_ok {
            o.note = format!("exit status {status}");
        }
        o
    }
}

fn run_one(cmd: &[String], args: &[String], timeout: Duration) -> Outcome {
    match spawn(cmd, args) {
        Ok(p) => p.finish(timeout),
        Err(e) => Outcome {
            note: e,
            ..Outcome::default()
        },
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_port(port: u16) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The mosquitto settings every workload runs with (written into the report).
const MOSQ_CONF: &str = "\
allow_anonymous true
persistence false
log_dest stderr
log_type error
# QoS 0 to a slow subscriber is dropped once its queue exceeds max_queued_messages;
# 0 = unlimited, so receive and counted workloads lose nothing.
max_queued_messages 0
max_queued_bytes 0
# broker -> client window unlimited (the client's window is what is measured).
max_inflight_messages 0
# Nagle on the broker side would add delayed-ACK stalls to round trips of every client.
set_tcp_nodelay true
max_connections -1
";

/// mosquitto as it ships (Nagle on, default queues and window): round trips against it show
/// what a user with an unconfigured broker sees.
const MOSQ_DEFAULT_CONF: &str = "\
allow_anonymous true
persistence false
log_dest stderr
log_type error
";

fn start_mosquitto(dir: &std::path::Path, port: u16, settings: &str) -> Result<Daemon, String> {
    let mut conf = format!("listener {port} 127.0.0.1\n{settings}");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        conf.push_str("user root\n");
    }
    let path = dir.join(format!("mosquitto-{port}.conf"));
    std::fs::write(&path, conf).map_err(|e| e.to_string())?;
    let bin = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("mosquitto");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("mosquitto: {e}"))?;
    let d = Daemon(child);
    if !wait_port(port) {
        return Err("mosquitto did not listen".into());
    }
    Ok(d)
}

#[derive(Clone)]
struct Sizes {
    q0: u64,
    q1: u64,
    q2: u64,
    rtt: u64,
    idle_s: u64,
    many: usize,
    p16: u64,
    p1k: u64,
    p64k: u64,
    timeout: Duration,
}

/// One benchmark cell: a workload for every client.
#[derive(Clone)]
struct Work {
    key: String,
    title: String,
    kind: Kind,
    /// client args (host/port filled in later)
    args: Vec<String>,
    n: u64,
    size: usize,
    clients: Vec<&'static str>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// client publishes; done at its own completion signal
    Pub,
    /// client publishes; done when a raw subscriber counted all
    Counted,
    /// raw feeder publishes, client subscribes
    Recv,
    Rtt,
}

fn a(kv: &[(&str, String)]) -> Vec<String> {
    kv.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn workloads(s: &Sizes, all: &[&'static str]) -> Vec<Work> {
    let mut w = Vec::new();
    let every = all.to_vec();
    let libs: Vec<&'static str> = all.iter().copied().filter(|c| *c != "raw").collect();
    for (target, tname) in [
        ("sink", "ack-only sink (client alone)"),
        ("mosq", "mosquitto"),
    ] {
        for (qos, n) in [(0u8, s.q0), (1, s.q1), (2, s.q2)] {
            let windows: &[u16] = if qos == 0 { &[100] } else { &[100, 0] };
            for &win in windows {
                let wname = match (qos, win) {
                    (0, _) => "no window (QoS 0)".to_string(),
                    (_, 0) => "each client's default window".to_string(),
                    (_, w) => format!("window {w}"),
                };
                w.push(Work {
                    key: format!(
                        "pub-{target}-q{qos}{}",
                        if qos == 0 {
                            String::new()
                        } else if win == 0 {
                            "-wdef".into()
                        } else {
                            format!("-w{win}")
                        }
                    ),
                    title: format!("Publish {n} x 64 B at QoS {qos} to {tname}, {wname}"),
                    kind: Kind::Pub,
                    args: a(&[
                        ("n", n.to_string()),
                        ("qos", qos.to_string()),
                        ("size", "64".into()),
                        ("window", win.to_string()),
                        ("target", target.into()),
                    ]),
                    n,
                    size: 64,
                    clients: every.clone(),
                });
            }
        }
    }
    w.push(Work {
        key: "pub-mosq-q0-counted".into(),
        title: format!(
            "Publish {} x 64 B at QoS 0 to mosquitto, until a separate (raw) subscriber counted all",
            s.q0
        ),
        kind: Kind::Counted,
        args: a(&[("n", s.q0.to_string()), ("qos", "0".into()), ("size", "64".into())]),
        n: s.q0,
        size: 64,
        clients: every.clone(),
    });
    w.push(Work {
        key: "recv-q0".into(),
        title: format!(
            "Receive {} x 64 B at QoS 0 (raw publisher feeds mosquitto, client counts on_message)",
            s.q0
        ),
        kind: Kind::Recv,
        args: a(&[
            ("n", s.q0.to_string()),
            ("qos", "0".into()),
            ("size", "64".into()),
        ]),
        n: s.q0,
        size: 64,
        clients: every.clone(),
    });
    for qos in [0u8, 1] {
        w.push(Work {
            key: format!("rtt-q{qos}"),
            title: format!(
                "Round trip at QoS {qos}: publish to a topic the client subscribes to, one at a time, {} samples",
                s.rtt
            ),
            kind: Kind::Rtt,
            args: a(&[("n", s.rtt.to_string()), ("qos", qos.to_string()), ("size", "64".into())]),
            n: s.rtt,
            size: 64,
            clients: every.clone(),
        });
    }
    for qos in [0u8, 1] {
        w.push(Work {
            key: format!("rtt-default-q{qos}"),
            title: format!(
                "Round trip at QoS {qos} against mosquitto with its default configuration (Nagle on), {} samples",
                s.rtt
            ),
            kind: Kind::Rtt,
            args: a(&[
                ("n", s.rtt.to_string()),
                ("qos", qos.to_string()),
                ("size", "64".into()),
                ("target", "mosqdef".into()),
            ]),
            n: s.rtt,
            size: 64,
            clients: every.clone(),
        });
    }
    for (size, n, label) in [
        (16usize, s.p16, "16 B"),
        (1024, s.p1k, "1 KiB"),
        (65536, s.p64k, "64 KiB"),
    ] {
        w.push(Work {
            key: format!("payload-{size}"),
            title: format!(
                "Payload {label}: publish {n} at QoS 0 to mosquitto (own completion signal)"
            ),
            kind: Kind::Pub,
            args: a(&[
                ("n", n.to_string()),
                ("qos", "0".into()),
                ("size", size.to_string()),
                ("target", "mosq".into()),
            ]),
            n,
            size,
            clients: every.clone(),
        });
    }
    for nd in [1u8, 0] {
        w.push(Work {
            key: format!("nodelay{nd}-q1"),
            title: format!(
                "TCP_NODELAY {}: mqtt-sync publishes {} x 64 B at QoS 1 to mosquitto, window 100",
                if nd == 1 { "on" } else { "off" },
                s.q1
            ),
            kind: Kind::Pub,
            args: a(&[
                ("n", s.q1.to_string()),
                ("qos", "1".into()),
                ("size", "64".into()),
                ("window", "100".into()),
                ("nodelay", nd.to_string()),
                ("target", "mosq".into()),
            ]),
            n: s.q1,
            size: 64,
            clients: vec!["mqtt-sync"],
        });
        w.push(Work {
            key: format!("nodelay{nd}-rtt-q1"),
            title: format!(
                "TCP_NODELAY {}: mqtt-sync round trip at QoS 1, {} samples",
                if nd == 1 { "on" } else { "off" },
                s.rtt
            ),
            kind: Kind::Rtt,
            args: a(&[
                ("n", s.rtt.to_string()),
                ("qos", "1".into()),
                ("size", "64".into()),
                ("nodelay", nd.to_string()),
            ]),
            n: s.rtt,
            size: 64,
            clients: vec!["mqtt-sync"],
        });
    }
    w.push(Work {
        key: "pub-mosq-q0-out256k".into(),
        title: format!(
            "Publish {} x 64 B at QoS 0 to mosquitto, mqtt-sync with max_outgoing_bytes_set(256 KiB)",
            s.q0
        ),
        kind: Kind::Pub,
        args: a(&[
            ("n", s.q0.to_string()),
            ("qos", "0".into()),
            ("size", "64".into()),
            ("outgoing", (256 * 1024).to_string()),
            ("target", "mosq".into()),
        ]),
        n: s.q0,
        size: 64,
        clients: vec!["mqtt-sync", "rumqttc"],
    });
    // Persistence (Client::persistence_set): the same QoS 1 stream with no store (the
    // default), an in-memory store and the file store under each sync policy. Fewer
    // messages: with an fdatasync per record the stream runs at disk speed.
    let n = s.q1.min(10_000);
    for (store, name) in [
        ("none", "no store (default)"),
        ("mem", "MemoryStore"),
        ("file-never", "FileStore, SyncPolicy::Never"),
        ("file-every64", "FileStore, SyncPolicy::EveryN(64)"),
        (
            "file-always",
            "FileStore, SyncPolicy::Always (fdatasync per record)",
        ),
        (
            "file-beforesend",
            "FileStore, SyncPolicy::BeforeSend (fdatasync per socket write)",
        ),
    ] {
        w.push(Work {
            key: format!("store-{store}-pub-mosq-q1-w100"),
            title: format!(
                "Persistence: mqtt-sync publishes {} x 64 B at QoS 1 to mosquitto, window 100, {name}",
                n
            ),
            kind: Kind::Pub,
            args: a(&[
                ("n", n.to_string()),
                ("qos", "1".into()),
                ("size", "64".into()),
                ("window", "100".into()),
                ("store", store.into()),
                ("target", "mosq".into()),
            ]),
            n,
            size: 64,
            clients: vec!["mqtt-sync"],
        });
    }
    let _ = libs;
    w
}

struct Ctx {
    mosq: u16,
    /// mosquitto with its default configuration
    mosq_default: u16,
    sink: u16,
    raw: Vec<String>,
    timeout: Duration,
    seq: u64,
}

impl Ctx {
    fn next_id(&mut self, who: &str) -> String {
        self.seq += 1;
        format!("{who}-{}-{}", std::process::id(), self.seq)
    }
}

fn run_work(ctx: &mut Ctx, w: &Work, peer: &Peer) -> Outcome {
    let mut args: Vec<String> = w
        .args
        .iter()
        .filter(|a| !a.starts_with("target="))
        .cloned()
        .collect();
    let port = if w.args.iter().any(|a| a == "target=sink") {
        ctx.sink
    } else if w.args.iter().any(|a| a == "target=mosqdef") {
        ctx.mosq_default
    } else {
        ctx.mosq
    };
    let topic = format!("bench/{}", ctx.next_id("t"));
    let id = ctx.next_id(peer.name);
    args.extend([
        "host=127.0.0.1".to_string(),
        format!("port={port}"),
        format!("topic={topic}"),
        format!("id={id}"),
    ]);
    let t = ctx.timeout;
    let mut o = match w.kind {
        Kind::Pub | Kind::Rtt => {
            let wl = if w.kind == Kind::Pub { "pub" } else { "rtt" };
            let mut full = vec![wl.to_string()];
            full.extend(args);
            run_one(&peer.cmd, &full, t)
        }
        Kind::Counted | Kind::Recv => {
            let (sub_cmd, pub_cmd) = if w.kind == Kind::Counted {
                (ctx.raw.clone(), peer.cmd.clone())
            } else {
                (peer.cmd.clone(), ctx.raw.clone())
            };
            let mut sargs = vec!["sub".to_string()];
            sargs.extend(args.iter().filter(|a| !a.starts_with("id=")).cloned());
            sargs.push(format!("id={}", ctx.next_id("sub")));
            let sub = match spawn(&sub_cmd, &sargs) {
                Ok(p) => p,
                Err(e) => {
                    return Outcome {
                        note: e,
                        ..Outcome::default()
                    }
                }
            };
            if !sub.wait_ready(Duration::from_secs(15)) {
                let mut o = sub.finish(Duration::from_secs(1));
                o.ok = false;
                o.note = format!("subscriber not ready {}", o.note);
                return o;
            }
            let mut pargs = vec!["pub".to_string()];
            pargs.extend(args);
            let p = run_one(&pub_cmd, &pargs, t);
            let s = sub.finish(t);
            let secs = (s.get("t_last_ns") - p.get("t0_ns")) / 1e9;
            let (mut me, other) = if w.kind == Kind::Counted {
                (p, s)
            } else {
                (s, p)
            };
            me.ok = me.ok && other.ok;
            if !other.ok {
                me.note = format!("{} peer: {}", me.note, other.note);
            }
            me.kv.insert("n".into(), other.get("n").min(me.get("n")));
            me.kv.insert("secs".into(), secs);
            me
        }
    };
    let n = o.get("n");
    if o.ok && (n.is_nan() || n < w.n as f64) {
        o.ok = false;
        o.note = format!("{} incomplete: {n} of {}", o.note, w.n);
    }
    o
}

#[derive(Default)]
struct Stats(HashMap<(String, String), Vec<Outcome>>);

fn med(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    Some((m, v[0], v[v.len() - 1]))
}

impl Stats {
    fn runs(&self, w: &str, c: &str) -> Vec<Outcome> {
        self.0
            .get(&(w.to_string(), c.to_string()))
            .map(|v| v.iter().filter(|o| o.ok).cloned().collect())
            .unwrap_or_default()
    }
    fn metric(&self, w: &Work, c: &str, m: &str) -> Option<(f64, f64, f64)> {
        let runs = self.runs(&w.key, c);
        med(runs.iter().map(|o| metric(w, o, m)).collect())
    }
    fn med(&self, w: &Work, c: &str, m: &str) -> Option<f64> {
        self.metric(w, c, m).map(|x| x.0)
    }
}

fn metric(w: &Work, o: &Outcome, m: &str) -> f64 {
    let secs = o.get("secs");
    match m {
        "thr" => w.n as f64 / secs,
        "mbs" => w.n as f64 * w.size as f64 / secs / 1e6,
        "cpu" => o.cpu_s * 1e6 / w.n as f64,
        "rss" => o.maxrss_kb / 1024.0,
        "gap" => o.get("max_gap_ms"),
        "p50" => o.get("p50_us"),
        "p99" => o.get("p99_us"),
        "max" => o.get("max_us"),
        _ => f64::NAN,
    }
}

fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x >= 100_000.0 {
        format!("{:.0}k", x / 1000.0)
    } else if x >= 1000.0 {
        format!("{:.1}k", x / 1000.0)
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn cell(s: Option<(f64, f64, f64)>) -> String {
    match s {
        Some((m, lo, hi)) => format!("{} ({}–{})", fmt_num(m), fmt_num(lo), fmt_num(hi)),
        None => "failed".into(),
    }
}

fn table(out: &mut String, st: &Stats, w: &Work, peers: &[Peer]) {
    let _ = writeln!(out, "\n### {}\n\n`{}`\n", w.title, w.key);
    match w.kind {
        Kind::Rtt => {
            let _ = writeln!(
                out,
                "| client | p50 µs | p99 µs | max µs | CPU s (process) | peak RSS MB |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|---|");
        }
        _ => {
            let unit = if w.key.starts_with("payload") {
                "MB/s"
            } else {
                "msg/s"
            };
            let _ = writeln!(
                out,
                "| client | throughput {unit} median (min–max) | CPU µs/msg | peak RSS MB | max gap between completions ms |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|");
        }
    }
    for p in peers {
        if !w.clients.contains(&p.name) || !p.can.contains(&kind_name(w.kind)) {
            continue;
        }
        let all = st.0.get(&(w.key.clone(), p.name.to_string()));
        let fails: Vec<String> = all
            .map(|v| v.iter().filter(|o| !o.ok).map(|o| o.note.clone()).collect())
            .unwrap_or_default();
        let fail_note = if fails.is_empty() {
            String::new()
        } else {
            format!(" ({} failed: {})", fails.len(), fails.join("; "))
        };
        let row = match w.kind {
            Kind::Rtt => format!(
                "| {}{} | {} | {} | {} | {} | {} |",
                p.name,
                fail_note,
                cell(st.metric(w, p.name, "p50")),
                cell(st.metric(w, p.name, "p99")),
                cell(st.metric(w, p.name, "max")),
                cell(med(st
                    .runs(&w.key, p.name)
                    .iter()
                    .map(|o| o.cpu_s)
                    .collect())),
                cell(st.metric(w, p.name, "rss")),
            ),
            _ => format!(
                "| {}{} | {} | {} | {} | {} |",
                p.name,
                fail_note,
                cell(st.metric(
                    w,
                    p.name,
                    if w.key.starts_with("payload") {
                        "mbs"
                    } else {
                        "thr"
                    }
                )),
                cell(st.metric(w, p.name, "cpu")),
                cell(st.metric(w, p.name, "rss")),
                st.metric(w, p.name, "gap")
                    .map_or("-".to_string(), |g| cell(Some(g))),
            ),
        };
        let _ = writeln!(out, "{row}");
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Pub | Kind::Counted => "pub",
        Kind::Recv => "sub",
        Kind::Rtt => "rtt",
    }
}

struct Target {
    name: String,
    value: String,
    met: Option<bool>,
}

#[allow(clippy::too_many_arguments)]
fn ratio_target(
    st: &Stats,
    w: &[Work],
    key: &str,
    m: &str,
    a: &str,
    b: &str,
    factor: f64,
    ge: bool,
    name: &str,
) -> Target {
    let work = w.iter().find(|x| x.key == key);
    let va = work.and_then(|x| st.med(x, a, m));
    let vb = work.and_then(|x| st.med(x, b, m));
    match (va, vb) {
        (Some(va), Some(vb)) => {
            let r = va / vb;
            let met = if ge { r >= factor } else { r <= factor };
            Target {
                name: name.into(),
                value: format!("{r:.2}x ({} vs {})", fmt_num(va), fmt_num(vb)),
                met: Some(met),
            }
        }
        _ => Target {
            name: name.into(),
            value: "n/a (a run failed or a peer is missing)".into(),
            met: None,
        },
    }
}

fn targets(st: &Stats, w: &[Work], idle: &HashMap<String, f64>) -> Vec<Target> {
    let ms = "mqtt-sync";
    let mut t = vec![
        ratio_target(
            st,
            w,
            "pub-sink-q0",
            "thr",
            ms,
            "libmosquitto",
            2.0,
            true,
            "client alone (sink) QoS 0 throughput >= 2x libmosquitto",
        ),
        ratio_target(
            st,
            w,
            "pub-sink-q0",
            "thr",
            ms,
            "rumqttc",
            4.0,
            true,
            "client alone (sink) QoS 0 throughput >= 4x rumqttc",
        ),
        ratio_target(
            st,
            w,
            "pub-sink-q0",
            "cpu",
            ms,
            "libmosquitto",
            0.5,
            false,
            "client alone (sink) QoS 0 CPU/msg <= 0.5x libmosquitto",
        ),
        ratio_target(
            st,
            w,
            "pub-mosq-q0",
            "thr",
            ms,
            "raw",
            0.95,
            true,
            "to mosquitto QoS 0 throughput >= 0.95x raw",
        ),
        ratio_target(
            st,
            w,
            "pub-mosq-q0-counted",
            "thr",
            ms,
            "raw",
            0.95,
            true,
            "to mosquitto QoS 0 (counted by subscriber) >= 0.95x raw",
        ),
        ratio_target(
            st,
            w,
            "pub-mosq-q1-w100",
            "thr",
            ms,
            "raw",
            0.95,
            true,
            "to mosquitto QoS 1 window 100 >= 0.95x raw",
        ),
        ratio_target(
            st,
            w,
            "pub-mosq-q2-w100",
            "thr",
            ms,
            "raw",
            0.95,
            true,
            "to mosquitto QoS 2 window 100 >= 0.95x raw",
        ),
        ratio_target(
            st,
            w,
            "recv-q0",
            "thr",
            ms,
            "raw",
            0.95,
            true,
            "receive QoS 0 throughput >= 0.95x raw",
        ),
        ratio_target(
            st,
            w,
            "recv-q0",
            "cpu",
            ms,
            "rumqttc",
            1.0,
            false,
            "receive QoS 0 CPU/msg <= rumqttc",
        ),
    ];
    for q in [0, 1] {
        let key = format!("rtt-q{q}");
        t.push(ratio_target(
            st,
            w,
            &key,
            "p50",
            ms,
            "rumqttc",
            0.8,
            false,
            &format!("round trip QoS {q} p50 <= 0.8x rumqttc"),
        ));
        t.push(ratio_target(
            st,
            w,
            &key,
            "p99",
            ms,
            "rumqttc",
            1.0,
            false,
            &format!("round trip QoS {q} p99 <= rumqttc"),
        ));
        let mx = w
            .iter()
            .find(|x| x.key == key)
            .and_then(|x| st.metric(x, ms, "max"));
        t.push(match mx {
            Some((_, _, hi)) => Target {
                name: format!("round trip QoS {q} max < 5 ms (worst round)"),
                value: format!("{} µs", fmt_num(hi)),
                met: Some(hi < 5000.0),
            },
            None => Target {
                name: format!("round trip QoS {q} max < 5 ms"),
                value: "n/a".into(),
                met: None,
            },
        });
    }
    for (key, name) in [
        (
            "pub-mosq-q0",
            "peak RSS under the QoS 0 flood <= rumqttc + 1 MB",
        ),
        (
            "pub-mosq-q0-out256k",
            "the same with max_outgoing_bytes_set(256 KiB) <= rumqttc + 1 MB",
        ),
    ] {
        let flood = w.iter().find(|x| x.key == key);
        let (a, b) = (
            flood.and_then(|x| st.med(x, ms, "rss")),
            flood.and_then(|x| st.med(x, "rumqttc", "rss")),
        );
        t.push(Target {
            name: name.into(),
            value: match (a, b) {
                (Some(a), Some(b)) => format!("{a:.1} MB vs {b:.1} MB"),
                _ => "n/a".into(),
            },
            met: a.zip(b).map(|(a, b)| a <= b + 1.0),
        });
    }
    let i = idle.get(ms).copied();
    t.push(Target {
        name: "idle connected client CPU ≈ 0 (< 0.1% of one core)".into(),
        value: i
            .map(|v| format!("{v:.1} ms CPU over the idle period"))
            .unwrap_or("n/a".into()),
        met: i
            .zip(idle.get("_secs").copied())
            .map(|(v, s)| v < s * 1000.0 * 0.001),
    });
    t
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).to_string();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_default()
}

pub fn main(argv: &[String]) -> i32 {
    let mut smoke = false;
    let mut rounds = 3usize;
    let mut out_path: Option<String> = None;
    let mut c_bin: Option<String> = None;
    let mut python: Option<String> = None;
    let mut paho: Option<String> = None;
    let mut cmdline = String::from("scripts/bench");
    let mut only: Option<String> = None;
    let mut it = argv.iter();
    while let Some(x) = it.next() {
        match x.as_str() {
            "--smoke" => smoke = true,
            "--rounds" => rounds = it.next().and_then(|v| v.parse().ok()).unwrap_or(3),
            "--out" => out_path = it.next().cloned(),
            "--c-bin" => c_bin = it.next().cloned(),
            "--python" => python = it.next().cloned(),
            "--paho" => paho = it.next().cloned(),
            "--cmdline" => cmdline = it.next().cloned().unwrap_or_default(),
            "--only" => only = it.next().cloned(),
            _ => {}
        }
    }
    if smoke {
        rounds = 1;
    }
    let me = std::env::current_exe()
        .expect("current exe")
        .to_string_lossy()
        .to_string();
    let cl = |n: &str| vec![me.clone(), "client".into(), n.into()];
    let full: &'static [&'static str] = &["pub", "sub", "rtt", "idle", "many"];
    let mut peers = vec![
        Peer {
            name: "mqtt-sync",
            cmd: cl("mqtt-sync"),
            can: full,
        },
        Peer {
            name: "rumqttc",
            cmd: cl("rumqttc"),
            can: full,
        },
    ];
    if let Some(c) = c_bin {
        peers.push(Peer {
            name: "libmosquitto",
            cmd: vec![c],
            can: full,
        });
    }
    if let (Some(py), Some(script)) = (python, paho) {
        peers.push(Peer {
            name: "paho-python",
            cmd: vec![py, script],
            can: &["pub", "sub", "rtt", "idle"],
        });
    }
    peers.push(Peer {
        name: "raw",
        cmd: cl("raw"),
        can: &["pub", "sub", "rtt"],
    });
    let names: Vec<&'static str> = peers.iter().map(|p| p.name).collect();
    println!("clients: {}", names.join(", "));

    let sizes = if smoke {
        Sizes {
            q0: 5000,
            q1: 2000,
            q2: 1000,
            rtt: 200,
            idle_s: 2,
            many: 50,
            p16: 5000,
            p1k: 2000,
            p64k: 100,
            timeout: Duration::from_secs(30),
        }
    } else {
        Sizes {
            q0: 200_000,
            q1: 50_000,
            q2: 20_000,
            rtt: 2000,
            idle_s: 30,
            many: 1000,
            p16: 200_000,
            p1k: 50_000,
            p64k: 2000,
            timeout: Duration::from_secs(120),
        }
    };
    let dir = std::env::temp_dir().join(format!("mqtt-sync-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let mosq_port = free_port();
    let _mosq = match start_mosquitto(&dir, mosq_port, MOSQ_CONF) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot start mosquitto: {e}");
            return 1;
        }
    };
    let mosq_default_port = free_port();
    let _mosq_default = match start_mosquitto(&dir, mosq_default_port, MOSQ_DEFAULT_CONF) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot start mosquitto (default configuration): {e}");
            return 1;
        }
    };
    let sink_port = free_port();
    let _sink = match Command::new(&me)
        .args(["sink", &format!("port={sink_port}")])
        .stdout(Stdio::null())
        .spawn()
    {
        Ok(c) => Daemon(c),
        Err(e) => {
            eprintln!("cannot start the sink: {e}");
            return 1;
        }
    };
    if !wait_port(sink_port) {
        eprintln!("sink did not listen");
        return 1;
    }
    println!(
        "mosquitto on 127.0.0.1:{mosq_port}, sink on 127.0.0.1:{sink_port}, {rounds} round(s)"
    );
    let mut ctx = Ctx {
        mosq: mosq_port,
        mosq_default: mosq_default_port,
        sink: sink_port,
        raw: cl("raw"),
        timeout: sizes.timeout,
        seq: 0,
    };
    let mut works = workloads(&sizes, &names);
    if let Some(o) = &only {
        works.retain(|w| o.split(',').any(|k| w.key.contains(k)));
    }
    let mut st = Stats::default();
    let mut failures = Vec::new();
    let load_start = sh("cat /proc/loadavg");
    let start = Instant::now();
    for round in 1..=rounds {
        for w in &works {
            for p in &peers {
                if !w.clients.contains(&p.name) || !p.can.contains(&kind_name(w.kind)) {
                    continue;
                }
                let t = Instant::now();
                let o = run_work(&mut ctx, w, p);
                let secs = o.get("secs");
                println!(
                    "[{:>5.0}s] round {round} {:<22} {:<12} {} {}",
                    start.elapsed().as_secs_f64(),
                    w.key,
                    p.name,
                    if o.ok {
                        match w.kind {
                            Kind::Rtt => format!(
                                "p50 {:.0} µs p99 {:.0} µs max {:.0} µs",
                                o.get("p50_us"),
                                o.get("p99_us"),
                                o.get("max_us")
                            ),
                            _ => format!(
                                "{} msg/s, {:.2} µs CPU/msg, {:.1} MB RSS",
                                fmt_num(w.n as f64 / secs),
                                o.cpu_s * 1e6 / w.n as f64,
                                o.maxrss_kb / 1024.0
                            ),
                        }
                    } else {
                        format!("FAILED: {}", o.note)
                    },
                    if t.elapsed() > Duration::from_secs(20) {
                        format!("({:.0}s)", t.elapsed().as_secs_f64())
                    } else {
                        String::new()
                    }
                );
                if !o.ok {
                    failures.push(format!("{} / {}: {}", w.key, p.name, o.note));
                }
                st.0.entry((w.key.clone(), p.name.to_string()))
                    .or_default()
                    .push(o);
            }
        }
    }
    // Idle: every client at once (they are idle), one round.
    let mut idle: HashMap<String, f64> = HashMap::new();
    idle.insert("_secs".into(), sizes.idle_s as f64);
    let mut many: Vec<(String, Outcome)> = Vec::new();
    if only.is_none() {
        println!("idle: {} s, all clients in parallel", sizes.idle_s);
        let mut procs = Vec::new();
        for p in peers.iter().filter(|p| p.can.contains(&"idle")) {
            let args = vec![
                "idle".to_string(),
                "host=127.0.0.1".into(),
                format!("port={mosq_port}"),
                format!("secs={}", sizes.idle_s),
                format!("id={}", ctx.next_id(p.name)),
            ];
            match spawn(&p.cmd, &args) {
                Ok(pr) => procs.push((p.name, pr)),
                Err(e) => failures.push(format!("idle / {}: {e}", p.name)),
            }
        }
        for (name, pr) in procs {
            let o = pr.finish(Duration::from_secs(sizes.idle_s + 30));
            if o.ok {
                idle.insert(name.to_string(), o.get("idle_cpu_ms"));
                println!(
                    "idle {name}: {:.2} ms CPU in {} s",
                    o.get("idle_cpu_ms"),
                    sizes.idle_s
                );
            } else {
                failures.push(format!("idle / {name}: {}", o.note));
            }
        }
        for p in peers.iter().filter(|p| p.can.contains(&"many")) {
            let args = vec![
                "many".to_string(),
                "host=127.0.0.1".into(),
                format!("port={mosq_port}"),
                format!("clients={}", sizes.many),
                format!("id={}", ctx.next_id(p.name)),
            ];
            let mut o = run_one(&p.cmd, &args, Duration::from_secs(120));
            if o.ok && o.get("n") < sizes.many as f64 {
                o.ok = false;
                o.note = format!("only {} of {} connected", o.get("n"), sizes.many);
            }
            println!(
                "many {}: {} clients connected, {:.1} KiB per client, peak RSS {:.1} MB {}",
                p.name,
                o.get("n"),
                o.get("per_client_kb"),
                o.maxrss_kb / 1024.0,
                o.note
            );
            if !o.ok {
                failures.push(format!("many / {}: {}", p.name, o.note));
            }
            many.push((p.name.to_string(), o));
        }
    }
    let wall = start.elapsed();
    let load_end = sh("cat /proc/loadavg");

    // Report.
    let mut rep = String::new();
    let ts = targets(&st, &works, &idle);
    let _ = writeln!(rep, "## Targets (medians of {rounds} round(s))\n");
    let _ = writeln!(rep, "| target | measured | result |\n|---|---|---|");
    for t in &ts {
        let r = match t.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "n/a",
        };
        let _ = writeln!(rep, "| {} | {} | {} |", t.name, t.value, r);
    }
    let _ = writeln!(rep, "\n## Results\n");
    for w in &works {
        table(&mut rep, &st, w, &peers);
    }
    if only.is_none() {
        let _ = writeln!(
            rep,
            "\n### Idle connected client, keepalive 60, {} s (all clients in parallel)\n",
            sizes.idle_s
        );
        let _ = writeln!(rep, "| client | CPU ms over the period |\n|---|---|");
        for p in peers.iter().filter(|p| p.can.contains(&"idle")) {
            let _ = writeln!(
                rep,
                "| {} | {} |",
                p.name,
                idle.get(p.name)
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or("failed".into())
            );
        }
        let _ = writeln!(
            rep,
            "\n### {} clients in one process (connected to mosquitto, loop thread each)\n",
            sizes.many
        );
        let _ = writeln!(rep, "| client | connected | VmRSS before / after KiB | KiB per client | peak RSS MB |\n|---|---|---|---|---|");
        for (name, o) in &many {
            let _ = writeln!(
                rep,
                "| {name} | {} | {} / {} | {:.1} | {:.1} |",
                o.get("n"),
                o.get("rss_before_kb"),
                o.get("rss_after_kb"),
                o.get("per_client_kb"),
                o.maxrss_kb / 1024.0
            );
        }
    }
    println!("\n{rep}");
    println!("wall time {:.0} s", wall.as_secs_f64());

    if let Some(path) = out_path {
        let mut doc = String::new();
        let _ = writeln!(doc, "# mqtt-sync benchmarks\n");
        let _ = writeln!(
            doc,
            "Generated by `{cmdline}` on {} ({:.0} s of workloads).\n",
            sh("date -u '+%Y-%m-%d %H:%M UTC'"),
            wall.as_secs_f64()
        );
        let _ = writeln!(doc, "## Machine and versions\n");
        let _ = writeln!(
            doc,
            "- CPU: {} ({} cores online)",
            sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
            sh("nproc")
        );
        let _ = writeln!(
            doc,
            "- OS: {}",
            sh(". /etc/os-release; echo $PRETTY_NAME; uname -r")
        );
        let _ = writeln!(
            doc,
            "- mosquitto: {}",
            sh("/usr/sbin/mosquitto -h 2>&1 | head -1")
        );
        let _ = writeln!(doc, "- /proc/loadavg at start: `{load_start}`, at end: `{load_end}` (other jobs on the machine show up here)");
        let _ = writeln!(doc, "- rustc: {}", sh("rustc --version"));
        let _ = writeln!(
            doc,
            "- rumqttc: {}",
            std::env::var("BENCH_RUMQTTC_VERSION").unwrap_or("?".into())
        );
        let _ = writeln!(
            doc,
            "- libmosquitto: {}",
            std::env::var("BENCH_LIBMOSQUITTO_VERSION").unwrap_or("not run".into())
        );
        let _ = writeln!(
            doc,
            "- paho-mqtt (Python): {}",
            std::env::var("BENCH_PAHO_VERSION").unwrap_or("not run".into())
        );
        let _ = writeln!(
            doc,
            "\n{}",
            std::env::var("BENCH_PREAMBLE")
                .ok()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default()
        );
        let _ = writeln!(doc, "### mosquitto configuration used\n\n```\nlistener <free port> 127.0.0.1\n{MOSQ_CONF}user root   # only when running as root\n```\n\nThe `rtt-default-*` workloads run against a second mosquitto with its default configuration (Nagle on):\n\n```\nlistener <free port> 127.0.0.1\n{MOSQ_DEFAULT_CONF}user root   # only when running as root\n```\n");
        doc.push_str(&rep);
        if !failures.is_empty() {
            let _ = writeln!(doc, "\n## Failed runs\n");
            for f in &failures {
                let _ = writeln!(doc, "- {f}");
            }
        }
        if let Err(e) = std::fs::write(&path, doc) {
            eprintln!("cannot write {path}: {e}");
            return 1;
        }
        println!("wrote {path}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    if failures.is_empty() {
        println!("all workloads completed");
        0
    } else {
        println!("{} run(s) failed:", failures.len());
        for f in &failures {
            println!("  {f}");
        }
        1
    }
}
