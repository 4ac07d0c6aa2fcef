//! One simulated run: the configuration and plan a seed gives, the driver that executes the
//! plan while it schedules threads, broker steps, faults and time, and the callbacks.

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use mqtt_sync::sim::{self, Block};
use mqtt_sync::{Client, ConnectOptions, Error, Properties, Protocol, QoS, ReasonCode};

use super::broker::{self, Broker, BrokerCfg};
use super::model::{parse_tag, Job, Model};
use super::world::{Hooks, IoFaults, Shared, Status, ThreadRec, Why, World, ME};
use super::Rng;

/// Number of worker threads making API calls.
const WORKERS: usize = 2;
/// No API call may stay blocked longer than this (virtual time) unless it has a timeout of
/// its own (loop_once) that is longer.
const CALL_BOUND: Duration = Duration::from_secs(150);
/// The quiet phase at the end must reach a settled state within this (virtual time).
const SETTLE_BOUND: Duration = Duration::from_secs(900);

const TOPICS: [&str; 3] = ["t/0", "t/1", "t/2"];
const FILTERS: [&str; 4] = ["t/0", "t/1", "t/+", "t/#"];

/// What a seed configures.
#[derive(Clone, Debug)]
pub struct Config {
    pub protocol: Protocol,
    /// 3.1.1: clean_session false; 5: Session Expiry Interval 3600.
    pub persistent: bool,
    pub manual_ack: bool,
    pub max_inflight: u16,
    pub max_queued: usize,
    pub max_outgoing_bytes: usize,
    pub keepalive: u16,
    pub broker: BrokerCfg,
    /// Callbacks sometimes wait for a worker held by backpressure.
    pub cb_wait: bool,
    /// on_message sometimes calls disconnect() (per mille).
    pub cb_disconnect: u64,
    /// Start with the manual loop style (loop_once) instead of loop_start.
    pub manual_loop: bool,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Connect,
    ConnectAsync,
    Reconnect,
    Disconnect,
    Publish { topic: u8, qos: u8, size: u16 },
    Burst { n: u16, qos: u8, topic: u8 },
    Mass { n: u32 },
    Subscribe { filter: u8, qos: u8 },
    Unsubscribe { filter: u8 },
    LoopStart,
    LoopStop,
    LoopOnce { ms: u16 },
    Reinitialise { fresh_id: bool },
    AckOwed,
    // faults and the broker's side
    Cut { c2b: bool, after: u16 },
    Partial(bool),
    Pause { ms: u32 },
    Restart { keep: bool, down_ms: u32 },
    RefuseTcp,
    RefuseConnack,
    External { topic: u8, qos: u8 },
    SlowAcks(bool),
    Sleep { ms: u32 },
}

impl Action {
    /// An API call made on a worker thread.
    fn is_call(&self) -> bool {
        matches!(
            self,
            Action::Connect
                | Action::ConnectAsync
                | Action::Reconnect
                | Action::Disconnect
                | Action::Publish { .. }
                | Action::Burst { .. }
                | Action::Mass { .. }
                | Action::Subscribe { .. }
                | Action::Unsubscribe { .. }
                | Action::LoopStart
                | Action::LoopStop
                | Action::LoopOnce { .. }
                | Action::Reinitialise { .. }
                | Action::AckOwed
        )
    }
}

fn qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// The configuration and plan of `seed`.
pub fn generate(seed: u64, mass: bool) -> (Config, Vec<Action>) {
    let mut r = Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5157);
    let protocol = if r.chance(1, 2) {
        Protocol::V5
    } else {
        Protocol::V311
    };
    let cfg = Config {
        protocol,
        persistent: r.chance(2, 3),
        manual_ack: r.chance(1, 5),
        max_inflight: if r.chance(1, 8) {
            0
        } else {
            r.range(1, 20) as u16
        },
        max_queued: if mass || r.chance(2, 3) {
            0
        } else {
            r.range(1, 30) as usize
        },
        max_outgoing_bytes: if mass || r.chance(1, 3) {
            1024 * 1024
        } else {
            r.range(100, 3000) as usize
        },
        keepalive: r.range(5, 60) as u16,
        broker: BrokerCfg {
            pipe_cap: if r.chance(1, 2) {
                r.range(16, 512) as usize
            } else {
                r.range(512, 16384) as usize
            },
            receive_max: if protocol == Protocol::V5 && r.chance(2, 3) {
                Some(r.range(1, 12) as u16)
            } else {
                None
            },
            out_inflight: r.range(1, 12) as usize,
        },
        cb_wait: !mass && r.chance(1, 2),
        cb_disconnect: if r.chance(1, 3) { r.range(5, 60) } else { 0 },
        manual_loop: r.chance(1, 4),
    };
    let n = r.range(40, 300);
    let mut plan = vec![Action::Connect];
    if !cfg.manual_loop {
        plan.push(Action::LoopStart);
    }
    plan.push(Action::Subscribe {
        filter: r.below(4) as u8,
        qos: r.below(3) as u8,
    });
    if mass {
        plan.push(Action::SlowAcks(true));
        plan.push(Action::Mass {
            n: 65_535 + r.range(1, 3000) as u32,
        });
        plan.push(Action::SlowAcks(false));
    }
    for _ in 0..n {
        let a = match r.below(100) {
            0..=24 => Action::Publish {
                topic: r.below(3) as u8,
                qos: r.below(3) as u8,
                size: r.range(0, 300) as u16,
            },
            25..=31 => Action::Burst {
                n: r.range(2, 40) as u16,
                qos: r.below(3) as u8,
                topic: r.below(3) as u8,
            },
            32..=36 => Action::Subscribe {
                filter: r.below(4) as u8,
                qos: r.below(3) as u8,
            },
            37..=38 => Action::Unsubscribe {
                filter: r.below(4) as u8,
            },
            39..=41 => Action::Disconnect,
            42..=44 => Action::Reconnect,
            45..=46 => Action::Connect,
            47 => Action::ConnectAsync,
            48..=50 => Action::LoopStop,
            51..=53 => Action::LoopStart,
            54..=56 => Action::LoopOnce {
                ms: r.range(0, 2000) as u16,
            },
            57..=58 => Action::Reinitialise {
                fresh_id: r.chance(1, 3),
            },
            59..=60 => Action::AckOwed,
            61..=65 => Action::Cut {
                c2b: r.chance(1, 2),
                after: r.range(0, 400) as u16,
            },
            66..=67 => Action::Partial(r.chance(2, 3)),
            68..=70 => Action::Pause {
                ms: r.range(10, 8000) as u32,
            },
            71..=72 => Action::Restart {
                keep: r.chance(2, 3),
                down_ms: r.range(0, 5000) as u32,
            },
            73 => Action::RefuseTcp,
            74 => Action::RefuseConnack,
            75..=86 => Action::External {
                topic: r.below(3) as u8,
                qos: r.below(3) as u8,
            },
            87..=89 => Action::SlowAcks(r.chance(1, 2)),
            _ => Action::Sleep {
                ms: r.range(1, 20_000) as u32,
            },
        };
        plan.push(a);
    }
    (cfg, plan)
}

/// What a run found.
pub struct Outcome {
    pub violations: Vec<String>,
    pub trace: Vec<String>,
    pub steps: u64,
    /// A digest of every scheduling decision and observation: equal for equal runs.
    pub digest: u64,
    pub virtual_time: Duration,
    pub deliveries: u64,
    /// Plan actions issued before the run ended.
    pub issued: usize,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        !self.violations.is_empty()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.trace {
            writeln!(f, "{l}")?;
        }
        writeln!(
            f,
            "-- {} steps, {:.3} s virtual, {} deliveries, digest {:016x}, {} violation(s)",
            self.steps,
            self.virtual_time.as_secs_f64(),
            self.deliveries,
            self.digest,
            self.violations.len()
        )
    }
}

/// Options of one run.
#[derive(Clone, Copy, Debug)]
pub struct RunOpts {
    pub max_steps: u64,
    /// Trace every scheduling decision too.
    pub verbose: bool,
}

type Slot = Arc<Mutex<Option<Client>>>;

/// The per-run state the driver keeps outside the world's lock.
struct Driver {
    world: Arc<World>,
    hooks: Arc<Hooks>,
    client: Slot,
    cfg: Config,
    rng: Rng,
    digest: DefaultHasher,
    verbose: bool,
    workers: Vec<std::thread::JoinHandle<()>>,
}

/// Flags shared with the jobs and callbacks (kept in the model's lock).
#[derive(Default)]
pub struct Flags {
    pub loop_started: bool,
    /// connect() was called since the last reinitialise (reconnect() has a host).
    pub has_host: bool,
    pub final_phase: bool,
}

/// Runs `plan` under `cfg` with scheduler seed `seed`.
pub fn run(cfg: &Config, plan: &[Action], seed: u64, opts: RunOpts) -> Outcome {
    let world = Arc::new(World {
        base: Instant::now(),
        shared: Mutex::new(Shared {
            turn: 0,
            aborted: false,
            threads: vec![ThreadRec {
                name: "driver".into(),
                status: Status::Running,
                os: None,
                op: None,
                op_start: Duration::ZERO,
                op_name: String::new(),
                op_seq: 0,
            }],
            clock: Duration::ZERO,
            poll_ready: false,
            pipes: Vec::new(),
            io: IoFaults::default(),
            rng: Rng::new(seed ^ 0xA5A5),
            broker: Broker::new(cfg.broker),
            model: Model {
                verbose: opts.verbose,
                client_id: "sim".into(),
                ..Model::default()
            },
        }),
        cv: Condvar::new(),
    });
    let hooks = Arc::new(Hooks(world.clone()));
    let _entered = sim::enter(hooks.clone());
    let mut d = Driver {
        world: world.clone(),
        hooks,
        client: Arc::new(Mutex::new(None)),
        cfg: cfg.clone(),
        rng: Rng::new(seed),
        digest: DefaultHasher::new(),
        verbose: opts.verbose,
        workers: Vec::new(),
    };
    {
        let mut g = world.lock();
        g.model.trace(format!("config: {cfg:?}"));
        g.model.trace(format!("plan: {} actions", plan.len()));
    }
    for w in 1..=WORKERS {
        d.spawn_worker(w);
    }
    let flags = Arc::new(Mutex::new(Flags::default()));
    // Make the client on a worker (its clock is the virtual one there).
    {
        let slot = d.client.clone();
        let world2 = world.clone();
        let cfg2 = cfg.clone();
        let flags2 = flags.clone();
        d.give(
            1,
            "setup",
            Box::new(move || {
                let mut b = Client::builder()
                    .client_id("sim")
                    .protocol(cfg2.protocol)
                    .manual_ack(cfg2.manual_ack);
                if cfg2.protocol != Protocol::V5 {
                    b = b.clean_session(!cfg2.persistent);
                }
                let c = b.build().expect("client");
                configure(&c, &cfg2, &world2, &flags2);
                *slot.lock().unwrap() = Some(c);
            }),
        );
        d.run_until_idle(1);
    }
    d.drive(plan, opts, &flags)
}

/// Sets the client's options and callbacks (again after `reinitialise`).
fn configure(c: &Client, cfg: &Config, world: &Arc<World>, flags: &Arc<Mutex<Flags>>) {
    c.disable_logger();
    let _ = c.max_inflight_messages_set(cfg.max_inflight);
    let _ = c.max_queued_messages_set(cfg.max_queued);
    let _ = c.max_outgoing_bytes_set(cfg.max_outgoing_bytes);
    let _ = c.reconnect_delay_set(Duration::from_secs(1), Duration::from_secs(8));
    let _ = c.connect_timeout_set(Duration::from_secs(5));
    let _ = c.manual_ack_set(cfg.manual_ack);
    // The client's log lines (SIM_CLIENT_LOG=1): an on_log callback makes the client
    // produce them, which changes its schedule, so a replay with it may differ.
    if std::env::var("SIM_CLIENT_LOG").is_ok_and(|v| v == "1") {
        let w = world.clone();
        c.on_log(move |_c, level, line| {
            let me = ME.with(|m| m.get());
            w.lock()
                .model
                .trace(format!("client log (thread {me}) {level:?}: {line}"));
        });
    }
    let w = world.clone();
    c.on_connect(move |_c, flags, rc, _p| {
        cb(&w, "on_connect", |sh| {
            sh.model.trace(format!(
                "on_connect rc={rc} session_present={}",
                flags.session_present
            ))
        });
        cb_wait(&w, None);
    });
    let w = world.clone();
    c.on_connect_fail(move |_c, e| {
        cb(&w, "on_connect_fail", |sh| {
            sh.model.trace(format!("on_connect_fail {e}"))
        });
        cb_wait(&w, None);
    });
    let w = world.clone();
    c.on_disconnect(move |_c, _f, rc, _p| {
        cb(&w, "on_disconnect", |sh| {
            sh.model.trace(format!("on_disconnect rc={rc}"))
        });
        cb_wait(&w, None);
    });
    let w = world.clone();
    c.on_subscribe(move |_c, mid, rcs, _p| {
        cb(&w, "on_subscribe", |sh| {
            sh.model.trace(format!("on_subscribe mid={mid} {rcs:?}"))
        });
        cb_wait(&w, None);
    });
    let w = world.clone();
    c.on_unsubscribe(move |_c, mid, _rcs, _p| {
        cb(&w, "on_unsubscribe", |sh| {
            sh.model.trace(format!("on_unsubscribe mid={mid}"))
        });
        cb_wait(&w, None);
    });
    let w = world.clone();
    let cfg2 = cfg.clone();
    let fl = flags.clone();
    c.on_publish(move |_c, mid, rc, _p| {
        let wait = cb(&w, "on_publish", |sh| {
            if sh.model.verbose {
                sh.model.trace(format!("on_publish mid={mid} rc={rc}"));
            }
            sh.model.on_publish(mid, rc);
            maybe_wait(sh, &cfg2, &fl)
        });
        cb_wait(&w, wait);
    });
    let w = world.clone();
    let cfg2 = cfg.clone();
    let fl = flags.clone();
    c.on_message(move |c, msg| {
        let final_phase = fl.lock().unwrap().final_phase;
        let (ack_now, disconnect, wait) = cb(&w, "on_message", |sh| {
            let rid = parse_tag(msg.payload(), b'r');
            if sh.model.verbose {
                sh.model.trace(format!(
                    "on_message {} {:?} q{} dup={} mid={}",
                    msg.topic(),
                    rid,
                    msg.qos() as u8,
                    msg.dup(),
                    msg.mid()
                ));
            }
            match rid {
                Some(rid) => sh.model.delivered(rid, msg.qos(), msg.topic()),
                None => sh.model.violation(format!(
                    "on_message with a payload the broker never sent: {:?}",
                    String::from_utf8_lossy(msg.payload())
                )),
            }
            let manual = cfg2.manual_ack && msg.qos() != QoS::AtMostOnce;
            let ack_now = manual && (final_phase || sh.rng.chance(1, 2));
            if manual && !ack_now {
                sh.model.owed_acks.push((msg.mid(), msg.qos()));
            }
            let disconnect =
                !final_phase && cfg2.cb_disconnect > 0 && sh.rng.chance(cfg2.cb_disconnect, 1000);
            let wait = if final_phase {
                None
            } else {
                maybe_wait(sh, &cfg2, &fl)
            };
            (ack_now, disconnect, wait)
        });
        if ack_now {
            let r = c.ack(msg.mid(), msg.qos());
            w.lock().model.trace(format!(
                "on_message: ack({}, q{}) -> {r:?}",
                msg.mid(),
                msg.qos() as u8
            ));
        }
        if disconnect {
            let r = c.disconnect();
            w.lock()
                .model
                .trace(format!("on_message: disconnect() -> {r:?}"));
        }
        cb_wait(&w, wait);
    });
}

/// Runs a callback's bookkeeping under the world's lock, checking that no other thread is
/// inside a callback.
fn cb<R>(w: &Arc<World>, name: &str, f: impl FnOnce(&mut Shared) -> R) -> R {
    let me = ME.with(|m| m.get());
    let mut g = w.lock();
    match g.model.in_callback {
        Some((t, _)) if t != me => {
            let other = g.threads[t].name.clone();
            let mine = g.threads[me].name.clone();
            g.model.violation(format!(
                "{name} runs on {mine} while {other} is inside a callback"
            ));
        }
        _ => {}
    }
    let depth = g.model.in_callback.map_or(0, |(_, d)| d);
    g.model.in_callback = Some((me, depth + 1));
    f(&mut g)
}

/// Leaves a callback, after waiting (blocked) for a worker if the callback decided so.
fn cb_wait(w: &Arc<World>, wait: Option<usize>) {
    if let Some(worker) = wait {
        let until = w.lock().clock + Duration::from_secs(3600);
        {
            let mut g = w.lock();
            let name = g.threads[worker].name.clone();
            g.model
                .trace(format!("callback waits for {name} (held by backpressure)"));
        }
        let op = w.lock().threads[worker].op_seq;
        w.block_as(Why::Wait { worker, op, until });
    }
    let mut g = w.lock();
    g.model.in_callback = match g.model.in_callback {
        Some((t, d)) if d > 1 => Some((t, d - 1)),
        _ => None,
    };
}

/// A callback waits for a worker that is held in publish by backpressure (the pattern of
/// Reliability I, defect 3), sometimes.
fn maybe_wait(sh: &mut Shared, cfg: &Config, flags: &Arc<Mutex<Flags>>) -> Option<usize> {
    if !cfg.cb_wait || flags.lock().unwrap().final_phase {
        return None;
    }
    let held = (1..=WORKERS).find(|&w| {
        matches!(
            sh.threads[w].status,
            Status::Blocked(Why::Hook(Block::Cond { .. }))
        ) && sh.threads[w].op_name.starts_with("publish")
    })?;
    sh.rng.chance(1, 2).then_some(held)
}

impl Driver {
    fn spawn_worker(&mut self, id: usize) {
        {
            let mut g = self.world.lock();
            g.threads.push(ThreadRec {
                name: format!("worker{id}"),
                status: Status::Idle,
                os: None,
                op: None,
                op_start: Duration::ZERO,
                op_name: String::new(),
                op_seq: 0,
            });
            assert_eq!(g.threads.len() - 1, id);
        }
        let world = self.world.clone();
        let hooks = self.hooks.clone();
        let h = std::thread::Builder::new()
            .name(format!("sim worker{id}"))
            .spawn(move || {
                let _e = sim::enter(hooks);
                ME.with(|m| m.set(id));
                loop {
                    let job = {
                        let g = world.lock();
                        let mut g = world.wait_turn(g, id);
                        g.threads[id].status = Status::Running;
                        g.threads[id].op.take()
                    };
                    let Some(job) = job else {
                        world.yield_idle(id, Status::Exited);
                        return;
                    };
                    if let Err(p) = catch_unwind(AssertUnwindSafe(job)) {
                        if p.downcast_ref::<super::world::Abort>().is_some() {
                            return;
                        }
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        world
                            .lock()
                            .model
                            .violation(format!("worker{id}: an API call panicked: {msg}"));
                    }
                    world.yield_idle(id, Status::Idle);
                }
            })
            .expect("spawn worker");
        self.workers.push(h);
    }

    /// Hands `job` to idle worker `w` and runs it until it blocks or ends.
    fn give(&mut self, w: usize, name: &str, job: Job) {
        {
            let mut g = self.world.lock();
            let clock = g.clock;
            let t = &mut g.threads[w];
            t.op = Some(job);
            t.op_start = clock;
            t.op_name = name.to_string();
            t.op_seq += 1;
            t.status = Status::Running;
        }
        self.world.resume(w);
    }

    /// Schedules until worker `w` is idle (set-up only: nothing else is running yet).
    fn run_until_idle(&mut self, w: usize) {
        for _ in 0..100_000 {
            let st = self.world.lock().threads[w].status;
            match st {
                Status::Idle | Status::Exited => return,
                _ => {
                    if !self.step(false) {
                        self.advance_to_next();
                    }
                }
            }
        }
    }

    fn note(&mut self, what: impl Hash + fmt::Debug) {
        what.hash(&mut self.digest);
        if self.verbose {
            let mut g = self.world.lock();
            g.model.trace(format!("sched: {what:?}"));
        }
    }

    /// Threads that may run now (and whether they are only spuriously woken).
    fn ready(&self, sh: &Shared) -> Vec<(usize, bool)> {
        let now = self.world.base + sh.clock;
        let mut v = Vec::new();
        for (i, t) in sh.threads.iter().enumerate().skip(1) {
            match t.status {
                Status::NotStarted => v.push((i, false)),
                Status::Blocked(Why::Hook(Block::Poll { until })) => {
                    if sh.poll_ready || now >= until {
                        v.push((i, false));
                    }
                }
                Status::Blocked(Why::Hook(Block::Cond { until })) => {
                    v.push((i, now < until));
                }
                Status::Blocked(Why::Hook(Block::Join(tid))) => {
                    let done = sh
                        .threads
                        .iter()
                        .find(|x| x.os == Some(tid))
                        .is_none_or(|x| matches!(x.status, Status::Exited));
                    if done {
                        v.push((i, false));
                    }
                }
                Status::Blocked(Why::Wait { worker, op, until }) => {
                    if matches!(sh.threads[worker].status, Status::Idle | Status::Exited)
                        || sh.threads[worker].op_seq != op
                        || sh.clock >= until
                    {
                        v.push((i, false));
                    }
                }
                _ => {}
            }
        }
        v
    }

    /// One scheduling step; false when nothing could run (time must advance).
    fn step(&mut self, allow_spurious: bool) -> bool {
        let (ready, busy) = {
            let g = self.world.lock();
            (self.ready(&g), Broker::busy(&g))
        };
        let real: Vec<usize> = ready.iter().filter(|r| !r.1).map(|r| r.0).collect();
        let spurious: Vec<usize> = ready.iter().filter(|r| r.1).map(|r| r.0).collect();
        let n = real.len() as u64 * 4 + u64::from(busy) * 3;
        let spur = allow_spurious && !spurious.is_empty() && self.rng.chance(1, 10);
        if spur {
            let t = spurious[self.rng.below(spurious.len() as u64) as usize];
            self.note(("spurious", t));
            self.resume_thread(t);
            return true;
        }
        if n == 0 {
            return false;
        }
        let pick = self.rng.below(n);
        if pick < real.len() as u64 * 4 {
            let t = real[(pick / 4) as usize];
            self.note(("run", t));
            self.resume_thread(t);
        } else {
            self.note("broker");
            let mut g = self.world.lock();
            broker::step(&mut g);
        }
        true
    }

    fn resume_thread(&mut self, t: usize) {
        {
            let mut g = self.world.lock();
            if matches!(
                g.threads[t].status,
                Status::Blocked(Why::Hook(Block::Poll { .. }))
            ) {
                g.poll_ready = false;
            }
        }
        self.world.resume(t);
    }

    /// Moves the clock to the next thing that happens by itself.
    fn advance_to_next(&mut self) {
        let mut g = self.world.lock();
        let base = self.world.base;
        let mut next: Option<Duration> = Broker::next_timer(&g);
        let mut upd = |d: Duration| next = Some(next.map_or(d, |x: Duration| x.min(d)));
        for t in &g.threads {
            match t.status {
                Status::Blocked(Why::Hook(Block::Poll { until }))
                | Status::Blocked(Why::Hook(Block::Cond { until })) => {
                    upd(until.saturating_duration_since(base))
                }
                Status::Blocked(Why::Wait { until, .. }) => upd(until),
                _ => {}
            }
        }
        let target = match next {
            Some(t) if t > g.clock => t,
            Some(_) => g.clock + Duration::from_micros(1),
            None => g.clock + Duration::from_secs(1),
        };
        let target = target.min(g.clock + Duration::from_secs(30));
        g.clock = target;
        let c = g.clock;
        g.model.clock = c;
        drop(g);
        self.note(("advance", target.as_micros() as u64));
    }

    fn idle_worker(&mut self) -> Option<usize> {
        let g = self.world.lock();
        let idle: Vec<usize> = (1..=WORKERS)
            .filter(|&w| matches!(g.threads[w].status, Status::Idle))
            .collect();
        drop(g);
        if idle.is_empty() {
            None
        } else {
            Some(idle[self.rng.below(idle.len() as u64) as usize])
        }
    }

    /// Applies a fault or a broker-side action.
    fn fault(&mut self, a: &Action) {
        let mut g = self.world.lock();
        g.model.trace(format!("fault: {a:?}"));
        let clock = g.clock;
        match *a {
            Action::Cut { c2b, after } => {
                if let Some(p) = g.pipes.iter_mut().rev().find(|p| !p.cut) {
                    if c2b {
                        p.cut_c2b = Some(after as usize);
                    } else {
                        p.cut_b2c = Some(after as usize);
                    }
                }
            }
            Action::Partial(on) => g.io.partial = on,
            Action::Pause { ms } => {
                g.broker.paused_until = clock + Duration::from_millis(u64::from(ms))
            }
            Action::Restart { keep, down_ms } => {
                broker::restart(&mut g, keep, Duration::from_millis(u64::from(down_ms)))
            }
            Action::RefuseTcp => g.io.refuse_tcp = true,
            Action::RefuseConnack => g.broker.refuse_connack = true,
            Action::External { topic, qos: q } => {
                let p = mqtt_sync::codec::Publish {
                    dup: false,
                    qos: qos(q),
                    retain: false,
                    topic: TOPICS[topic as usize].to_string(),
                    pkid: 0,
                    properties: Properties::default(),
                    payload: b"x;external".to_vec(),
                };
                broker::route(&mut g, &p, None);
            }
            Action::SlowAcks(on) => g.broker.slow_acks = on,
            Action::Sleep { ms } => {
                g.clock += Duration::from_millis(u64::from(ms));
                let c = g.clock;
                g.model.clock = c;
            }
            _ => {}
        }
    }

    /// Starts API call `a` on worker `w`.
    fn call(&mut self, w: usize, a: &Action, flags: &Arc<Mutex<Flags>>) {
        let slot = self.client.clone();
        let world = self.world.clone();
        let cfg = self.cfg.clone();
        let flags = flags.clone();
        let a2 = a.clone();
        let name = match a {
            Action::Publish { .. } | Action::Burst { .. } | Action::Mass { .. } => "publish",
            _ => "call",
        };
        {
            let mut g = self.world.lock();
            g.model.trace(format!("worker{w}: {a:?}"));
        }
        let job: Job = Box::new(move || {
            let Some(c) = slot.lock().unwrap().clone() else {
                return;
            };
            call_on(&c, &a2, &world, &cfg, &flags, w);
        });
        self.give(w, name, job);
    }

    /// Checks that hold after every step.
    fn check_step(&mut self) {
        let probe = self.client.lock().unwrap().as_ref().map(sim::probe);
        let mut g = self.world.lock();
        let clock = g.clock;
        for w in 1..=WORKERS {
            let t = &g.threads[w];
            if matches!(t.status, Status::Blocked(_)) {
                let bound = CALL_BOUND;
                if clock.saturating_sub(t.op_start) > bound {
                    let what = format!(
                        "worker{w}'s call ({}) blocked for {:.1} s (bound {} s)",
                        t.op_name,
                        clock.saturating_sub(t.op_start).as_secs_f64(),
                        bound.as_secs()
                    );
                    g.model.violation(what);
                }
            }
        }
        if let Some(p) = probe {
            if p.max_queued > 0 && p.outgoing > p.max_queued {
                g.model.violation(format!(
                    "{} stored outgoing messages, max_queued_messages is {}",
                    p.outgoing, p.max_queued
                ));
            }
        }
    }

    fn drive(&mut self, plan: &[Action], opts: RunOpts, flags: &Arc<Mutex<Flags>>) -> Outcome {
        let mut next = 0;
        let mut steps = 0u64;
        let mut final_since: Option<Duration> = None;
        let mut last_fix = Duration::ZERO;
        let mut settled = false;
        while steps < opts.max_steps {
            steps += 1;
            {
                let mut g = self.world.lock();
                g.model.step = steps;
                let dt = Duration::from_micros(self.rng.below(40));
                g.clock += dt;
                let c = g.clock;
                g.model.clock = c;
            }
            let in_final = final_since.is_some();
            // The next plan action, sometimes.
            let mut acted = false;
            let nothing_ready = {
                let g = self.world.lock();
                self.ready(&g).iter().all(|r| r.1) && !Broker::busy(&g)
            };
            if !in_final && next < plan.len() && (nothing_ready || self.rng.chance(1, 4)) {
                let a = &plan[next];
                if a.is_call() {
                    if let Some(w) = self.idle_worker() {
                        self.note(("call", next));
                        self.call(w, a, flags);
                        next += 1;
                        acted = true;
                    }
                } else {
                    self.note(("fault", next));
                    self.fault(a);
                    next += 1;
                    acted = true;
                }
            }
            // The manual loop style: some worker calls loop_once now and then.
            let looping = self
                .client
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|c| sim::probe(c).loop_running);
            if !acted && !looping && self.rng.chance(1, 6) {
                if let Some(w) = self.idle_worker() {
                    let ms = self.rng.below(1500) as u16;
                    self.note(("loop_once", w));
                    let connected = self
                        .client
                        .lock()
                        .unwrap()
                        .as_ref()
                        .is_some_and(|c| sim::probe(c).connected);
                    let a = if !connected && self.rng.chance(1, 8) {
                        Action::Reconnect
                    } else {
                        Action::LoopOnce { ms }
                    };
                    self.call(w, &a, flags);
                    acted = true;
                }
            }
            if !acted && !self.step(true) {
                self.advance_to_next();
            } else if self.rng.chance(1, 50) {
                // A delay: time passes while things are ready.
                let mut g = self.world.lock();
                let dt = Duration::from_millis(self.rng.below(200));
                g.clock += dt;
                let c = g.clock;
                g.model.clock = c;
            }
            self.check_step();
            if !self.world.lock().model.violations.is_empty() {
                break;
            }
            if !in_final && next >= plan.len() {
                let mut g = self.world.lock();
                g.model.trace("plan done: faults healed, settling".into());
                g.broker.paused_until = Duration::ZERO;
                g.broker.slow_acks = false;
                g.broker.refuse_connack = false;
                g.io.refuse_tcp = false;
                final_since = Some(g.clock);
                flags.lock().unwrap().final_phase = true;
                continue;
            }
            if let Some(since) = final_since {
                let clock = self.world.elapsed();
                if clock - since > SETTLE_BOUND {
                    let probe = self.client.lock().unwrap().as_ref().map(sim::probe);
                    let mut g = self.world.lock();
                    let threads: Vec<String> = g
                        .threads
                        .iter()
                        .map(|t| format!("{} {:?} {}", t.name, t.status, t.op_name))
                        .collect();
                    let id = g.model.client_id.clone();
                    let pipes: Vec<String> = g
                        .pipes
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| !p.cut)
                        .map(|(i, p)| {
                            format!(
                                "pipe {i}: to_client {} to_broker {} closed={} blocked={}",
                                p.to_client.len(),
                                p.to_broker.len(),
                                p.client_closed,
                                p.write_blocked
                            )
                        })
                        .collect();
                    let pr = g.poll_ready;
                    g.model
                        .trace(format!("open pipes: {pipes:?}; poll_ready={pr}"));
                    let msg = format!(
                        "not settled {} s after the faults stopped: client {probe:?}; broker \
                         session {id}: {} queued; owed acks {:?}; threads {threads:?}",
                        SETTLE_BOUND.as_secs(),
                        g.broker.session_debug(&id),
                        g.model.owed_acks
                    );
                    g.model.violation(msg);
                    break;
                }
                if self.settle(flags, &mut last_fix) {
                    settled = true;
                    break;
                }
            }
        }
        if settled {
            let mut g = self.world.lock();
            g.model.trace("settled: final checks".into());
            g.model.final_checks();
        } else if steps >= opts.max_steps {
            let mut g = self.world.lock();
            g.model
                .trace(format!("stopped after {steps} steps (limit)"));
            let clock = g.clock;
            let stuck: Vec<String> = (1..=WORKERS)
                .filter(|&w| !matches!(g.threads[w].status, Status::Idle))
                .map(|w| {
                    let t = &g.threads[w];
                    format!(
                        "worker{w} in {} for {:.1} s",
                        t.op_name,
                        clock.saturating_sub(t.op_start).as_secs_f64()
                    )
                })
                .collect();
            if !stuck.is_empty() {
                g.model.violation(format!(
                    "the step limit ended the run with calls still blocked: {stuck:?}"
                ));
            }
        }
        let failed = !self.world.lock().model.violations.is_empty();
        if failed {
            self.abort();
        } else {
            self.teardown();
        }
        let mut g = self.world.lock();
        g.model.trace.len().hash(&mut self.digest);
        for l in &g.model.trace {
            l.hash(&mut self.digest);
        }
        Outcome {
            violations: std::mem::take(&mut g.model.violations),
            trace: std::mem::take(&mut g.model.trace),
            steps,
            digest: self.digest.finish(),
            virtual_time: g.clock,
            deliveries: g.model.deliveries,
            issued: next,
        }
    }

    /// The quiet phase: make sure a loop runs and a connection is wanted, ack what is owed;
    /// true once everything settled.
    fn settle(&mut self, flags: &Arc<Mutex<Flags>>, last_fix: &mut Duration) -> bool {
        let Some(w) = self.idle_worker() else {
            return false;
        };
        let all_idle = {
            let g = self.world.lock();
            (1..=WORKERS).all(|w| matches!(g.threads[w].status, Status::Idle))
        };
        let probe = self.client.lock().unwrap().as_ref().map(sim::probe);
        let Some(p) = probe else { return false };
        let (owed, broker_quiet, clock) = {
            let g = self.world.lock();
            (
                !g.model.owed_acks.is_empty(),
                !Broker::busy(&g) && g.broker.session_idle(&g.model.client_id),
                g.clock,
            )
        };
        if !p.loop_running {
            self.call(w, &Action::LoopStart, flags);
            return false;
        }
        if owed && p.connected {
            self.call(w, &Action::AckOwed, flags);
            return false;
        }
        if !p.connected && clock.saturating_sub(*last_fix) > Duration::from_secs(20) {
            *last_fix = clock;
            let a = if flags.lock().unwrap().has_host {
                Action::Reconnect
            } else {
                Action::Connect
            };
            self.call(w, &a, flags);
            return false;
        }
        all_idle && p.connected && p.outgoing == 0 && p.pending_bytes == 0 && broker_quiet && !owed
    }

    /// Ends a run that passed: the loop stops, the client is dropped, the workers end.
    fn teardown(&mut self) {
        if !matches!(self.world.lock().threads[1].status, Status::Idle) {
            self.abort();
            return;
        }
        let slot = self.client.clone();
        let job: Job = Box::new(move || {
            let c = slot.lock().unwrap().take();
            if let Some(c) = c {
                if sim::probe(&c).loop_running {
                    let _ = c.loop_stop();
                }
                drop(c);
            }
        });
        self.give(1, "teardown", job);
        for _ in 0..200_000 {
            let st = self.world.lock().threads[1].status;
            if matches!(st, Status::Idle) {
                break;
            }
            if !self.step(false) {
                self.advance_to_next();
            }
        }
        for w in 1..=WORKERS {
            let idle = matches!(self.world.lock().threads[w].status, Status::Idle);
            if idle {
                self.world.lock().threads[w].op = None;
                self.world.resume(w);
            }
        }
        let any_blocked = self
            .world
            .lock()
            .threads
            .iter()
            .skip(1)
            .any(|t| !matches!(t.status, Status::Exited | Status::Idle));
        if any_blocked {
            self.abort();
        } else {
            for h in self.workers.drain(..) {
                let _ = h.join();
            }
        }
    }

    /// Tears a failed run down: every blocked thread unwinds.
    fn abort(&mut self) {
        {
            let mut g = self.world.lock();
            g.aborted = true;
            self.world.cv.notify_all();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
        // The client's last handle: the loop thread (unwound) is joined by its drop.
        let c = self.client.lock().unwrap().take();
        drop(c);
    }
}

impl Broker {
    /// The session of `id` has nothing queued or in flight.
    pub fn session_idle(&self, id: &str) -> bool {
        self.session_out_len(id) == 0
    }
}

/// Runs API call `a` on the calling worker.
fn call_on(
    c: &Client,
    a: &Action,
    world: &Arc<World>,
    cfg: &Config,
    flags: &Arc<Mutex<Flags>>,
    w: usize,
) {
    let log = |line: String| world.lock().model.trace(format!("worker{w}: {line}"));
    let connect_opts = || {
        let mut o = ConnectOptions::new("broker");
        o.port = 1883;
        o.keepalive = cfg.keepalive;
        if cfg.protocol == Protocol::V5 && cfg.persistent {
            o.properties = Some(Properties {
                session_expiry_interval: Some(3600),
                ..Properties::default()
            });
        }
        o
    };
    match *a {
        Action::Connect => {
            flags.lock().unwrap().has_host = true;
            let r = c.connect_with(connect_opts());
            log(format!("connect -> {r:?}"));
        }
        Action::ConnectAsync => {
            flags.lock().unwrap().has_host = true;
            let r = c.connect_async_with(connect_opts());
            log(format!("connect_async -> {r:?}"));
        }
        Action::Reconnect => {
            let r = c.reconnect();
            log(format!("reconnect -> {r:?}"));
        }
        Action::Disconnect => {
            let r = c.disconnect();
            log(format!("disconnect -> {r:?}"));
        }
        Action::Publish {
            topic,
            qos: q,
            size,
        } => {
            publish_one(
                c,
                world,
                cfg,
                flags,
                w,
                TOPICS[topic as usize],
                qos(q),
                size as usize,
                true,
            );
        }
        Action::Burst { n, qos: q, topic } => {
            for _ in 0..n {
                publish_one(
                    c,
                    world,
                    cfg,
                    flags,
                    w,
                    TOPICS[topic as usize],
                    qos(q),
                    20,
                    false,
                );
            }
            log(format!("burst of {n} done"));
        }
        Action::Mass { n } => {
            let mut errs = 0;
            for _ in 0..n {
                if !publish_one(c, world, cfg, flags, w, "bulk", QoS::AtLeastOnce, 0, false) {
                    errs += 1;
                }
            }
            log(format!("mass publish of {n}: {errs} error(s)"));
        }
        Action::Subscribe { filter, qos: q } => {
            let r = c.subscribe(FILTERS[filter as usize], qos(q));
            log(format!(
                "subscribe {} q{q} -> {r:?}",
                FILTERS[filter as usize]
            ));
        }
        Action::Unsubscribe { filter } => {
            let r = c.unsubscribe(FILTERS[filter as usize]);
            log(format!("unsubscribe {} -> {r:?}", FILTERS[filter as usize]));
        }
        Action::LoopStart => {
            let r = c.loop_start();
            if r.is_ok() {
                flags.lock().unwrap().loop_started = true;
            }
            log(format!("loop_start -> {r:?}"));
        }
        Action::LoopStop => {
            let r = c.loop_stop();
            if r.is_ok() {
                flags.lock().unwrap().loop_started = false;
            }
            log(format!("loop_stop -> {r:?}"));
        }
        Action::LoopOnce { ms } => {
            let r = c.loop_once(Duration::from_millis(u64::from(ms)));
            if world.lock().model.verbose || r.is_err() {
                log(format!("loop_once({ms} ms) -> {r:?}"));
            }
        }
        Action::Reinitialise { fresh_id } => {
            let id = if fresh_id {
                let n = world.lock().model.pubs.len();
                format!("sim-{n}")
            } else {
                "sim".to_string()
            };
            // A client that resumes a broker session must keep its own state: after
            // reinitialise (which drops it) only a new client id may resume nothing.
            let clean = !(fresh_id && cfg.persistent);
            let r = c.reinitialise(id.clone(), clean);
            if r.is_ok() {
                {
                    let mut g = world.lock();
                    g.model.reinitialised();
                    g.model.client_id = id.clone();
                }
                flags.lock().unwrap().has_host = false;
                configure(c, cfg, world, flags);
            }
            log(format!("reinitialise({id}, {clean}) -> {r:?}"));
        }
        Action::AckOwed => {
            let owed = std::mem::take(&mut world.lock().model.owed_acks);
            for (mid, q) in owed {
                let r = c.ack(mid, q);
                log(format!("ack({mid}, q{}) -> {r:?}", q as u8));
                if matches!(r, Err(Error::NoConnection)) {
                    // Offline: acknowledged later (a QoS 2 message keeps waiting for it).
                    world.lock().model.owed_acks.push((mid, q));
                }
            }
        }
        _ => {}
    }
}

/// One publish; false when it returned an error.
#[allow(clippy::too_many_arguments)]
fn publish_one(
    c: &Client,
    world: &Arc<World>,
    cfg: &Config,
    _flags: &Arc<Mutex<Flags>>,
    w: usize,
    topic: &str,
    q: QoS,
    size: usize,
    log_ok: bool,
) -> bool {
    let pid = world.lock().model.new_pid();
    let mut payload = format!("p{pid};").into_bytes();
    payload.resize(payload.len() + size, b'.');
    let r = c.publish(topic, &payload, q, false);
    let mut g = world.lock();
    match r {
        Ok(info) => {
            let mid = info.mid();
            g.model.published(pid, w, q, topic, info);
            if log_ok || g.model.verbose {
                g.model.trace(format!(
                    "worker{w}: publish p{pid} {topic} q{} -> mid {mid}",
                    q as u8
                ));
            }
            true
        }
        Err(e) => {
            let queue_size = matches!(e, Error::QueueSize);
            g.model.trace(format!(
                "worker{w}: publish p{pid} {topic} q{} -> Err({e})",
                q as u8
            ));
            drop(g);
            if queue_size && cfg.max_queued == 0 {
                let p = sim::probe(c);
                if p.connected && p.draining {
                    world.lock().model.violation(format!(
                        "publish p{pid} failed with QueueSize although the queue is unlimited \
                         and a loop thread drains the connection"
                    ));
                }
            }
            false
        }
    }
}

/// The reason code a refused publish reports (for traces).
pub fn rc_name(rc: ReasonCode) -> String {
    format!("{rc}")
}
