//! Fuzz target `proxy_url`: see `mqtt_sync_fuzz::proxy_url`. Built with `--features libfuzzer` (by
//! scripts/fuzz) it is a libFuzzer harness; without it, it replays the files and directories
//! given as arguments (default: `corpus/proxy_url` and `regressions/proxy_url`).
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mqtt_sync_fuzz::proxy_url(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    std::process::exit(mqtt_sync_fuzz::replay_main(
        "proxy_url",
        mqtt_sync_fuzz::proxy_url,
    ));
}
