//! Bitcask storage for one partition replica. Knows nothing of replication or the network.
//!
//! # Files
//! `DATA/broker-<id>/partition-<p>/` holds:
//! - `<first offset, 20 digits>.log` — segments. The last is *active* and takes appends; it is
//!   sealed (made immutable) when it reaches `segment_bytes`.
//! - `<first offset>.hint` — beside each sealed segment: every record without its value, so start-up
//!   builds the keydir from hints and scans only the active segment.
//! - `leader-epoch-checkpoint`, `high-watermark`, `tombstone-horizon` — small checkpoints written
//!   atomically (see [`checkpoint`]).
//! - `merge.commit` — only while a merge swaps files in (see [`merge`](crate::storage::MergeReport)).
//! - `.lock` — held while a store has the directory open.
//!
//! # Record format (little-endian)
//! | field | type | notes |
//! |---|---|---|
//! | crc32 | u32 | crc32fast over every byte after it |
//! | offset | u64 | position in the replicated log: dense on append, kept by merge |
//! | leader_epoch | u32 | epoch of the leader that wrote it |
//! | timestamp_ms | u64 | write time, Unix ms |
//! | expire_at_ms | u64 | absolute expiry, Unix ms, 0 = none |
//! | kind | u8 | 1 put, 2 delete (tombstone), 3 expire (carries the value too) |
//! | key_len | u32 | ≥ 1 |
//! | value_len | u32 | |
//! | key | bytes | |
//! | value | bytes | |
//!
//! # Guarantees
//! - A torn or corrupt tail of the active segment is cut at the last valid record at open; damage in
//!   a sealed segment is an error naming the file and byte position (at open when it has no hint,
//!   otherwise when the damaged record is read).
//! - `fsync: always` acknowledges an append only after an fsync covering it (group commit).
//! - Merge and truncation keep the log a valid prefix-closed sequence of offsets; see
//!   [`Store::merge`] and [`Store::truncate`].

mod cache;
pub mod checkpoint;
mod config;
mod disk;
mod error;
mod flusher;
pub(crate) mod hint;
mod keydir;
mod merge;
mod read;
pub mod record;
mod recovery;
mod segment;
mod state;
mod store;
mod truncate;

pub use config::{FsyncPolicy, StoreConfig};
pub use disk::{DiskModel, PowerLossReport};
pub use error::{Result, StorageError};
pub use merge::MergeReport;
pub use record::{RecordKind, Write};
pub use store::{Lookup, RawRecords, RecoveryReport, Store, StoreStats};

/// Milliseconds since the Unix epoch, by the wall clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
