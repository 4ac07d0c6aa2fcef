//! Fuzz target `session`: see `mqtt_sync_fuzz::session`. Built with `--features libfuzzer` (by
//! scripts/fuzz) it is a libFuzzer harness; without it, it replays the files and directories
//! given as arguments (default: `corpus/session` and `regressions/session`).
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mqtt_sync_fuzz::session(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    std::process::exit(mqtt_sync_fuzz::replay_main(
        "session",
        mqtt_sync_fuzz::session,
    ));
}
