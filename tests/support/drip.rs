//! A peer that drips: it accepts connections and answers each with a prefix, then one more
//! byte every 100 ms, for ever (until the client goes away) — the slow proxy, TLS server or
//! WebSocket endpoint that per-read timeouts cannot bound.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{channel, Receiver};
use std::thread;
use std::time::Duration;

/// How often a dripping peer sends its next byte.
pub const DRIP: Duration = Duration::from_millis(100);

pub struct Drip {
    pub port: u16,
    /// One message per accepted connection.
    pub accepted: Receiver<()>,
    /// One message per connection the client closed (a write failed).
    pub closed: Receiver<()>,
}

impl Drip {
    /// Starts a dripping peer on a free loopback port: each connection gets `prefix`, then
    /// `filler` one byte at a time.
    pub fn start(prefix: &'static [u8], filler: u8) -> Drip {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a dripping peer");
        let port = listener.local_addr().unwrap().port();
        let (tx, accepted) = channel();
        let (closed_tx, closed) = channel();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                if tx.send(()).is_err() {
                    return;
                }
                let closed_tx = closed_tx.clone();
                thread::spawn(move || {
                    drip(conn, prefix, filler);
                    let _ = closed_tx.send(());
                });
            }
        });
        Drip {
            port,
            accepted,
            closed,
        }
    }
}

fn drip(mut conn: TcpStream, prefix: &[u8], filler: u8) {
    if conn.write_all(prefix).is_err() {
        return;
    }
    // Simulates a slow peer (not a synchronisation): one byte, then a pause.
    while conn.write_all(&[filler]).is_ok() {
        thread::sleep(DRIP);
    }
}
