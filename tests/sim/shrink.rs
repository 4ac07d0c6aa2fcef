//! Shrinking a failing plan: remove chunks of actions (halves, quarters, ... single
//! actions) as long as the run still fails the same way.

use super::run::{run, Action, Config, Outcome, RunOpts};

/// What a failure is about: its first violation without the numbers in it.
pub fn kind(o: &Outcome) -> String {
    o.violations
        .first()
        .map(|v| v.chars().filter(|c| !c.is_ascii_digit()).take(40).collect())
        .unwrap_or_default()
}

/// The shortest plan found (within `max_runs` runs) that still fails like `plan`.
pub fn shrink(
    cfg: &Config,
    plan: &[Action],
    seed: u64,
    opts: RunOpts,
    max_runs: usize,
) -> (Vec<Action>, Outcome) {
    let first = run(cfg, plan, seed, opts);
    let want = kind(&first);
    let mut cur: Vec<Action> = plan[..first.issued.min(plan.len())].to_vec();
    let mut best = first;
    let mut runs = 1;
    let mut chunk = cur.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < cur.len() && runs < max_runs {
            let mut cand = cur.clone();
            cand.drain(i..(i + chunk).min(cur.len()));
            let o = run(cfg, &cand, seed, opts);
            runs += 1;
            if o.failed() && kind(&o) == want {
                cand.truncate(o.issued.min(cand.len()));
                cur = cand;
                best = o;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 || runs >= max_runs {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    (cur, best)
}
