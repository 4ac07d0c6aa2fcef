//! The mqtt-sync client under test, through its public API only.

use crate::util::{now_ns, percentiles, ready, rss_kb, self_cpu, Args};
use mqtt_sync::persistence::{FileStore, MemoryStore, SyncPolicy};
use mqtt_sync::{Client, QoS};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, sync_channel};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn qos(q: u8) -> QoS {
    QoS::try_from(q).unwrap_or(QoS::AtMostOnce)
}

/// A client with loop_start running, connected (CONNACK processed).
fn connected(a: &Args, id: &str, setup: impl FnOnce(&Client)) -> Result<Client, String> {
    let c = Client::new(id);
    c.tcp_nodelay_set(a.nodelay).map_err(|e| e.to_string())?;
    if a.window > 0 {
        c.max_inflight_messages_set(a.window)
            .map_err(|e| e.to_string())?;
    }
    if a.outgoing > 0 {
        c.max_outgoing_bytes_set(a.outgoing)
            .map_err(|e| e.to_string())?;
    }
    set_store(&c, a, id)?;
    let (tx, rx) = sync_channel(1);
    c.on_connect(move |_c, _f, rc, _p| {
        let _ = tx.try_send(rc.is_failure());
    });
    setup(&c);
    c.connect(&a.host, a.port, 60).map_err(|e| e.to_string())?;
    c.loop_start().map_err(|e| e.to_string())?;
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(false) => Ok(c),
        Ok(true) => Err("CONNACK refused".into()),
        Err(_) => Err("no CONNACK within 10 s".into()),
    }
}

/// The file of a file store: in the temporary folder, removed first (a fresh store).
fn store_path(id: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("mqtt-sync-bench-{id}-{}.store", std::process::id()))
}

fn set_store(c: &Client, a: &Args, id: &str) -> Result<(), String> {
    let policy = match a.store.as_str() {
        "none" => return Ok(()),
        "mem" => {
            return c
                .persistence_set(MemoryStore::new())
                .map_err(|e| e.to_string())
        }
        "file-never" => SyncPolicy::Never,
        "file-every64" => SyncPolicy::EveryN(64),
        "file-always" => SyncPolicy::Always,
        "file-beforesend" => SyncPolicy::BeforeSend,
        other => return Err(format!("unknown store {other}")),
    };
    let path = store_path(id);
    let _ = std::fs::remove_file(&path);
    let store = FileStore::open_with(&path, policy).map_err(|e| e.to_string())?;
    c.persistence_set(store).map_err(|e| e.to_string())
}

fn close(c: Client) {
    let _ = c.disconnect();
    let _ = c.loop_stop();
}

pub fn run(workload: &str, a: &Args) -> Result<String, String> {
    match workload {
        "pub" => publish(a),
        "sub" => sub(a),
        "rtt" => rtt(a),
        "idle" => idle(a),
        "many" => many(a),
        _ => Err(format!("mqtt-sync: workload {workload} not supported")),
    }
}

fn publish(a: &Args) -> Result<String, String> {
    let n = a.n;
    let (dtx, drx) = sync_channel::<Instant>(1);
    let count = Arc::new(AtomicU64::new(0));
    let max_gap_ns = Arc::new(AtomicU64::new(0));
    let (cnt, gap) = (count.clone(), max_gap_ns.clone());
    let c = connected(a, &a.id, move |c| {
        let mut last: Option<Instant> = None;
        c.on_publish(move |_c, _mid, _rc, _p| {
            let now = Instant::now();
            if let Some(l) = last {
                let g = (now - l).as_nanos() as u64;
                if g > gap.load(Ordering::Relaxed) {
                    gap.store(g, Ordering::Relaxed);
                }
            }
            last = Some(now);
            if cnt.fetch_add(1, Ordering::Relaxed) + 1 == n {
                let _ = dtx.try_send(now);
            }
        });
    })?;
    let payload = vec![0x5au8; a.size];
    let q = qos(a.qos);
    let t0_ns = now_ns();
    let t0 = Instant::now();
    for _ in 0..n {
        c.publish(&a.topic, &payload[..], q, false)
            .map_err(|e| e.to_string())?;
    }
    let enqueued = t0.elapsed();
    let end = drx.recv_timeout(Duration::from_secs(120));
    let done = count.load(Ordering::Relaxed);
    let secs = match end {
        Ok(t) => (t - t0).as_secs_f64(),
        Err(_) => t0.elapsed().as_secs_f64(),
    };
    close(c);
    if a.store.starts_with("file") {
        let _ = std::fs::remove_file(store_path(&a.id));
    }
    Ok(format!(
        "n={done} secs={secs} t0_ns={t0_ns} max_gap_ms={} publish_calls_ms={}",
        max_gap_ns.load(Ordering::Relaxed) as f64 / 1e6,
        enqueued.as_secs_f64() * 1e3
    ))
}

fn sub(a: &Args) -> Result<String, String> {
    let (stx, srx) = sync_channel(1);
    let count = Arc::new(AtomicU64::new(0));
    let last_ns = Arc::new(AtomicU64::new(0));
    let (cnt, lns) = (count.clone(), last_ns.clone());
    let (topic, q) = (a.topic.clone(), qos(a.qos));
    let c = connected(a, &a.id, move |c| {
        c.on_subscribe(move |_c, _mid, _rcs, _p| {
            let _ = stx.try_send(());
        });
        c.on_message(move |_c, _m| {
            cnt.fetch_add(1, Ordering::Relaxed);
            lns.store(now_ns() as u64, Ordering::Relaxed);
        });
    })?;
    c.subscribe(&topic, q).map_err(|e| e.to_string())?;
    srx.recv_timeout(Duration::from_secs(10))
        .map_err(|_| "no SUBACK".to_string())?;
    ready();
    wait_count(&count, a.n);
    let n = count.load(Ordering::Relaxed);
    close(c);
    Ok(format!(
        "n={n} t_last_ns={}",
        last_ns.load(Ordering::Relaxed)
    ))
}

/// Waits until `count` reaches `n`, or it stops moving for 3 s (10 s before the first).
pub fn wait_count(count: &AtomicU64, n: u64) {
    let mut seen = 0;
    let mut since = Instant::now();
    loop {
        let c = count.load(Ordering::Relaxed);
        if c >= n {
            return;
        }
        if c != seen {
            seen = c;
            since = Instant::now();
        }
        let limit = if seen == 0 { 10 } else { 3 };
        if since.elapsed() > Duration::from_secs(limit) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn rtt(a: &Args) -> Result<String, String> {
    let (stx, srx) = sync_channel(1);
    let (mtx, mrx) = channel::<Instant>();
    let c = connected(a, &a.id, move |c| {
        c.on_subscribe(move |_c, _mid, _rcs, _p| {
            let _ = stx.try_send(());
        });
        c.on_message(move |_c, _m| {
            let _ = mtx.send(Instant::now());
        });
    })?;
    c.subscribe(&a.topic, qos(a.qos))
        .map_err(|e| e.to_string())?;
    srx.recv_timeout(Duration::from_secs(10))
        .map_err(|_| "no SUBACK".to_string())?;
    let payload = vec![0x5au8; a.size];
    let warm = 50;
    let mut lat = Vec::with_capacity(a.n as usize);
    for i in 0..(a.n + warm) {
        let t = Instant::now();
        c.publish(&a.topic, &payload[..], qos(a.qos), false)
            .map_err(|e| e.to_string())?;
        let got = mrx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| format!("message {i} not received within 5 s"))?;
        if i >= warm {
            lat.push(got - t);
        }
    }
    let n = lat.len();
    let (p50, p99, max) = percentiles(lat);
    close(c);
    Ok(format!("n={n} p50_us={p50} p99_us={p99} max_us={max}"))
}

fn idle(a: &Args) -> Result<String, String> {
    let c = connected(a, &a.id, |_| {})?;
    let cpu0 = self_cpu();
    std::thread::sleep(Duration::from_secs(a.secs));
    let cpu = self_cpu() - cpu0;
    let ok = c.is_connected();
    close(c);
    Ok(format!(
        "n={} idle_cpu_ms={}",
        ok as u8,
        cpu.as_secs_f64() * 1e3
    ))
}

fn many(a: &Args) -> Result<String, String> {
    let before = rss_kb();
    let up = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::with_capacity(a.clients);
    for i in 0..a.clients {
        let c = Client::new(format!("{}-{i}", a.id));
        let u = up.clone();
        c.on_connect(move |_c, _f, rc, _p| {
            if !rc.is_failure() {
                u.fetch_add(1, Ordering::Relaxed);
            }
        });
        c.connect(&a.host, a.port, 60).map_err(|e| e.to_string())?;
        c.loop_start().map_err(|e| e.to_string())?;
        clients.push(c);
    }
    let t = Instant::now();
    while up.load(Ordering::Relaxed) < a.clients && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kb();
    let n = up.load(Ordering::Relaxed);
    let per = (after.saturating_sub(before)) as f64 / a.clients.max(1) as f64;
    // Exit without tearing down 1000 threads one by one.
    std::mem::forget(clients);
    Ok(format!(
        "n={n} rss_before_kb={before} rss_after_kb={after} per_client_kb={per}"
    ))
}
