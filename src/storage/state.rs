//! The state a store and its merges share: segments and their sparse indexes, the keydir, the
//! value cache and the durability tracker, behind one lock. Both `store` and `merge` work on it;
//! neither owns the other.

use super::cache::ValueCache;
use super::config::StoreConfig;
use super::flusher::Durability;
use super::hint::{HintBuf, HintEntry};
use super::keydir::{Keydir, Location};
use super::record::RecordKind;
use super::segment::SegFile;
use super::store::RecoveryReport;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

/// One sample of a segment's sparse offset index is taken every this many bytes.
const INDEX_INTERVAL: u64 = 4096;

/// In-memory facts about one segment.
pub(super) struct SegMeta {
    pub(super) file: Arc<SegFile>,
    pub(super) len: u64,
    /// Bytes the file holds (≥ `len` for the active segment: preallocated zeros follow).
    pub(super) allocated: u64,
    pub(super) records: u64,
    pub(super) last_offset: Option<u64>,
    /// Sparse (offset, position) samples, ascending.
    pub(super) index: Vec<(u64, u32)>,
}

impl SegMeta {
    pub(super) fn new(file: Arc<SegFile>) -> Self {
        Self {
            file,
            len: 0,
            allocated: 0,
            records: 0,
            last_offset: None,
            index: Vec::new(),
        }
    }

    /// Notes a record at `pos` (records arrive in order).
    pub(super) fn note(&mut self, offset: u64, pos: u64, len: u64) {
        let sample = match self.index.last() {
            None => true,
            // Saturating: positions come from hint files, which are checked only by a CRC.
            Some(&(_, p)) => pos.saturating_sub(u64::from(p)) >= INDEX_INTERVAL,
        };
        if sample {
            self.index.push((offset, pos as u32));
        }
        self.records += 1;
        self.last_offset = Some(offset);
        self.len = self.len.max(pos + len);
    }

    /// Position of the last index sample at or before `offset`.
    pub(super) fn index_pos(&self, offset: u64) -> u64 {
        let i = self.index.partition_point(|&(o, _)| o <= offset);
        if i == 0 {
            0
        } else {
            u64::from(self.index[i - 1].1)
        }
    }
}

pub(super) struct State {
    pub(super) keydir: Keydir,
    pub(super) cache: ValueCache,
    /// Segments by base offset; the last one is the active segment.
    pub(super) segments: BTreeMap<u64, SegMeta>,
    pub(super) by_id: HashMap<u32, Arc<SegFile>>,
    pub(super) next_id: u32,
    pub(super) leo: u64,
    /// Hint entries of the active segment.
    pub(super) hint: HintBuf,
    pub(super) enc: Vec<u8>,
    pub(super) horizon: u64,
    /// Merges since this store opened that dropped a record (in memory only: it orders this
    /// store's merges within one leadership, and a restarted replica never leads in the same
    /// leader epoch again).
    pub(super) drops: u64,
    /// Lowest truncation point since the running merge started (`u64::MAX` = none).
    pub(super) truncated_to: u64,
}

impl State {
    pub(super) fn alloc_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    pub(super) fn active(&self) -> &SegMeta {
        self.segments
            .values()
            .next_back()
            .expect("a store always has an active segment")
    }

    pub(super) fn active_mut(&mut self) -> &mut SegMeta {
        self.segments
            .values_mut()
            .next_back()
            .expect("a store always has an active segment")
    }

    /// Points `key` at a record (or removes nothing: tombstones stay as entries).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply(&mut self, segment: u32, e: &HintEntry<'_>) {
        self.keydir.insert(e.key, location(segment, e));
        self.cache.invalidate(e.key);
    }

    /// Applies every record of `segments` (segment id and records, in log order) with the cache
    /// still empty (opening a store).
    pub(super) fn apply_all(&mut self, segments: &[(u32, &HintBuf)]) {
        debug_assert_eq!(
            self.cache.bytes(),
            0,
            "only an empty cache can skip invalidation"
        );
        let expected = segments.iter().map(|(_, h)| h.len()).sum::<u64>();
        self.keydir
            .fill(usize::try_from(expected).unwrap_or(0), |apply| {
                for (segment, hints) in segments {
                    for e in hints.entries() {
                        apply(e.key, location(*segment, &e));
                    }
                }
            });
    }
}

/// Where the record `e` of segment `segment` is, as the keydir keeps it.
fn location(segment: u32, e: &HintEntry<'_>) -> Location {
    Location {
        offset: e.offset,
        expire_at_ms: e.expire_at_ms,
        segment,
        pos: e.pos,
        value_len: e.value_len,
        tombstone: e.kind == RecordKind::Delete,
    }
}

pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) config: StoreConfig,
    pub(super) state: Mutex<State>,
    pub(super) durability: Arc<Durability>,
    pub(super) merge_lock: Mutex<()>,
    pub(super) recovery: RecoveryReport,
    pub(super) _lock_file: File,
    /// Set aside space as a disk too full for a chunk of zeros would ([`super::Store::refuse_zero_fill`]).
    #[cfg(feature = "failpoints")]
    pub(super) refuse_zero_fill: std::sync::atomic::AtomicBool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // No flush here: dropping a store is what a crash does. `close` is the clean path.
        self.durability.stop();
    }
}
