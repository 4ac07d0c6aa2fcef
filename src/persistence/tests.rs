use std::collections::BTreeMap;

use super::*;

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
