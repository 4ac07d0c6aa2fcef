//! Known issues the fuzz targets exposed that do not fail them (yet), as tests that fail
//! today. They are ignored so that `cargo test` stays green; run them with
//! `cargo test --test known_issues -- --ignored`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, recording the largest single allocation.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Largest = Largest;

/// A broker (or anyone on a `ws://` path) sends one 10-byte frame header announcing a binary
/// frame of 512 MiB - 16 bytes, and nothing else. tungstenite 0.30 reserves the announced
/// length at once (`FrameCodec::read_frame`: `in_buffer.reserve(len)`), bounded only by
/// `max_frame_size`, which src/network/ws.rs sets to 512 MiB whatever the client's maximum
/// incoming packet size. Resident memory stays small under Linux overcommit, but the process
/// aborts where address space is limited (`ulimit -v 400000`: "memory allocation of
/// 536870906 bytes failed"). Input: fuzz/regressions/ws_read/eager-frame-reserve-512mib.
///
/// Status (2026-12-03): being fixed on main, where the WebSocket frame and message limit is
/// tied to the client's maximum incoming packet size (default 256 MiB + 5 bytes, below this
/// frame). When that lands, adapt `after_upgrade` in src/network/ws.rs (the fuzz targets'
/// entry) to the new settings if needed and remove the `#[ignore]`: the frame must then be
/// refused without reserving its length.
#[test]
#[ignore = "known issue, fixed on main separately: the WebSocket reader reserves the announced frame length (up to 512 MiB)"]
fn ws_read_does_not_reserve_the_announced_frame_length() {
    let frame = [0x82, 127, 0, 0, 0, 0, 0x1F, 0xFF, 0xFF, 0xF0];
    for opts in [0x00, 0x20, 0xC0] {
        LARGEST.store(0, Ordering::Relaxed);
        let out = mqtt_sync::fuzzing::ws_read(opts, &frame);
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(out.data.is_empty() && !out.livelock, "{out:?}");
        assert!(
            largest <= 1 << 20,
            "10 bytes of input made the reader allocate {largest} bytes at once"
        );
    }
}
