//! Helpers shared by the storage tests.

use simplekv::storage::{FsyncPolicy, Lookup, Store, StoreConfig, Write};
use std::path::Path;

/// A configuration with small segments so tests rotate often.
pub fn small_config() -> StoreConfig {
    StoreConfig {
        segment_bytes: 4096,
        cache_bytes: 2048,
        fsync: FsyncPolicy::Never,
        tombstone_retention_ms: 1000,
        ..StoreConfig::default()
    }
}

pub fn open(dir: &Path, config: &StoreConfig) -> Store {
    Store::open(dir, config.clone()).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// The visible value of `key` at `now`.
pub fn visible(store: &Store, key: &[u8], now: u64) -> Option<Vec<u8>> {
    match store.get_at(key, now).expect("get") {
        Lookup::Found { value, .. } => Some(value.to_vec()),
        _ => None,
    }
}

/// A put stamped at `now`.
pub fn put_at(key: &str, value: &str, now: u64) -> Write {
    Write::put(key.to_owned(), value.to_owned()).with_timestamp(now)
}

/// All segment bytes of a store, concatenated in offset order.
///
/// The active segment ends in preallocated zeros: those are not part of the log, and the store
/// trims them when it seals or reopens the segment, so the directory is reopened first.
pub fn log_bytes(dir: &Path) -> Vec<u8> {
    drop(Store::open(dir, small_config()).expect("reopen to trim preallocation"));
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs.iter()
        .flat_map(|p| std::fs::read(p).expect("read"))
        .collect()
}

/// Segment file paths, sorted.
pub fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs
}

/// Copies every regular file of `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().expect("name"))).expect("copy");
        }
    }
}

/// Overwrites `bytes` at `pos` of the file at `path` in place (damage a test injects).
pub fn overwrite(path: &Path, pos: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.write_all_at(bytes, pos))
        .unwrap_or_else(|e| panic!("damage {}: {e}", path.display()));
}
