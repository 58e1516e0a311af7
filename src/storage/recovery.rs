//! Opening a store: finishing or discarding an interrupted merge, loading sealed segments from
//! their hint files (or scanning them), scanning the active segment and cutting a torn tail.

use super::cache::ValueCache;
use super::checkpoint::{self, TOMBSTONE_HORIZON_FILE};
use super::config::{FsyncPolicy, StoreConfig};
use super::error::{IoContext, Result, StorageError};
use super::flusher::Durability;
use super::hint::{self, HintBuf, HintEntry};
use super::keydir::Keydir;
use super::record::{HEADER_LEN, RecordRef};
use super::segment::{self, SegFile};
use super::state::{SegMeta, Shared, State};
use super::store::{RecoveryReport, Store, nonzero_tail};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

impl Store {
    /// Opens the store in `dir` (creating it), finishing or rolling back an interrupted merge,
    /// loading hints for sealed segments, and scanning the active segment, whose torn or corrupt
    /// tail is cut off. Corruption in a sealed segment without a usable hint is an error that names
    /// the file and byte position.
    pub fn open(dir: impl AsRef<Path>, config: StoreConfig) -> Result<Self> {
        config.validate().map_err(StorageError::Config)?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).at(&dir)?;
        let lock_path = dir.join(".lock");
        let lock_file = File::create(&lock_path).at(&lock_path)?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StorageError::Locked(dir)),
            Err(std::fs::TryLockError::Error(e)) => return Err(e).at(&lock_path),
        }

        let mut report = RecoveryReport::default();
        match super::merge::recover(&dir)? {
            super::merge::Recovered::Nothing => {}
            super::merge::Recovered::Completed => report.merge_completed = true,
            super::merge::Recovered::RolledBack => report.merge_rolled_back = true,
        }

        let mut bases = Vec::new();
        for entry in std::fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            } else if let Some(base) = segment::parse_log_name(&name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        if bases.is_empty() {
            bases.push(0);
        }

        let horizon = checkpoint::read_u64(&dir.join(TOMBSTONE_HORIZON_FILE))?.unwrap_or(0);
        let mut st = State {
            keydir: Keydir::default(),
            cache: ValueCache::new(config.cache_bytes),
            segments: BTreeMap::new(),
            by_id: HashMap::new(),
            next_id: 0,
            leo: 0,
            hint: HintBuf::default(),
            enc: Vec::new(),
            horizon,
            drops: 0,
            truncated_to: u64::MAX,
        };
        let max_record = config.max_record_bytes();
        let sync_hints = config.fsync != FsyncPolicy::Never;
        let last = bases.len() - 1;
        for (i, &base) in bases.iter().enumerate() {
            let id = st.alloc_id();
            let path = segment::log_path(&dir, base);
            if !path.exists() {
                config.disk.created(&path);
            }
            let file = Arc::new(SegFile::open(id, base, path.clone(), true)?);
            let file_len = file.file.metadata().at(&path)?.len();
            let mut meta = SegMeta::new(Arc::clone(&file));
            if i < last {
                let used = hint::load(&segment::hint_path(&dir, base), file_len, |e| {
                    let len = (HEADER_LEN + e.key.len()) as u64 + u64::from(e.value_len);
                    st.apply(
                        id,
                        u64::from(e.pos),
                        e.offset,
                        e.expire_at_ms,
                        e.value_len,
                        e.kind,
                        e.key,
                    );
                    meta.note(e.offset, u64::from(e.pos), len);
                })?;
                if used {
                    report.hints_used += 1;
                    meta.len = file_len;
                    st.segments.insert(base, meta);
                    st.by_id.insert(id, file);
                    continue;
                }
            }
            report.segments_scanned += 1;
            let (end, hints) = scan_segment(&file, max_record, &mut meta, |pos, r| {
                let h = &r.header;
                st.apply(
                    id,
                    pos,
                    h.offset,
                    h.expire_at_ms,
                    h.value_len,
                    h.kind,
                    r.key,
                );
            })?;
            if let Some(why) = end.error {
                if i < last {
                    return Err(file.corrupt(end.valid_len, format!("{why} in a sealed segment")));
                }
                // Zeros after the last record are preallocated space, not damage.
                let dropped = nonzero_tail(&file, end.valid_len, end.file_len)?;
                if dropped > 0 {
                    tracing::warn!(
                        segment = %path.display(),
                        at = end.valid_len,
                        dropped_bytes = dropped,
                        "cut a torn or corrupt tail off the active segment ({why})"
                    );
                    report.torn_bytes_dropped = dropped;
                }
                file.file.set_len(end.valid_len).at(&path)?;
                file.file.sync_all().at(&path)?;
                config.disk.synced(&path, end.valid_len);
            }
            meta.len = end.valid_len;
            if i < last {
                // Regenerate the missing hint so the next start-up need not scan again.
                hints.write(
                    &segment::hint_path(&dir, base),
                    meta.len,
                    sync_hints,
                    &config.disk,
                )?;
            } else {
                st.hint = hints;
            }
            st.segments.insert(base, meta);
            st.by_id.insert(id, file);
        }
        let active = st.active();
        st.leo = active.last_offset.map_or(active.file.base, |o| o + 1);
        report.segments = st.segments.len();
        // The whole log is declared durable below, but a process that crashed may have left
        // bytes in the page cache that no fsync covered: sync every segment first (a no-op for
        // a clean one), or a follower could count a record in the HW that a power loss drops.
        if config.fsync != FsyncPolicy::Never {
            for meta in st.segments.values() {
                meta.file.file.sync_data().at(&meta.file.path)?;
                config.disk.synced(&meta.file.path, meta.len);
            }
        }

        let durability = Durability::new(config.fsync, config.fsync_interval(), st.leo);
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            config,
            state: Mutex::new(st),
            durability: Arc::clone(&durability),
            merge_lock: Mutex::new(()),
            recovery: report,
            _lock_file: lock_file,
        });
        let weak = Arc::downgrade(&shared);
        durability
            .spawn(format!("fsync {}", dir.display()), move || {
                let shared = weak.upgrade()?;
                let (file, leo, len) = {
                    let st = shared.state.lock();
                    let active = st.segments.values().next_back()?;
                    (Arc::clone(&active.file), st.leo, active.len)
                };
                let synced = file.file.sync_data().at(&file.path);
                if synced.is_ok() {
                    shared.config.disk.synced(&file.path, len);
                }
                Some(synced.map(|()| leo))
            })
            .at(&dir)?;
        Ok(Self { shared })
    }
}

/// Scans segment `file` from its start: notes every record in `meta` and in a fresh hint, and
/// hands each (position, record) to `apply`. Returns where the scan stopped, and the hint.
/// Opening a store and truncating one both rebuild segments this way.
pub(super) fn scan_segment(
    file: &SegFile,
    max_record: usize,
    meta: &mut SegMeta,
    mut apply: impl FnMut(u64, &RecordRef<'_>),
) -> Result<(segment::ScanEnd, HintBuf)> {
    let mut hints = HintBuf::default();
    let end = segment::scan(&file.file, &file.path, max_record, |pos, r| {
        let h = &r.header;
        apply(pos, r);
        meta.note(h.offset, pos, h.record_len() as u64);
        hints.push(&HintEntry {
            offset: h.offset,
            expire_at_ms: h.expire_at_ms,
            pos: pos as u32,
            value_len: h.value_len,
            kind: h.kind,
            key: r.key,
        });
        Ok(())
    })?;
    Ok((end, hints))
}
