//! Fuzz target `proxy_replies`: see `mqtt_sync_fuzz::proxy_replies`. Built with `--features afl` (by
//! scripts/fuzz) it is an AFL++ harness; without it, it replays the files and directories
//! given as arguments (`cargo run --bin proxy_replies -- fuzz/corpus/proxy_replies`).

#[cfg(feature = "afl")]
fn main() {
    afl::fuzz!(|data: &[u8]| mqtt_sync_fuzz::proxy_replies(data));
}

#[cfg(not(feature = "afl"))]
fn main() {
    std::process::exit(mqtt_sync_fuzz::replay_main(
        "proxy_replies",
        mqtt_sync_fuzz::proxy_replies,
    ));
}
