//! rumqttd as a child process for the interop tests (`tests/support/rumqttd.rs`).
//!
//! `mqtt-sync-rumqttd <config.toml>` reads a rumqttd config (the format of rumqttd's own
//! `rumqttd.toml`: `[router]`, `[v4.NAME]`, `[v5.NAME]`) and runs the broker in the
//! foreground, logging to stderr in a compact one-line format (filter: `RUST_LOG`, default
//! `rumqttd=info`).
//!
//! Unlike `rumqttd`'s own binary (and `Broker::start`), a listener that cannot bind ends the
//! process with exit status 3 and a line `listener NAME failed: ...`, so that the harness can
//! pick other ports instead of running with a listener missing. Once every listener accepts
//! connections, `rumqttd-runner ready` is printed. SIGTERM and SIGKILL both end it at once: rumqttd keeps
//! nothing on disk, so there is nothing to save.

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rumqttd::protocol::{v4::V4, v5::V5, Protocol};
use rumqttd::{Config, LinkType, Router, Server, ServerSettings};

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| fail("usage: mqtt-sync-rumqttd <config.toml>"));
    tracing_subscriber::fmt()
        .compact()
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "rumqttd=info".into()),
        )
        .init();

    let config: Config = config::Config::builder()
        .add_source(config::File::new(&path, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize())
        .unwrap_or_else(|e| fail(&format!("bad config {path}: {e}")));

    let router_tx = Router::new(config.id, config.router.clone()).spawn();

    // Each listener runs on its own thread and current-thread runtime, as Broker::start does;
    // the bind result comes back on `bound`.
    let (bound, results) = mpsc::channel::<Result<(String, SocketAddr), String>>();
    let mut count = 0;
    let mut spawn = |kind: &'static str, settings: &ServerSettings, v5: bool| {
        count += 1;
        let name = format!("{kind}.{}", settings.name);
        let bound = bound.clone();
        let settings = settings.clone();
        let router_tx = router_tx.clone();
        thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                if v5 {
                    serve(
                        name,
                        Server::new(settings.clone(), router_tx, V5),
                        &settings,
                        bound,
                    )
                } else {
                    serve(
                        name,
                        Server::new(settings.clone(), router_tx, V4),
                        &settings,
                        bound,
                    )
                }
            })
            .expect("spawn listener thread");
    };
    for s in config.v4.iter().flat_map(|m| m.values()) {
        spawn("v4", s, false);
    }
    for s in config.v5.iter().flat_map(|m| m.values()) {
        spawn("v5", s, true);
    }
    if count == 0 {
        fail("no [v4.NAME] or [v5.NAME] listener in the config");
    }
    drop(bound);
    let mut addrs = Vec::new();
    for _ in 0..count {
        match results.recv() {
            Ok(Ok((name, addr))) => {
                eprintln!("rumqttd-runner listening {name} on {addr}");
                addrs.push(addr);
            }
            Ok(Err(why)) => fail(&why),
            Err(_) => fail("a listener thread ended early"),
        }
    }
    // rumqttd binds right after the probe: wait until every listener accepts (rumqttd logs
    // these probe connections as connect errors).
    let deadline = Instant::now() + Duration::from_secs(10);
    for addr in addrs {
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Err(why)) = results.try_recv() {
                fail(&why);
            }
            if Instant::now() > deadline {
                fail(&format!("{addr} does not accept connections"));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
    eprintln!("rumqttd-runner ready");
    // The listener threads run until the process is signalled; a listener that fails after
    // binding sends its error here too.
    match results.recv() {
        Ok(Err(why)) => fail(&why),
        _ => loop {
            thread::park();
        },
    }
}

/// Binds the listener first (so that a port in use is reported, not only logged), then runs
/// rumqttd's accept loop on it.
fn serve<P: Protocol + Clone + Send + 'static>(
    name: String,
    mut server: Server<P>,
    settings: &ServerSettings,
    bound: mpsc::Sender<Result<(String, SocketAddr), String>>,
) {
    // Server::start binds `listen` itself; probing it here first reports a port in use
    // reliably (the probe is dropped before rumqttd binds, with SO_REUSEADDR on both).
    match std::net::TcpListener::bind(settings.listen) {
        Ok(probe) => drop(probe),
        Err(e) => {
            let _ = bound.send(Err(format!(
                "listener {name} failed: {} ({e}; os error {:?})",
                settings.listen,
                e.raw_os_error()
            )));
            return;
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let _ = bound.send(Ok((name.clone(), settings.listen)));
    let result = runtime.block_on(server.start(LinkType::Remote));
    let why = match result {
        Ok(()) => format!("listener {name} stopped"),
        Err(e) => format!("listener {name} failed: {} ({e:?})", settings.listen),
    };
    let _ = bound.send(Err(why));
}

fn fail(why: &str) -> ! {
    eprintln!("rumqttd-runner error: {why}");
    std::process::exit(3)
}
