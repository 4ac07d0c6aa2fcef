use std::collections::BTreeMap;

use super::*;

thread_local! {
    /// `Some(n)`: the sync after the next `n` ones fails (then `None` again).
    static SYNC_FAULT: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// Whether this sync is the one to fail (see [`fail_sync_after`]).
pub(super) fn take_sync_fault() -> bool {
    SYNC_FAULT.with(|f| match f.get() {
        Some(0) => {
            f.set(None);
            true
        }
        Some(n) => {
            f.set(Some(n - 1));
            false
        }
        None => false,
    })
}

fn dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mqtt-sync-store-")
        .tempdir()
        .expect("temp dir")
}

fn loaded(s: &mut impl Persistence) -> BTreeMap<Key, Vec<u8>> {
    s.load().expect("load").into_iter().collect()
}

#[test]
fn crc32_matches_the_standard_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn file_store_round_trip_across_reopen() {
    let d = dir();
    let p = d.path().join("s");
    let mut want = BTreeMap::new();
    {
        let mut s = FileStore::open(&p).unwrap();
        assert!(loaded(&mut s).is_empty());
        for i in 1..=50u16 {
            s.put(Key::Outgoing(i), &[i as u8; 30]).unwrap();
            want.insert(Key::Outgoing(i), vec![i as u8; 30]);
        }
        s.put(Key::Incoming(7), b"in").unwrap();
        want.insert(Key::Incoming(7), b"in".to_vec());
        for i in (1..=50u16).step_by(3) {
            s.remove(Key::Outgoing(i)).unwrap();
            want.remove(&Key::Outgoing(i));
        }
        s.put(Key::Outgoing(2), b"replaced").unwrap();
        want.insert(Key::Outgoing(2), b"replaced".to_vec());
        // Removing what is not there writes nothing.
        let len = s.file_len();
        s.remove(Key::Incoming(999)).unwrap();
        assert_eq!(s.file_len(), len);
        assert_eq!(loaded(&mut s), want);
    }
    let mut s = FileStore::open(&p).unwrap();
    assert_eq!(loaded(&mut s), want);
    assert_eq!(s.records(), want.len());
}

#[test]
fn every_sync_policy_round_trips() {
    for policy in [
        SyncPolicy::Always,
        SyncPolicy::EveryN(10),
        SyncPolicy::Interval(Duration::from_millis(5)),
        SyncPolicy::Never,
        SyncPolicy::BeforeSend,
    ] {
        let d = dir();
        let p = d.path().join("s");
        {
            let mut s = FileStore::open_with(&p, policy).unwrap();
            assert_eq!(s.sync_policy(), policy);
            for i in 1..=25u16 {
                s.put(Key::Outgoing(i), b"v").unwrap();
            }
            s.remove(Key::Outgoing(3)).unwrap();
        }
        let mut s = FileStore::open_with(&p, policy).unwrap();
        assert_eq!(loaded(&mut s).len(), 24, "{policy:?}");
    }
}

/// A crash in the middle of a write leaves a short or garbled last record: it is ignored and
/// cut off, the records before it load, and the store goes on from there.
#[test]
fn torn_last_record_is_ignored_and_cut_off() {
    let d = dir();
    let p = d.path().join("s");
    {
        let mut s = FileStore::open(&p).unwrap();
        s.put(Key::Outgoing(1), b"first").unwrap();
        s.put(Key::Outgoing(2), b"second").unwrap();
    }
    let full = std::fs::read(&p).unwrap();
    let last_rec = REC_HEAD + BODY_HEAD + b"second".len();
    let before_last = full.len() - last_rec;
    // Every cut inside the last record, including inside its 8-byte header.
    for cut in before_last + 1..full.len() {
        std::fs::write(&p, &full[..cut]).unwrap();
        let mut s = FileStore::open(&p).unwrap();
        let got = loaded(&mut s);
        assert_eq!(got.len(), 1, "cut at {cut}");
        assert_eq!(got[&Key::Outgoing(1)], b"first");
        assert_eq!(std::fs::metadata(&p).unwrap().len() as usize, before_last);
        s.put(Key::Outgoing(3), b"third").unwrap();
        drop(s);
        let mut s = FileStore::open(&p).unwrap();
        assert_eq!(
            loaded(&mut s).len(),
            2,
            "cut at {cut}: appends after the cut load"
        );
    }
    // A whole-length last record whose bytes did not all reach the disk (wrong checksum).
    let mut garbled = full.clone();
    let n = garbled.len();
    garbled[n - 2] ^= 0x55;
    std::fs::write(&p, &garbled).unwrap();
    let mut s = FileStore::open(&p).unwrap();
    assert_eq!(loaded(&mut s).len(), 1);
    // A file torn while its header was written starts empty.
    std::fs::write(&p, &MAGIC[..3]).unwrap();
    let mut s = FileStore::open(&p).unwrap();
    assert!(loaded(&mut s).is_empty());
}

#[test]
fn corrupt_header_or_middle_record_is_an_error() {
    let d = dir();
    let p = d.path().join("s");
    std::fs::write(&p, b"NOTASTORE-AT-ALL").unwrap();
    let e = FileStore::open(&p).unwrap_err();
    assert!(matches!(e, Error::Persistence(_)), "{e:?}");
    assert!(e.to_string().contains("bad header"), "{e}");
    // The file is left as it was.
    assert_eq!(std::fs::read(&p).unwrap(), b"NOTASTORE-AT-ALL");
    std::fs::write(&p, b"xy").unwrap();
    assert!(matches!(FileStore::open(&p), Err(Error::Persistence(_))));

    std::fs::remove_file(&p).unwrap();
    {
        let mut s = FileStore::open(&p).unwrap();
        s.put(Key::Outgoing(1), b"first").unwrap();
        s.put(Key::Outgoing(2), b"second").unwrap();
    }
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[HEADER as usize + REC_HEAD + BODY_HEAD] ^= 0x01; // inside the first record's value
    std::fs::write(&p, &bytes).unwrap();
    let e = FileStore::open(&p).unwrap_err();
    assert!(matches!(e, Error::Persistence(_)), "{e:?}");
    assert!(e.to_string().contains("checksum"), "{e}");
}

/// Put/remove churn with a small live set: the log is compacted again and again and never
/// grows past its bound; what is live survives, also across a reopen.
#[test]
fn compaction_bounds_the_file_size() {
    let d = dir();
    let p = d.path().join("s");
    let mut s = FileStore::open_with(&p, SyncPolicy::Never).unwrap();
    let value = vec![0xAB; 200];
    let mut max_len = 0;
    for i in 0..20_000u32 {
        let mid = (i % 65_535 + 1) as u16;
        s.put(Key::Outgoing(mid), &value).unwrap();
        if i >= 20 {
            s.remove(Key::Outgoing(mid - 20)).unwrap();
        }
        max_len = max_len.max(s.file_len());
        assert!(s.records() <= 21);
    }
    let rec = (REC_HEAD + BODY_HEAD + value.len()) as u64;
    let bound = MIN_COMPACT.max(COMPACT_FACTOR * s.live_len()) + rec;
    assert!(
        max_len <= bound,
        "log reached {max_len} bytes, bound {bound}"
    );
    assert!(s.compactions() > 10, "{} compactions", s.compactions());
    assert!(
        !d.path().join("s.tmp").exists(),
        "the temp file is renamed away"
    );
    let live = loaded(&mut s);
    assert_eq!(live.len(), 20);
    drop(s);
    let mut s = FileStore::open(&p).unwrap();
    assert_eq!(loaded(&mut s), live);
    // Compacting by hand leaves just the live records.
    s.compact().unwrap();
    assert_eq!(s.file_len(), s.live_len());
    assert_eq!(std::fs::metadata(&p).unwrap().len(), HEADER + 20 * rec);
}

#[test]
fn memory_store_is_shared_by_its_clones() {
    let a = MemoryStore::new();
    let mut b = a.clone();
    b.put(Key::Incoming(3), b"x").unwrap();
    b.put(Key::Outgoing(1), b"y").unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a.keys(), vec![Key::Outgoing(1), Key::Incoming(3)]);
    b.remove(Key::Incoming(3)).unwrap();
    assert_eq!(a.len(), 1);
    assert!(!a.is_empty());
}

/// `BeforeSend` syncs at `flush` only, once for every record since the last one; `Always`
/// syncs per record and its `flush` adds nothing.
#[test]
fn before_send_syncs_once_per_flush() {
    let d = dir();
    let mut s = FileStore::open_with(d.path().join("s"), SyncPolicy::BeforeSend).unwrap();
    let base = s.syncs();
    for i in 1..=50u16 {
        s.put(Key::Outgoing(i), b"v").unwrap();
    }
    s.remove(Key::Outgoing(7)).unwrap();
    assert_eq!(s.syncs(), base, "no sync before the flush");
    s.flush().unwrap();
    assert_eq!(s.syncs(), base + 1);
    s.flush().unwrap();
    assert_eq!(s.syncs(), base + 1, "nothing written since: no sync");
    s.put(Key::Incoming(1), b"w").unwrap();
    s.flush().unwrap();
    assert_eq!(s.syncs(), base + 2);

    let mut a = FileStore::open_with(d.path().join("a"), SyncPolicy::Always).unwrap();
    let base = a.syncs();
    for i in 1..=5u16 {
        a.put(Key::Outgoing(i), b"v").unwrap();
    }
    assert_eq!(a.syncs(), base + 5);
    a.flush().unwrap();
    assert_eq!(a.syncs(), base + 5);
}

/// Makes the sync after the next `pass` ones fail (this thread only).
fn fail_sync_after(pass: u32) {
    SYNC_FAULT.with(|f| f.set(Some(pass)));
}

/// A failed `fdatasync` may have dropped the dirty pages, and Linux reports a writeback error
/// once: a retry that succeeds proves nothing. The store refuses every later flush and write;
/// reopening it goes on from what the file holds.
#[test]
fn a_failed_sync_breaks_the_store() {
    let d = dir();
    let path = d.path().join("s");
    let mut s = FileStore::open_with(&path, SyncPolicy::BeforeSend).unwrap();
    s.put(Key::Outgoing(1), b"one").unwrap();
    fail_sync_after(0);
    assert!(s.flush().is_err());
    let again = s
        .flush()
        .expect_err("a flush after a failed sync must not succeed");
    assert!(again.to_string().contains("fdatasync failed"), "{again}");
    assert!(s.put(Key::Outgoing(2), b"two").is_err());
    assert!(s.sync().is_err());
    drop(s);
    let mut s = FileStore::open_with(&path, SyncPolicy::BeforeSend).unwrap();
    assert_eq!(loaded(&mut s).len(), 1);
    s.put(Key::Outgoing(2), b"two").unwrap();
    s.flush().unwrap();

    // Under `Always` the failing sync is the put's own.
    let mut a = FileStore::open_with(d.path().join("a"), SyncPolicy::Always).unwrap();
    fail_sync_after(0);
    assert!(a.put(Key::Outgoing(1), b"one").is_err());
    assert!(a.put(Key::Outgoing(2), b"two").is_err());
}

/// Records a killed process left in the kernel's cache are synced when the next one opens
/// the store, before it can send them (the resent PUBLISH must rest on the disk too).
#[test]
fn records_found_at_open_are_synced() {
    for policy in [
        SyncPolicy::BeforeSend,
        SyncPolicy::Always,
        SyncPolicy::EveryN(8),
    ] {
        let d = dir();
        let path = d.path().join("s");
        let mut s = FileStore::open_with(&path, SyncPolicy::Never).unwrap();
        s.put(Key::Outgoing(1), b"one").unwrap();
        // A killed process: no sync at drop.
        std::mem::forget(s);
        let mut s = FileStore::open_with(&path, policy).unwrap();
        assert_eq!(
            s.syncs(),
            1,
            "{policy:?}: the inherited record was not synced"
        );
        assert_eq!(loaded(&mut s).len(), 1);
        s.flush().unwrap();
    }
    // An empty store costs nothing at open, and `Never` never syncs.
    let d = dir();
    let s = FileStore::open_with(d.path().join("e"), SyncPolicy::BeforeSend).unwrap();
    drop(s);
    let s = FileStore::open_with(d.path().join("e"), SyncPolicy::BeforeSend).unwrap();
    assert_eq!(s.syncs(), 0);
}

/// A compaction whose last sync (the directory's, which makes the rename durable) fails
/// leaves no record that the store believes synced: the store is broken like after any
/// failed sync, so the next flush fails rather than letting the packets go out.
#[test]
fn a_compaction_whose_directory_sync_fails_breaks_the_store() {
    let d = dir();
    let mut s = FileStore::open_with(d.path().join("s"), SyncPolicy::BeforeSend).unwrap();
    for i in 1..=10u16 {
        s.put(Key::Outgoing(i), b"v").unwrap();
        s.remove(Key::Outgoing(i)).unwrap();
    }
    s.put(Key::Outgoing(11), b"live").unwrap();
    // The temporary file's sync passes, the directory's fails.
    fail_sync_after(1);
    assert!(s.compact().is_err());
    assert!(
        s.flush().is_err(),
        "the flush trusted a compaction whose rename may not be on the disk"
    );
}
