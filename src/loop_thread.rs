//! Which threads are driving a client's loop or running its callbacks right now.
//!
//! A leaf module: the client registers a thread while it runs the loop or dispatches
//! callbacks, and a call that would wait for that very thread (`wait_for_publish`, a nested
//! loop) asks [`LoopThreads::is_current`] and refuses instead of waiting for itself.

use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};

/// The threads currently driving one client's loop or dispatching its callbacks.
#[derive(Debug, Default)]
pub(crate) struct LoopThreads(Mutex<Vec<ThreadId>>);

impl LoopThreads {
    /// True when the calling thread drives the loop or runs a callback of this client.
    pub(crate) fn is_current(&self) -> bool {
        let me = thread::current().id();
        self.0.lock().map(|v| v.contains(&me)).unwrap_or(false)
    }

    /// Registers the calling thread until the guard drops.
    pub(crate) fn enter(self: &Arc<Self>) -> LoopGuard {
        if let Ok(mut v) = self.0.lock() {
            v.push(thread::current().id());
        }
        LoopGuard(self.clone())
    }
}

/// Unregisters its thread from [`LoopThreads`] when dropped.
pub(crate) struct LoopGuard(Arc<LoopThreads>);

impl Drop for LoopGuard {
    fn drop(&mut self) {
        let me = thread::current().id();
        if let Ok(mut v) = self.0 .0.lock() {
            if let Some(i) = v.iter().rposition(|t| *t == me) {
                v.remove(i);
            }
        }
    }
}
