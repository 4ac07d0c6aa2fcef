//! Opt-in persistence of the session state: outgoing QoS 1/2 messages and incoming QoS 2
//! messages not yet released, so that a client restarted after a crash resumes where it was.
//!
//! Off by default: without [`Client::persistence_set`](crate::Client::persistence_set) the
//! state lives in memory only, as in Paho Python (and nothing on the publish path touches a
//! store). The concept is Paho C's `MQTTClient_persistence`: a small key/value interface,
//! [`Persistence`], that the client calls as its state changes, with two implementations:
//!
//! - [`MemoryStore`]: records in memory, shared by its clones; survives a dropped `Client`
//!   (not a crashed process). Useful in tests and to hand state from one `Client` to the next.
//! - [`FileStore`]: an append-only log file with a checksum per record, a [`SyncPolicy`]
//!   and compaction, so a process killed at any point restarts from the last record written.
//!
//! What is stored, and when (each record is written before the packet it protects is queued
//! for the socket):
//!
//! - an outgoing QoS 1/2 message when `publish` accepts it (so `publish` returns an error,
//!   and queues nothing, when the store fails);
//! - its new state when a QoS 2 message reaches PUBREC (after a restart it is completed with
//!   PUBREL, never published again); the record is removed at PUBACK / PUBCOMP (or at a
//!   refusal);
//! - an incoming QoS 2 message when it arrives (before PUBREC is sent), until its PUBCOMP is
//!   sent; after a restart the broker's re-sent PUBREL delivers it once.
//!
//! Values are opaque bytes in the crate's own encoding; a store keeps them as given.
//!
//! ```no_run
//! use mqtt_sync::{Client, QoS};
//! use mqtt_sync::persistence::{FileStore, SyncPolicy};
//!
//! # fn main() -> mqtt_sync::Result<()> {
//! let client = Client::builder().client_id("sensor-7").clean_session(false).build()?;
//! // Loads what a previous run left (its queued messages are sent after the next CONNACK).
//! client.persistence_set(FileStore::open_with("sensor-7.store", SyncPolicy::Always)?)?;
//! client.connect("localhost", 1883, 60)?;
//! client.loop_start()?;
//! client.publish("sensors/7", "21.5", QoS::AtLeastOnce, false)?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// Which state a record holds: an outgoing message or an incoming QoS 2 message, by packet
/// id. The two id spaces are separate (the broker picks incoming ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// An outgoing QoS 1/2 message (Paho C's `s-` / `sc-` records).
    Outgoing(u16),
    /// An incoming QoS 2 message between PUBREC and PUBCOMP (Paho C's `r-` records).
    Incoming(u16),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Outgoing(m) => write!(f, "outgoing message {m}"),
            Key::Incoming(m) => write!(f, "incoming message {m}"),
        }
    }
}

/// A store of session records. The client calls it under its own lock, from whichever thread
/// changes the state; an error is reported as [`Error::Persistence`] (see
/// [`Client::persistence_set`](crate::Client::persistence_set) for what each failure does).
pub trait Persistence: Send {
    /// Stores `value` under `key`, replacing an earlier value.
    fn put(&mut self, key: Key, value: &[u8]) -> io::Result<()>;
    /// Removes the record under `key` (nothing if there is none).
    fn remove(&mut self, key: Key) -> io::Result<()>;
    /// Every record stored, in any order.
    fn load(&mut self) -> io::Result<Vec<(Key, Vec<u8>)>>;
    /// Called before every socket write that has bytes to send (a PINGREQ included, so keep
    /// it cheap when nothing is pending): a store that defers its disk flushes
    /// ([`SyncPolicy::BeforeSend`]) makes the records written since its last flush durable
    /// here, so that the broker never learns of a state the store could lose. An error
    /// closes the connection before anything is written, as a lost connection would
    /// (`on_disconnect` with `UNSPECIFIED_ERROR`, the error logged; when the write was the
    /// CONNECT the attempt fails: `on_connect_fail` with the error from a loop, `Err` from
    /// `connect`): the stored QoS 1/2 state stays queued and is sent after the reconnect,
    /// while pending QoS 0 messages and unanswered SUBSCRIBE/UNSUBSCRIBE requests end as
    /// with any lost connection. The default does nothing.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ------------------------------------------------------------------------------- memory

/// Records in memory, shared by every clone of the store: what a dropped `Client` left is
/// there for the next one given a clone. Lost with the process.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    map: Arc<Mutex<HashMap<Key, Vec<u8>>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Vec<u8>>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// No record is stored.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// The keys stored, sorted.
    pub fn keys(&self) -> Vec<Key> {
        let mut k: Vec<Key> = self.map().keys().copied().collect();
        k.sort();
        k
    }
}

impl Persistence for MemoryStore {
    fn put(&mut self, key: Key, value: &[u8]) -> io::Result<()> {
        self.map().insert(key, value.to_vec());
        Ok(())
    }
    fn remove(&mut self, key: Key) -> io::Result<()> {
        self.map().remove(&key);
        Ok(())
    }
    fn load(&mut self) -> io::Result<Vec<(Key, Vec<u8>)>> {
        Ok(self.map().iter().map(|(k, v)| (*k, v.clone())).collect())
    }
}

// ------------------------------------------------------------------------------- file

/// When a [`FileStore`] asks the operating system to put its records on the disk (`fdatasync`).
/// Every policy survives a killed process (a written record is in the kernel's cache); they
/// differ after a power loss or an OS crash, where the records not yet synced may be lost:
/// a message whose `publish` returned `Ok` may be missing, and a lost removal brings a
/// finished flow back (a QoS 1 message sent again; an incoming QoS 2 record whose id the
/// broker may reuse). Only [`SyncPolicy::Always`] rules these out, at a disk flush per record;
/// [`SyncPolicy::BeforeSend`] rules out everything the broker could see, at a disk flush per
/// socket write (see `docs/benchmarks.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// After every record (the default): a `publish` that returned `Ok` survives a power loss.
    #[default]
    Always,
    /// After every `n` records (`n` = 0 or 1 is [`SyncPolicy::Always`]).
    EveryN(u32),
    /// At the first record written at least this long after the last sync (no timer thread:
    /// an idle store syncs at its next record, or when dropped).
    Interval(Duration),
    /// Never: the OS writes back when it likes (and at drop the store syncs once).
    Never,
    /// Group commit: one sync just before the client writes to the socket, for every record
    /// written since the last one ([`Persistence::flush`]). Whatever the broker is told rests
    /// on synced records: a message is on the disk before its PUBLISH is sent, a PUBREC stage
    /// before its PUBREL, an incoming QoS 2 message before its PUBREC, its removal before its
    /// PUBCOMP. A burst of publishes written by the loop thread in one batch shares one sync.
    /// After a power loss, a message whose `publish` returned `Ok` but that was not yet sent
    /// may be missing (the broker never had it either), a QoS 1 message acknowledged since
    /// the last write may be sent once more (QoS 1 allows it), and an incoming QoS 2 message
    /// delivered to `on_message` since the last write may be delivered once more at the
    /// broker's PUBREL (under [`SyncPolicy::Always`] only a crash between the callback and
    /// its record can do that).
    BeforeSend,
}

const MAGIC: &[u8; 8] = b"MQSSTOR1";
const HEADER: u64 = MAGIC.len() as u64;
/// Record header: body length (u32 LE) and CRC-32 of the body (u32 LE).
const REC_HEAD: usize = 8;
/// Body: op, key kind, packet id (u16 LE), then the value.
const BODY_HEAD: usize = 4;
const OP_PUT: u8 = 1;
const OP_REMOVE: u8 = 2;
const KIND_OUT: u8 = 1;
const KIND_IN: u8 = 2;
/// A body longer than this is corrupt (MQTT's largest packet plus our own fields).
const MAX_BODY: u32 = 268_435_455 + 64;
/// The log is compacted when it exceeds this many times its live records (and
/// [`MIN_COMPACT`]).
const COMPACT_FACTOR: u64 = 4;
const MIN_COMPACT: u64 = 64 * 1024;

/// An append-only log file of records, each with its length and CRC-32.
///
/// - A record torn by a crash while it was written (the file's last record, short or with a
///   wrong checksum) is ignored, and cut off at open; that operation had not completed, so
///   the client never acted on it.
/// - Anything else that does not check out (a foreign or damaged header, a bad record in the
///   middle) makes [`FileStore::open`] fail with [`Error::Persistence`], and nothing is
///   changed: the file is left for inspection.
/// - When the log is larger than 4 times its live records (and 64 KiB), it is rewritten with
///   the live records only, to a temporary file (`<path>.tmp`) that then replaces it
///   atomically (`rename`), so its size stays within a bound of what is stored.
/// - After a failed write the store cuts the file back to its last whole record; if even
///   that fails it refuses every later write (the file on disk stays consistent).
/// - A failed sync (`fdatasync`, or the directory's after a compaction) breaks the store:
///   the kernel may have dropped what it could not write, and reports that once, so the
///   store refuses every later write, flush and sync rather than trust a later sync that
///   succeeds. Whatever the policy, a client with a broken store then writes nothing (each
///   connect attempt fails with [`Error::Persistence`]) until it is replaced: drop the
///   client, open the file again and give it to a new client, which loads what the file
///   holds (`persistence_set` refuses a store while messages are queued).
/// - Records found at open are synced once (unless [`SyncPolicy::Never`]): what a killed
///   process left in the kernel's cache is on the disk before this one sends it again.
///
/// One store file serves one client id, and one process at a time.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    file: File,
    policy: SyncPolicy,
    /// Live records: the offset of their record header and the record's whole length.
    live: HashMap<Key, (u64, u64)>,
    /// Header plus the live records' lengths.
    live_bytes: u64,
    /// End of the last whole record (where the next one goes).
    len: u64,
    unsynced: u32,
    last_sync: Instant,
    /// Why the store refuses writes, flushes and syncs (a sync failed, or a write failed and
    /// the file could not be cut back).
    broken: Option<String>,
    compactions: u64,
    syncs: u64,
    /// The log is not compacted below this size.
    compact_at: u64,
}

fn corrupt(path: &Path, what: String) -> Error {
    Error::Persistence(
        format!(
            "{}: {what}; the file is not a valid mqtt-sync store (left unchanged: move it away to \
         start empty)",
            path.display()
        )
        .into(),
    )
}

fn io_err(path: &Path, what: &str, e: &io::Error) -> Error {
    Error::Persistence(crate::error::Detail::caused(
        format!("{}: {what}: {e}", path.display()),
        io::Error::new(e.kind(), e.to_string()),
    ))
}

impl FileStore {
    /// Opens (or creates) the store at `path` with [`SyncPolicy::Always`].
    pub fn open(path: impl AsRef<Path>) -> Result<FileStore> {
        Self::open_with(path, SyncPolicy::Always)
    }

    /// Opens (or creates) the store at `path` with the given sync policy. Reads and checks the
    /// whole log; a torn last record is cut off.
    pub fn open_with(path: impl AsRef<Path>, policy: SyncPolicy) -> Result<FileStore> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_err(&path, "cannot open the store", &e))?;
        let data = std::fs::read(&path).map_err(|e| io_err(&path, "cannot read the store", &e))?;
        let mut store = FileStore {
            path,
            file,
            policy,
            live: HashMap::new(),
            live_bytes: HEADER,
            len: HEADER,
            unsynced: 0,
            last_sync: Instant::now(),
            broken: None,
            compactions: 0,
            syncs: 0,
            compact_at: MIN_COMPACT,
        };
        if (data.len() as u64) < HEADER {
            if !MAGIC.starts_with(&data) {
                return Err(corrupt(&store.path, "bad header".into()));
            }
            // New, or torn while it was being created.
            store.write_at(MAGIC, 0)?;
            store.truncate(HEADER)?;
            store.sync_now()?;
            return Ok(store);
        }
        if &data[..MAGIC.len()] != MAGIC {
            return Err(corrupt(&store.path, "bad header".into()));
        }
        let mut pos = HEADER as usize;
        while pos < data.len() {
            let rest = &data[pos..];
            if rest.len() < REC_HEAD {
                break; // torn
            }
            let blen = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
            let end = REC_HEAD as u64 + u64::from(blen);
            if end > rest.len() as u64 {
                if blen > MAX_BODY {
                    return Err(corrupt(
                        &store.path,
                        format!("record at offset {pos} has an impossible length {blen}"),
                    ));
                }
                break; // torn
            }
            let end = end as usize;
            let body = &rest[REC_HEAD..end];
            if crc32(body) != crc {
                if pos + end == data.len() {
                    break; // the last record, torn
                }
                return Err(corrupt(
                    &store.path,
                    format!("checksum mismatch in the record at offset {pos}"),
                ));
            }
            let (op, key) = parse_body(body).ok_or_else(|| {
                corrupt(&store.path, format!("unknown record type at offset {pos}"))
            })?;
            store.apply(op, key, pos as u64, end as u64);
            pos += end;
        }
        store.len = pos as u64;
        let torn = pos < data.len();
        if torn {
            store.truncate(store.len)?;
        }
        // Records a killed process left in the kernel's cache go to the disk before this
        // process can send them again (under `Never` only a cut-off tail is synced).
        if torn || (!store.live.is_empty() && policy != SyncPolicy::Never) {
            store.sync_now()?;
        }
        Ok(store)
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sync policy.
    pub fn sync_policy(&self) -> SyncPolicy {
        self.policy
    }

    /// Size of the log file in bytes.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// Bytes of the header and the live records: what a compaction would leave.
    pub fn live_len(&self) -> u64 {
        self.live_bytes
    }

    /// Number of live records.
    pub fn records(&self) -> usize {
        self.live.len()
    }

    /// How many compactions this store made since it was opened.
    pub fn compactions(&self) -> u64 {
        self.compactions
    }

    /// How many syncs this store made since it was opened: of its log (`fdatasync`), and of
    /// the new file and its directory at each compaction.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Forces the records written so far onto the disk (`fdatasync`), whatever the policy.
    ///
    /// A failed sync breaks the store: the kernel may have dropped the pages it could not
    /// write and reports such an error once, so a later sync that succeeds would prove
    /// nothing. Every later write, flush and sync fails; reopening the file goes on from
    /// what it holds.
    pub fn sync(&mut self) -> io::Result<()> {
        self.check_usable()?;
        if let Err(e) = sync_file(&self.file, false) {
            return Err(self.break_on(e, "fdatasync failed"));
        }
        self.syncs += 1;
        self.unsynced = 0;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// `Err` once the store refuses writes.
    fn check_usable(&self) -> io::Result<()> {
        match &self.broken {
            Some(why) => Err(io::Error::other(why.clone())),
            None => Ok(()),
        }
    }

    /// Marks the store broken after the failed sync `e`; returns the error to report.
    fn break_on(&mut self, e: io::Error, what: &str) -> io::Error {
        let why = format!(
            "{}: {what} ({e}): records written since the last sync may not be on the disk; \
             the store refuses further writes (reopen it to go on from what the file holds)",
            self.path.display()
        );
        self.broken = Some(why.clone());
        io::Error::new(e.kind(), why)
    }

    fn sync_now(&mut self) -> Result<()> {
        // A failed sync's error already names the file and what failed.
        self.sync()
            .map_err(|e| Error::Persistence(crate::error::Detail::caused(e.to_string(), e)))
    }

    fn write_at(&mut self, buf: &[u8], at: u64) -> Result<()> {
        self.file
            .write_all_at(buf, at)
            .map_err(|e| io_err(&self.path, "write failed", &e))
    }

    fn truncate(&mut self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .map_err(|e| io_err(&self.path, "cannot truncate", &e))
    }

    fn apply(&mut self, op: u8, key: Key, at: u64, rec_len: u64) {
        if let Some((_, old)) = self.live.remove(&key) {
            self.live_bytes -= old;
        }
        if op == OP_PUT {
            self.live.insert(key, (at, rec_len));
            self.live_bytes += rec_len;
        }
    }

    fn append(&mut self, op: u8, key: Key, value: &[u8]) -> io::Result<()> {
        self.check_usable()?;
        let (kind, mid) = match key {
            Key::Outgoing(m) => (KIND_OUT, m),
            Key::Incoming(m) => (KIND_IN, m),
        };
        let blen = BODY_HEAD + value.len();
        let blen32 = u32::try_from(blen)
            .ok()
            .filter(|&b| b <= MAX_BODY)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
        let mut rec = Vec::with_capacity(REC_HEAD + blen);
        rec.extend_from_slice(&blen32.to_le_bytes());
        rec.extend_from_slice(&[0; 4]);
        rec.push(op);
        rec.push(kind);
        rec.extend_from_slice(&mid.to_le_bytes());
        rec.extend_from_slice(value);
        let crc = crc32(&rec[REC_HEAD..]);
        rec[4..8].copy_from_slice(&crc.to_le_bytes());
        if let Err(e) = self.file.write_all_at(&rec, self.len) {
            // Cut the partial record off, so that later records follow a whole one.
            if let Err(e2) = self.file.set_len(self.len) {
                self.broken = Some(format!(
                    "{}: a write failed ({e}) and the file could not be cut back ({e2}); \
                     the store refuses further writes",
                    self.path.display()
                ));
            }
            return Err(e);
        }
        let at = self.len;
        self.len += rec.len() as u64;
        self.apply(op, key, at, rec.len() as u64);
        self.unsynced += 1;
        let due = match self.policy {
            SyncPolicy::Always => true,
            SyncPolicy::EveryN(n) => self.unsynced >= n.max(1),
            SyncPolicy::Interval(d) => self.last_sync.elapsed() >= d,
            SyncPolicy::Never | SyncPolicy::BeforeSend => false,
        };
        if due {
            self.sync()?;
        }
        if self.len > self.compact_at.max(COMPACT_FACTOR * self.live_bytes) {
            // The record is written: a failed compaction loses nothing (the old log stays
            // whole) and is tried again once the log has doubled.
            match self.compact() {
                Ok(()) => self.compact_at = MIN_COMPACT,
                Err(_) => self.compact_at = self.len.saturating_mul(2),
            }
        }
        Ok(())
    }

    /// Rewrites the log with its live records only (to `<path>.tmp`, then `rename`).
    pub fn compact(&mut self) -> io::Result<()> {
        self.check_usable()?;
        let mut tmp_name = self.path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp_path = PathBuf::from(tmp_name);
        let tmp = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp_path)?;
        let mut order: Vec<(Key, u64, u64)> =
            self.live.iter().map(|(k, &(at, l))| (*k, at, l)).collect();
        order.sort_by_key(|&(_, at, _)| at);
        let mut out = Vec::with_capacity(self.live_bytes.min(16 << 20) as usize);
        out.extend_from_slice(MAGIC);
        let mut live = HashMap::with_capacity(order.len());
        let mut pos = HEADER;
        let mut written = 0u64;
        for (key, at, l) in order {
            let start = out.len();
            out.resize(start + l as usize, 0);
            self.file.read_exact_at(&mut out[start..], at)?;
            live.insert(key, (pos, l));
            pos += l;
            if out.len() >= 1 << 20 {
                tmp.write_all_at(&out, written)?;
                written += out.len() as u64;
                out.clear();
            }
        }
        tmp.write_all_at(&out, written)?;
        if self.policy != SyncPolicy::Never {
            // A failure here leaves the old log the store, unchanged.
            sync_file(&tmp, false)?;
            self.syncs += 1;
        }
        std::fs::rename(&tmp_path, &self.path)?;
        // From here on the new file is the store, whatever happens next.
        self.file = tmp;
        self.live = live;
        self.len = pos;
        self.live_bytes = pos;
        self.compactions += 1;
        if self.policy != SyncPolicy::Never {
            // Make the rename itself durable; until then the old log, whose tail may not be
            // synced, is what a power loss would leave.
            if let Some(dir) = self.path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                if let Err(e) = File::open(dir).and_then(|d| sync_file(&d, true)) {
                    return Err(self.break_on(e, "syncing the directory after a compaction failed"));
                }
                self.syncs += 1;
            }
        }
        self.unsynced = 0;
        self.last_sync = Instant::now();
        Ok(())
    }
}

/// `fdatasync` (or `fsync` with `all`), or the failure a unit test injected.
fn sync_file(file: &File, all: bool) -> io::Result<()> {
    #[cfg(test)]
    if tests::take_sync_fault() {
        return Err(io::Error::other("injected sync failure"));
    }
    if all {
        file.sync_all()
    } else {
        file.sync_data()
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        if self.unsynced > 0 && self.broken.is_none() {
            let _ = self.file.sync_data();
        }
    }
}

fn parse_body(body: &[u8]) -> Option<(u8, Key)> {
    if body.len() < BODY_HEAD {
        return None;
    }
    let mid = u16::from_le_bytes([body[2], body[3]]);
    let key = match body[1] {
        KIND_OUT => Key::Outgoing(mid),
        KIND_IN => Key::Incoming(mid),
        _ => return None,
    };
    match body[0] {
        OP_PUT => Some((OP_PUT, key)),
        OP_REMOVE if body.len() == BODY_HEAD => Some((OP_REMOVE, key)),
        _ => None,
    }
}

impl Persistence for FileStore {
    fn put(&mut self, key: Key, value: &[u8]) -> io::Result<()> {
        self.append(OP_PUT, key, value)
    }

    fn remove(&mut self, key: Key) -> io::Result<()> {
        if !self.live.contains_key(&key) {
            return Ok(());
        }
        self.append(OP_REMOVE, key, &[])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.check_usable()?;
        if self.policy == SyncPolicy::BeforeSend && self.unsynced > 0 {
            self.sync()?;
        }
        Ok(())
    }

    fn load(&mut self) -> io::Result<Vec<(Key, Vec<u8>)>> {
        let mut out = Vec::with_capacity(self.live.len());
        for (key, &(at, l)) in &self.live {
            let mut rec = vec![0; l as usize];
            self.file.read_exact_at(&mut rec, at)?;
            let body = &rec[REC_HEAD..];
            if crc32(body) != u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: record at offset {at} changed on disk",
                        self.path.display()
                    ),
                ));
            }
            out.push((*key, body[BODY_HEAD..].to_vec()));
        }
        Ok(out)
    }
}

// ------------------------------------------------------------------------------- CRC-32

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC-32 (IEEE 802.3, as zlib's `crc32`).
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests;
