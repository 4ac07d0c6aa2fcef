//! Fuzz target `proxy_replies`: see `mqtt_sync_fuzz::proxy_replies`. Built with `--features libfuzzer` (by
//! scripts/fuzz) it is a libFuzzer harness; without it, it replays the files and directories
//! given as arguments (default: `corpus/proxy_replies` and `regressions/proxy_replies`).
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mqtt_sync_fuzz::proxy_replies(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    std::process::exit(mqtt_sync_fuzz::replay_main(
        "proxy_replies",
        mqtt_sync_fuzz::proxy_replies,
    ));
}
