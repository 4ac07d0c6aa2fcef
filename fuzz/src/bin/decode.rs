//! Fuzz target `decode`: see `mqtt_sync_fuzz::decode`. Built with `--features afl` (by
//! scripts/fuzz) it is an AFL++ harness; without it, it replays the files and directories
//! given as arguments (`cargo run --bin decode -- fuzz/corpus/decode`).

#[cfg(feature = "afl")]
fn main() {
    afl::fuzz!(|data: &[u8]| mqtt_sync_fuzz::decode(data));
}

#[cfg(not(feature = "afl"))]
fn main() {
    std::process::exit(mqtt_sync_fuzz::replay_main(
        "decode",
        mqtt_sync_fuzz::decode,
    ));
}
