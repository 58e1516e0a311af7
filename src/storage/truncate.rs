//! Truncation: removing every record at and above an offset, and bringing back the older
//! versions of the keys those records touched.

use super::checkpoint::{self};
use super::config::FsyncPolicy;
use super::error::{IoContext, Result};
use super::hint;
use super::keydir::Keydir;
use super::recovery::scan_segment;
use super::segment::{self, SegFile};
use super::state::{SegMeta, State};
use super::store::{Store, remove_if_exists};
use std::collections::HashSet;
use std::sync::Arc;

impl Store {
    /// Removes every record at or above `to_offset`, repairs the keydir for the keys they touched
    /// (older versions come back) and sets the log end to `to_offset`. Returns how many records
    /// were removed.
    pub fn truncate(&self, to_offset: u64) -> Result<u64> {
        let dir = self.shared.dir.clone();
        let sync = self.shared.config.fsync != FsyncPolicy::Never;
        self.check_failed()?;
        let mut st = self.shared.state.lock();
        if to_offset >= st.leo {
            return Ok(0);
        }
        st.truncated_to = st.truncated_to.min(to_offset);
        let first_base = st.segments.keys().next().copied().unwrap_or(0);
        let (removed, cut_is_last) = if to_offset <= first_base {
            let removed = st.segments.values().map(|m| m.records).sum();
            for (base, meta) in std::mem::take(&mut st.segments) {
                remove_if_exists(&meta.file.path)?;
                remove_if_exists(&segment::hint_path(&dir, base))?;
            }
            st.by_id.clear();
            st.keydir = Keydir::default();
            st.cache.clear();
            st.hint.clear();
            (removed, false)
        } else {
            self.truncate_tail(&mut st, to_offset)?
        };
        // The active segment is named by the log end: start a fresh one unless the segment that
        // was cut is last and ends exactly at `to_offset` (merge can leave a gap below it).
        let fits = cut_is_last && {
            let m = st.active();
            m.last_offset.map_or(m.file.base, |o| o + 1) == to_offset
        };
        if !fits {
            if cut_is_last {
                let m = st.active();
                let (base, len) = (m.file.base, m.len);
                st.hint.write(
                    &segment::hint_path(&dir, base),
                    len,
                    sync,
                    &self.shared.config.disk,
                )?;
            }
            st.hint.clear();
            if let Err(e) = self.add_active(&mut st, to_offset) {
                // Without an active segment the store cannot go on: refuse everything after.
                self.shared.durability.fail(e.to_string());
                return Err(e);
            }
        }
        st.leo = to_offset;
        // Under the lock, so an append after this truncation reports its end after this one
        // (reported late, this would move `written` back below it); and before the directory
        // sync, which may fail, so the durable mark never stays above the new log end.
        self.shared.durability.note_truncated(to_offset);
        if sync {
            checkpoint::sync_dir(&dir)?;
        }
        drop(st);
        tracing::debug!(dir = %dir.display(), to_offset, removed, "truncated log");
        Ok(removed)
    }

    /// Truncation that keeps at least the first segment: drop whole segments at or above
    /// `to_offset`, cut the one it falls in (which is then the last), and re-derive the keys the
    /// removed records touched. Returns how many records went and whether a segment was cut.
    fn truncate_tail(&self, st: &mut State, to_offset: u64) -> Result<(u64, bool)> {
        let dir = self.shared.dir.clone();
        let max = self.shared.config.max_record_bytes();
        let sync = self.shared.config.fsync != FsyncPolicy::Never;
        let doomed: Vec<u64> = st.segments.range(to_offset..).map(|(b, _)| *b).collect();
        let cut_base = st
            .segments
            .range(..to_offset)
            .next_back()
            .filter(|(_, m)| m.last_offset.is_some_and(|l| l >= to_offset))
            .map(|(b, _)| *b);

        let mut touched: HashSet<Box<[u8]>> = HashSet::new();
        let mut removed = 0;
        let mut cut_pos = None;
        for base in cut_base.iter().chain(&doomed) {
            let file = Arc::clone(&st.segments[base].file);
            let len = st.segments[base].len;
            let end = segment::scan(&file.file, &file.path, max, |pos, r| {
                if r.header.offset >= to_offset {
                    removed += 1;
                    touched.insert(r.key.into());
                    if Some(*base) == cut_base && cut_pos.is_none() {
                        cut_pos = Some(pos);
                    }
                }
                Ok(())
            })?;
            // Stopping short of the records the segment holds (not at the preallocated zeros
            // after them) is damage: refuse before removing anything, rather than part-way.
            if let Some(why) = end.error.filter(|_| end.valid_len < len) {
                return Err(file.corrupt(end.valid_len, why.to_string()));
            }
        }
        for base in &doomed {
            if let Some(meta) = st.segments.remove(base) {
                st.by_id.remove(&meta.file.id);
                remove_if_exists(&meta.file.path)?;
                remove_if_exists(&segment::hint_path(&dir, *base))?;
            }
        }
        if let (Some(base), Some(pos)) = (cut_base, cut_pos) {
            let file = &st.segments[&base].file;
            file.file.set_len(pos).at(&file.path)?;
            self.shared.config.disk.cut(&file.path, pos);
            if sync {
                file.file.sync_data().at(&file.path)?;
                self.shared.config.disk.synced(&file.path, pos);
            }
            remove_if_exists(&segment::hint_path(&dir, base))?;
        }
        for key in &touched {
            st.keydir.remove(key);
            st.cache.invalidate(key);
        }

        // Re-derive the touched keys from what remains, oldest first; rebuild the cut segment.
        st.hint.clear();
        let bases: Vec<u64> = st.segments.keys().copied().collect();
        for base in bases {
            let file = Arc::clone(&st.segments[&base].file);
            if Some(base) != cut_base {
                let len = st.segments[&base].len;
                if let Some(hints) = hint::read(&segment::hint_path(&dir, base), len)? {
                    for e in hints.entries().filter(|e| touched.contains(e.key)) {
                        st.apply(file.id, &e);
                    }
                    continue;
                }
            }
            let mut meta = SegMeta::new(Arc::clone(&file));
            let (end, hints) = scan_segment(&file, max, &mut meta)?;
            for e in hints.entries().filter(|e| touched.contains(e.key)) {
                st.apply(file.id, &e);
            }
            if let Some(why) = end.error {
                return Err(file.corrupt(end.valid_len, why.to_string()));
            }
            meta.len = end.valid_len;
            if Some(base) == cut_base {
                st.hint = hints;
            } else {
                hints.write(
                    &segment::hint_path(&dir, base),
                    meta.len,
                    sync,
                    &self.shared.config.disk,
                )?;
            }
            st.segments.insert(base, meta);
        }
        Ok((removed, cut_pos.is_some()))
    }

    fn add_active(&self, st: &mut State, base: u64) -> Result<()> {
        let id = st.alloc_id();
        let path = segment::log_path(&self.shared.dir, base);
        self.shared.config.disk.created(&path);
        let file = Arc::new(SegFile::open(id, base, path, true)?);
        file.file.set_len(0).at(&file.path)?;
        st.by_id.insert(id, Arc::clone(&file));
        st.segments.insert(base, SegMeta::new(file));
        Ok(())
    }
}
