//! What a power loss would leave of a store's files. Bytes written but not yet fsynced sit in the
//! page cache: a process crash keeps them, a power loss does not. To show the difference (DESIGN
//! §13), the lab gives each broker's stores a [`DiskModel`] that learns, at every fsync, how many
//! bytes of each file are durable; `power_loss` then cuts every file back to that length and
//! deletes files whose creation was never made durable. Deployments leave it off (it costs one
//! branch per fsync then).
//!
//! The model is harsh on purpose: only an fsync makes bytes durable (a real kernel may also write
//! dirty pages back within ~30 s, which no one can count on), and a truncation counts at once.
//! Files the model never heard of (those that predate it, and checkpoints, which are always
//! written through an fsynced rename) are left as they are.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durable {
    /// The first `n` bytes.
    Len(u64),
    /// Nothing: the file itself may vanish.
    NotYet,
}

#[derive(Default)]
struct Model {
    /// Guarded by a std mutex, never held across an `.await` or an fsync.
    files: Mutex<HashMap<PathBuf, Durable>>,
    /// Power losses so far: the machine's boot count.
    boots: AtomicU64,
    /// The power is off: a crashed broker's threads winding down cannot make anything durable.
    off: std::sync::atomic::AtomicBool,
}

/// A shared model of one machine's disk, or none (the default).
#[derive(Clone, Default)]
pub struct DiskModel(Option<Arc<Model>>);

/// What a power loss took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PowerLossReport {
    /// Files cut back: path, length before, length after.
    pub cut: Vec<(PathBuf, u64, u64)>,
    /// Files that vanished, with their length before.
    pub vanished: Vec<(PathBuf, u64)>,
}

impl PowerLossReport {
    /// Bytes dropped in all.
    pub fn bytes_lost(&self) -> u64 {
        let cut: u64 = self
            .cut
            .iter()
            .map(|(_, before, after)| before - after)
            .sum();
        cut + self.vanished.iter().map(|(_, len)| len).sum::<u64>()
    }
}

impl DiskModel {
    /// A model that tracks every file its stores write.
    pub fn tracking() -> Self {
        Self(Some(Arc::new(Model::default())))
    }

    /// Whether this model tracks anything.
    pub fn is_tracking(&self) -> bool {
        self.0.is_some()
    }

    fn with(&self, f: impl FnOnce(&mut HashMap<PathBuf, Durable>)) {
        if let Some(m) = &self.0
            && !m.off.load(Ordering::SeqCst)
        {
            f(&mut m.files.lock());
        }
    }

    /// `path` was created: none of it is durable yet.
    pub(crate) fn created(&self, path: &Path) {
        self.with(|files| {
            files.insert(path.to_path_buf(), Durable::NotYet);
        });
    }

    /// `path` was fsynced while `len` bytes long: those bytes are durable.
    pub(crate) fn synced(&self, path: &Path, len: u64) {
        self.with(|files| {
            files.insert(path.to_path_buf(), Durable::Len(len));
        });
    }

    /// `path` was cut to `len` bytes.
    pub(crate) fn cut(&self, path: &Path, len: u64) {
        self.with(|files| {
            if let Some(Durable::Len(n)) = files.get_mut(path) {
                *n = (*n).min(len);
            }
        });
    }

    /// `path`, as it is now, is durable (an fsynced rename put it there).
    pub(crate) fn durable_now(&self, path: &Path) {
        if self.is_tracking()
            && let Ok(meta) = std::fs::metadata(path)
        {
            self.synced(path, meta.len());
        }
    }

    /// How many times this machine lost power: part of its boot id, which replicas compare to
    /// tell a restart after a power loss from a process restart.
    pub fn boots(&self) -> u64 {
        self.0
            .as_ref()
            .map_or(0, |m| m.boots.load(Ordering::SeqCst))
    }

    /// Power comes back (the broker is about to start): fsyncs count again.
    pub fn power_on(&self) {
        if let Some(m) = &self.0 {
            m.off.store(false, Ordering::SeqCst);
        }
    }

    /// Loses power: every tracked file under `dir` keeps only its durable bytes, files never made
    /// durable vanish, and the boot count goes up. Until [`DiskModel::power_on`], nothing counts
    /// as durable any more. The stores under `dir` must be closed (their broker crashed first).
    pub fn power_loss(&self, dir: &Path) -> std::io::Result<PowerLossReport> {
        let mut report = PowerLossReport::default();
        let Some(m) = &self.0 else {
            return Ok(report);
        };
        m.off.store(true, Ordering::SeqCst);
        m.boots.fetch_add(1, Ordering::SeqCst);
        let mut files = m.files.lock();
        for (path, durable) in files.iter_mut().filter(|(p, _)| p.starts_with(dir)) {
            let Ok(meta) = std::fs::metadata(path) else {
                continue;
            };
            match *durable {
                Durable::NotYet => {
                    let data = data_end(path, 0, meta.len())?;
                    std::fs::remove_file(path)?;
                    report.vanished.push((path.clone(), data));
                }
                Durable::Len(n) if meta.len() > n => {
                    // Preallocated zeros past the last byte written are no loss: count data only.
                    let data = data_end(path, n, meta.len())?;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(path)?
                        .set_len(n)?;
                    if data > n {
                        report.cut.push((path.clone(), data, n));
                    }
                }
                Durable::Len(_) => {}
            }
        }
        // What is left is what the disk holds.
        files.retain(|p, d| !(p.starts_with(dir) && *d == Durable::NotYet));
        report.cut.sort();
        report.vanished.sort();
        Ok(report)
    }
}

/// The end of the data in `path` between `from` and `to`: past its last non-zero byte (segments
/// are preallocated with zeros).
fn data_end(path: &Path, from: u64, to: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 64 << 10];
    let mut end = from;
    let mut pos = from;
    while pos < to {
        let n = ((to - pos) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], pos)?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b != 0) {
            end = pos + i as u64 + 1;
        }
        pos += n as u64;
    }
    Ok(end)
}

impl std::fmt::Debug for DiskModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_tracking() {
            "DiskModel(tracking)"
        } else {
            "DiskModel(off)"
        })
    }
}

/// A disk model is wiring, not a setting: it never makes two configurations differ.
impl PartialEq for DiskModel {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_power_loss_keeps_synced_bytes_and_drops_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = DiskModel::tracking();
        let synced = dir.path().join("a");
        let fresh = dir.path().join("b");
        let untracked = dir.path().join("c");
        std::fs::write(&synced, b"0123456789").expect("write");
        disk.synced(&synced, 4);
        disk.created(&fresh);
        std::fs::write(&fresh, b"xyz").expect("write");
        std::fs::write(&untracked, b"kept").expect("write");
        let report = disk.power_loss(dir.path()).expect("power loss");
        assert_eq!(std::fs::read(&synced).expect("read"), b"0123");
        assert!(!fresh.exists());
        assert_eq!(std::fs::read(&untracked).expect("read"), b"kept");
        assert_eq!(report.bytes_lost(), 9);
        assert_eq!(report.vanished, vec![(fresh.clone(), 3)]);
        assert_eq!(disk.boots(), 1);
        // Until the power is back, nothing becomes durable; preallocated zeros are no loss.
        disk.synced(&synced, 4);
        std::fs::write(&synced, b"0123\0\0\0").expect("write");
        assert_eq!(
            disk.power_loss(dir.path())
                .expect("power loss")
                .bytes_lost(),
            0
        );
        disk.power_on();
        // A cut lowers what counts as durable; a model that is off does nothing.
        disk.cut(&synced, 2);
        std::fs::write(&synced, b"0123").expect("write");
        disk.power_loss(dir.path()).expect("power loss");
        assert_eq!(std::fs::read(&synced).expect("read"), b"01");
        let off = DiskModel::default();
        assert_eq!(
            off.power_loss(dir.path()).expect("no-op"),
            PowerLossReport::default()
        );
    }
}
