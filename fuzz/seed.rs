//! Writes the seed corpora: `cargo run --bin seed [-- OUT_DIR]` fills `OUT_DIR/TARGET/`
//! (default `corpus/` of this crate, which git ignores) with one file per seed, named by a
//! hash of its content, for every target. Existing files are kept.

use std::path::PathBuf;

fn main() {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    for (name, _) in mqtt_sync_fuzz::TARGETS {
        let dir = out.join(name);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let seeds = mqtt_sync_fuzz::seeds::seeds(name);
        for s in &seeds {
            // FNV-1a: stable names, so re-running adds nothing new.
            let h = s.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            let file = dir.join(format!("seed-{h:016x}"));
            std::fs::write(&file, s)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
        }
        println!("{name}: {} seeds in {}", seeds.len(), dir.display());
    }
}
