//! Pulling messages from a channel instead of being called: `Client::message_channel`.
//!
//! ```text
//! cargo run --example consume -- [host] [port] [topic] [count]
//! ```
//!
//! Subscribes to `topic` (default `demo/#`) on `host:port` (default localhost:1883), prints
//! `count` messages (default 10) as `topic payload` from the main thread while `loop_start`'s
//! thread runs the network, then disconnects — which ends the `for` loop. The channel holds at
//! most 100 messages: while it is full the loop stops reading, so a slow consumer slows the
//! broker down instead of losing messages.

use mqtt_sync as mqtt;

fn main() -> mqtt::Result<()> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "localhost".into());
    let port = match args.next() {
        Some(p) => p
            .parse()
            .map_err(|_| mqtt::Error::InvalidArgument(format!("bad port {p:?}")))?,
        None => 1883,
    };
    let topic = args.next().unwrap_or_else(|| "demo/#".into());
    let count: usize = match args.next() {
        Some(n) => n
            .parse()
            .map_err(|_| mqtt::Error::InvalidArgument(format!("bad count {n:?}")))?,
        None => 10,
    };

    let client = mqtt::Client::new(format!("mqtt-sync-consume-{}", std::process::id()));
    let messages = client.message_channel(100)?;
    // Subscribing in on_connect renews the subscription after a reconnect.
    client.on_connect(move |c, _flags, rc, _props| {
        if !rc.is_failure() {
            c.subscribe(&topic, mqtt::QoS::AtLeastOnce).ok();
        }
    });
    client.on_subscribe(|_c, _mid, _rcs, _props| println!("subscribed"));
    client.connect(&host, port, 60)?;
    client.loop_start()?;

    let mut seen = 0;
    for m in &messages {
        println!("{} {}", m.topic(), String::from_utf8_lossy(m.payload()));
        seen += 1;
        if seen == count {
            client.disconnect()?;
        }
    }
    client.loop_stop()?;
    Ok(())
}
