//! A real RabbitMQ cluster (Debian 12's `rabbitmq-server` 3.10.x with its MQTT plugin) on
//! loopback, for failover tests: two (or more) nodes started by the test, joined into one
//! cluster with `rabbitmqctl`, torn down on drop.
//!
//! ```ignore
//! let cluster = RabbitCluster::start();               // nodes A and B, MQTT 3.1.1 on both
//! let port_b = cluster.mqtt_port(B);
//! cluster.stop_node(A);                               // graceful (`rabbitmqctl shutdown`)
//! eprintln!("{}", cluster.timings());
//! ```
//!
//! Each cluster is private, so clusters can run in parallel:
//! - its own temporary folder (owned by user `rabbitmq`, removed on drop) holding the Erlang
//!   cookie (`HOME` of the nodes and of the CLI), and per node the config, enabled-plugins
//!   file, data (`RABBITMQ_MNESIA_BASE`) and logs;
//! - its own epmd (`epmd -port P -address 127.0.0.1`, `ERL_EPMD_PORT=P`), so node names and
//!   the default epmd port 4369 do not clash with other clusters or a system RabbitMQ;
//! - free loopback ports per node for AMQP, Erlang distribution and MQTT; the distribution
//!   listens on 127.0.0.1 only, and the CLI's own distribution port is an ephemeral one
//!   (`RABBITMQ_CTL_DIST_PORT_MIN/MAX=0`, instead of the fixed 35672..35682 range);
//! - node names `<unique>-a@localhost`, `<unique>-b@localhost`, ...
//!
//! The nodes run as user `rabbitmq` (`runuser -u rabbitmq -- env ... rabbitmq-server`), each
//! in its own process group so that a kill takes the whole tree (shell, beam, helpers). The
//! scripts under `/usr/lib/rabbitmq/bin` are called directly: the `/usr/sbin` wrappers
//! `cd /var/lib/rabbitmq`, may reset `HOME` and redirect the server's output to
//! `/var/log/rabbitmq`.
//!
//! Settings that matter for MQTT failover between the nodes (findings, with the reasons and
//! the RabbitMQ sources: `docs/rabbitmq-failover.md`; proof: `tests/rabbitmq_cluster_selftest.rs`):
//! - `mqtt.durable_queue_type = classic` (the default): the queue of a clean_session=false
//!   subscriber is a classic queue on the node it connected to, so it survives the loss of
//!   the *other* node. `quorum` would replicate it to both nodes, and with two nodes a quorum
//!   queue has no majority (no leader) once one node is down.
//! - `cluster_partition_handling = ignore` (the default): with `pause_minority` the surviving
//!   node of a two-node cluster, which sees only half of the nodes, would pause itself (per
//!   RabbitMQ's partitions guide; not tried here).
//! - guest/guest over loopback (guest is loopback-only, which is what the tests use);
//!   anonymous MQTT clients are mapped to guest.
//! - The MQTT plugin of 3.10 tracks client IDs in a Raft cluster over all nodes. With two
//!   nodes, the survivor B keeps accepting MQTT connections after A stops or is killed (the
//!   registration is asynchronous and B remembers the last leader), but a node *started*
//!   while the other is down answers CONNACK 3, and restarting A while only B runs would
//!   block 100 s ([`RabbitCluster::restart_node`] works around that). Three nodes
//!   ([`RabbitClusterBuilder::nodes`]) keep a majority and avoid both.
//!
//! Needs root (to run `runuser` and give the folder to `rabbitmq`). A test process that is
//! killed (rather than failing) leaves its nodes running, as with the other brokers.

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::wait::poll_until;

/// A node of the cluster, by index: [`A`] is the first node (the one the others join).
pub type Node = usize;
pub const A: Node = 0;
pub const B: Node = 1;
pub const C: Node = 2;

/// Where Debian's package puts the real scripts (the `/usr/sbin` ones are wrappers).
const SCRIPTS_DIR: &str = "/usr/lib/rabbitmq/bin";
/// How long a node gets to start (measured on 2 cores: 8–15 s for one node, 15–35 s when two
/// to four start at once).
pub const NODE_START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a graceful stop or a CLI command gets.
pub const CTL_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times a node start is retried when a just-picked port turned out to be taken.
const PORT_TRIES: usize = 3;
/// `PATH` for the nodes and the CLI (the environment is cleared for them).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Set (to anything) to keep each cluster's folder (logs, data) after the test.
pub const KEEP_ENV: &str = "MQTT_SYNC_RABBITMQ_KEEP";

/// The opt-in for the RabbitMQ tests (their nodes take about 12 s each to start).
pub const ENV: &str = "MQTT_SYNC_RABBITMQ";

/// Whether the RabbitMQ tests are opted in; says how to opt in when not.
pub fn opted_in(test: &str) -> bool {
    if std::env::var(ENV).as_deref() == Ok("1") {
        return true;
    }
    eprintln!(
        "note: {test} skipped: set {ENV}=1 to run the RabbitMQ cluster tests \
         (or run scripts/rabbitmq-cluster-test)"
    );
    false
}

/// A client id unique to this process and call.
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Why RabbitMQ cannot be used here, or `Ok` when it can (the package is installed, user
/// `rabbitmq` exists, `runuser` and `epmd` are there and we are root).
pub fn availability() -> Result<(), String> {
    let server = Path::new(SCRIPTS_DIR).join("rabbitmq-server");
    if !server.exists() {
        return Err(format!(
            "rabbitmq-server is not installed ({} missing): run scripts/rabbitmq-cluster-test, \
             or `apt-get install rabbitmq-server` (Debian 12: 3.10.x) without starting its service",
            server.display()
        ));
    }
    if !Path::new(SCRIPTS_DIR).join("rabbitmqctl").exists() {
        return Err(format!("{SCRIPTS_DIR}/rabbitmqctl missing"));
    }
    if rabbitmq_ids().is_none() {
        return Err("user 'rabbitmq' missing (made by the rabbitmq-server package)".into());
    }
    for cmd in ["runuser", "epmd"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {cmd}"))
            .env("PATH", PATH)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Err(format!("{cmd} not found"));
        }
    }
    let uid = Command::new("id").arg("-u").output().ok();
    if uid.map(|o| String::from_utf8_lossy(&o.stdout).trim() != "0") != Some(false) {
        return Err("the RabbitMQ test harness must run as root (it uses runuser)".into());
    }
    Ok(())
}

/// uid and gid of user `rabbitmq`.
fn rabbitmq_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg("rabbitmq").output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// Distinct free loopback ports (bound all at once, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Configures a cluster before starting it.
pub struct RabbitClusterBuilder {
    nodes: usize,
    config: Vec<String>,
    debug_log: bool,
}

impl Default for RabbitClusterBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RabbitClusterBuilder {
    pub fn new() -> Self {
        RabbitClusterBuilder {
            nodes: 2,
            config: Vec::new(),
            debug_log: false,
        }
    }

    /// The number of nodes (2 by default; 3 gives the MQTT plugin's Raft cluster a majority
    /// after one node is lost).
    pub fn nodes(mut self, n: usize) -> Self {
        assert!((1..=26).contains(&n), "1..=26 nodes");
        self.nodes = n;
        self
    }

    /// An extra `rabbitmq.conf` line for every node (e.g. `mqtt.durable_queue_type = quorum`);
    /// later lines override the harness's defaults.
    pub fn config(mut self, line: &str) -> Self {
        self.config.push(line.to_string());
        self
    }

    /// `log.file.level = debug` (the MQTT plugin logs every CONNECT and PUBLISH then).
    pub fn debug_log(mut self, on: bool) -> Self {
        self.debug_log = on;
        self
    }

    /// Starts every node at once, waits until each is up (`rabbitmqctl await_startup`), then
    /// joins the others to [`A`] (`stop_app`, `join_cluster`, `start_app`) and waits until
    /// every MQTT listener accepts connections. Panics (with the node logs) on failure.
    #[track_caller]
    pub fn start(self) -> RabbitCluster {
        if let Err(why) = availability() {
            panic!("cannot start a RabbitMQ cluster: {why}");
        }
        let t0 = Instant::now();
        let (uid, gid) = rabbitmq_ids().unwrap();
        let dir = tempfile::Builder::new()
            .prefix("mqtt-sync-rabbit-")
            .tempdir()
            .expect("create temp dir for rabbitmq");
        let unique = format!(
            "mqs{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );

        // The shared Erlang cookie, in the HOME of the nodes and the CLI.
        let cookie: String = format!("{unique}{:x}", t0.elapsed().as_nanos() ^ random_bits())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let cookie_path = dir.path().join(".erlang.cookie");
        fs::write(&cookie_path, &cookie).expect("write erlang cookie");
        fs::set_permissions(&cookie_path, fs::Permissions::from_mode(0o400)).unwrap();

        let mut nodes = Vec::new();
        for i in 0..self.nodes {
            let letter = (b'a' + i as u8) as char;
            let ndir = dir.path().join(letter.to_string());
            for sub in ["mnesia", "log"] {
                fs::create_dir_all(ndir.join(sub)).expect("create node dir");
            }
            fs::write(ndir.join("enabled_plugins"), "[rabbitmq_mqtt].\n")
                .expect("write enabled_plugins");
            // Keeps /etc/rabbitmq/rabbitmq-env.conf out.
            fs::write(ndir.join("rabbitmq-env.conf"), "").unwrap();
            nodes.push(RabbitNode {
                name: format!("{unique}-{letter}@localhost"),
                dir: ndir,
                amqp_port: 0,
                dist_port: 0,
                mqtt_port: 0,
                child: None,
            });
        }
        chown_tree(dir.path(), uid, gid);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();

        // The private epmd, as a child of the test (not daemonised), on loopback only.
        let mut epmd_port = 0;
        let mut epmd = None;
        for _ in 0..PORT_TRIES {
            epmd_port = free_port();
            let mut child = Command::new("epmd")
                .arg("-port")
                .arg(epmd_port.to_string())
                .arg("-address")
                .arg("127.0.0.1")
                .env("PATH", PATH)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run epmd (erlang-base): {e}"));
            let up = poll_until(Duration::from_secs(10), || {
                accepts(epmd_port) || !matches!(child.try_wait(), Ok(None))
            });
            if up && matches!(child.try_wait(), Ok(None)) {
                epmd = Some(child);
                break;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let epmd = epmd.expect("could not start a private epmd");

        let mut cluster = RabbitCluster {
            dir,
            uid,
            gid,
            epmd: Some(epmd),
            epmd_port,
            extra_config: self.config,
            debug_log: self.debug_log,
            nodes,
            timings: Timings::default(),
        };

        // Start every node at once, then wait for each.
        let started = Instant::now();
        for i in 0..cluster.nodes.len() {
            cluster.pick_ports(i);
            cluster.launch(i);
        }
        for i in 0..cluster.nodes.len() {
            let took = cluster.wait_node_up(i, started);
            cluster.timings.node_up.push(took);
        }
        cluster.timings.nodes_up = started.elapsed();

        // Join every other node to A.
        let joined = Instant::now();
        let a_name = cluster.nodes[A].name.clone();
        for i in 1..cluster.nodes.len() {
            cluster.ctl_ok(i, &["stop_app"]);
            cluster.ctl_ok(i, &["join_cluster", &a_name]);
            cluster.ctl_ok(i, &["start_app"]);
        }
        let running = cluster.ctl_ok(A, &["eval", "length(rabbit_nodes:all_running())."]);
        assert_eq!(
            running.trim(),
            cluster.nodes.len().to_string(),
            "not every node runs in the cluster after join_cluster"
        );
        for i in 0..cluster.nodes.len() {
            let port = cluster.nodes[i].mqtt_port;
            if !poll_until(CTL_TIMEOUT, || accepts(port)) {
                panic!(
                    "MQTT listener of node {} (port {port}) not accepting\n{}",
                    cluster.nodes[i].name,
                    cluster.logs()
                );
            }
        }
        cluster.timings.joined = joined.elapsed();
        cluster.timings.total = t0.elapsed();
        cluster
    }
}

/// A bit of randomness for the cookie, without a rand dependency.
fn random_bits() -> u128 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    (h.finish() as u128) << 64 | RandomState::new().build_hasher().finish() as u128
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {} to rabbitmq: {e}", path.display()));
    if path.is_dir() && !path.is_symlink() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

struct RabbitNode {
    name: String,
    dir: PathBuf,
    amqp_port: u16,
    dist_port: u16,
    mqtt_port: u16,
    child: Option<Child>,
}

/// How long the cluster took to come up.
#[derive(Debug, Default, Clone)]
pub struct Timings {
    /// From launching every node (at once) until the last one passed `await_startup`.
    pub nodes_up: Duration,
    /// Per node, from its launch until it passed `await_startup`.
    pub node_up: Vec<Duration>,
    /// `stop_app` + `join_cluster` + `start_app` of the other nodes, and the MQTT listeners.
    pub joined: Duration,
    /// Everything, from [`RabbitClusterBuilder::start`] to a ready cluster.
    pub total: Duration,
}

impl fmt::Display for Timings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RabbitMQ cluster ready in {:.1?} (nodes up in {:.1?} {:.1?}, joined in {:.1?})",
            self.total, self.nodes_up, self.node_up, self.joined
        )
    }
}

/// A running cluster. Every node process (and the private epmd) is killed on drop and the
/// folder removed.
pub struct RabbitCluster {
    dir: TempDir,
    uid: u32,
    gid: u32,
    epmd: Option<Child>,
    epmd_port: u16,
    extra_config: Vec<String>,
    debug_log: bool,
    nodes: Vec<RabbitNode>,
    timings: Timings,
}

impl RabbitCluster {
    /// Two nodes, [`A`] and [`B`], clustered, MQTT on both, guest allowed over loopback.
    #[track_caller]
    pub fn start() -> RabbitCluster {
        RabbitClusterBuilder::new().start()
    }

    pub fn builder() -> RabbitClusterBuilder {
        RabbitClusterBuilder::new()
    }

    /// Always `"127.0.0.1"`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The MQTT (3.1.1) port of `node`.
    pub fn mqtt_port(&self, node: Node) -> u16 {
        self.nodes[node].mqtt_port
    }

    /// `127.0.0.1:mqtt_port(node)`.
    pub fn mqtt_addr(&self, node: Node) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.mqtt_port(node)))
    }

    /// The AMQP port of `node`.
    pub fn amqp_port(&self, node: Node) -> u16 {
        self.nodes[node].amqp_port
    }

    /// The Erlang node name of `node`, e.g. `mqs123x0-a@localhost`.
    pub fn node_name(&self, node: Node) -> &str {
        &self.nodes[node].name
    }

    /// The username and password MQTT clients use (guest is allowed over loopback; clients
    /// without credentials are mapped to it too).
    pub fn credentials(&self) -> (&'static str, &'static str) {
        ("guest", "guest")
    }

    /// How long the start took.
    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// The cluster's temporary folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the OS process of `node` still runs.
    pub fn is_running(&mut self, node: Node) -> bool {
        match &mut self.nodes[node].child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops `node` gracefully (`rabbitmqctl shutdown`: client connections closed, the node
    /// leaves the running cluster, the runtime exits) and waits for its process to end.
    /// Returns how long it took.
    #[track_caller]
    pub fn stop_node(&mut self, node: Node) -> Duration {
        let t = Instant::now();
        assert!(
            self.is_running(node),
            "node {} is not running",
            self.nodes[node].name
        );
        self.ctl_ok(node, &["shutdown"]);
        let mut child = self.nodes[node].child.take().unwrap();
        let ended = poll_until(CTL_TIMEOUT, || !matches!(child.try_wait(), Ok(None)));
        if !ended {
            kill_group(&mut child, &self.nodes[node].dir);
            panic!(
                "node {} still running {CTL_TIMEOUT:?} after rabbitmqctl shutdown; killed it",
                self.nodes[node].name
            );
        }
        t.elapsed()
    }

    /// Kills `node` at once (SIGKILL to its whole process group) and waits for it to end.
    pub fn kill_node(&mut self, node: Node) {
        if let Some(mut child) = self.nodes[node].child.take() {
            kill_group(&mut child, &self.nodes[node].dir);
        }
    }

    /// Starts a stopped (or killed) `node` again with the same name, ports and data: it
    /// rejoins the cluster by itself. Waits until it is up and its MQTT listener accepts.
    /// Returns how long it took.
    ///
    /// In a two-node cluster the other node alone has no Raft majority, so the MQTT
    /// plugin's client-ID tracker (Ra cluster `mqtt_node`) has no leader; a restarting node
    /// then blocks 100 s in the plugin's start (`mqtt_node:start/0` asks the peers for the
    /// members, `ra:members(Peers, 100000)`, before it restarts its own Ra server, whose vote
    /// is the one missing). To avoid that, this restarts the node's `mqtt_node` Ra server
    /// itself as soon as the node's Ra system runs (`ra:restart_server(coordination,
    /// {mqtt_node, node()})` through `rabbitmqctl eval`): the two servers elect a leader and
    /// the plugin's start goes on at once.
    #[track_caller]
    pub fn restart_node(&mut self, node: Node) -> Duration {
        assert!(
            !self.is_running(node),
            "node {} is still running",
            self.nodes[node].name
        );
        let t = Instant::now();
        self.launch(node);
        self.wait_dist_port(node, t + NODE_START_TIMEOUT);
        self.nudge_mqtt_ra(node, t + NODE_START_TIMEOUT);
        self.wait_node_up(node, t);
        let port = self.nodes[node].mqtt_port;
        if !poll_until(CTL_TIMEOUT, || accepts(port)) {
            panic!(
                "MQTT listener of node {} (port {port}) not accepting after restart\n{}",
                self.nodes[node].name,
                self.logs()
            );
        }
        t.elapsed()
    }

    /// Waits until the distribution port of `node` accepts (or the node exits, or
    /// `deadline`); true if it accepts.
    fn wait_dist_port(&mut self, node: Node, deadline: Instant) -> bool {
        let dist_port = self.nodes[node].dist_port;
        let mut exited = false;
        let mut last_try: Option<Instant> = None;
        poll_until(deadline.saturating_duration_since(Instant::now()), || {
            exited = !self.is_running(node);
            if exited {
                return true;
            }
            // Connect at most every 100 ms.
            if last_try.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
                return false;
            }
            last_try = Some(Instant::now());
            accepts(dist_port)
        });
        !exited && accepts(dist_port)
    }

    /// Restarts the `mqtt_node` Ra server of a booting `node` as soon as its Ra system
    /// `coordination` runs (see [`RabbitCluster::restart_node`]). Gives up silently at
    /// `deadline` or when the node exits (the start-up wait reports that).
    fn nudge_mqtt_ra(&mut self, node: Node, deadline: Instant) {
        let expr = "try ra:restart_server(coordination, {mqtt_node, node()}) \
                    catch C:R -> {C, R} end.";
        while Instant::now() < deadline && self.is_running(node) {
            let out = self.ctl(node, &["eval", expr]);
            let text = String::from_utf8_lossy(&out.stdout);
            // Before the node's distribution is up the CLI fails; before the Ra system
            // runs: {error,system_not_started}. Anything else (ok, already started, or a
            // server that does not exist yet) ends the nudging.
            if out.status.success() && !text.contains("system_not_started") {
                return;
            }
        }
    }

    /// Runs `rabbitmqctl -n <node> <args>` (as user rabbitmq, with the cluster's cookie and
    /// epmd), with a timeout.
    pub fn ctl(&self, node: Node, args: &[&str]) -> Output {
        self.cli("rabbitmqctl", node, args)
    }

    /// Like [`RabbitCluster::ctl`], panicking with the output (and the logs) on failure;
    /// returns stdout.
    #[track_caller]
    pub fn ctl_ok(&self, node: Node, args: &[&str]) -> String {
        let out = self.ctl(node, args);
        if !out.status.success() {
            panic!(
                "rabbitmqctl -n {} {} failed ({}):\n{}{}\n{}",
                self.nodes[node].name,
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a CLI tool of the package (`rabbitmqctl`, `rabbitmq-diagnostics`,
    /// `rabbitmq-queues`, ...) against `node`, quietly (`-q`), with a timeout of
    /// [`CTL_TIMEOUT`].
    pub fn cli(&self, tool: &str, node: Node, args: &[&str]) -> Output {
        self.cli_timeout(tool, node, args, CTL_TIMEOUT)
    }

    /// Like [`RabbitCluster::cli`] with another timeout.
    pub fn cli_timeout(&self, tool: &str, node: Node, args: &[&str], timeout: Duration) -> Output {
        let mut cmd = self.runuser(node, &Path::new(SCRIPTS_DIR).join(tool));
        cmd.arg("-q")
            .arg("-n")
            .arg(&self.nodes[node].name)
            .args(args);
        run_with_timeout(cmd, timeout)
    }

    /// The members and leader of the MQTT plugin's Raft cluster (client-ID tracking), as
    /// `node` sees them: the result of `ra:members({mqtt_node, node()})`.
    pub fn mqtt_ra_members(&self, node: Node) -> String {
        let out = self.ctl(node, &["eval", "ra:members({mqtt_node, node()})."]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }

    /// The path of the main log file of `node`.
    pub fn log_path(&self, node: Node) -> PathBuf {
        let n = &self.nodes[node];
        n.dir.join("log").join(format!("{}.log", n.name))
    }

    /// The main log of `node` (all its starts).
    pub fn log(&self, node: Node) -> String {
        String::from_utf8_lossy(&fs::read(self.log_path(node)).unwrap_or_default()).into_owned()
    }

    /// What `node`'s start script and runtime wrote to stdout/stderr (all starts).
    pub fn output(&self, node: Node) -> String {
        let path = self.nodes[node].dir.join("server.out");
        String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
    }

    /// The last lines of every node's log and output, for panic messages.
    pub fn logs(&self) -> String {
        fn tail(text: &str, n: usize) -> String {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        let mut s = String::new();
        for i in 0..self.nodes.len() {
            s.push_str(&format!(
                "--- {} log (last 80 lines) ---\n{}\n--- {} stdout/stderr (last 15 lines) ---\n{}\n",
                self.nodes[i].name,
                tail(&self.log(i), 80),
                self.nodes[i].name,
                tail(&self.output(i), 15),
            ));
        }
        if std::env::var_os(KEEP_ENV).is_none() {
            s.push_str(&format!(
                "(set {KEEP_ENV}=1 to keep the cluster's folder)\n"
            ));
        }
        s
    }

    /// The environment shared by a node and the CLI that talks to it.
    fn runuser(&self, node: Node, program: &Path) -> Command {
        let n = &self.nodes[node];
        let d = |p: &str| n.dir.join(p).display().to_string();
        let mut cmd = Command::new("runuser");
        cmd.env_clear()
            .env("PATH", PATH)
            .current_dir(self.dir.path())
            .args(["-u", "rabbitmq", "--", "env"])
            .arg(format!("PATH={PATH}"))
            .arg("LANG=C.UTF-8")
            .arg("LC_ALL=C.UTF-8")
            .arg(format!("HOME={}", self.dir.path().display()))
            .arg(format!("ERL_EPMD_PORT={}", self.epmd_port))
            .arg("ERL_EPMD_ADDRESS=127.0.0.1")
            .arg(format!("RABBITMQ_NODENAME={}", n.name))
            .arg("RABBITMQ_NODE_IP_ADDRESS=127.0.0.1")
            .arg(format!("RABBITMQ_NODE_PORT={}", n.amqp_port))
            .arg(format!("RABBITMQ_DIST_PORT={}", n.dist_port))
            .arg(format!("RABBITMQ_MNESIA_BASE={}", d("mnesia")))
            .arg(format!("RABBITMQ_LOG_BASE={}", d("log")))
            .arg(format!(
                "RABBITMQ_ENABLED_PLUGINS_FILE={}",
                d("enabled_plugins")
            ))
            .arg(format!("RABBITMQ_CONFIG_FILE={}", d("rabbitmq.conf")))
            .arg(format!(
                "RABBITMQ_ADVANCED_CONFIG_FILE={}",
                d("advanced.config")
            ))
            .arg(format!("RABBITMQ_CONF_ENV_FILE={}", d("rabbitmq-env.conf")))
            .arg(format!("RABBITMQ_PID_FILE={}", d("rabbitmq.pid")))
            .arg(format!(
                "RABBITMQ_PLUGINS_EXPAND_DIR={}",
                d("plugins-expand")
            ))
            .arg("RABBITMQ_CTL_DIST_PORT_MIN=0")
            .arg("RABBITMQ_CTL_DIST_PORT_MAX=0")
            .arg("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}")
            .arg("RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}")
            .arg(program);
        cmd
    }

    fn pick_ports(&mut self, node: Node) {
        let p = free_ports(3);
        let n = &mut self.nodes[node];
        (n.amqp_port, n.dist_port, n.mqtt_port) = (p[0], p[1], p[2]);
    }

    fn write_config(&self, node: Node) {
        let n = &self.nodes[node];
        let mut lines = vec![
            "# generated by tests/support/rabbitmq.rs".to_string(),
            format!("listeners.tcp.default = 127.0.0.1:{}", n.amqp_port),
            format!("mqtt.listeners.tcp.default = 127.0.0.1:{}", n.mqtt_port),
            "mqtt.allow_anonymous = true".to_string(),
            "mqtt.default_user = guest".to_string(),
            "mqtt.default_pass = guest".to_string(),
            "mqtt.durable_queue_type = classic".to_string(),
            "loopback_users.guest = true".to_string(),
            "cluster_partition_handling = ignore".to_string(),
            "log.console = false".to_string(),
            format!(
                "log.file.level = {}",
                if self.debug_log { "debug" } else { "info" }
            ),
        ];
        lines.extend(self.extra_config.iter().cloned());
        let path = n.dir.join("rabbitmq.conf");
        fs::write(&path, lines.join("\n") + "\n").expect("write rabbitmq.conf");
        chown(&path, Some(self.uid), Some(self.gid)).unwrap();
    }

    /// Spawns the node process (not waiting for it).
    fn launch(&mut self, node: Node) {
        self.write_config(node);
        let n = &self.nodes[node];
        let out_path = n.dir.join("server.out");
        let mut out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out_path)
            .expect("open server.out");
        writeln!(out, "=== launch at {:?} ===", std::time::SystemTime::now()).unwrap();
        let mut cmd = self.runuser(node, &Path::new(SCRIPTS_DIR).join("rabbitmq-server"));
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run runuser ... rabbitmq-server: {e}"));
        self.nodes[node].child = Some(child);
    }

    /// Waits until `node` (launched at `launched`) passes `rabbitmqctl await_startup`, and
    /// returns the time since `launched`; relaunches it on other ports if a port was taken; panics with its log otherwise.
    fn wait_node_up(&mut self, node: Node, launched: Instant) -> Duration {
        let mut tries = 1;
        loop {
            let deadline = launched + NODE_START_TIMEOUT;
            let dist_port = self.nodes[node].dist_port;
            // The distribution port listens (and the node registered with epmd) a few seconds
            // before the broker is up; await_startup fails at once before that.
            let listening = self.wait_dist_port(node, deadline);
            let mut exited = !self.is_running(node);
            if listening && !exited {
                let left = deadline.saturating_duration_since(Instant::now()).as_secs();
                let out = self.cli_timeout(
                    "rabbitmqctl",
                    node,
                    &["await_startup", "--timeout", &left.max(1).to_string()],
                    Duration::from_secs(left + 15),
                );
                if out.status.success() {
                    return launched.elapsed();
                }
                exited = !self.is_running(node);
                if !exited {
                    let n = &self.nodes[node];
                    panic!(
                        "RabbitMQ node {} not up within {NODE_START_TIMEOUT:?}: {}{}\n{}",
                        n.name,
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr),
                        self.logs()
                    );
                }
            } else if !exited {
                self.kill_node(node);
                panic!(
                    "RabbitMQ node {} did not listen on its distribution port {dist_port} \
                     within {NODE_START_TIMEOUT:?}\n{}",
                    self.nodes[node].name,
                    self.logs()
                );
            }
            // The process ended before it was up.
            let log = self.log(node);
            let status = self.nodes[node].child.take().map(|mut c| c.wait());
            if log.contains("eaddrinuse") && tries < PORT_TRIES {
                tries += 1;
                self.pick_ports(node);
                self.launch(node);
                continue;
            }
            panic!(
                "RabbitMQ node {} exited during start-up ({status:?})\n{}",
                self.nodes[node].name,
                self.logs()
            );
        }
    }
}

/// SIGKILL to the process group of `child` (runuser, the rabbitmq-server script, beam and
/// its helpers), and to the beam process named in the pid file if it left the group; then
/// reaps `child`.
fn kill_group(child: &mut Child, node_dir: &Path) {
    let pgid = child.id();
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
    if let Ok(pid) = fs::read_to_string(node_dir.join("rabbitmq.pid")) {
        let pid = pid.trim();
        if !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()) {
            let _ = Command::new("kill")
                .args(["-KILL", pid])
                .stderr(Stdio::null())
                .status();
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd` with its output captured; kills it (its process group) after `timeout`.
fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().expect("spawn runuser ... rabbitmqctl");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut v);
        v
    });
    let t_err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut v);
        v
    });
    let ended = poll_until(timeout, || !matches!(child.try_wait(), Ok(None)));
    if !ended {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stderr(Stdio::null())
            .status();
    }
    let status = child.wait().expect("wait for rabbitmqctl");
    let mut stderr = t_err.join().unwrap();
    if !ended {
        stderr.extend_from_slice(format!("\n(killed after {timeout:?})\n").as_bytes());
    }
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr,
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
        if let Some(mut epmd) = self.epmd.take() {
            let _ = epmd.kill();
            let _ = epmd.wait();
        }
        if std::env::var_os(KEEP_ENV).is_some() {
            let dir = std::mem::replace(&mut self.dir, TempDir::new().expect("temp dir"));
            eprintln!("RabbitMQ cluster folder kept: {}", dir.keep().display());
        }
        // Otherwise TempDir removes the folder (root may remove files owned by rabbitmq).
    }
}
