//! Port of paho.mqtt.python examples/loop_select.py: drives the client from your own event loop (`socket()`, `want_write()`, `loop_read()`, `loop_write()`, `loop_misc()`) instead of a loop thread.
//!
//! Run: `cargo run --example loop_select -- [--host localhost] [--port 1883] [--delay 5]`
//!
//! Python calls `select.select()`; std has no portable select/poll, so this port uses `mio`
//! (already a dependency of mqtt-sync) the same way: before each wait the socket is
//! registered for reading, and for writing when `want_write()`, then deregistered, so every
//! wait sees the socket's current state as `select()` does. It subscribes to a topic named
//! after its client id, publishes `Hello` x 40000 three times (waiting `--delay` seconds,
//! 5 as in the original, before each), receives each back, then disconnects and exits.
//! As in the original the send buffer is shrunk to 2048 bytes, so the big messages need
//! several `loop_write()` calls. Not in the original: the first publish also waits for the
//! SUBACK (`on_subscribe`), so that a short `--delay` cannot publish before the subscription
//! exists.

#[path = "common/mod.rs"]
mod common;

use std::os::fd::{BorrowedFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Args;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use mqtt_sync as mqtt;
use std::sync::{Arc, Mutex};

const SOCK: Token = Token(0);

/// What the callbacks change (Python keeps it in `self`).
struct Shared {
    state: u32,
    t: Instant,
    disconnected: (bool, Option<mqtt::ReasonCode>),
    subscribed: bool,
}

struct SelectMqttExample {
    topic: String,
    shared: Arc<Mutex<Shared>>,
    client: mqtt::Client,
    poll: Poll,
    events: Events,
}

impl SelectMqttExample {
    fn on_connect(topic: &str, client: &mqtt::Client) {
        println!("Subscribing");
        if let Err(e) = client.subscribe(topic, mqtt::QoS::AtMostOnce) {
            println!("subscribe failed: {e}");
        }
    }

    fn on_subscribe(shared: &Mutex<Shared>) {
        shared.lock().unwrap().subscribed = true;
    }

    fn on_message(shared: &Mutex<Shared>, msg: &mqtt::Message) {
        let mut s = shared.lock().unwrap();
        if ![1, 3, 5].contains(&s.state) {
            println!(
                "Got unexpected message: {}",
                String::from_utf8_lossy(msg.payload())
            );
            return;
        }

        println!("Got message with len {}", msg.payload().len());
        s.state += 1;
        s.t = Instant::now();
    }

    fn on_disconnect(shared: &Mutex<Shared>, rc: mqtt::ReasonCode) {
        shared.lock().unwrap().disconnected = (true, Some(rc));
    }

    fn do_select(&mut self) -> Result<(), String> {
        let sock: RawFd = self.client.socket().ok_or("Socket is gone")?;

        let want_write = self.client.want_write();
        println!(
            "Selecting for reading{}",
            if want_write { " and writing" } else { "" }
        );
        let interest = if want_write {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let registry = self.poll.registry();
        registry
            .register(&mut SourceFd(&sock), SOCK, interest)
            .map_err(|e| e.to_string())?;
        let waited = self
            .poll
            .poll(&mut self.events, Some(Duration::from_secs(1)));
        let _ = self.poll.registry().deregister(&mut SourceFd(&sock));
        waited.map_err(|e| e.to_string())?;
        let (mut r, mut w) = (false, false);
        for ev in self.events.iter() {
            r |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
            w |= ev.is_writable();
        }

        if r {
            println!("Socket is readable, calling loop_read");
            let _ = self.client.loop_read();
        }

        if w && self.client.socket().is_some() {
            println!("Socket is writable, calling loop_write");
            let _ = self.client.loop_write();
        }

        let _ = self.client.loop_misc();
        Ok(())
    }

    fn main(client_id: &str, host: &str, port: u16, delay: Duration) -> Result<(), String> {
        let topic = client_id.to_string();
        let shared = Arc::new(Mutex::new(Shared {
            state: 0,
            t: Instant::now(),
            disconnected: (false, None),
            subscribed: false,
        }));

        let client = mqtt::Client::new(client_id);
        let tp = topic.clone();
        client.on_connect(move |c, _flags, _rc, _props| SelectMqttExample::on_connect(&tp, c));
        let s = shared.clone();
        client.on_subscribe(move |_c, _mid, _rcs, _props| SelectMqttExample::on_subscribe(&s));
        let s = shared.clone();
        client.on_message(move |_c, msg| SelectMqttExample::on_message(&s, msg));
        let s = shared.clone();
        client
            .on_disconnect(move |_c, _flags, rc, _props| SelectMqttExample::on_disconnect(&s, rc));

        client.connect(host, port, 60).map_err(|e| e.to_string())?;
        println!("Socket opened");
        let fd = client.socket().ok_or("no socket after connect")?;
        // SAFETY: `fd` is the client's open socket; it is only borrowed for this call.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        socket2::SockRef::from(&borrowed)
            .set_send_buffer_size(2048)
            .map_err(|e| e.to_string())?;

        let mut me = SelectMqttExample {
            topic,
            shared,
            client,
            poll: Poll::new().map_err(|e| e.to_string())?,
            events: Events::with_capacity(4),
        };

        while !me.shared.lock().unwrap().disconnected.0 {
            me.do_select()?;

            let mut s = me.shared.lock().unwrap();
            if [0, 2, 4].contains(&s.state)
                && (s.state > 0 || s.subscribed)
                && s.t.elapsed() >= delay
            {
                println!("Publishing");
                if let Err(e) = me.client.publish(
                    &me.topic,
                    b"Hello".repeat(40000),
                    mqtt::QoS::AtMostOnce,
                    false,
                ) {
                    println!("publish failed: {e}");
                }
                s.state += 1;
            }

            if s.state == 6 {
                s.state += 1;
                drop(s);
                let _ = me.client.disconnect();
            }
        }

        let rc = me.shared.lock().unwrap().disconnected.1;
        println!(
            "Disconnected: {}",
            rc.map(|rc| rc.to_string()).unwrap_or_default()
        );
        Ok(())
    }
}

fn main() {
    let args = Args::parse(&["--host", "--port", "--delay"]);
    let delay = Duration::from_secs_f64(args.get(&["--delay"], 5.0));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // Python uses uuid4(); a process id and the clock are unique enough here.
    let client_id = format!(
        "paho-mqtt-python/issue72/{}-{nanos:08x}",
        std::process::id()
    );
    println!("Using client_id / topic: {client_id}");

    println!("Starting");
    if let Err(e) = SelectMqttExample::main(&client_id, &args.host(), args.port(), delay) {
        eprintln!("Exception: {e}");
        std::process::exit(1);
    }
    println!("Finished");
}
