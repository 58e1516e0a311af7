//! Small files written atomically beside a replica's segments: the leader-epoch checkpoint
//! (epoch → start offset), the high-watermark checkpoint and the tombstone horizon.
//!
//! Every write goes to `<name>.tmp`, is fsynced, renamed over the real name, and the directory is
//! fsynced, so a crash leaves either the old file or the new one, whole.

use super::error::{IoContext, Result, StorageError};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// File name of the leader-epoch checkpoint.
pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
/// File name of the high-watermark checkpoint.
pub const HIGH_WATERMARK_FILE: &str = "high-watermark";
/// File name of the tombstone horizon.
pub const TOMBSTONE_HORIZON_FILE: &str = "tombstone-horizon";

/// Writes `bytes` to `path` through a temporary file and a rename; `sync` makes it durable.
pub fn write_file_atomic(path: &Path, bytes: &[u8], sync: bool) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp).at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        if sync {
            f.sync_all().at(&tmp)?;
        }
    }
    std::fs::rename(&tmp, path).at(path)?;
    if sync && let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Fsyncs a directory, making renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Reads a file holding one decimal number; `None` when it does not exist.
pub fn read_u64(path: &Path) -> Result<Option<u64>> {
    match std::fs::read_to_string(path) {
        Ok(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| StorageError::Corrupt {
                path: path.to_path_buf(),
                pos: 0,
                why: format!("expected one number, found {:?}", s.trim()),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(path),
    }
}

/// Writes one decimal number atomically and durably.
pub fn write_u64(path: &Path, value: u64) -> Result<()> {
    write_file_atomic(path, format!("{value}\n").as_bytes(), true)
}

/// One entry of the leader-epoch checkpoint: the first offset written in `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: u32,
    /// The first offset its leader wrote.
    pub start_offset: u64,
}

/// The leader-epoch cache of one replica and its checkpoint file, in Kafka's text format:
/// a version line `0`, a count line, then `epoch start_offset` per line.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint in `dir` (an empty cache when there is none).
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(LEADER_EPOCH_FILE);
        let entries = match std::fs::read_to_string(&path) {
            Ok(text) => parse_epochs(&path, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).at(&path),
        };
        Ok(Self { path, entries })
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest entry.
    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start_offset`, if `epoch` is newer than the latest entry.
    /// Returns whether it was added.
    pub fn assign(&mut self, epoch: u32, start_offset: u64) -> Result<bool> {
        if let Some(last) = self.latest()
            && (epoch <= last.epoch || start_offset < last.start_offset)
        {
            return Ok(false);
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.flush()?;
        Ok(true)
    }

    /// The entries from the one in force at `offset` on: where each epoch of a log read from
    /// `offset` started.
    pub fn from_offset(&self, offset: u64) -> Vec<EpochEntry> {
        let first = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= offset)
            .unwrap_or(0);
        self.entries[first..].to_vec()
    }

    /// Drops the entries that start at or after `offset` (after the log was truncated to it).
    pub fn truncate_from_end(&mut self, offset: u64) -> Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < offset);
        if self.entries.len() != before {
            self.flush()?;
        }
        Ok(())
    }

    /// Forgets every entry (the log was emptied).
    pub fn clear(&mut self) -> Result<()> {
        self.entries.clear();
        self.flush()
    }

    /// KIP-101/279: for a requested `epoch`, the largest known epoch not above it and the offset
    /// where that epoch ended (the next epoch's start, or `log_end_offset` for the latest).
    /// `None` when every known epoch is newer than the one asked for.
    pub fn end_offset_for(&self, epoch: u32, log_end_offset: u64) -> Option<(u32, u64)> {
        let i = self.entries.iter().rposition(|e| e.epoch <= epoch)?;
        let end = self
            .entries
            .get(i + 1)
            .map_or(log_end_offset, |next| next.start_offset);
        Some((self.entries[i].epoch, end))
    }

    fn flush(&self) -> Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        write_file_atomic(&self.path, text.as_bytes(), true)
    }
}

fn parse_epochs(path: &Path, text: &str) -> Result<Vec<EpochEntry>> {
    let bad = |line: usize, why: &str| StorageError::Corrupt {
        path: path.to_path_buf(),
        pos: line as u64,
        why: format!("line {line}: {why}"),
    };
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("0") {
        return Err(bad(1, "expected version 0"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad(2, "expected the entry count"))?;
    let mut entries = Vec::with_capacity(count.min(1 << 16));
    for (i, line) in lines.enumerate() {
        let mut parts = line.split_whitespace();
        let (Some(e), Some(o), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(i + 3, "expected 'epoch start_offset'"));
        };
        let (Ok(epoch), Ok(start_offset)) = (e.parse(), o.parse()) else {
            return Err(bad(i + 3, "expected two numbers"));
        };
        entries.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    if entries.len() != count {
        return Err(bad(2, "entry count does not match the lines"));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_cache_persists_and_answers_end_offsets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = LeaderEpochCache::open(dir.path()).expect("open");
        assert!(c.assign(1, 0).expect("assign"));
        assert!(c.assign(3, 10).expect("assign"));
        assert!(!c.assign(2, 20).expect("assign"), "older epoch refused");
        assert!(c.assign(5, 25).expect("assign"));
        let c = LeaderEpochCache::open(dir.path()).expect("reopen");
        assert_eq!(c.entries().len(), 3);
        assert_eq!(c.end_offset_for(1, 40), Some((1, 10)));
        assert_eq!(c.end_offset_for(2, 40), Some((1, 10)));
        assert_eq!(c.end_offset_for(4, 40), Some((3, 25)));
        assert_eq!(c.end_offset_for(9, 40), Some((5, 40)));
        assert_eq!(c.end_offset_for(0, 40), None);
    }

    #[test]
    fn truncate_from_end_drops_epochs_that_started_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = LeaderEpochCache::open(dir.path()).expect("open");
        c.assign(1, 0).expect("assign");
        c.assign(2, 10).expect("assign");
        c.truncate_from_end(10).expect("truncate");
        assert_eq!(
            c.latest(),
            Some(EpochEntry {
                epoch: 1,
                start_offset: 0
            })
        );
        assert_eq!(
            LeaderEpochCache::open(dir.path())
                .expect("reopen")
                .entries()
                .len(),
            1
        );
    }

    #[test]
    fn a_damaged_checkpoint_names_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(LEADER_EPOCH_FILE), "0\n1\n3 x\n").expect("write");
        let err = LeaderEpochCache::open(dir.path())
            .expect_err("must fail")
            .to_string();
        assert!(
            err.contains(LEADER_EPOCH_FILE) && err.contains("line 3"),
            "{err}"
        );
    }

    #[test]
    fn numbers_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(HIGH_WATERMARK_FILE);
        assert_eq!(read_u64(&p).expect("read"), None);
        write_u64(&p, 42).expect("write");
        assert_eq!(read_u64(&p).expect("read"), Some(42));
    }
}
