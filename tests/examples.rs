mod support;

// Runs every program of `examples/` against a local mosquitto, with arguments that make it
// finish, and checks its exit status and key output lines.
//
// Integration tests do not build examples, so the first test to need one runs
// `cargo build --examples` once (guarded by a `OnceLock`) and the binaries are then run from
// `<target dir>/debug/examples/`. Every run has a deadline (the child is killed after
// [`RUN_TIMEOUT`]); pairs of programs (RPC server + client, sub + pub) run together and
// synchronise on output lines or the broker's log, never on sleeps. The TLS, WebSockets and
// SRV cases need the matching cargo features (all default).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mqtt_sync::{publish, Client, QoS};
use support::{Events, Mosquitto, T};

/// How long one example may run before it is killed and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Building and running examples

/// `<target>/debug/examples`, after building every example once per test binary.
fn examples_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        // The examples get the features this test binary was built with (srv is opt-in).
        let features: Vec<&str> = [
            (cfg!(feature = "tls"), "tls"),
            (cfg!(feature = "websockets"), "websockets"),
            (cfg!(feature = "srv"), "srv"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| *f)
        .collect();
        let out = Command::new(env!("CARGO"))
            .args(["build", "--examples", "--quiet", "--package", "mqtt-sync"])
            .args(["--no-default-features", "--features", &features.join(",")])
            .current_dir(&manifest)
            .stdin(Stdio::null())
            .output()
            .expect("run cargo build --examples");
        assert!(
            out.status.success(),
            "cargo build --examples failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|p| if p.is_relative() { manifest.join(p) } else { p })
            .unwrap_or_else(|| manifest.join("target"));
        target.join("debug").join("examples")
    })
}

/// A running example: its output is collected line by line (stdout and stderr).
struct Run {
    name: String,
    child: Child,
    lines: Receiver<String>,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Run {
    #[track_caller]
    fn start(name: &str, args: &[&str]) -> Run {
        let exe = examples_dir().join(name);
        assert!(
            exe.exists(),
            "example binary {} was not built (is examples/{name}.rs there?)",
            exe.display()
        );
        let mut child = Command::new(&exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_BACKTRACE", "1")
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let mut readers = Vec::new();
        let streams: [(Box<dyn Read + Send>, &str); 2] = [
            (Box::new(child.stdout.take().unwrap()), ""),
            (Box::new(child.stderr.take().unwrap()), "[stderr] "),
        ];
        for (stream, prefix) in streams {
            let (tx, output) = (tx.clone(), output.clone());
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let line = format!("{prefix}{line}");
                    output.lock().unwrap().push_str(&format!("{line}\n"));
                    let _ = tx.send(line);
                }
            }));
        }
        Run {
            name: name.to_string(),
            child,
            lines: rx,
            output,
            readers,
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits for an output line containing `needle`; kills the example and panics on timeout.
    #[track_caller]
    fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + RUN_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "{}: no line containing {needle:?}; output:\n{}",
                        self.name,
                        self.output()
                    );
                }
            }
        }
    }

    /// Waits for the example to exit (killing it after the timeout) and returns its status
    /// and whole output.
    #[track_caller]
    fn finish(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                panic!(
                    "{} did not finish within {RUN_TIMEOUT:?}; output:\n{}",
                    self.name,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        (status, self.output())
    }

    /// [`Run::finish`], asserting exit status 0. Returns the output.
    #[track_caller]
    fn success(self) -> String {
        let name = self.name.clone();
        let (status, out) = self.finish();
        assert!(
            status.success(),
            "{name} exited with {status}; output:\n{out}"
        );
        out
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs an example to completion and asserts exit status 0; returns its output.
#[track_caller]
fn run(name: &str, args: &[&str]) -> String {
    Run::start(name, args).success()
}

#[track_caller]
fn assert_has(out: &str, needle: &str) {
    assert!(out.contains(needle), "output has no {needle:?}:\n{out}");
}

// ---------------------------------------------------------------------------------------
// Brokers and helper clients

/// A broker that publishes `$SYS` every second.
fn sys_broker() -> Mosquitto {
    Mosquitto::builder().config("sys_interval 1").start()
}

fn port_arg(broker: &Mosquitto) -> String {
    broker.port().to_string()
}

/// Publishes a retained message through the default listener.
fn retain(broker: &Mosquitto, topic: &str, payload: &str) {
    let opts = publish::Options {
        hostname: broker.host().into(),
        port: broker.port(),
        ..Default::default()
    };
    publish::single(topic, payload, QoS::AtLeastOnce, true, &opts)
        .expect("publish retained message");
}

/// A client subscribed (SUBACK received) to `filter`; messages arrive as `topic payload`.
fn subscriber(broker: &Mosquitto, filter: &str) -> (Client, Events<String>) {
    let c = Client::new("");
    let msgs: Events<String> = Events::new();
    let tx = msgs.sender();
    c.on_message(move |_c, m| {
        let _ = tx.send(format!(
            "{} {}",
            m.topic(),
            String::from_utf8_lossy(m.payload())
        ));
    });
    let subacks: Events<u16> = Events::new();
    let stx = subacks.sender();
    c.on_subscribe(move |_c, mid, _rcs, _p| {
        let _ = stx.send(mid);
    });
    c.connect(broker.host(), broker.port(), 60).unwrap();
    c.subscribe(filter, QoS::AtLeastOnce).unwrap();
    c.loop_start().unwrap();
    subacks.wait(T);
    (c, msgs)
}

/// Waits until the broker has answered a SUBSCRIBE (of whichever client: each test has its
/// own broker).
fn wait_for_suback(broker: &Mosquitto) {
    broker.wait_for_log("Sending SUBACK to", RUN_TIMEOUT);
}

// ---------------------------------------------------------------------------------------
// Subscribers (client_sub*.py)

#[test]
fn client_sub() {
    let broker = sys_broker();
    let out = run(
        "client_sub",
        &[
            "--host",
            broker.host(),
            "--port",
            &port_arg(&broker),
            "--count",
            "1",
        ],
    );
    assert_has(&out, "reason_code: Success");
    assert_has(&out, "Subscribed: 1 [");
    assert_has(&out, "$SYS/broker/version 0 b'mosquitto version");
}

#[test]
fn client_sub_class() {
    let broker = Mosquitto::start();
    retain(&broker, "class/t", "hello");
    let out = run(
        "client_sub_class",
        &[
            "--host",
            broker.host(),
            "--port",
            &port_arg(&broker),
            "--topic",
            "class/#",
            "--count",
            "1",
        ],
    );
    assert_has(&out, "rc: Success");
    assert_has(&out, "Subscribed: 1 [");
    assert_has(&out, "class/t 0 b'hello'");
    // run() returns the error code that ended the loop, printed last.
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("rc: "), "last line is {last:?}:\n{out}");
}

#[test]
fn client_sub_multiple_callback() {
    let broker = sys_broker();
    let out = run(
        "client_sub_multiple_callback",
        &[
            "--host",
            broker.host(),
            "--port",
            &port_arg(&broker),
            "--count",
            "100",
        ],
    );
    assert_has(&out, "MESSAGES: $SYS/broker/messages/");
    assert_has(&out, "BYTES: $SYS/broker/bytes/");
    assert_has(&out, "\n$SYS/broker/");
    // on_message never sees what a filter callback took.
    assert!(
        !out.lines().any(|l| l.starts_with("$SYS/broker/bytes/")),
        "{out}"
    );
    assert!(
        !out.lines().any(|l| l.starts_with("$SYS/broker/messages/")),
        "{out}"
    );
}

#[test]
fn client_sub_opts() {
    let broker = Mosquitto::start();
    retain(&broker, "opts/t", "hello");
    let out = run(
        "client_sub_opts",
        &[
            "-H",
            broker.host(),
            "-P",
            &port_arg(&broker),
            "-t",
            "opts/#",
            "-q",
            "1",
            "-C",
            "1",
        ],
    );
    assert_has(
        &out,
        &format!("Connecting to {} port: {}", broker.host(), broker.port()),
    );
    assert_has(&out, "reason_code: Success");
    assert_has(&out, "Subscribed: 1 [Granted QoS 1]");
    assert_has(&out, "opts/t 1 b'hello'");
}

#[test]
#[cfg_attr(not(feature = "tls"), ignore = "needs the tls feature")]
fn client_sub_opts_tls() {
    let certs = support::certs::Certs::shared();
    let broker = Mosquitto::builder()
        .tls_listener("tls", certs, false)
        .start();
    retain(&broker, "opts/tls", "secret");
    let ca = certs.ca.display().to_string();
    let out = run(
        "client_sub_opts",
        &[
            "-H",
            "localhost",
            "-P",
            &broker.port_of("tls").to_string(),
            "-F",
            &ca,
            "-t",
            "opts/#",
            "-C",
            "1",
        ],
    );
    assert_has(&out, "reason_code: Success");
    assert_has(&out, "opts/tls 0 b'secret'");
}

#[test]
#[cfg_attr(not(feature = "websockets"), ignore = "needs the websockets feature")]
fn client_sub_ws() {
    let broker = Mosquitto::builder()
        .listener("ws", &["protocol websockets"])
        .start();
    retain(&broker, "ws/t", "over websockets");
    let ws_port = broker.port_of("ws").to_string();
    let out = run(
        "client_sub_ws",
        &[
            "--host",
            broker.host(),
            "--port",
            &ws_port,
            "--topic",
            "ws/#",
            "--count",
            "1",
        ],
    );
    assert_has(&out, "reason_code: Success");
    assert_has(&out, "Subscribed: 1 [");
    assert_has(&out, "ws/t 0 b'over websockets'");
    // on_log is on, as in the original.
    assert_has(&out, "Sending CONNECT");
}

#[test]
#[cfg_attr(not(feature = "srv"), ignore = "needs the srv feature")]
fn client_sub_srv() {
    use support::dns::{Dnsmasq, Srv};
    let broker = sys_broker();
    let dns = Dnsmasq::start(
        &[Srv::new(
            "_mqtt._tcp.examples.test",
            "localhost",
            broker.port(),
            10,
            0,
        )],
        &["examples.test"],
    );
    let out = run(
        "client_sub_srv",
        &[
            "--domain",
            "examples.test",
            "--nameserver",
            &dns.addr().to_string(),
            "--count",
            "1",
        ],
    );
    assert_has(&out, &format!(":{}", broker.port()));
    assert_has(&out, "Connected to ");
    assert_has(&out, "$SYS/broker/version 0 b'mosquitto version");
    assert!(
        out.lines().last().unwrap_or_default().starts_with("rc: "),
        "{out}"
    );
}

#[test]
fn client_logger() {
    let broker = sys_broker();
    let out = run(
        "client_logger",
        &[
            "--host",
            broker.host(),
            "--port",
            &port_arg(&broker),
            "--count",
            "1",
        ],
    );
    assert_has(&out, "[stderr] DEBUG:mqtt_sync:");
    assert_has(&out, "Received CONNACK");
    assert_has(&out, "Received PUBLISH");
}

// ---------------------------------------------------------------------------------------
// Publishers (client_pub*.py)

#[test]
fn client_pub_wait() {
    let broker = Mosquitto::start();
    let (_sub, msgs) = subscriber(&broker, "#");
    let out = run(
        "client_pub_wait",
        &["--host", broker.host(), "--port", &port_arg(&broker)],
    );
    assert_has(&out, "tuple\n");
    assert_has(&out, "class\n");
    assert_has(&out, "reason_code: Success");
    assert_has(&out, "mid: 1");
    let mut got = vec![msgs.wait(T), msgs.wait(T)];
    got.sort();
    assert_eq!(got, ["class bar", "tuple bar"]);
}

#[test]
fn client_pub_opts() {
    let broker = Mosquitto::start();
    let (_sub, msgs) = subscriber(&broker, "paho/test/opts");
    let out = run(
        "client_pub_opts",
        &[
            "-H",
            broker.host(),
            "-P",
            &port_arg(&broker),
            "-N",
            "3",
            "-S",
            "0",
            "-q",
            "1",
        ],
    );
    assert_has(&out, "connect reason_code: Success");
    for n in 0..3 {
        assert_has(&out, &format!("Publishing: {{\"msgnum\": \"{n}\"}}"));
        assert_eq!(
            msgs.wait(T),
            format!("paho/test/opts {{\"msgnum\": \"{n}\"}}")
        );
    }
    assert_has(&out, "mid: 3");
}

#[test]
fn client_session_present() {
    let broker = Mosquitto::start();
    let out = run(
        "client_session_present",
        &["--host", broker.host(), "--port", &port_arg(&broker)],
    );
    let expected = [
        "First connection:",
        "    Session present: false",
        "Second connection:",
        "    Session present: true",
        "Third connection (with clean session=True):",
        "    Session present: false",
    ];
    let got: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.ends_with("connection:") || l.contains("=True):") || l.contains("Session present")
        })
        .collect();
    assert_eq!(got, expected, "output:\n{out}");
    assert_eq!(
        out.matches("Connection result: Success").count(),
        3,
        "{out}"
    );
}

#[test]
fn client_mqtt_clear_retain() {
    let broker = Mosquitto::start();
    retain(&broker, "clear/a", "x");
    retain(&broker, "clear/b", "y");
    let port = port_arg(&broker);
    let out = run(
        "client_mqtt_clear_retain",
        &["-h", broker.host(), "-p", &port, "-t", "clear/#", "-v"],
    );
    assert_has(&out, "rc: Success");
    assert_has(&out, "Clearing topic clear/a");
    assert_has(&out, "Clearing topic clear/b");
    // Nothing is retained any more: a second run finds nothing and gives up after --timeout.
    let out = run(
        "client_mqtt_clear_retain",
        &[
            "-h",
            broker.host(),
            "-p",
            &port,
            "-t",
            "clear/#",
            "-v",
            "--timeout",
            "1",
        ],
    );
    assert!(!out.contains("Clearing topic"), "{out}");
    assert_has(&out, "Nothing (more) to clear");
}

// ---------------------------------------------------------------------------------------
// MQTT v5 request / response (client_rpc_math.py + server_rpc_math.py)

#[test]
fn rpc_math_server_and_client() {
    let broker = Mosquitto::start();
    let port = port_arg(&broker);
    let mut server = Run::start(
        "server_rpc_math",
        &["--host", broker.host(), "--port", &port, "--count", "3"],
    );
    server.wait_line("Subscribing to math requests");
    server.wait_line("Subscribed:");

    let out = run(
        "client_rpc_math",
        &[
            "--host",
            broker.host(),
            "--port",
            &port,
            "add",
            "1",
            "2",
            "3.5",
        ],
    );
    assert_has(&out, "Response: 6.5");
    let out = run(
        "client_rpc_math",
        &["--host", broker.host(), "--port", &port, "mult", "2", "-3"],
    );
    assert_has(&out, "Response: -6.0");
    // The same through mqtt-sync's request helper.
    let out = run(
        "client_rpc_math",
        &[
            "--host",
            broker.host(),
            "--port",
            &port,
            "--request",
            "add",
            "4",
            "5",
        ],
    );
    assert_has(&out, "Response: 9.0");

    let out = server.success();
    assert_has(&out, "requests/math/add  b'[1.0,2.0,3.5]'");
    assert_has(&out, "Sending response 6.5 on 'replies/math/");
    assert_has(&out, "Sending response -6.0 on 'replies/math/");
}

#[test]
fn client_rpc_math_usage() {
    let (status, out) = Run::start("client_rpc_math", &["add"]).finish();
    assert_eq!(status.code(), Some(1), "{out}");
    assert_has(&out, "USAGE:");
}

// ---------------------------------------------------------------------------------------
// External event loop (loop_select.py)

#[test]
fn loop_select() {
    let broker = Mosquitto::start();
    let out = run(
        "loop_select",
        &[
            "--host",
            broker.host(),
            "--port",
            &port_arg(&broker),
            "--delay",
            "0",
        ],
    );
    assert_has(&out, "Starting");
    assert_has(&out, "Subscribing");
    assert_eq!(
        out.matches("Got message with len 200000").count(),
        3,
        "{out}"
    );
    // The shrunk send buffer makes the loop wait for writability at least once.
    assert_has(&out, "Socket is writable, calling loop_write");
    assert_has(&out, "Disconnected: Success");
    assert!(out.ends_with("Finished\n"), "{out}");
}

// ---------------------------------------------------------------------------------------
// Helpers (publish_*.py, subscribe_*.py)

#[test]
fn publish_single() {
    let broker = Mosquitto::start();
    let (_sub, msgs) = subscriber(&broker, "paho/test/#");
    run(
        "publish_single",
        &["--host", broker.host(), "--port", &port_arg(&broker)],
    );
    assert_eq!(msgs.wait(T), "paho/test/single boo");
}

#[test]
fn publish_multiple() {
    let broker = Mosquitto::start();
    let (_sub, msgs) = subscriber(&broker, "paho/test/#");
    run(
        "publish_multiple",
        &["--host", broker.host(), "--port", &port_arg(&broker)],
    );
    assert_eq!(msgs.wait(T), "paho/test/multiple multiple 1");
    assert_eq!(msgs.wait(T), "paho/test/multiple multiple 2");
}

#[test]
fn publish_utf8_3() {
    let broker = Mosquitto::start();
    let (_sub, msgs) = subscriber(&broker, "paho/test/#");
    run(
        "publish_utf8_3",
        &["--host", broker.host(), "--port", &port_arg(&broker)],
    );
    assert_eq!(
        msgs.wait(T),
        "paho/test/single/ô German umlauts like \"ä\" ü\"ö\" are not supported"
    );
}

#[test]
fn publish_utf8_27() {
    let broker = Mosquitto::start();
    let (_sub, msgs) = subscriber(&broker, "paho/test/#");
    run(
        "publish_utf8_27",
        &["--host", broker.host(), "--port", &port_arg(&broker)],
    );
    assert_eq!(msgs.wait(T), "paho/test/single/ô bôô");
}

#[test]
fn subscribe_simple() {
    let broker = Mosquitto::start();
    retain(&broker, "simple/retained", "skipped"); // retained=False: not counted
    let run_ = Run::start(
        "subscribe_simple",
        &["--host", broker.host(), "--port", &port_arg(&broker)],
    );
    wait_for_suback(&broker);
    let msgs = [
        publish::Msg::new("simple/a", "one"),
        publish::Msg::new("simple/b", "two"),
    ];
    let opts = publish::Options {
        hostname: broker.host().into(),
        port: broker.port(),
        ..Default::default()
    };
    publish::multiple(&msgs, &opts).unwrap();
    let out = run_.success();
    assert_eq!(out, "simple/a\nb'one'\nsimple/b\nb'two'\n");
}

#[test]
fn subscribe_callback() {
    let broker = Mosquitto::start();
    let run_ = Run::start(
        "subscribe_callback",
        &[
            "--host",
            broker.host(),
            "--port",
            &port_arg(&broker),
            "--count",
            "2",
        ],
    );
    wait_for_suback(&broker);
    let msgs = [
        publish::Msg::new("cb/a", "one"),
        publish::Msg::new("cb/b", "two"),
    ];
    let opts = publish::Options {
        hostname: broker.host().into(),
        port: broker.port(),
        ..Default::default()
    };
    publish::multiple(&msgs, &opts).unwrap();
    let out = run_.success();
    assert_eq!(out, "cb/a : b'one'\ncb/b : b'two'\n");
}

// ---------------------------------------------------------------------------------------
// The small tools (owned elsewhere, tested here): sys_version, pub, sub

#[test]
fn sys_version() {
    let broker = sys_broker();
    let out = run(
        "sys_version",
        &[
            "--host",
            broker.host(),
            "--port",
            &port_arg(&broker),
            "--exit-after-first",
        ],
    );
    assert_has(&out, "$SYS/broker/version mosquitto version");
}

#[test]
fn pub_and_sub() {
    let broker = Mosquitto::start();
    let port = port_arg(&broker);
    let sub = Run::start(
        "sub",
        &[
            "-h",
            broker.host(),
            "-p",
            &port,
            "-t",
            "demo/#",
            "-q",
            "1",
            "-C",
            "3",
        ],
    );
    wait_for_suback(&broker);
    let out = run(
        "pub",
        &[
            "-h",
            broker.host(),
            "-p",
            &port,
            "-t",
            "demo/x",
            "-q",
            "1",
            "-m",
            "hello {n}",
            "-n",
            "3",
        ],
    );
    let _ = out;
    let out = sub.success();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (i, line) in lines.iter().enumerate() {
        assert!(
            line.contains("demo/x") && line.contains(&format!("hello {}", i + 1)),
            "line {line:?} in:\n{out}"
        );
    }
}

#[test]
fn consume() {
    let broker = Mosquitto::start();
    let port = port_arg(&broker);
    let consumer = Run::start("consume", &[broker.host(), &port, "consume/#", "3"]);
    wait_for_suback(&broker);
    run(
        "pub",
        &[
            "-h",
            broker.host(),
            "-p",
            &port,
            "-t",
            "consume/x",
            "-q",
            "1",
            "-m",
            "hello {n}",
            "-n",
            "3",
        ],
    );
    let out = consumer.success();
    for i in 1..=3 {
        assert_has(&out, &format!("consume/x hello {i}"));
    }
}

// ---------------------------------------------------------------------------------------
// MQTT 5 enhanced authentication (no Paho counterpart)

/// SCRAM-SHA-256 against mosquitto with the plugin of tests/plugins/scram_auth.c: login,
/// the broker's proof verified, a re-authentication on the open connection.
#[test]
fn auth_scram() {
    let broker = support::auth_plugin::AuthBroker::start(&[("alice", "secret")]);
    let port = port_arg(&broker);
    let args = scram_args(&broker, &port, "secret");
    let out = run("auth_scram", &args);
    assert_has(&out, "connected: server signature verified");
    let mut with_reauth = args.to_vec();
    with_reauth.push("--reauth");
    let out = run("auth_scram", &with_reauth);
    assert_has(&out, "connected: server signature verified");
    assert_has(&out, "re-authenticated: server signature verified");
}

/// `auth_scram`'s arguments for user alice with `password` against `broker`.
fn scram_args<'a>(
    broker: &'a support::Mosquitto,
    port: &'a str,
    password: &'a str,
) -> [&'a str; 8] {
    [
        "--host",
        broker.host(),
        "--port",
        port,
        "--user",
        "alice",
        "--password",
        password,
    ]
}

/// A wrong password: CONNACK 0x87 reaches on_connect, the example exits with status 1.
#[test]
fn auth_scram_wrong_password() {
    let broker = support::auth_plugin::AuthBroker::start(&[("alice", "secret")]);
    let port = port_arg(&broker);
    let args = scram_args(&broker, &port, "wrong");
    let (status, out) = Run::start("auth_scram", &args).finish();
    assert_eq!(status.code(), Some(1), "{out}");
    assert_has(&out, "refused: Not authorized (0x87)");
}
