//! The simulated world: virtual clock, the scheduler that runs one thread at a time (the
//! baton), and the connections (pipes) between the client and the simulated broker.
//!
//! Every thread of a run — the driver (id 0, which owns the scheduler and the broker), the
//! worker threads that make API calls, and the client's loop thread — runs only while it
//! holds the turn (`Shared::turn`). A thread gives the turn back to the driver when it blocks
//! at one of the client's hooks (`mqtt_sync::sim::Block`), when a callback waits for another
//! thread ([`Wait`]), or when its operation ends; the driver then decides, from the seed,
//! what runs next. So a seed fixes the whole interleaving.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use mqtt_sync::sim::{Block, Pipe, World as WorldHooks};

use super::broker::Broker;
use super::model::Model;
use super::Rng;

thread_local! {
    /// The id of the calling thread in its world (0: the driver).
    pub static ME: Cell<usize> = const { Cell::new(0) };
}

/// The payload a thread unwinds with when a failed run is torn down.
pub struct Abort;

/// Why a thread is blocked.
#[derive(Clone, Copy, Debug)]
pub enum Why {
    /// One of the client's hooks.
    Hook(Block),
    /// A callback waits until worker `worker` has finished its operation number `op`
    /// (or until `until`).
    Wait {
        worker: usize,
        op: u64,
        until: Duration,
    },
}

#[derive(Clone, Copy, Debug)]
pub enum Status {
    /// Holds the turn.
    Running,
    /// Spawned by the client, waiting for its first turn.
    NotStarted,
    /// A worker with no operation.
    Idle,
    Blocked(Why),
    Exited,
}

pub struct ThreadRec {
    pub name: String,
    pub status: Status,
    pub os: Option<ThreadId>,
    /// Operation handed to a worker (run at its next turn).
    pub op: Option<super::model::Job>,
    /// Virtual time its current operation started (workers).
    pub op_start: Duration,
    pub op_name: String,
    /// Operations handed to this worker so far.
    pub op_seq: u64,
}

/// One simulated TCP connection.
#[derive(Default)]
pub struct PipeState {
    pub to_broker: Vec<u8>,
    pub to_client: VecDeque<u8>,
    /// The client called shutdown (the broker reads the end after the bytes).
    pub client_closed: bool,
    /// The broker closed, or the connection was cut: both ends see it at once.
    pub cut: bool,
    /// Capacity of the client -> broker direction (a socket's buffer).
    pub cap: usize,
    /// The client's last write was refused for lack of room.
    pub write_blocked: bool,
    /// Cut the connection after this many more bytes from the client / to the client.
    pub cut_c2b: Option<usize>,
    pub cut_b2c: Option<usize>,
}

/// Faults that shape the I/O of every connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct IoFaults {
    /// Writes and reads take a random part of what is offered.
    pub partial: bool,
    /// The next TCP connect is refused.
    pub refuse_tcp: bool,
}

pub struct Shared {
    pub turn: usize,
    pub aborted: bool,
    pub threads: Vec<ThreadRec>,
    pub clock: Duration,
    /// The loop's `poll` would return now (a wake-up or socket activity since it was last
    /// resumed).
    pub poll_ready: bool,
    pub pipes: Vec<PipeState>,
    pub io: IoFaults,
    /// For the pipes' partial reads and writes.
    pub rng: Rng,
    pub broker: Broker,
    pub model: Model,
}

pub struct World {
    pub base: Instant,
    pub shared: Mutex<Shared>,
    pub cv: Condvar,
}

impl World {
    pub fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The virtual time now.
    pub fn elapsed(&self) -> Duration {
        self.lock().clock
    }

    /// Gives the turn to thread `id` and waits until it is given back.
    pub fn resume(&self, id: usize) {
        let mut g = self.lock();
        if matches!(
            g.threads[id].status,
            Status::Blocked(_) | Status::NotStarted
        ) {
            g.threads[id].status = Status::Running;
        }
        g.turn = id;
        self.cv.notify_all();
        while g.turn != 0 {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The calling thread blocks for `why` until the driver resumes it.
    pub fn block_as(&self, why: Why) {
        let me = ME.with(|m| m.get());
        if me == 0 {
            return;
        }
        let mut g = self.lock();
        g.threads[me].status = Status::Blocked(why);
        g.turn = 0;
        self.cv.notify_all();
        g = self.wait_turn(g, me);
        g.threads[me].status = Status::Running;
    }

    /// Waits until `me` holds the turn; unwinds with [`Abort`] when the run is torn down.
    pub fn wait_turn<'a>(
        &'a self,
        mut g: MutexGuard<'a, Shared>,
        me: usize,
    ) -> MutexGuard<'a, Shared> {
        while g.turn != me && !g.aborted {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        if g.aborted {
            drop(g);
            std::panic::resume_unwind(Box::new(Abort));
        }
        g
    }

    /// Gives the turn back to the driver (the calling thread's operation ended).
    pub fn yield_idle(&self, me: usize, status: Status) {
        let mut g = self.lock();
        g.threads[me].status = status;
        g.turn = 0;
        self.cv.notify_all();
    }
}

/// The client's hooks, implemented by the world.
pub struct Hooks(pub Arc<World>);

impl WorldHooks for Hooks {
    fn now(&self) -> Instant {
        self.0.base + self.0.lock().clock
    }

    fn block(&self, why: Block) {
        self.0.block_as(Why::Hook(why));
    }

    fn wake(&self) {
        self.0.lock().poll_ready = true;
    }

    fn connect(&self, _host: &str, _port: u16) -> io::Result<Box<dyn Pipe>> {
        let mut g = self.0.lock();
        if g.io.refuse_tcp {
            g.io.refuse_tcp = false;
            g.model.trace("tcp connect refused".into());
            return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
        }
        if !g.broker.up {
            g.model.trace("tcp connect refused (broker down)".into());
            return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
        }
        let cap = g.broker.cfg.pipe_cap;
        g.pipes.push(PipeState {
            cap,
            ..PipeState::default()
        });
        let id = g.pipes.len() - 1;
        g.broker.accept(id);
        g.model.trace(format!("tcp connect: connection {id}"));
        Ok(Box::new(ClientEnd {
            world: self.0.clone(),
            id,
        }))
    }

    fn spawn(&self) -> u64 {
        let mut g = self.0.lock();
        let id = g.threads.len();
        g.threads.push(ThreadRec {
            name: format!("loop{id}"),
            status: Status::NotStarted,
            os: None,
            op: None,
            op_start: Duration::ZERO,
            op_name: String::new(),
            op_seq: 0,
        });
        id as u64
    }

    fn spawned(&self, id: u64, thread: ThreadId) {
        self.0.lock().threads[id as usize].os = Some(thread);
    }

    fn thread_start(&self, id: u64) {
        let id = id as usize;
        ME.with(|m| m.set(id));
        let g = self.0.lock();
        let mut g = self.0.wait_turn(g, id);
        g.threads[id].status = Status::Running;
    }

    fn thread_exit(&self, id: u64) {
        let mut g = self.0.lock();
        g.threads[id as usize].status = Status::Exited;
        if g.turn == id as usize {
            g.turn = 0;
        }
        self.0.cv.notify_all();
    }
}

/// The client's end of a pipe.
struct ClientEnd {
    world: Arc<World>,
    id: usize,
}

impl Pipe for ClientEnd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut g = self.world.lock();
        let partial = g.io.partial;
        let n = {
            let avail = g.pipes[self.id].to_client.len();
            if avail == 0 {
                if g.pipes[self.id].cut {
                    return Ok(0);
                }
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = avail.min(buf.len());
            if partial && n > 1 {
                n = 1 + g.rng.below(n as u64) as usize;
            }
            n
        };
        let p = &mut g.pipes[self.id];
        for (i, b) in p.to_client.drain(..n).enumerate() {
            buf[i] = b;
        }
        Ok(n)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut g = self.world.lock();
        let partial = g.io.partial;
        let room = {
            let p = &g.pipes[self.id];
            if p.cut || p.client_closed {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            p.cap.saturating_sub(p.to_broker.len())
        };
        if room == 0 || buf.is_empty() {
            if !buf.is_empty() {
                g.pipes[self.id].write_blocked = true;
            }
            return if buf.is_empty() {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let mut n = room.min(buf.len());
        if partial && n > 1 {
            n = 1 + g.rng.below(n as u64) as usize;
        }
        let p = &mut g.pipes[self.id];
        if let Some(left) = p.cut_c2b {
            if left < n {
                p.to_broker.extend_from_slice(&buf[..left]);
                p.cut = true;
                p.cut_c2b = None;
                g.model
                    .trace(format!("connection {} cut while the client wrote", self.id));
                return if left > 0 {
                    Ok(left)
                } else {
                    Err(io::ErrorKind::ConnectionReset.into())
                };
            }
            p.cut_c2b = Some(left - n);
        }
        p.to_broker.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn shutdown(&mut self) {
        let mut g = self.world.lock();
        g.pipes[self.id].client_closed = true;
    }
}
