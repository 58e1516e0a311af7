//! Merge: rewrite committed sealed segments keeping only each key's latest record.
//!
//! Inputs are the oldest sealed segments whose every record lies below the high watermark (a
//! prefix of the log). Within them, a record survives if it is its key's newest record in the
//! inputs, unless it has expired or is a tombstone older than `tombstone_retention_ms`. Offsets are
//! kept, so merged segments have gaps. When the newest record of a key is dropped, its offset
//! raises the *tombstone horizon*: a follower whose log ends below it may still hold an older
//! version of that key and must start over.
//!
//! Crash safety: outputs and their hints are written as `*.merge` files and fsynced; then a commit
//! marker (`merge.commit`, listing inputs, outputs and the horizon) is written atomically. Only then
//! are outputs renamed into place and inputs deleted. At open, a marker means "finish the swap"
//! (every step is idempotent); no marker means "delete the `*.merge` files". A crash at any point
//! therefore leaves either the old set of segments or the new one, whole.

use super::checkpoint::{self, TOMBSTONE_HORIZON_FILE};
use super::error::{IoContext, Result, StorageError};
use super::hint::{HintBuf, HintEntry};
use super::record::{self, RecordKind, Write};
use super::segment::{self, SegFile};
use super::state::{SegMeta, State};
use super::store::{Store, remove_if_exists};
use bytes::Bytes;
use parking_lot::MutexGuard;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MARKER: &str = "merge.commit";
const MERGE_SUFFIX: &str = ".merge";

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Segments read.
    pub segments_in: usize,
    /// Segments written.
    pub segments_out: usize,
    /// Records read.
    pub records_in: u64,
    /// Records kept.
    pub records_kept: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// The tombstone horizon after the merge.
    pub tombstone_horizon: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    inputs: Vec<u64>,
    outputs: Vec<u64>,
    horizon: u64,
}

/// What `recover` found at open.
pub(super) enum Recovered {
    Nothing,
    Completed,
    RolledBack,
}

fn merge_name(path: PathBuf) -> PathBuf {
    let mut s = path.into_os_string();
    s.push(MERGE_SUFFIX);
    PathBuf::from(s)
}

/// Finishes a committed merge or removes the files of an uncommitted one.
pub(super) fn recover(dir: &Path) -> Result<Recovered> {
    let marker_path = dir.join(MARKER);
    match std::fs::read(&marker_path) {
        Ok(bytes) => {
            let marker: Marker =
                serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
                    path: marker_path.clone(),
                    pos: 0,
                    why: format!("unreadable merge marker: {e}"),
                })?;
            tracing::warn!(dir = %dir.display(), "finishing a merge interrupted after its commit");
            let mut never = Steps::none();
            finish(dir, &marker, &mut never)?;
            Ok(Recovered::Completed)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut removed = false;
            for entry in std::fs::read_dir(dir).at(dir)? {
                let path = entry.at(dir)?.path();
                if path.to_string_lossy().ends_with(MERGE_SUFFIX) {
                    remove_if_exists(&path)?;
                    removed = true;
                }
            }
            if removed {
                tracing::warn!(dir = %dir.display(), "removed the files of an uncommitted merge");
            }
            Ok(if removed {
                Recovered::RolledBack
            } else {
                Recovered::Nothing
            })
        }
        Err(e) => Err(e).at(&marker_path),
    }
}

/// Counts a merge's file operations. With the `failpoints` feature a test can stop the merge
/// after any one of them, leaving the files exactly as a crash would.
struct Steps {
    done: usize,
    #[cfg(feature = "failpoints")]
    crash_after: Option<usize>,
}

impl Steps {
    fn none() -> Self {
        Self {
            done: 0,
            #[cfg(feature = "failpoints")]
            crash_after: None,
        }
    }

    fn step(&mut self) -> Result<()> {
        self.done += 1;
        #[cfg(feature = "failpoints")]
        if self.crash_after == Some(self.done) {
            return Err(StorageError::Failed(format!(
                "simulated crash after merge step {}",
                self.done
            )));
        }
        Ok(())
    }
}

/// The committed part of a merge: rename outputs into place, delete inputs, record the horizon,
/// drop the marker. Every step can be repeated after a crash.
fn finish(dir: &Path, marker: &Marker, steps: &mut Steps) -> Result<()> {
    for &base in &marker.outputs {
        let log_m = merge_name(segment::log_path(dir, base));
        if log_m.exists() {
            remove_if_exists(&segment::hint_path(dir, base))?;
            steps.step()?;
            std::fs::rename(&log_m, segment::log_path(dir, base)).at(&log_m)?;
            steps.step()?;
        }
        let hint_m = merge_name(segment::hint_path(dir, base));
        if hint_m.exists() {
            std::fs::rename(&hint_m, segment::hint_path(dir, base)).at(&hint_m)?;
            steps.step()?;
        }
    }
    let outputs: HashSet<u64> = marker.outputs.iter().copied().collect();
    for &base in marker.inputs.iter().filter(|b| !outputs.contains(b)) {
        remove_if_exists(&segment::log_path(dir, base))?;
        steps.step()?;
        remove_if_exists(&segment::hint_path(dir, base))?;
        steps.step()?;
    }
    checkpoint::sync_dir(dir)?;
    let horizon_path = dir.join(TOMBSTONE_HORIZON_FILE);
    if checkpoint::read_u64(&horizon_path)?.unwrap_or(0) < marker.horizon {
        checkpoint::write_u64(&horizon_path, marker.horizon)?;
        steps.step()?;
    }
    remove_if_exists(&dir.join(MARKER))?;
    checkpoint::sync_dir(dir)?;
    steps.step()?;
    Ok(())
}

/// What pass 2 wrote, and what became of each input record: moved (to an output, at a
/// position) or dropped.
#[derive(Default)]
struct Compacted {
    outputs: Vec<Output>,
    moved: HashMap<u64, (usize, u64)>,
    dropped: HashSet<u64>,
    /// The highest offset of a key's newest record that was dropped.
    horizon: u64,
}

/// One output segment being written.
struct Output {
    base: u64,
    path: PathBuf,
    writer: std::io::BufWriter<std::fs::File>,
    len: u64,
    hint: HintBuf,
    /// (offset, position, record length) of every kept record, for the in-memory index.
    records: Vec<(u64, u64, u64)>,
}

impl Output {
    fn create(dir: &Path, base: u64) -> Result<Self> {
        let path = merge_name(segment::log_path(dir, base));
        let file = std::fs::File::create(&path).at(&path)?;
        Ok(Self {
            base,
            path,
            writer: std::io::BufWriter::with_capacity(1 << 20, file),
            len: 0,
            hint: HintBuf::default(),
            records: Vec::new(),
        })
    }
}

impl Store {
    /// How many sealed segments a merge at `high_watermark` would read.
    pub fn mergeable_segments(&self, high_watermark: u64) -> usize {
        let st = self.shared.state.lock();
        let n = st.segments.len();
        st.segments
            .values()
            .take(n.saturating_sub(1))
            .take_while(|m| m.last_offset.is_none_or(|l| l < high_watermark))
            .count()
    }

    /// Merges the committed sealed segments (all records below `high_watermark`) now.
    /// `None` when there was nothing to merge.
    pub fn merge(&self, high_watermark: u64) -> Result<Option<MergeReport>> {
        self.merge_at(high_watermark, super::now_ms())
    }

    /// [`Store::merge`] as of `now_ms` (tests choose the clock).
    #[doc(hidden)]
    pub fn merge_at(&self, high_watermark: u64, now_ms: u64) -> Result<Option<MergeReport>> {
        self.run_merge(high_watermark, now_ms, Steps::none())
    }

    /// [`Store::merge_at`] stopped after `steps` file operations, as a crash would stop it; the
    /// store must then be dropped and reopened.
    #[cfg(feature = "failpoints")]
    #[doc(hidden)]
    pub fn merge_crashing_after(
        &self,
        high_watermark: u64,
        now_ms: u64,
        steps: usize,
    ) -> Result<Option<MergeReport>> {
        let steps = Steps {
            done: 0,
            crash_after: Some(steps),
        };
        self.run_merge(high_watermark, now_ms, steps)
    }

    /// The phases: pick the inputs, find each key's newest record, write the survivors, seal the
    /// outputs, commit, and install the result in memory.
    fn run_merge(
        &self,
        high_watermark: u64,
        now_ms: u64,
        mut steps: Steps,
    ) -> Result<Option<MergeReport>> {
        let _one_at_a_time = self.shared.merge_lock.lock();
        let inputs = self.merge_inputs(high_watermark);
        if inputs.is_empty() {
            return Ok(None);
        }
        let mut report = MergeReport {
            segments_in: inputs.len(),
            ..MergeReport::default()
        };
        let newest = self.newest_offsets(&inputs, &mut report)?;
        let mut compacted = self.compact(&inputs, &newest, now_ms, &mut report)?;
        drop(newest);
        self.seal(&mut compacted.outputs, &mut steps, &mut report)?;
        let Some(st) = self.commit(&inputs, &compacted, &mut steps)? else {
            return Ok(None);
        };
        self.install(st, &inputs, compacted, &mut report)?;
        tracing::info!(
            dir = %self.shared.dir.display(),
            segments_in = report.segments_in,
            segments_out = report.segments_out,
            records_in = report.records_in,
            records_kept = report.records_kept,
            "merged sealed segments"
        );
        Ok(Some(report))
    }

    /// The oldest sealed segments whose every record lies below `high_watermark`, with their
    /// lengths now. Resets the truncation mark, so a truncation meanwhile is noticed at commit.
    fn merge_inputs(&self, high_watermark: u64) -> Vec<(Arc<SegFile>, u64)> {
        let mut st = self.shared.state.lock();
        st.truncated_to = u64::MAX;
        let n = st.segments.len();
        st.segments
            .values()
            .take(n.saturating_sub(1))
            .take_while(|m| m.last_offset.is_none_or(|l| l < high_watermark))
            .map(|m| (Arc::clone(&m.file), m.len))
            .collect()
    }

    /// Pass 1: each key's newest offset within the inputs.
    fn newest_offsets(
        &self,
        inputs: &[(Arc<SegFile>, u64)],
        report: &mut MergeReport,
    ) -> Result<HashMap<Box<[u8]>, u64>> {
        let max = self.shared.config.max_record_bytes();
        let mut newest: HashMap<Box<[u8]>, u64> = HashMap::new();
        for (file, len) in inputs {
            report.bytes_in += len;
            let end = segment::scan(&file.file, &file.path, max, |_, r| {
                report.records_in += 1;
                match newest.get_mut(r.key) {
                    Some(o) => *o = r.header.offset,
                    None => {
                        newest.insert(r.key.into(), r.header.offset);
                    }
                }
                Ok(())
            })?;
            if let Some(why) = end.error {
                return Err(file.corrupt(end.valid_len, format!("{why} in a sealed segment")));
            }
        }
        Ok(newest)
    }

    /// Pass 2: writes each key's newest record, unless expired or a tombstone past retention, to
    /// `*.merge` outputs of at most a segment's size.
    fn compact(
        &self,
        inputs: &[(Arc<SegFile>, u64)],
        newest: &HashMap<Box<[u8]>, u64>,
        now_ms: u64,
        report: &mut MergeReport,
    ) -> Result<Compacted> {
        let shared = &self.shared;
        let max = shared.config.max_record_bytes();
        let retention = shared.config.tombstone_retention_ms;
        let mut c = Compacted::default();
        let mut enc = Vec::new();
        for (file, _) in inputs {
            segment::scan(&file.file, &file.path, max, |_, r| {
                let h = &r.header;
                if newest.get(r.key) != Some(&h.offset) {
                    return Ok(());
                }
                let expired = h.expire_at_ms != 0 && h.expire_at_ms <= now_ms;
                let old_tombstone = h.kind == RecordKind::Delete
                    && now_ms.saturating_sub(h.timestamp_ms) >= retention;
                if expired || old_tombstone {
                    c.horizon = c.horizon.max(h.offset);
                    c.dropped.insert(h.offset);
                    return Ok(());
                }
                enc.clear();
                record::encode_into(
                    &mut enc,
                    h.offset,
                    &Write {
                        kind: h.kind,
                        key: Bytes::copy_from_slice(r.key),
                        value: Bytes::copy_from_slice(r.value),
                        expire_at_ms: h.expire_at_ms,
                        leader_epoch: h.leader_epoch,
                        timestamp_ms: h.timestamp_ms,
                    },
                );
                let full = c.outputs.last().is_none_or(|o| {
                    o.len > 0 && o.len + enc.len() as u64 > shared.config.segment_bytes
                });
                if full {
                    let base = if c.outputs.is_empty() {
                        inputs[0].0.base
                    } else {
                        h.offset
                    };
                    c.outputs.push(Output::create(&shared.dir, base)?);
                }
                let out_index = c.outputs.len() - 1;
                let out = &mut c.outputs[out_index];
                out.writer.write_all(&enc).at(&out.path)?;
                out.hint.push(&HintEntry {
                    offset: h.offset,
                    expire_at_ms: h.expire_at_ms,
                    pos: out.len as u32,
                    value_len: h.value_len,
                    kind: h.kind,
                    key: r.key,
                });
                out.records.push((h.offset, out.len, enc.len() as u64));
                c.moved.insert(h.offset, (out_index, out.len));
                out.len += enc.len() as u64;
                report.records_kept += 1;
                Ok(())
            })?;
        }
        Ok(c)
    }

    /// Makes the outputs and their hints durable (still as `*.merge` files).
    fn seal(
        &self,
        outputs: &mut [Output],
        steps: &mut Steps,
        report: &mut MergeReport,
    ) -> Result<()> {
        let shared = &self.shared;
        for out in outputs {
            out.writer.flush().at(&out.path)?;
            out.writer.get_ref().sync_all().at(&out.path)?;
            shared.config.disk.synced(&out.path, out.len);
            let hint_m = merge_name(segment::hint_path(&shared.dir, out.base));
            out.hint
                .write(&hint_m, out.len, true, &shared.config.disk)?;
            steps.step()?;
            report.bytes_out += out.len;
        }
        checkpoint::sync_dir(&shared.dir)
    }

    /// Writes the commit marker and swaps the files, unless the log was truncated below the
    /// inputs meanwhile (then the outputs go and `None` is returned). Returns the state, locked
    /// from before the truncation check until the swap in memory is done.
    fn commit(
        &self,
        inputs: &[(Arc<SegFile>, u64)],
        c: &Compacted,
        steps: &mut Steps,
    ) -> Result<Option<MutexGuard<'_, State>>> {
        let shared = &self.shared;
        let dir = &shared.dir;
        let horizon = c.horizon.max(shared.state.lock().horizon);
        let marker = Marker {
            inputs: inputs.iter().map(|(f, _)| f.base).collect(),
            outputs: c.outputs.iter().map(|o| o.base).collect(),
            horizon,
        };
        let marker_bytes = serde_json::to_vec(&marker)
            .map_err(|e| StorageError::Failed(format!("cannot encode the merge marker: {e}")))?;
        let st = shared.state.lock();
        let max_input_offset = inputs
            .iter()
            .filter_map(|(f, _)| st.segments.get(&f.base).and_then(|m| m.last_offset))
            .max()
            .unwrap_or(0);
        if st.truncated_to <= max_input_offset {
            drop(st);
            for out in &c.outputs {
                remove_if_exists(&out.path)?;
                remove_if_exists(&merge_name(segment::hint_path(dir, out.base)))?;
            }
            tracing::info!(dir = %dir.display(), "merge abandoned: the log was truncated below its inputs");
            return Ok(None);
        }
        checkpoint::write_file_atomic(&dir.join(MARKER), &marker_bytes, true)?;
        steps.step()?;
        finish(dir, &marker, steps)?;
        for out in &c.outputs {
            // Renamed into place after their fsync, and the directory fsynced: durable.
            shared
                .config
                .disk
                .synced(&segment::log_path(dir, out.base), out.len);
            shared
                .config
                .disk
                .durable_now(&segment::hint_path(dir, out.base));
        }
        Ok(Some(st))
    }

    /// The swap in memory: keys of the inputs point into the outputs, dropped ones go.
    fn install(
        &self,
        mut st: MutexGuard<'_, State>,
        inputs: &[(Arc<SegFile>, u64)],
        c: Compacted,
        report: &mut MergeReport,
    ) -> Result<()> {
        let dir = &self.shared.dir;
        let horizon = c.horizon.max(st.horizon);
        let input_ids: HashSet<u32> = inputs.iter().map(|(f, _)| f.id).collect();
        let mut out_files = Vec::with_capacity(c.outputs.len());
        for out in &c.outputs {
            let id = st.alloc_id();
            let file = Arc::new(SegFile::open(
                id,
                out.base,
                segment::log_path(dir, out.base),
                false,
            )?);
            out_files.push(file);
        }
        let mut gone = Vec::new();
        st.keydir.for_each_mut(|key, loc| {
            if !input_ids.contains(&loc.segment) {
                return;
            }
            if let Some(&(i, pos)) = c.moved.get(&loc.offset) {
                loc.segment = out_files[i].id;
                loc.pos = pos as u32;
            } else if c.dropped.contains(&loc.offset) {
                gone.push(key.to_vec());
            }
        });
        for key in gone {
            st.keydir.remove(&key);
            st.cache.invalidate(&key);
        }
        for (file, _) in inputs {
            st.segments.remove(&file.base);
            st.by_id.remove(&file.id);
        }
        for (out, file) in c.outputs.iter().zip(out_files) {
            let mut meta = SegMeta::new(Arc::clone(&file));
            for &(offset, pos, len) in &out.records {
                meta.note(offset, pos, len);
            }
            st.by_id.insert(file.id, file);
            st.segments.insert(out.base, meta);
        }
        st.horizon = horizon;
        if !c.dropped.is_empty() {
            st.drops += 1;
        }
        report.segments_out = c.outputs.len();
        report.tombstone_horizon = horizon;
        Ok(())
    }
}
