//! The largest single allocation the WebSocket read path makes for what a broker sends,
//! measured with a counting global allocator (libFuzzer without a sanitizer cannot see
//! allocation sizes, so the `ws_read` target does not check this). `scripts/fuzz --replay`
//! and CI run it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The tests measure one at a time (the counter is global).
static SERIAL: Mutex<()> = Mutex::new(());

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
/// frame of 512 MiB - 16 bytes, and nothing else (input
/// `fuzz/regressions/ws_read/eager-frame-reserve-512mib`, found by the first fuzzing round).
/// tungstenite 0.30 reserves the announced length at once (`FrameCodec::read_frame`:
/// `in_buffer.reserve(len)`), bounded only by `max_frame_size`. That limit was a fixed
/// 512 MiB: the reader reserved 536,870,906 bytes, which aborts the process where address
/// space is limited (`ulimit -v 400000`). Since main's fix (commit 6054a45) the limit is the
/// client's maximum incoming packet size + 64 KiB: the frame is refused before anything is
/// reserved.
#[test]
fn a_frame_over_the_limit_is_refused_without_reserving_its_length() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let frame = [0x82, 127, 0, 0, 0, 0, 0x1F, 0xFF, 0xFF, 0xF0];
    for opts in [0x00, 0x20, 0xC0] {
        LARGEST.store(0, Ordering::Relaxed);
        let out = mqtt_sync::fuzzing::ws_read(opts, &frame);
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(
            out.data.is_empty() && !out.livelock && out.error.is_some(),
            "{out:?}"
        );
        assert!(
            largest <= 1 << 20,
            "10 bytes of input made the reader allocate {largest} bytes at once"
        );
    }
}

/// A frame header announcing exactly the limit (the default maximum incoming packet size +
/// 64 KiB) is accepted, and what the reader reserves for it stays within that limit (plus
/// its 64 KiB read buffer).
#[test]
fn a_frame_at_the_limit_reserves_at_most_the_limit() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let limit = mqtt_sync::DEFAULT_MAX_INCOMING_PACKET + (64 << 10);
    let mut frame = vec![0x82, 127];
    frame.extend_from_slice(&(limit as u64).to_be_bytes());
    frame.extend_from_slice(&[0x30, 0x00]);
    LARGEST.store(0, Ordering::Relaxed);
    let out = mqtt_sync::fuzzing::ws_read(0x00, &frame);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        out.data.is_empty() && out.error.is_none() && !out.livelock,
        "{out:?}"
    );
    assert!(
        largest <= limit + (128 << 10),
        "a frame of {limit} bytes made the reader allocate {largest} bytes at once"
    );
}
