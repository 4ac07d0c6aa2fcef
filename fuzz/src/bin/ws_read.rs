//! Fuzz target `ws_read`: see `mqtt_sync_fuzz::ws_read`. Built with `--features afl` (by
//! scripts/fuzz) it is an AFL++ harness; without it, it replays the files and directories
//! given as arguments (`cargo run --bin ws_read -- fuzz/corpus/ws_read`).

#[cfg(feature = "afl")]
fn main() {
    afl::fuzz!(|data: &[u8]| mqtt_sync_fuzz::ws_read(data));
}

#[cfg(not(feature = "afl"))]
fn main() {
    std::process::exit(mqtt_sync_fuzz::replay_main(
        "ws_read",
        mqtt_sync_fuzz::ws_read,
    ));
}
