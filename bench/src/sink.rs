//! The ack-only sink broker: answers what a client needs to make progress and discards the
//! rest, so publish workloads measure the client alone. One thread per connection, 256 KiB
//! reads, and all answers to one read batched into one write.

use crate::util::frame;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

pub fn serve(port: u16) -> i32 {
    let l = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sink: bind {port}: {e}");
            return 1;
        }
    };
    crate::util::ready();
    for s in l.incoming().flatten() {
        std::thread::spawn(move || conn(s));
    }
    0
}

fn conn(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf: Vec<u8> = vec![0; 256 * 1024];
    let mut have = 0usize;
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        if have == buf.len() {
            let n = buf.len() * 2;
            buf.resize(n, 0);
        }
        let k = match s.read(&mut buf[have..]) {
            Ok(0) | Err(_) => return,
            Ok(k) => k,
        };
        have += k;
        let mut pos = 0;
        while let Some((b1, hl, total)) = frame(&buf[pos..have]) {
            let body = &buf[pos + hl..pos + total];
            match b1 >> 4 {
                1 => out.extend_from_slice(&[0x20, 2, 0, 0]),
                3 => {
                    let qos = (b1 >> 1) & 3;
                    if qos > 0 && body.len() >= 2 {
                        let tl = u16::from_be_bytes([body[0], body[1]]) as usize;
                        if let Some(id) = body.get(2 + tl..4 + tl) {
                            let t = if qos == 1 { 0x40 } else { 0x50 };
                            out.extend_from_slice(&[t, 2, id[0], id[1]]);
                        }
                    }
                }
                6 if body.len() >= 2 => out.extend_from_slice(&[0x70, 2, body[0], body[1]]),
                8 if body.len() >= 2 => {
                    // Grant every filter the QoS it asked for.
                    let mut granted = Vec::new();
                    let mut i = 2;
                    while i + 2 <= body.len() {
                        let tl = u16::from_be_bytes([body[i], body[i + 1]]) as usize;
                        i += 2 + tl;
                        granted.push(body.get(i).copied().unwrap_or(0) & 3);
                        i += 1;
                    }
                    out.push(0x90);
                    crate::util::put_varint(&mut out, 2 + granted.len());
                    out.extend_from_slice(&body[..2]);
                    out.extend_from_slice(&granted);
                }
                10 if body.len() >= 2 => out.extend_from_slice(&[0xB0, 2, body[0], body[1]]),
                12 => out.extend_from_slice(&[0xD0, 0]),
                14 => return,
                _ => {}
            }
            pos += total;
        }
        if pos > 0 {
            buf.copy_within(pos..have, 0);
            have -= pos;
        }
        if !out.is_empty() {
            if s.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    }
}
