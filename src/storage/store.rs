//! The store: one Bitcask log per partition replica — its public API and the write path. The read
//! path lives in `read`, opening and recovery in `recovery`, truncation in `truncate`, merge in
//! `merge`, and the state they all share in `state`.
//!
//! All mutable state sits behind one `parking_lot::Mutex` that is held for memory updates and the
//! `write` of appended bytes, never for an fsync of the active segment or for reading values (except
//! the rare `expire`, which must read the value it rewrites). Readers copy a segment handle out of
//! the lock and do their positioned read outside it; a read that races with a truncation notices it
//! (offset, key and CRC are checked) and retries.

use super::checkpoint::{self, TOMBSTONE_HORIZON_FILE};
use super::config::{FsyncPolicy, StoreConfig};
use super::error::{IoContext, Result, StorageError};
use super::hint::HintEntry;
use super::read::read_value;
use super::record::{self, HEADER_LEN, RecordKind, Write};
use super::segment::{self, SegFile};
use super::state::{SegMeta, Shared, State};
use bytes::Bytes;
use std::ops::Range;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;

/// Chunk size for sequential reads of segment data.
pub(super) const READ_CHUNK: usize = 64 << 10;
/// The active segment grows in chunks of this size, written as zeros ([`Store::fill_zeros`]), so that
/// an fsync after an append need not also commit a new file size (on ext4 that halves its cost)
/// nor allocate blocks.
const PREALLOC_CHUNK: u64 = 1 << 20;

/// What a key lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A live value.
    Found {
        /// The value.
        value: Bytes,
        /// Offset of the record holding it.
        offset: u64,
        /// Absolute expiry, Unix ms, 0 = none.
        expire_at_ms: u64,
    },
    /// The latest record is a delete.
    Deleted {
        /// Its offset.
        offset: u64,
    },
    /// The latest record has expired.
    Expired {
        /// Its offset.
        offset: u64,
    },
    /// No record of the key at all.
    Absent,
}

impl Lookup {
    /// Offset of the record that decided the answer (none for `Absent`).
    pub fn offset(&self) -> Option<u64> {
        match self {
            Self::Found { offset, .. } | Self::Deleted { offset } | Self::Expired { offset } => {
                Some(*offset)
            }
            Self::Absent => None,
        }
    }

    /// The value, if found.
    pub fn value(&self) -> Option<&Bytes> {
        match self {
            Self::Found { value, .. } => Some(value),
            _ => None,
        }
    }
}

/// Raw records read for replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecords {
    /// Whole encoded records, back to back, exactly as on disk.
    pub bytes: Bytes,
    /// How many records.
    pub count: u32,
    /// Offset of the first.
    pub first_offset: u64,
    /// Offset of the last.
    pub last_offset: u64,
}

/// What start-up found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files opened.
    pub segments: usize,
    /// Sealed segments loaded from their hint files.
    pub hints_used: usize,
    /// Segments whose data was scanned (the active one, and sealed ones without a usable hint).
    pub segments_scanned: usize,
    /// Bytes cut from a torn or corrupt tail of the active segment.
    pub torn_bytes_dropped: u64,
    /// An interrupted merge was completed (its commit marker was found).
    pub merge_completed: bool,
    /// Files of an interrupted, uncommitted merge were removed.
    pub merge_rolled_back: bool,
}

/// Figures for the console, logs and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// First offset still in the log.
    pub log_start_offset: u64,
    /// Next offset to write.
    pub log_end_offset: u64,
    /// Every offset below this is durable (under `always`).
    pub durable_offset: u64,
    /// Number of segment files.
    pub segments: usize,
    /// Bytes in segment files.
    pub bytes: u64,
    /// Keys with a live value.
    pub live_keys: usize,
    /// Keydir entries, tombstones included.
    pub keydir_entries: usize,
    /// Bytes of keydir structures beyond the key bytes.
    pub keydir_overhead_bytes: usize,
    /// Bytes counted in the value cache.
    pub cache_bytes: usize,
    /// Cache hits since open.
    pub cache_hits: u64,
    /// Cache misses since open.
    pub cache_misses: u64,
    /// Highest offset of a record merge dropped without a newer record for its key.
    pub tombstone_horizon: u64,
    /// Fsyncs done by the group-commit / interval flusher.
    pub flusher_syncs: u64,
}

/// A Bitcask store over one directory. Cloning is cheap and shares the store.
#[derive(Clone)]
pub struct Store {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.shared.dir)
            .finish()
    }
}

pub(super) fn expired(expire_at_ms: u64, now_ms: u64) -> bool {
    expire_at_ms != 0 && expire_at_ms <= now_ms
}

impl Store {
    /// What start-up found and repaired.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.shared.recovery
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The settings.
    pub fn config(&self) -> &StoreConfig {
        &self.shared.config
    }

    /// Next offset to write.
    pub fn log_end_offset(&self) -> u64 {
        self.shared.state.lock().leo
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> u64 {
        let st = self.shared.state.lock();
        st.segments.keys().next().copied().unwrap_or(0)
    }

    /// Highest offset of a record merge dropped without a newer record for its key: a follower
    /// whose log ends below it may hold a stale version and must start over.
    pub fn tombstone_horizon(&self) -> u64 {
        self.shared.state.lock().horizon
    }

    /// The tombstone horizon and how many merges since opening dropped a record, read together.
    pub fn horizon_and_drops(&self) -> (u64, u64) {
        let st = self.shared.state.lock();
        (st.horizon, st.drops)
    }

    /// Sets the tombstone horizon (persisted): a follower adopts its leader's, so that if it leads
    /// later it still sends followers below the horizon back to an empty log.
    pub fn set_tombstone_horizon(&self, horizon: u64) -> Result<()> {
        let mut st = self.shared.state.lock();
        if st.horizon == horizon {
            return Ok(());
        }
        checkpoint::write_u64(&self.shared.dir.join(TOMBSTONE_HORIZON_FILE), horizon)?;
        st.horizon = horizon;
        Ok(())
    }

    /// Whether a record with this key and value may be written (non-empty key, both within the
    /// configured limits).
    pub fn check_limits(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let c = &self.shared.config;
        if key.is_empty() {
            return Err(StorageError::EmptyKey);
        }
        if key.len() > c.max_key_bytes {
            return Err(StorageError::KeyTooLarge {
                len: key.len(),
                max: c.max_key_bytes,
            });
        }
        if value.len() > c.max_value_bytes {
            return Err(StorageError::ValueTooLarge {
                len: value.len(),
                max: c.max_value_bytes,
            });
        }
        Ok(())
    }

    pub(super) fn check_failed(&self) -> Result<()> {
        match self.shared.durability.failure() {
            Some(f) => Err(StorageError::Failed(f)),
            None => Ok(()),
        }
    }

    /// Appends records as the leader: the store assigns consecutive offsets from the log end.
    /// Returns once the bytes are written to the OS; see [`Store::wait_durable`].
    pub fn append_batch(&self, writes: &[Write]) -> Result<Range<u64>> {
        self.append_batch_then(writes, true)
    }

    /// [`Store::append_batch`]; `wake_flusher` false when the caller blocks in
    /// [`Store::wait_durable`] next (it then fsyncs itself when no fsync is running).
    fn append_batch_then(&self, writes: &[Write], wake_flusher: bool) -> Result<Range<u64>> {
        for w in writes {
            self.check_limits(&w.key, &w.value)?;
        }
        self.check_failed()?;
        let mut st = self.shared.state.lock();
        let start = st.leo;
        let mut buf = std::mem::take(&mut st.enc);
        buf.clear();
        for (i, w) in writes.iter().enumerate() {
            record::encode_into(&mut buf, start + i as u64, w);
        }
        let written = self.write_encoded(&mut st, &buf, wake_flusher);
        st.enc = buf;
        let leo = st.leo;
        drop(st);
        written?;
        Ok(start..leo)
    }

    /// Appends one record as the leader; returns its offset (written, not yet necessarily durable).
    pub fn append(&self, write: &Write) -> Result<u64> {
        self.append_batch(std::slice::from_ref(write))
            .map(|r| r.start)
    }

    /// Blocks until `offset` is durable under the store's fsync policy (`always` waits for the
    /// group commit covering it; the other policies return at once).
    pub fn wait_durable(&self, offset: u64) -> Result<()> {
        self.shared.durability.wait(offset)
    }

    /// The durable log end as a watch, for async code that must not block on [`Store::wait_durable`].
    pub fn durable_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.durability.subscribe()
    }

    /// Every offset below this is durable (under `always`; under the other policies it trails).
    pub fn durable_offset(&self) -> u64 {
        self.shared.durability.durable()
    }

    /// Whether appends must wait for an fsync before they count.
    pub fn fsync_policy(&self) -> FsyncPolicy {
        self.shared.durability.policy()
    }

    /// Appends a put and waits for durability per the policy. Returns its offset.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<u64> {
        self.write_durable(&Write::put(
            Bytes::copy_from_slice(key),
            Bytes::copy_from_slice(value),
        ))
    }

    /// Appends a delete (a tombstone; deleting a missing key is fine) and waits for durability.
    pub fn delete(&self, key: &[u8]) -> Result<u64> {
        self.write_durable(&Write::delete(Bytes::copy_from_slice(key)))
    }

    /// Appends `write` and waits for durability per the policy.
    pub fn write_durable(&self, write: &Write) -> Result<u64> {
        let offset = self
            .append_batch_then(std::slice::from_ref(write), false)?
            .start;
        self.wait_durable(offset)?;
        Ok(offset)
    }

    /// Rewrites `key` with a new absolute expiry (the leader fixes it), keeping its value. Returns
    /// the new record's offset, or `None` when the key has no live value. Does not wait for
    /// durability.
    pub fn expire(
        &self,
        key: &[u8],
        expire_at_ms: u64,
        leader_epoch: u32,
        now_ms: u64,
    ) -> Result<Option<u64>> {
        self.check_limits(key, b"")?;
        self.check_failed()?;
        let mut st = self.shared.state.lock();
        let value = match st.cache.get(key) {
            Some(c) if !expired(c.expire_at_ms, now_ms) => c.value.clone(),
            Some(_) => return Ok(None),
            None => {
                let Some(&loc) = st.keydir.get(key) else {
                    return Ok(None);
                };
                if loc.tombstone || expired(loc.expire_at_ms, now_ms) {
                    return Ok(None);
                }
                let file = Arc::clone(&st.by_id[&loc.segment]);
                read_value(&file, &loc, key, self.shared.config.max_record_bytes())?
            }
        };
        let write = Write {
            kind: RecordKind::Expire,
            key: Bytes::copy_from_slice(key),
            value,
            expire_at_ms,
            leader_epoch,
            timestamp_ms: now_ms,
        };
        let offset = st.leo;
        let mut buf = std::mem::take(&mut st.enc);
        buf.clear();
        record::encode_into(&mut buf, offset, &write);
        let written = self.write_encoded(&mut st, &buf, true);
        st.enc = buf;
        drop(st);
        written?;
        Ok(Some(offset))
    }

    /// Appends records received from a leader, verbatim: each CRC is checked, offsets must rise and
    /// start at or after the log end. Returns the new log end. Does not wait for durability.
    pub fn append_raw(&self, bytes: &[u8]) -> Result<u64> {
        let max = self.shared.config.max_record_bytes();
        let mut p = 0;
        let mut first = None;
        let mut last: Option<u64> = None;
        while p < bytes.len() {
            let (r, len) = record::decode(&bytes[p..], max)
                .map_err(|e| StorageError::BadBatch(format!("record at byte {p}: {e}")))?;
            let o = r.header.offset;
            if last.is_some_and(|l| o <= l) {
                return Err(StorageError::BadBatch(format!(
                    "offset {o} does not follow {}",
                    last.unwrap_or(0)
                )));
            }
            first.get_or_insert(o);
            last = Some(o);
            p += len;
        }
        self.check_failed()?;
        let mut st = self.shared.state.lock();
        let Some(first) = first else {
            return Ok(st.leo);
        };
        if first < st.leo {
            return Err(StorageError::BadBatch(format!(
                "first offset {first} is below the log end offset {}",
                st.leo
            )));
        }
        self.write_encoded(&mut st, bytes, true)?;
        Ok(st.leo)
    }

    /// Writes whole, valid encoded records to the active segment (rotating as needed), applies
    /// them to the keydir and reports the new log end to the flusher (`wake_flusher` false when
    /// the caller blocks in [`Store::wait_durable`] next). The report is made even after a
    /// failure part-way (what went in must become durable like the rest) and under the lock, so
    /// log ends reach the flusher in the order they were reached: a racing append's earlier end
    /// landing last would hide the later records from the fsync.
    fn write_encoded(&self, st: &mut State, buf: &[u8], wake_flusher: bool) -> Result<()> {
        let before = st.leo;
        let written = self.write_records(st, buf);
        if st.leo > before {
            self.shared.durability.note_written(st.leo, wake_flusher);
        }
        written
    }

    fn write_records(&self, st: &mut State, buf: &[u8]) -> Result<()> {
        let max = self.shared.config.max_record_bytes();
        let seg_bytes = self.shared.config.segment_bytes;
        let mut p = 0;
        while p < buf.len() {
            // A run of records that fits in the active segment.
            let active_len = st.active().len;
            let mut end = p;
            while end < buf.len() {
                let h = record::decode_header(&buf[end..], max)
                    .map_err(|e| StorageError::BadBatch(format!("record at byte {end}: {e}")))?;
                let size = active_len + (end - p) as u64;
                if size > 0 && size + h.record_len() as u64 > seg_bytes {
                    break;
                }
                end += h.record_len();
            }
            if end == p {
                let h = record::decode_header(&buf[p..], max)
                    .map_err(|e| StorageError::BadBatch(e.to_string()))?;
                self.rotate(st, h.offset)?;
                continue;
            }
            let run = &buf[p..end];
            let chunk = PREALLOC_CHUNK.min(seg_bytes).max(1);
            let active = st.active_mut();
            let file = Arc::clone(&active.file);
            let base_pos = active.len;
            let needed = base_pos + run.len() as u64;
            if needed > active.allocated.max(active.len) {
                let size = needed.next_multiple_of(chunk);
                // The records themselves cover [base_pos, needed).
                if self
                    .fill_zeros(&file, active.allocated.max(needed), size)
                    .is_err()
                {
                    // A disk too full for a chunk of zeros still takes records into its last
                    // blocks, as a hole did; the write below says if even they do not fit.
                    file.file.set_len(size).at(&file.path)?;
                }
                active.allocated = size;
            }
            if let Err(e) = file.file.write_all_at(run, base_pos) {
                // Whole records of a failed write may be on disk beyond `len`: a shorter append
                // would not overwrite them all, and a restart would find them after it. Cut them
                // off, or stop writing if even that fails.
                match file.file.set_len(base_pos) {
                    Ok(()) => {
                        active.allocated = base_pos;
                        self.shared.config.disk.cut(&file.path, base_pos);
                    }
                    Err(cut) => self.shared.durability.fail(format!(
                        "cannot cut a failed write off {}: {cut}",
                        file.path.display()
                    )),
                }
                return Err(e).at(&file.path);
            }
            let mut q = 0;
            while q < run.len() {
                let h = record::decode_header(&run[q..], max)
                    .map_err(|e| StorageError::BadBatch(e.to_string()))?;
                let key = &run[q + HEADER_LEN..q + HEADER_LEN + h.key_len as usize];
                let pos = base_pos + q as u64;
                let entry = HintEntry {
                    offset: h.offset,
                    expire_at_ms: h.expire_at_ms,
                    pos: pos as u32,
                    value_len: h.value_len,
                    kind: h.kind,
                    key,
                };
                st.apply(file.id, &entry);
                st.hint.push(&entry);
                st.active_mut().note(h.offset, pos, h.record_len() as u64);
                st.leo = h.offset + 1;
                q += h.record_len();
            }
            p = end;
        }
        Ok(())
    }

    /// Seals the active segment (writing its hint, and syncing it unless the policy is `never`)
    /// and starts a new one whose first record will be `next_offset`.
    fn rotate(&self, st: &mut State, next_offset: u64) -> Result<()> {
        let dir = &self.shared.dir;
        let sync = self.shared.config.fsync != FsyncPolicy::Never;
        let active = st.active_mut();
        let (base, len, file) = (active.file.base, active.len, Arc::clone(&active.file));
        // A sealed segment ends at its last record: drop the preallocated zeros.
        file.file.set_len(len).at(&file.path)?;
        active.allocated = len;
        let disk = &self.shared.config.disk;
        if sync {
            self.sync_or_fail(&file)?;
            disk.synced(&file.path, len);
        } else {
            disk.cut(&file.path, len);
        }
        st.hint.write(
            &segment::hint_path(dir, base),
            len,
            sync,
            &self.shared.config.disk,
        )?;
        let id = st.alloc_id();
        let path = segment::log_path(dir, next_offset);
        disk.created(&path);
        let new = Arc::new(SegFile::open(id, next_offset, path, true)?);
        if sync {
            checkpoint::sync_dir(dir)?;
        }
        // Only now: a rotation that failed above is retried by the next append, and must write
        // the sealed segment's hint whole again (an empty one would pass for valid).
        st.hint.clear();
        st.by_id.insert(id, Arc::clone(&new));
        st.segments.insert(next_offset, SegMeta::new(new));
        Ok(())
    }

    /// Makes everything written so far durable (a clean shutdown calls this).
    pub fn sync(&self) -> Result<()> {
        self.check_failed()?;
        let (file, leo, len) = {
            let st = self.shared.state.lock();
            (Arc::clone(&st.active().file), st.leo, st.active().len)
        };
        self.sync_or_fail(&file)?;
        self.shared.config.disk.synced(&file.path, len);
        self.shared.durability.note_synced(leo);
        Ok(())
    }

    /// fsyncs `file`; a failure fails the store, as the flusher's does: after a failed fsync the
    /// kernel may have dropped the dirty pages, and a retry that "succeeds" proves nothing.
    fn sync_or_fail(&self, file: &SegFile) -> Result<()> {
        file.file
            .sync_data()
            .map_err(|e| {
                self.shared
                    .durability
                    .fail(format!("fsync of {} failed: {e}", file.path.display()));
                e
            })
            .at(&file.path)
    }

    /// Writes zeros over `[from, to)` of the active segment (never below its last record). Space
    /// set aside with `set_len` alone is a hole: ext4 then allocates its blocks, and changes the
    /// file's extents, in each fsync that first writes some of those pages back. Zeros written
    /// now are allocated once per chunk, and later fsyncs only write records over them.
    fn fill_zeros(&self, file: &SegFile, from: u64, to: u64) -> Result<()> {
        static ZEROS: [u8; PREALLOC_CHUNK as usize] = [0; PREALLOC_CHUNK as usize];
        #[cfg(feature = "failpoints")]
        if self
            .shared
            .refuse_zero_fill
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(StorageError::Failed(
                "simulated: no space for a chunk of zeros".into(),
            ));
        }
        let mut at = from;
        while at < to {
            let n = (to - at).min(PREALLOC_CHUNK) as usize;
            file.file.write_all_at(&ZEROS[..n], at).at(&file.path)?;
            at += n as u64;
        }
        Ok(())
    }

    /// Makes every later chunk of zeros fail to write, as on a disk with less than a chunk free
    /// (appends must still go in, over a hole as before the zeros).
    #[cfg(feature = "failpoints")]
    #[doc(hidden)]
    pub fn refuse_zero_fill(&self, refuse: bool) {
        self.shared
            .refuse_zero_fill
            .store(refuse, std::sync::atomic::Ordering::Relaxed);
    }

    /// Figures about the store.
    pub fn stats(&self) -> StoreStats {
        let st = self.shared.state.lock();
        let (hits, misses) = st.cache.hit_counts();
        StoreStats {
            log_start_offset: st.segments.keys().next().copied().unwrap_or(0),
            log_end_offset: st.leo,
            durable_offset: self.shared.durability.durable(),
            segments: st.segments.len(),
            bytes: st.segments.values().map(|m| m.len).sum(),
            live_keys: st.keydir.live_keys(),
            keydir_entries: st.keydir.len(),
            keydir_overhead_bytes: st.keydir.overhead_bytes(),
            cache_bytes: st.cache.bytes(),
            cache_hits: hits,
            cache_misses: misses,
            tombstone_horizon: st.horizon,
            flusher_syncs: self.shared.durability.syncs(),
        }
    }
}

/// How many bytes of `[from, to)` in `file` lie before and at its last non-zero byte: the damage in
/// a tail that is otherwise preallocated zeros.
pub(super) fn nonzero_tail(file: &SegFile, from: u64, to: u64) -> Result<u64> {
    let mut last_nonzero = None;
    let mut pos = from;
    let mut buf = vec![0u8; READ_CHUNK];
    while pos < to {
        let n = ((to - pos) as usize).min(buf.len());
        file.read_at(&mut buf[..n], pos)?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b != 0) {
            last_nonzero = Some(pos + i as u64);
        }
        pos += n as u64;
    }
    Ok(last_nonzero.map_or(0, |p| p + 1 - from))
}

pub(super) fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(path),
    }
}
