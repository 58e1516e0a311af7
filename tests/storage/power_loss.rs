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
