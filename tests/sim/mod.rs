//! The deterministic simulation of the client (see `tests/simulation.rs` and
//! `docs/reliability.md`, "Deterministic simulation").
//!
//! - `world.rs`: virtual clock, the one-thread-at-a-time scheduler, the pipes;
//! - `broker.rs`: the simulated MQTT broker (3.1.1 and 5 session semantics);
//! - `model.rs`: what the run observed, and the invariants;
//! - `run.rs`: the plan of a seed (API calls, faults), the driver, the callbacks;
//! - `shrink.rs`: reducing a failing plan to a short one.

#![allow(dead_code, clippy::collapsible_match)]

pub mod broker;
pub mod model;
pub mod run;
pub mod shrink;
pub mod world;

/// SplitMix64: small, fast, and the same everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `num/den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}
