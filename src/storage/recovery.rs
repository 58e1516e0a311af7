//! Opening a store: finishing or discarding an interrupted merge, loading sealed segments from
//! their hint files (or scanning them), scanning the active segment and cutting a torn tail.

use super::cache::ValueCache;
use super::checkpoint::{self, TOMBSTONE_HORIZON_FILE};
use super::config::{FsyncPolicy, StoreConfig};
use super::error::{IoContext, Result, StorageError};
use super::flusher::Durability;
use super::hint::{self, HintBuf, HintEntry};
use super::keydir::Keydir;
use super::record::HEADER_LEN;
use super::segment::{self, SegFile};
use super::state::{SegMeta, Shared, State};
use super::store::{RecoveryReport, Store, nonzero_tail};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
        let mut last = bases.len() - 1;
        let mut files = Vec::with_capacity(bases.len());
        for &base in &bases {
            let id = st.alloc_id();
            let path = segment::log_path(&dir, base);
            if !path.exists() {
                config.disk.created(&path);
            }
            files.push(Arc::new(SegFile::open(id, base, path, true)?));
        }
        // Read every segment's records (hint or scan) in parallel, then apply them in log order:
        // the keydir must see a key's records oldest first, and it is one table.
        let mut reads = read_all(&dir, &files, last, max_record);
        if is_orphan(&files, &reads) {
            if let Some(orphan) = files.pop() {
                tracing::warn!(segment = %orphan.path.display(), "removing an empty segment left by a failed rotation");
                std::fs::remove_file(&orphan.path).at(&orphan.path)?;
            }
            reads.pop();
            last -= 1;
            // The segment before it is the active one again: read it as such (its tail may be
            // preallocated zeros).
            if let (Some(r), Some(file)) = (reads.last_mut(), files.last()) {
                *r = read_segment(&dir, file, false, max_record);
            }
        }
        let reads = reads.into_iter().collect::<Result<Vec<_>>>()?;
        let records: Vec<(u32, &HintBuf)> = files
            .iter()
            .zip(&reads)
            .map(|(f, r)| (f.id, &r.hints))
            .collect();
        st.apply_all(&records);
        for (i, (file, read)) in files.into_iter().zip(reads).enumerate() {
            let SegmentRead {
                mut meta,
                hints,
                scanned,
            } = read;
            let path = &file.path;
            match scanned {
                None => report.hints_used += 1,
                Some(end) => {
                    report.segments_scanned += 1;
                    if let Some(why) = end.error {
                        if i < last {
                            return Err(
                                file.corrupt(end.valid_len, format!("{why} in a sealed segment"))
                            );
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
                        file.file.set_len(end.valid_len).at(path)?;
                        file.file.sync_all().at(path)?;
                        config.disk.synced(path, end.valid_len);
                    }
                    meta.len = end.valid_len;
                    if i < last {
                        // Regenerate the missing hint so the next start-up need not scan again.
                        hints.write(
                            &segment::hint_path(&dir, file.base),
                            meta.len,
                            sync_hints,
                            &config.disk,
                        )?;
                    } else {
                        st.hint = hints;
                    }
                }
            }
            st.segments.insert(file.base, meta);
            st.by_id.insert(file.id, file);
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
            #[cfg(feature = "failpoints")]
            refuse_zero_fill: std::sync::atomic::AtomicBool::new(false),
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

/// Whether the last segment is a failed rotation's leftover: a rotation creates the next
/// segment before it finishes, and one that failed after that (syncing the directory) left an
/// empty file the store never used while later writes went on into the older segment, up to
/// and past the new file's base offset. Taken as the active segment, that file would set the log
/// end below records already written. A legitimate empty active segment starts above every
/// record before it.
fn is_orphan(files: &[Arc<SegFile>], reads: &[Result<SegmentRead>]) -> bool {
    let (Some(last), Some(Ok(tail)), Some(Ok(before))) = (
        files.last(),
        reads.last(),
        reads.len().checked_sub(2).and_then(|i| reads.get(i)),
    ) else {
        return false;
    };
    tail.meta.records == 0
        && tail.scanned.as_ref().is_some_and(|e| e.file_len == 0)
        && before.meta.last_offset.is_some_and(|o| o >= last.base)
}

/// One segment's records, read before any segment is applied.
struct SegmentRead {
    meta: SegMeta,
    /// Its records in log order (from its hint file, or from the scan).
    hints: HintBuf,
    /// Where the scan stopped, if the segment was scanned (no usable hint, or the active one).
    scanned: Option<segment::ScanEnd>,
}

/// Reads every segment in `files` (sealed ones before index `last` from their hints when
/// usable), spread over the machine's cores; the results are in `files`' order.
fn read_all(
    dir: &Path,
    files: &[Arc<SegFile>],
    last: usize,
    max_record: usize,
) -> Vec<Result<SegmentRead>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(files.len());
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(file) = files.get(i) else {
                return done;
            };
            done.push((i, read_segment(dir, file, i < last, max_record)));
        }
    };
    let mut done: Vec<(usize, Result<SegmentRead>)> = if threads <= 1 {
        work()
    } else {
        std::thread::scope(|s| {
            let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
            let mut done = work();
            for h in helpers {
                // A reader that panicked leaves its segments unread; they are read below.
                done.extend(h.join().unwrap_or_default());
            }
            done
        })
    };
    done.sort_unstable_by_key(|(i, _)| *i);
    let mut out = Vec::with_capacity(files.len());
    let mut it = done.into_iter().peekable();
    for (i, file) in files.iter().enumerate() {
        match it.next_if(|(j, _)| *j == i) {
            Some((_, r)) => out.push(r),
            None => out.push(read_segment(dir, file, i < last, max_record)),
        }
    }
    out
}

/// One segment's records: from its hint if `sealed` and the hint is usable, else by a scan.
fn read_segment(
    dir: &Path,
    file: &Arc<SegFile>,
    sealed: bool,
    max_record: usize,
) -> Result<SegmentRead> {
    let file_len = file.file.metadata().at(&file.path)?.len();
    let mut meta = SegMeta::new(Arc::clone(file));
    if sealed && let Some(hints) = hint::read(&segment::hint_path(dir, file.base), file_len)? {
        for e in hints.entries() {
            let len = (HEADER_LEN + e.key.len()) as u64 + u64::from(e.value_len);
            meta.note(e.offset, u64::from(e.pos), len);
        }
        meta.len = file_len;
        return Ok(SegmentRead {
            meta,
            hints,
            scanned: None,
        });
    }
    let (end, hints) = scan_segment(file, max_record, &mut meta)?;
    Ok(SegmentRead {
        meta,
        hints,
        scanned: Some(end),
    })
}

/// Scans segment `file` from its start: notes every record in `meta` and in a fresh hint.
/// Returns where the scan stopped, and the hint (whose entries are the valid records, in order).
/// Opening a store and truncating one both rebuild segments this way.
pub(super) fn scan_segment(
    file: &SegFile,
    max_record: usize,
    meta: &mut SegMeta,
) -> Result<(segment::ScanEnd, HintBuf)> {
    let mut hints = HintBuf::default();
    let end = segment::scan(&file.file, &file.path, max_record, |pos, r| {
        let h = &r.header;
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
