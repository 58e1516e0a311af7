//! Power loss through the disk model: what an fsync policy keeps when the machine dies.

use super::support::{open, small_config, visible};
use simplekv::storage::{DiskModel, FsyncPolicy, StoreConfig, Write};

fn config(fsync: FsyncPolicy, disk: &DiskModel) -> StoreConfig {
    StoreConfig {
        fsync,
        disk: disk.clone(),
        ..small_config()
    }
}

/// Writes 300 keys (several segments at 4 KiB each), each acknowledged per the policy, then
/// loses power and reopens. Returns how many acknowledged keys are gone.
fn lost_after_power_loss(fsync: FsyncPolicy) -> (usize, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = DiskModel::tracking();
    let cfg = config(fsync, &disk);
    let store = open(dir.path(), &cfg);
    for i in 0..300 {
        store
            .write_durable(&Write::put(format!("key-{i}"), format!("value-{i}")))
            .expect("acknowledged");
    }
    drop(store);
    let report = disk.power_loss(dir.path()).expect("power loss");
    let store = open(dir.path(), &cfg);
    let now = u64::MAX / 2;
    let lost = (0..300)
        .filter(|i| {
            visible(&store, format!("key-{i}").as_bytes(), now)
                != Some(format!("value-{i}").into_bytes())
        })
        .count();
    (lost, report.bytes_lost())
}

#[test]
fn with_fsync_always_a_power_loss_keeps_every_acknowledged_write() {
    let (lost, _) = lost_after_power_loss(FsyncPolicy::Always);
    assert_eq!(lost, 0);
}

#[test]
fn with_fsync_never_a_power_loss_takes_what_was_never_synced() {
    let (lost, bytes) = lost_after_power_loss(FsyncPolicy::Never);
    // Sealed segments are not synced under `never` either: everything written is at risk, and
    // the model drops it all.
    assert!(bytes > 0);
    assert_eq!(lost, 300);
}

#[test]
fn a_store_reopened_after_a_crash_syncs_what_it_declares_durable() {
    use simplekv::storage::record::HEADER_LEN;
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = DiskModel::tracking();
    let cfg = StoreConfig {
        fsync_interval_ms: 600_000,
        ..config(FsyncPolicy::Interval, &disk)
    };
    let store = open(dir.path(), &cfg);
    // One record filling the segment to the byte: the scan at reopen meets no preallocated
    // zeros, so nothing there forces a sync.
    let value = "v".repeat(cfg.segment_bytes as usize - HEADER_LEN - 1);
    store
        .append(&Write::put("k", value.clone()))
        .expect("append");
    drop(store); // a crash: the page cache keeps the bytes, no fsync ran
    let reopened = open(dir.path(), &cfg);
    assert_eq!(reopened.durable_offset(), reopened.log_end_offset());
    drop(reopened);
    disk.power_loss(dir.path()).expect("power loss");
    let store = open(dir.path(), &cfg);
    assert_eq!(
        visible(&store, b"k", 0),
        Some(value.into_bytes()),
        "a record the reopened store called durable was lost"
    );
}
