//! Packet identifiers: the bitmap of ids in use and their allocation. An id is taken by a
//! message, SUBSCRIBE or UNSUBSCRIBE in progress, and by a completed publish until its
//! `on_publish` has been dispatched ([`Session::release_reported`]).

use super::Session;
use crate::{Error, Result};

/// Bitmap of packet ids in use (1..=65535).
pub(super) struct IdSet([u64; 1024]);

impl IdSet {
    /// No id in use.
    pub(super) fn empty() -> IdSet {
        IdSet([0; 1024])
    }
    pub(super) fn contains(&self, id: u16) -> bool {
        self.0[(id >> 6) as usize] & (1u64 << (id & 63)) != 0
    }
    pub(super) fn insert(&mut self, id: u16) {
        self.0[(id >> 6) as usize] |= 1u64 << (id & 63);
    }
    pub(super) fn remove(&mut self, id: u16) {
        self.0[(id >> 6) as usize] &= !(1u64 << (id & 63));
    }
}

impl Session {
    /// Every packet id (1..=65535) is in use.
    pub(crate) fn ids_exhausted(&self) -> bool {
        self.in_use_count >= 65535
    }

    /// Allocates the next free message id (1..=65535, skipping ids in use).
    pub(crate) fn alloc_mid(&mut self) -> Result<u16> {
        if self.in_use_count >= 65535 {
            return Err(Error::QueueSize);
        }
        loop {
            self.next_mid = self.next_mid.wrapping_add(1);
            if self.next_mid == 0 {
                self.next_mid = 1;
            }
            if !self.in_use.contains(self.next_mid) {
                self.in_use.insert(self.next_mid);
                self.in_use_count += 1;
                return Ok(self.next_mid);
            }
        }
    }

    /// Which session this is (see `instance`).
    pub(crate) fn instance(&self) -> u64 {
        self.instance
    }

    /// The `on_publish` events of these ids were dispatched: the ids are free again.
    pub(crate) fn release_reported(&mut self, runs: &[(u16, u32)]) {
        for &(first, count) in runs {
            let mut mid = first;
            for _ in 0..count {
                self.free_mid(mid);
                mid = if mid == u16::MAX { 1 } else { mid + 1 };
            }
        }
    }

    pub(super) fn free_mid(&mut self, mid: u16) {
        if mid != 0 && self.in_use.contains(mid) {
            self.in_use.remove(mid);
            self.in_use_count -= 1;
        }
    }
}
