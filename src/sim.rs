//! Hooks for the deterministic simulation (`tests/simulation.rs`). Test-only.
//!
//! Without the `simulation` feature every hook below is the plain operation it stands for
//! (`Instant::now()`, a condition-variable wait, a thread join, ...) and compiles to it:
//! nothing changes and nothing costs.
//!
//! With the feature, a thread on which a test entered a [`World`] (with [`enter`]; threads
//! the client spawns inherit it) reads the world's virtual clock, gets its connections from
//! the world instead of the network, and hands control to the world's scheduler at every
//! point where the client would block (the loop's `poll`, a publisher held by backpressure,
//! a thread join). The scheduler runs one such thread at a time, so a seeded run is
//! deterministic. Threads without a world (every other test) behave as without the feature.

#[cfg(feature = "simulation")]
pub use imp::*;

use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::{Builder, JoinHandle};
use std::time::{Duration, Instant};

use crate::network::NetStream;

/// The current time: the world's virtual clock on a simulated thread.
#[inline(always)]
pub(crate) fn now() -> Instant {
    #[cfg(feature = "simulation")]
    if let Some(w) = current() {
        return w.now();
    }
    Instant::now()
}

/// The loop is about to wait in `poll` for at most `wait`; returns the wait to use. A
/// simulated thread waits in the scheduler instead (and then polls without waiting).
#[inline(always)]
pub(crate) fn poll_wait(wait: Duration) -> Duration {
    #[cfg(feature = "simulation")]
    if let Some(w) = current() {
        w.block(Block::Poll {
            until: crate::time::after(w.now(), wait),
        });
        return Duration::ZERO;
    }
    wait
}

/// The client woke its loop (`mio::Waker::wake`).
#[inline(always)]
pub(crate) fn wake() {
    #[cfg(feature = "simulation")]
    if let Some(w) = current() {
        w.wake();
    }
}

/// `cond.wait_timeout(guard, timeout)` (`mutex` is the guard's); a simulated thread
/// releases the lock and waits in the scheduler (which may resume it early, as a spurious
/// wake-up).
#[inline(always)]
pub(crate) fn wait_timeout<'a, T>(
    mutex: &'a Mutex<T>,
    cond: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    #[cfg(feature = "simulation")]
    if let Some(w) = current() {
        drop(guard);
        w.block(Block::Cond {
            until: crate::time::after(w.now(), timeout),
        });
        return mutex.lock().unwrap_or_else(|e| e.into_inner());
    }
    let _ = mutex;
    cond.wait_timeout(guard, timeout)
        .map(|(g, _)| g)
        .unwrap_or_else(|e| e.into_inner().0)
}

/// Joins a thread (a simulated thread first waits in the scheduler until it ended).
#[inline(always)]
pub(crate) fn join(h: JoinHandle<()>) {
    #[cfg(feature = "simulation")]
    if let Some(w) = current() {
        w.block(Block::Join(h.thread().id()));
    }
    let _ = h.join();
}

/// Spawns a thread of the client (the loop thread). From a simulated thread, the new thread
/// belongs to the same world and runs only when the scheduler gives it its turn.
#[inline(always)]
pub(crate) fn spawn<F: FnOnce() + Send + 'static>(
    builder: Builder,
    f: F,
) -> std::io::Result<JoinHandle<()>> {
    #[cfg(feature = "simulation")]
    if let Some(w) = current() {
        let id = w.spawn();
        let world = w.clone();
        let h = builder.spawn(move || {
            let _entered = enter(world.clone());
            world.thread_start(id);
            let _exit = ExitGuard(world, id);
            f();
        })?;
        w.spawned(id, h.thread().id());
        return Ok(h);
    }
    builder.spawn(f)
}

/// The world's connection to `host:port`, if this thread is simulated (no socket is opened).
#[inline(always)]
pub(crate) fn open(host: &str, port: u16) -> Option<crate::Result<Box<dyn NetStream>>> {
    #[cfg(feature = "simulation")]
    if let Some(w) = current() {
        return Some(imp::open(&*w, host, port));
    }
    let _ = (host, port);
    None
}

/// True on a simulated thread (the connect watchdog thread is not needed there).
#[inline(always)]
pub(crate) fn active() -> bool {
    #[cfg(feature = "simulation")]
    if current().is_some() {
        return true;
    }
    false
}

#[cfg(feature = "simulation")]
mod imp {
    use std::cell::RefCell;
    use std::io::{self, Read, Write};
    use std::os::fd::{AsRawFd, RawFd};
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;
    use std::thread::ThreadId;
    use std::time::Instant;

    use crate::network::NetStream;

    /// Where a simulated thread blocks.
    #[derive(Clone, Copy, Debug)]
    pub enum Block {
        /// The loop waits in `poll` until `until`, a wake-up, or socket activity.
        Poll {
            /// The end of the wait.
            until: Instant,
        },
        /// A condition-variable wait (a publisher held by backpressure) until `until`;
        /// it may be resumed earlier (a spurious wake-up).
        Cond {
            /// The end of the wait.
            until: Instant,
        },
        /// Joining a thread: resume once it ended.
        Join(ThreadId),
    }

    /// A simulated world: its clock, its scheduler, its network.
    pub trait World: Send + Sync {
        /// The virtual clock.
        fn now(&self) -> Instant;
        /// The calling thread blocks for `why`: hand the turn to the scheduler and return
        /// when it gives the turn back.
        fn block(&self, why: Block);
        /// The client woke its loop.
        fn wake(&self);
        /// A connection to `host:port` (an error: the connection is refused).
        fn connect(&self, host: &str, port: u16) -> io::Result<Box<dyn Pipe>>;
        /// The calling thread spawns a thread: its id in the world.
        fn spawn(&self) -> u64;
        /// Thread `id` of the world is the OS thread `thread`.
        fn spawned(&self, id: u64, thread: ThreadId);
        /// Called first on the new thread `id`: return when it has its first turn.
        fn thread_start(&self, id: u64);
        /// Thread `id` ends: give the turn back to the scheduler.
        fn thread_exit(&self, id: u64);
    }

    /// The client's end of a simulated connection.
    pub trait Pipe: Send {
        /// As `Read::read` of a non-blocking socket (`WouldBlock`, `Ok(0)` at the end).
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
        /// As `Write::write` of a non-blocking socket.
        fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
        /// The client closes the connection.
        fn shutdown(&mut self);
    }

    thread_local! {
        static WORLD: RefCell<Option<Arc<dyn World>>> = const { RefCell::new(None) };
    }

    /// The world of the calling thread.
    pub fn current() -> Option<Arc<dyn World>> {
        WORLD.with(|w| w.borrow().clone())
    }

    /// Makes the calling thread part of `world` until the guard drops.
    pub fn enter(world: Arc<dyn World>) -> Entered {
        let prev = WORLD.with(|w| w.borrow_mut().replace(world));
        Entered(prev)
    }

    /// Restores the thread's previous world when dropped.
    pub struct Entered(Option<Arc<dyn World>>);

    impl std::fmt::Debug for Entered {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Entered")
        }
    }

    impl Drop for Entered {
        fn drop(&mut self) {
            let prev = self.0.take();
            WORLD.with(|w| *w.borrow_mut() = prev);
        }
    }

    pub(super) struct ExitGuard(pub(super) Arc<dyn World>, pub(super) u64);

    impl Drop for ExitGuard {
        fn drop(&mut self) {
            self.0.thread_exit(self.1);
        }
    }

    /// A simulated connection as a `NetStream`: bytes go through the world's pipe; a Unix
    /// socket pair that carries nothing gives the poller a descriptor to register.
    struct SimStream {
        pipe: Box<dyn Pipe>,
        fd: (UnixStream, UnixStream),
    }

    impl Read for SimStream {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.pipe.read(buf)
        }
    }

    impl Write for SimStream {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.pipe.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl NetStream for SimStream {
        fn raw_fd(&self) -> RawFd {
            self.fd.0.as_raw_fd()
        }
        fn shutdown(&mut self) {
            self.pipe.shutdown();
        }
        fn set_nonblocking(&mut self, _nonblocking: bool) -> io::Result<()> {
            Ok(())
        }
    }

    /// A client's state, measured against its configured bounds ([`probe`]).
    #[derive(Clone, Copy, Debug)]
    pub struct Probe {
        /// Bytes waiting for the socket.
        pub pending_bytes: usize,
        /// Stored outgoing QoS 1/2 messages.
        pub outgoing: usize,
        /// Incoming QoS 2 messages between PUBREC and PUBCOMP.
        pub inbound_qos2: usize,
        /// The configured `max_outgoing_bytes`.
        pub max_outgoing_bytes: usize,
        /// The configured `max_queued_messages` (0: unlimited).
        pub max_queued: usize,
        /// `is_connected()`.
        pub connected: bool,
        /// A `loop_start` thread or `loop_forever` runs.
        pub loop_running: bool,
        /// A loop runs, no `loop_stop` is in progress and the connection is not closing:
        /// a publisher that finds no room or packet id waits instead of failing.
        pub draining: bool,
    }

    /// Measures `client` (takes its lock briefly).
    pub fn probe(client: &crate::Client) -> Probe {
        client.sim_probe()
    }

    pub(super) fn open(w: &dyn World, host: &str, port: u16) -> crate::Result<Box<dyn NetStream>> {
        let pipe = w.connect(host, port)?;
        let fd = UnixStream::pair()?;
        Ok(Box::new(SimStream { pipe, fd }))
    }
}
