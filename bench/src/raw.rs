//! The raw-socket reference client: pre-encoded packets, large writes, one thread, no
//! library. QoS 1/2 keep a window of `window` (default 100) by counting acks.

use crate::util::{frame, now_ns, percentiles, put_varint, ready, Args};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn connect(a: &Args) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect((a.host.as_str(), a.port)).map_err(|e| e.to_string())?;
    s.set_nodelay(a.nodelay).map_err(|e| e.to_string())?;
    let mut p = vec![0x10];
    let id = a.id.as_bytes();
    put_varint(&mut p, 10 + 2 + id.len());
    p.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60]);
    p.extend_from_slice(&(id.len() as u16).to_be_bytes());
    p.extend_from_slice(id);
    s.write_all(&p).map_err(|e| e.to_string())?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).map_err(|e| e.to_string())?;
    if ack[0] != 0x20 || ack[3] != 0 {
        return Err(format!("CONNACK refused: {ack:?}"));
    }
    Ok(s)
}

fn publish_packet(out: &mut Vec<u8>, topic: &str, payload: &[u8], qos: u8, pkid: u16) {
    out.push(0x30 | (qos << 1));
    let id_len = if qos > 0 { 2 } else { 0 };
    put_varint(out, 2 + topic.len() + id_len + payload.len());
    out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    if qos > 0 {
        out.extend_from_slice(&pkid.to_be_bytes());
    }
    out.extend_from_slice(payload);
}

fn subscribe(s: &mut TcpStream, topic: &str, qos: u8) -> Result<Vec<u8>, String> {
    let mut p = vec![0x82];
    put_varint(&mut p, 2 + 2 + topic.len() + 1);
    p.extend_from_slice(&[0, 1]);
    p.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    p.extend_from_slice(topic.as_bytes());
    p.push(qos);
    s.write_all(&p).map_err(|e| e.to_string())?;
    // Read until SUBACK; keep whatever follows it.
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        if let Some((b1, _, total)) = frame(&buf) {
            if b1 >> 4 == 9 {
                return Ok(buf.split_off(total));
            }
            buf.drain(..total);
            continue;
        }
        let k = s.read(&mut tmp).map_err(|e| e.to_string())?;
        if k == 0 {
            return Err("closed before SUBACK".into());
        }
        buf.extend_from_slice(&tmp[..k]);
    }
}

pub fn run(workload: &str, a: &Args) -> Result<String, String> {
    match workload {
        "pub" => publish(a),
        "sub" => sub(a),
        "rtt" => rtt(a),
        _ => Err(format!("raw: workload {workload} not supported")),
    }
}

fn publish(a: &Args) -> Result<String, String> {
    let mut s = connect(a)?;
    let payload = vec![0x5a; a.size];
    let n = a.n as usize;
    let window = if a.window == 0 {
        100
    } else {
        a.window as usize
    };
    let e = |e: std::io::Error| e.to_string();
    if a.qos == 0 {
        let mut one = Vec::new();
        publish_packet(&mut one, &a.topic, &payload, 0, 0);
        let per = (256 * 1024 / one.len()).max(1);
        let chunk: Vec<u8> = one.repeat(per);
        let t0_ns = now_ns();
        let t0 = Instant::now();
        let mut sent = 0;
        while sent < n {
            let k = per.min(n - sent);
            s.write_all(&chunk[..k * one.len()]).map_err(e)?;
            sent += k;
        }
        let secs = t0.elapsed().as_secs_f64();
        // DISCONNECT, then wait for the broker to close so nothing is lost in our buffers.
        let _ = s.write_all(&[0xE0, 0]);
        return Ok(format!("n={n} secs={secs} t0_ns={t0_ns} max_gap_ms=0"));
    }
    let mut all = Vec::new();
    for i in 0..n {
        publish_packet(&mut all, &a.topic, &payload, a.qos, (i % 65535) as u16 + 1);
    }
    let len = all.len() / n.max(1);
    let (mut sent, mut done) = (0usize, 0usize);
    let mut out = Vec::with_capacity(window * (len + 4));
    let mut rels: Vec<u8> = Vec::new();
    let mut rb = vec![0u8; 256 * 1024];
    let mut have = 0;
    let t0_ns = now_ns();
    let t0 = Instant::now();
    let mut last = t0;
    let mut max_gap = Duration::ZERO;
    while done < n {
        let can = (n - sent).min(window - (sent - done));
        out.clear();
        out.append(&mut rels);
        out.extend_from_slice(&all[sent * len..(sent + can) * len]);
        sent += can;
        if !out.is_empty() {
            s.write_all(&out).map_err(e)?;
        }
        let k = s.read(&mut rb[have..]).map_err(e)?;
        if k == 0 {
            return Err(format!("closed after {done} acks"));
        }
        have += k;
        let mut pos = 0;
        let before = done;
        while let Some((b1, hl, total)) = frame(&rb[pos..have]) {
            let body = &rb[pos + hl..pos + total];
            match b1 >> 4 {
                4 | 7 => done += 1,
                5 => rels.extend_from_slice(&[0x62, 2, body[0], body[1]]),
                _ => {}
            }
            pos += total;
        }
        rb.copy_within(pos..have, 0);
        have -= pos;
        if done > before {
            let now = Instant::now();
            max_gap = max_gap.max(now - last);
            last = now;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let _ = s.write_all(&[0xE0, 0]);
    Ok(format!(
        "n={done} secs={secs} t0_ns={t0_ns} max_gap_ms={}",
        max_gap.as_secs_f64() * 1e3
    ))
}

fn sub(a: &Args) -> Result<String, String> {
    let mut s = connect(a)?;
    let mut buf = subscribe(&mut s, &a.topic, a.qos)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    ready();
    let mut rb = vec![0u8; 256 * 1024];
    let mut have = buf.len();
    rb[..have].copy_from_slice(&buf);
    buf.clear();
    let mut count = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut t_last_ns = 0u128;
    let start = Instant::now();
    let mut acks = Vec::new();
    while count < a.n {
        let mut pos = 0;
        let before = count;
        while let Some((b1, hl, total)) = frame(&rb[pos..have]) {
            if b1 >> 4 == 3 {
                count += 1;
                let qos = (b1 >> 1) & 3;
                if qos == 1 {
                    let body = &rb[pos + hl..pos + total];
                    let tl = u16::from_be_bytes([body[0], body[1]]) as usize;
                    acks.extend_from_slice(&[0x40, 2, body[2 + tl], body[3 + tl]]);
                }
            }
            pos += total;
        }
        rb.copy_within(pos..have, 0);
        have -= pos;
        if have == rb.len() {
            rb.resize(rb.len() * 2, 0);
        }
        if !acks.is_empty() {
            s.write_all(&acks).map_err(|e| e.to_string())?;
            acks.clear();
        }
        if count > before {
            last = Instant::now();
            t_last_ns = now_ns();
            first.get_or_insert(last);
        }
        if count >= a.n {
            break;
        }
        let idle = if first.is_some() {
            last.elapsed()
        } else {
            start.elapsed() / 3
        };
        if idle > Duration::from_secs(3) {
            break;
        }
        match s.read(&mut rb[have..]) {
            Ok(0) => break,
            Ok(k) => have += k,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let secs = first.map(|f| (last - f).as_secs_f64()).unwrap_or(0.0);
    Ok(format!("n={count} secs={secs} t_last_ns={t_last_ns}"))
}

fn rtt(a: &Args) -> Result<String, String> {
    let mut s = connect(a)?;
    let mut rb = subscribe(&mut s, &a.topic, a.qos)?;
    let payload = vec![0x5a; a.size];
    let mut lat = Vec::with_capacity(a.n as usize);
    let mut tmp = vec![0u8; 64 * 1024];
    let mut pkt = Vec::new();
    let warm = 50;
    for i in 0..(a.n + warm) {
        pkt.clear();
        publish_packet(&mut pkt, &a.topic, &payload, a.qos, (i % 65535) as u16 + 1);
        let t = Instant::now();
        s.write_all(&pkt).map_err(|e| e.to_string())?;
        let mut got = false;
        while !got {
            while let Some((b1, hl, total)) = frame(&rb) {
                if b1 >> 4 == 3 {
                    got = true;
                    if (b1 >> 1) & 3 == 1 {
                        let body = &rb[hl..total];
                        let tl = u16::from_be_bytes([body[0], body[1]]) as usize;
                        let ack = [0x40, 2, body[2 + tl], body[3 + tl]];
                        if i >= warm {
                            lat.push(t.elapsed());
                        }
                        s.write_all(&ack).map_err(|e| e.to_string())?;
                    } else if i >= warm {
                        lat.push(t.elapsed());
                    }
                }
                rb.drain(..total);
            }
            if got {
                break;
            }
            let k = s.read(&mut tmp).map_err(|e| e.to_string())?;
            if k == 0 {
                return Err("closed".into());
            }
            rb.extend_from_slice(&tmp[..k]);
        }
    }
    let n = lat.len();
    let (p50, p99, max) = percentiles(lat);
    let _ = s.write_all(&[0xE0, 0]);
    Ok(format!("n={n} p50_us={p50} p99_us={p99} max_us={max}"))
}
