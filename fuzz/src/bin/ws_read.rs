//! Fuzz target `ws_read`: see `mqtt_sync_fuzz::ws_read`. Built with `--features libfuzzer` (by
//! scripts/fuzz) it is a libFuzzer harness; without it, it replays the files and directories
//! given as arguments (default: `corpus/ws_read` and `regressions/ws_read`).
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mqtt_sync_fuzz::ws_read(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    std::process::exit(mqtt_sync_fuzz::replay_main(
        "ws_read",
        mqtt_sync_fuzz::ws_read,
    ));
}
