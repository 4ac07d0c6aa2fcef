//! rumqttc's synchronous `Client`, its `Connection` iterated on a thread.

use crate::util::{now_ns, percentiles, ready, rss_kb, self_cpu, Args};
use rumqttc::{Client, Connection, Event, MqttOptions, NetworkOptions, Outgoing, Packet, QoS};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, sync_channel, Sender, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn qos(q: u8) -> QoS {
    match q {
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtMostOnce,
    }
}

fn options(a: &Args, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, a.host.clone(), a.port);
    o.set_keep_alive(Duration::from_secs(60));
    let max = (a.size + 1024).max(10 * 1024);
    o.set_max_packet_size(max, max);
    if a.window > 0 {
        o.set_inflight(a.window);
    }
    o
}

#[derive(Default)]
struct Hooks {
    connected: Option<SyncSender<()>>,
    suback: Option<SyncSender<()>>,
    /// Counts QoS 0 outgoing publishes / PUBACK / PUBCOMP, per `qos`.
    done: Option<(u8, Arc<AtomicU64>, Arc<AtomicU64>)>,
    /// (count, last message unix ns)
    messages: Option<(Arc<AtomicU64>, Arc<AtomicU64>)>,
    rtt: Option<Sender<Instant>>,
}

fn drive(mut conn: Connection, h: Hooks) {
    let mut last: Option<Instant> = None;
    for ev in conn.iter() {
        let ev = match ev {
            Ok(ev) => ev,
            Err(_) => break,
        };
        let completed = matches!(
            (&ev, &h.done),
            (Event::Outgoing(Outgoing::Publish(_)), Some((0, ..)))
                | (Event::Incoming(Packet::PubAck(_)), Some((1, ..)))
                | (Event::Incoming(Packet::PubComp(_)), Some((2, ..)))
        );
        if completed {
            if let Some((_, cnt, gap)) = &h.done {
                let now = Instant::now();
                if let Some(l) = last {
                    let g = (now - l).as_nanos() as u64;
                    if g > gap.load(Ordering::Relaxed) {
                        gap.store(g, Ordering::Relaxed);
                    }
                }
                last = Some(now);
                cnt.fetch_add(1, Ordering::Relaxed);
            }
        }
        match ev {
            Event::Incoming(Packet::ConnAck(_)) => {
                if let Some(t) = &h.connected {
                    let _ = t.try_send(());
                }
            }
            Event::Incoming(Packet::SubAck(_)) => {
                if let Some(t) = &h.suback {
                    let _ = t.try_send(());
                }
            }
            Event::Incoming(Packet::Publish(_)) => {
                if let Some((c, l)) = &h.messages {
                    c.fetch_add(1, Ordering::Relaxed);
                    l.store(now_ns() as u64, Ordering::Relaxed);
                }
                if let Some(t) = &h.rtt {
                    let _ = t.send(Instant::now());
                }
            }
            Event::Outgoing(Outgoing::Disconnect) => break,
            _ => {}
        }
    }
}

/// TCP_NODELAY is off by default in rumqttc; the benchmark sets it as for every client.
fn nodelay(conn: &mut Connection, a: &Args) {
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(a.nodelay);
    conn.eventloop.set_network_options(net);
}

fn start(a: &Args, mut h: Hooks) -> Result<(Client, std::thread::JoinHandle<()>), String> {
    let (client, mut conn) = Client::new(options(a, &a.id), 10);
    nodelay(&mut conn, a);
    let (tx, rx) = sync_channel(1);
    h.connected = Some(tx);
    let th = std::thread::spawn(move || drive(conn, h));
    rx.recv_timeout(Duration::from_secs(10))
        .map_err(|_| "no CONNACK within 10 s".to_string())?;
    Ok((client, th))
}

fn close(c: Client, th: std::thread::JoinHandle<()>) {
    let _ = c.disconnect();
    let _ = th.join();
}

pub fn run(workload: &str, a: &Args) -> Result<String, String> {
    match workload {
        "pub" => publish(a),
        "sub" => sub(a),
        "rtt" => rtt(a),
        "idle" => idle(a),
        "many" => many(a),
        _ => Err(format!("rumqttc: workload {workload} not supported")),
    }
}

fn publish(a: &Args) -> Result<String, String> {
    let count = Arc::new(AtomicU64::new(0));
    let gap = Arc::new(AtomicU64::new(0));
    let h = Hooks {
        done: Some((a.qos, count.clone(), gap.clone())),
        ..Hooks::default()
    };
    let (c, th) = start(a, h)?;
    let payload = vec![0x5au8; a.size];
    let q = qos(a.qos);
    let t0_ns = now_ns();
    let t0 = Instant::now();
    for _ in 0..a.n {
        c.publish(a.topic.as_str(), q, false, payload.clone())
            .map_err(|e| e.to_string())?;
    }
    // Spin-wait with short sleeps: the event loop thread counts completions.
    let mut end = None;
    let mut seen = 0;
    let mut since = Instant::now();
    loop {
        let k = count.load(Ordering::Relaxed);
        if k >= a.n {
            end = Some(Instant::now());
            break;
        }
        if k != seen {
            seen = k;
            since = Instant::now();
        }
        if since.elapsed() > Duration::from_secs(10) {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let secs = end
        .unwrap_or_else(Instant::now)
        .duration_since(t0)
        .as_secs_f64();
    let done = count.load(Ordering::Relaxed);
    close(c, th);
    Ok(format!(
        "n={done} secs={secs} t0_ns={t0_ns} max_gap_ms={}",
        gap.load(Ordering::Relaxed) as f64 / 1e6
    ))
}

fn sub(a: &Args) -> Result<String, String> {
    let count = Arc::new(AtomicU64::new(0));
    let last = Arc::new(AtomicU64::new(0));
    let (stx, srx) = sync_channel(1);
    let h = Hooks {
        suback: Some(stx),
        messages: Some((count.clone(), last.clone())),
        ..Hooks::default()
    };
    let (c, th) = start(a, h)?;
    c.subscribe(a.topic.as_str(), qos(a.qos))
        .map_err(|e| e.to_string())?;
    srx.recv_timeout(Duration::from_secs(10))
        .map_err(|_| "no SUBACK".to_string())?;
    ready();
    crate::ms::wait_count(&count, a.n);
    let n = count.load(Ordering::Relaxed);
    close(c, th);
    Ok(format!("n={n} t_last_ns={}", last.load(Ordering::Relaxed)))
}

fn rtt(a: &Args) -> Result<String, String> {
    let (stx, srx) = sync_channel(1);
    let (mtx, mrx) = channel();
    let h = Hooks {
        suback: Some(stx),
        rtt: Some(mtx),
        ..Hooks::default()
    };
    let (c, th) = start(a, h)?;
    c.subscribe(a.topic.as_str(), qos(a.qos))
        .map_err(|e| e.to_string())?;
    srx.recv_timeout(Duration::from_secs(10))
        .map_err(|_| "no SUBACK".to_string())?;
    let payload = vec![0x5au8; a.size];
    let warm = 50;
    let mut lat = Vec::with_capacity(a.n as usize);
    for i in 0..(a.n + warm) {
        let t = Instant::now();
        c.publish(a.topic.as_str(), qos(a.qos), false, payload.clone())
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
    close(c, th);
    Ok(format!("n={n} p50_us={p50} p99_us={p99} max_us={max}"))
}

fn idle(a: &Args) -> Result<String, String> {
    let (c, th) = start(a, Hooks::default())?;
    let cpu0 = self_cpu();
    std::thread::sleep(Duration::from_secs(a.secs));
    let cpu = self_cpu() - cpu0;
    close(c, th);
    Ok(format!("n=1 idle_cpu_ms={}", cpu.as_secs_f64() * 1e3))
}

fn many(a: &Args) -> Result<String, String> {
    let before = rss_kb();
    let up = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::with_capacity(a.clients);
    let (tx, rx) = sync_channel(a.clients);
    for i in 0..a.clients {
        let (client, mut conn) = Client::new(options(a, &format!("{}-{i}", a.id)), 10);
        nodelay(&mut conn, a);
        let h = Hooks {
            connected: Some(tx.clone()),
            ..Hooks::default()
        };
        std::thread::spawn(move || drive(conn, h));
        clients.push(client);
    }
    let t = Instant::now();
    while up.load(Ordering::Relaxed) < a.clients && t.elapsed() < Duration::from_secs(60) {
        if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
            up.fetch_add(1, Ordering::Relaxed);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kb();
    let n = up.load(Ordering::Relaxed);
    let per = (after.saturating_sub(before)) as f64 / a.clients.max(1) as f64;
    std::mem::forget(clients);
    Ok(format!(
        "n={n} rss_before_kb={before} rss_after_kb={after} per_client_kb={per}"
    ))
}
