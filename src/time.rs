//! Deadlines from durations a user may give (`Duration::MAX` included) without overflow.

use std::time::{Duration, Instant};

/// The current time (the simulation's virtual clock on a simulated thread, see `sim.rs`).
#[inline(always)]
pub(crate) fn now() -> Instant {
    crate::sim::now()
}

/// About a century: a deadline this far ahead never comes.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + d`, saturated: a duration too large to add gives a deadline that never comes.
pub(crate) fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(FAR)).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates() {
        let now = Instant::now();
        assert_eq!(
            after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(365 * 24 * 3600));
    }
}
