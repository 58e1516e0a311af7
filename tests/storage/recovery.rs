//! Crash recovery: torn tails, corrupt sealed segments, merges cut short, truncation and hints.

use crate::support::{copy_dir, open, overwrite, put_at, segment_files, small_config, visible};
use simplekv::storage::record::HEADER_LEN;
use simplekv::storage::{Lookup, StorageError, Store, StoreConfig, Write};
use std::fs::OpenOptions;

#[test]
fn a_torn_tail_is_cut_at_every_byte_of_the_last_record() {
    let config = small_config();
    let template = tempfile::tempdir().expect("tempdir");
    // Record positions come from record sizes: the file itself is longer (preallocated zeros).
    let (last_start, full_len) = {
        let store = open(template.path(), &config);
        let mut pos = 0u64;
        for i in 0..5 {
            let w = put_at(&format!("k{i}"), &format!("value-{i}"), 1);
            pos += w.encoded_len() as u64;
            store.append(&w).expect("put");
        }
        let last = put_at("last", "the last value", 1);
        store.append(&last).expect("put");
        (pos, pos + last.encoded_len() as u64)
    };
    let original = std::fs::read(&segment_files(template.path())[0]).expect("read");
    for cut in last_start..full_len {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(template.path(), dir.path());
        let seg = &segment_files(dir.path())[0];
        // Damage is counted up to the torn record's last non-zero byte: its own trailing zeros
        // cannot be told from preallocated space.
        let torn = &original[last_start as usize..cut as usize];
        let damaged = torn
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i as u64 + 1);
        OpenOptions::new()
            .write(true)
            .open(seg)
            .and_then(|f| f.set_len(cut))
            .expect("tear");
        let store = open(dir.path(), &config);
        assert_eq!(store.recovery().torn_bytes_dropped, damaged, "cut at {cut}");
        assert_eq!(store.log_end_offset(), 5, "cut at {cut}");
        assert_eq!(visible(&store, b"last", 2), None, "cut at {cut}");
        assert_eq!(visible(&store, b"k4", 2).as_deref(), Some(&b"value-4"[..]));
        // The log goes on cleanly after the repair.
        assert_eq!(store.append(&put_at("after", "x", 1)).expect("put"), 5);
        drop(store);
        let store = open(dir.path(), &config);
        assert_eq!(store.recovery().torn_bytes_dropped, 0);
        assert_eq!(visible(&store, b"after", 2).as_deref(), Some(&b"x"[..]));
    }
}

#[test]
fn preallocated_zeros_are_not_damage_but_a_torn_record_before_them_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let (first, second) = (put_at("a", "1", 1), put_at("b", "22", 1));
    {
        let store = open(dir.path(), &config);
        store.append(&first).expect("put");
        store.append(&second).expect("put");
    }
    let seg = &segment_files(dir.path())[0];
    let on_disk = std::fs::metadata(seg).expect("meta").len();
    let used = (first.encoded_len() + second.encoded_len()) as u64;
    assert!(on_disk > used, "the active segment is preallocated");
    // A clean reopen: the zeros after the records are not reported as a torn tail.
    let store = open(dir.path(), &config);
    assert_eq!(store.recovery().torn_bytes_dropped, 0);
    assert_eq!(store.log_end_offset(), 2);
    store.append(&put_at("c", "3", 1)).expect("put");
    drop(store);
    // Now half of a record, followed by zeros, as a crash in the middle of a write leaves it.
    let third = put_at("c", "3", 1).encoded_len();
    let mut bytes = std::fs::read(seg).expect("read");
    let start = used as usize;
    for b in &mut bytes[start + third / 2..] {
        *b = 0;
    }
    std::fs::write(seg, &bytes).expect("write");
    let store = open(dir.path(), &config);
    let dropped = store.recovery().torn_bytes_dropped;
    assert!(dropped > 0 && dropped <= (third / 2) as u64, "{dropped}");
    assert_eq!(store.log_end_offset(), 2);
    assert_eq!(visible(&store, b"c", 2), None);
    assert_eq!(visible(&store, b"b", 2).as_deref(), Some(&b"22"[..]));
}

#[test]
fn preallocated_space_is_written_zeros_not_a_hole() {
    // Space set aside as a hole gets its blocks from the fsync that first covers it: the zeros
    // are written when the space is set aside instead. (A file system that stores written zeros
    // as holes, such as one compressing them, would fail this; ext4, xfs and tmpfs do not.)
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig {
        segment_bytes: 8 << 20,
        ..small_config()
    };
    let store = open(dir.path(), &config);
    store.append(&put_at("a", "1", 1)).expect("put");
    let seg = &segment_files(dir.path())[0];
    let meta = std::fs::metadata(seg).expect("meta");
    assert!(
        meta.len() >= 1 << 20,
        "a chunk is set aside: {} bytes",
        meta.len()
    );
    assert!(
        meta.blocks() * 512 >= meta.len(),
        "{} bytes allocated of {}",
        meta.blocks() * 512,
        meta.len()
    );
    assert_eq!(visible(&store, b"a", 2).as_deref(), Some(&b"1"[..]));
}

/// A disk too full for a chunk of zeros still takes records: the space is set aside as a hole,
/// as before the zeros, and a restart finds every record in it.
#[cfg(feature = "failpoints")]
#[test]
fn appends_go_in_over_a_hole_when_no_chunk_of_zeros_fits() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig {
        segment_bytes: 8 << 20,
        ..small_config()
    };
    let value = "v".repeat(60 << 10);
    {
        let store = open(dir.path(), &config);
        store.refuse_zero_fill(true);
        // 40 values of 60 KiB: past the first 1 MiB chunk and into the third.
        for i in 0..40u64 {
            store
                .append(&put_at(&format!("k{i}"), &value, i + 1))
                .expect("an append over a hole");
        }
        let seg = &segment_files(dir.path())[0];
        let meta = std::fs::metadata(seg).expect("meta");
        assert!(
            meta.len() >= 3 << 20,
            "space set aside: {} bytes",
            meta.len()
        );
        assert!(
            meta.blocks() * 512 < meta.len(),
            "the space past the records is a hole ({} of {} bytes allocated): the fallback ran",
            meta.blocks() * 512,
            meta.len()
        );
        store.sync().expect("sync");
    }
    let store = open(dir.path(), &config);
    assert_eq!(store.log_end_offset(), 40);
    assert_eq!(store.recovery().torn_bytes_dropped, 0);
    for i in 0..40u64 {
        assert_eq!(
            visible(&store, format!("k{i}").as_bytes(), 100).as_deref(),
            Some(value.as_bytes()),
            "k{i} after a restart"
        );
    }
    store
        .append(&put_at("after", "1", 41))
        .expect("append after the restart");
    assert_eq!(visible(&store, b"after", 100).as_deref(), Some(&b"1"[..]));
}

#[test]
fn garbage_after_the_last_record_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    {
        let store = open(dir.path(), &config);
        store.append(&put_at("a", "1", 1)).expect("put");
    }
    let seg = &segment_files(dir.path())[0];
    let good = put_at("a", "1", 1).encoded_len();
    let mut bytes = std::fs::read(seg).expect("read");
    bytes.truncate(good);
    bytes.extend_from_slice(&[0xAB; 100]);
    std::fs::write(seg, &bytes).expect("write");
    let store = open(dir.path(), &config);
    assert_eq!(store.recovery().torn_bytes_dropped, 100);
    assert_eq!(std::fs::metadata(seg).expect("meta").len(), good as u64);
    assert_eq!(visible(&store, b"a", 2).as_deref(), Some(&b"1"[..]));
}

/// Fills several segments; returns the first segment's path and the position of its second record.
fn fill_sealed(dir: &std::path::Path) -> (std::path::PathBuf, u64) {
    let store = open(dir, &small_config());
    let mut second = 0;
    for i in 0..200 {
        let w = put_at(&format!("key-{i:03}"), &"v".repeat(50), 1);
        if i == 0 {
            second = w.encoded_len() as u64;
        }
        store.append(&w).expect("put");
    }
    assert!(segment_files(dir).len() > 2, "several segments");
    (segment_files(dir)[0].clone(), second)
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_without_hint_stops_startup_naming_file_and_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (seg, second) = fill_sealed(dir.path());
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[second as usize + 50] ^= 0x01;
    std::fs::write(&seg, &bytes).expect("write");
    std::fs::remove_file(seg.with_extension("hint")).expect("remove hint");

    let err = Store::open(dir.path(), small_config()).expect_err("must refuse");
    let msg = err.to_string();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{msg}");
    assert!(
        msg.contains(&seg.file_name().expect("name").to_string_lossy().to_string()),
        "{msg}"
    );
    assert!(msg.contains(&format!("byte {second}")), "{msg}");
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_with_hint_fails_the_read_of_that_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (seg, second) = fill_sealed(dir.path());
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[second as usize + 50] ^= 0x01;
    std::fs::write(&seg, &bytes).expect("write");

    let store = open(dir.path(), &small_config());
    let err = store.get(b"key-001").expect_err("corrupt record");
    let msg = err.to_string();
    assert!(msg.contains(&format!("byte {second}")), "{msg}");
    assert!(
        store.read_from(0, 1 << 20).is_err(),
        "replication must not ship bad bytes"
    );
    // Other keys are fine.
    assert!(store.get(b"key-000").expect("get").value().is_some());
    assert!(store.get(b"key-150").expect("get").value().is_some());
}

#[test]
fn reopen_loads_hints_and_scans_only_the_active_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill_sealed(dir.path());
    let segments = segment_files(dir.path()).len();
    let store = open(dir.path(), &small_config());
    let r = store.recovery();
    assert_eq!(r.segments, segments);
    assert_eq!(r.hints_used, segments - 1);
    assert_eq!(r.segments_scanned, 1);
    for i in 0..200 {
        assert!(
            visible(&store, format!("key-{i:03}").as_bytes(), 2).is_some(),
            "key-{i:03}"
        );
    }
}

/// A store with overwrites, deletes and expiries spread over sealed segments.
fn merge_template(dir: &std::path::Path) -> (u64, Vec<(String, Option<String>)>) {
    let store = open(dir, &small_config());
    let now = 10_000;
    let mut expect = std::collections::BTreeMap::new();
    for round in 0..4 {
        for k in 0..30 {
            let key = format!("k{k:02}");
            let value = format!("r{round}-{}", "x".repeat(40));
            let w = put_at(&key, &value, now - 5000);
            store.append(&w).expect("put");
            expect.insert(key, Some(value));
        }
    }
    for k in (0..30).step_by(3) {
        let key = format!("k{k:02}");
        store
            .append(&Write::delete(key.clone()).with_timestamp(now - 5000))
            .expect("delete");
        expect.insert(key, None);
    }
    for k in (1..30).step_by(5) {
        let key = format!("k{k:02}");
        let w = put_at(&key, "short-lived", now - 5000).with_expiry(now - 1);
        store.append(&w).expect("put");
        expect.insert(key, None);
    }
    // Enough later writes that the records above are in sealed segments.
    for i in 0..40 {
        store
            .append(&put_at(&format!("z{i:02}"), &"y".repeat(60), now))
            .expect("put");
        expect.insert(format!("z{i:02}"), Some("y".repeat(60)));
    }
    (store.log_end_offset(), expect.into_iter().collect())
}

fn check_state(store: &Store, expect: &[(String, Option<String>)], when: &str) {
    for (k, v) in expect {
        let got = visible(store, k.as_bytes(), 10_000).map(|v| String::from_utf8(v).expect("utf8"));
        assert_eq!(&got, v, "{when}: key {k}");
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn a_merge_cut_short_after_any_step_leaves_the_old_or_the_new_set_whole() {
    let template = tempfile::tempdir().expect("tempdir");
    let (leo, expect) = merge_template(template.path());
    let mut finished = false;
    for crash_after in 1..200 {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(template.path(), dir.path());
        let store = open(dir.path(), &small_config());
        let outcome = store.merge_crashing_after(leo, 10_000, crash_after);
        drop(store);
        let store = open(dir.path(), &small_config());
        let when = format!("crash after step {crash_after}");
        check_state(&store, &expect, &when);
        assert_eq!(store.log_end_offset(), leo, "{when}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".merge") || n == "merge.commit")
            .collect();
        assert!(leftovers.is_empty(), "{when}: {leftovers:?}");
        // Every record is still readable for replication.
        let mut at = 0;
        while let Some(raw) = store.read_from(at, 4096).expect("read_from") {
            at = raw.last_offset + 1;
        }
        if outcome.is_ok() {
            finished = true;
            let merged_bytes: u64 = segment_files(dir.path())
                .iter()
                .map(|p| std::fs::metadata(p).expect("meta").len())
                .sum();
            let original: u64 = segment_files(template.path())
                .iter()
                .map(|p| std::fs::metadata(p).expect("meta").len())
                .sum();
            assert!(merged_bytes < original, "merge shrank the log");
            break;
        }
    }
    assert!(finished, "the merge completed for some crash point");
}

#[test]
fn merge_keeps_offsets_and_records_the_tombstone_horizon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (leo, expect) = merge_template(dir.path());
    let store = open(dir.path(), &small_config());
    let report = store
        .merge_at(leo, 10_000)
        .expect("merge")
        .expect("something merged");
    assert!(report.records_kept < report.records_in);
    assert!(report.tombstone_horizon > 0, "old tombstones were dropped");
    assert_eq!(store.tombstone_horizon(), report.tombstone_horizon);
    check_state(&store, &expect, "after merge");
    drop(store);
    let store = open(dir.path(), &small_config());
    assert_eq!(store.tombstone_horizon(), report.tombstone_horizon);
    check_state(&store, &expect, "after merge and reopen");
    // Offsets survive: k02's last put was the round-3 record, at offset 3*30 + 2.
    match store.get_at(b"k02", 10_000).expect("get") {
        Lookup::Found { offset, .. } => assert_eq!(offset, 92),
        other => panic!("k02: {other:?}"),
    }
}

#[test]
fn merge_while_writes_and_reads_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), &small_config());
    for i in 0..400 {
        store
            .append(&put_at(&format!("k{}", i % 50), &format!("v{i}"), 1))
            .expect("put");
    }
    let hw = store.log_end_offset();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 400..1400 {
                store
                    .append(&put_at(&format!("k{}", i % 50), &format!("v{i}"), 1))
                    .expect("put");
            }
        })
    };
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..2000 {
                let k = format!("k{}", i % 50);
                assert!(
                    store.get(k.as_bytes()).expect("get").value().is_some(),
                    "{k}"
                );
            }
        })
    };
    store.merge(hw).expect("merge");
    writer.join().expect("writer");
    reader.join().expect("reader");
    for k in 0..50 {
        let last = (1350..1400).find(|i| i % 50 == k).expect("exists");
        assert_eq!(
            visible(&store, format!("k{k}").as_bytes(), 2),
            Some(format!("v{last}").into_bytes())
        );
    }
}

#[test]
fn truncate_restores_older_versions_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let store = open(dir.path(), &config);
    for i in 0..100 {
        store
            .append(&put_at(&format!("k{}", i % 10), &format!("v{i}"), 1))
            .expect("put");
    }
    store
        .append(&Write::delete("k3").with_timestamp(1))
        .expect("delete");
    store.append(&put_at("new", "n", 1)).expect("put");
    let segments_before = segment_files(dir.path()).len();
    assert!(segments_before > 1);

    let removed = store.truncate(55).expect("truncate");
    assert_eq!(removed, 102 - 55);
    assert_eq!(store.log_end_offset(), 55);
    let check = |store: &Store| {
        for k in 0..10 {
            // Latest surviving write of k is the largest i < 55 with i % 10 == k.
            let i = (0..55).rev().find(|i| i % 10 == k).expect("exists");
            assert_eq!(
                visible(store, format!("k{k}").as_bytes(), 2),
                Some(format!("v{i}").into_bytes())
            );
        }
        assert_eq!(visible(store, b"new", 2), None);
    };
    check(&store);
    assert_eq!(store.append(&put_at("after", "a", 1)).expect("put"), 55);
    drop(store);
    let store = open(dir.path(), &config);
    check(&store);
    assert_eq!(store.log_end_offset(), 56);
    assert_eq!(visible(&store, b"after", 2).as_deref(), Some(&b"a"[..]));
    // Truncating to zero empties the log.
    store.truncate(0).expect("truncate");
    assert_eq!(store.log_end_offset(), 0);
    assert_eq!(visible(&store, b"k1", 2), None);
    drop(store);
    let store = open(dir.path(), &config);
    assert_eq!(store.log_end_offset(), 0);
    assert_eq!(visible(&store, b"k1", 2), None);
}

/// A 1,500-byte value: two fill a `small_config` segment.
fn big() -> bytes::Bytes {
    bytes::Bytes::from(vec![b'v'; 1500])
}

/// A store holding "a" and "b" in its first segment whose rotation to the next failed: the next
/// segment's file name (returned) is taken by a directory.
fn a_failed_rotation(
    dir: &std::path::Path,
    config: &simplekv::storage::StoreConfig,
) -> (Store, std::path::PathBuf) {
    let store = open(dir, config);
    store.append(&Write::put("a", big())).expect("a");
    store.append(&Write::put("b", big())).expect("b");
    let squat = dir.join(format!("{:020}.log", 2));
    std::fs::create_dir(&squat).expect("squat");
    store
        .append(&Write::put("c", big()))
        .expect_err("the rotation fails");
    (store, squat)
}

#[test]
fn a_rotation_that_failed_and_was_retried_keeps_the_sealed_segments_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let (store, squat) = a_failed_rotation(dir.path(), &config);
    std::fs::remove_dir(&squat).expect("unsquat");
    store
        .append(&Write::put("c", big()))
        .expect("the retried rotation");
    drop(store);
    let store = open(dir.path(), &config);
    for key in [&b"a"[..], b"b", b"c"] {
        assert!(
            visible(&store, key, 0).is_some(),
            "{} lost after reopen",
            String::from_utf8_lossy(key)
        );
    }
}

/// A store whose rotation failed after creating the next segment's (empty) file, as a failed
/// directory sync leaves it, and which then wrote on into the old segment up to that file's
/// base offset and beyond.
fn failed_rotation_leaving_the_next_file(dir: &std::path::Path, small_value: usize) -> Store {
    let config = simplekv::storage::StoreConfig {
        fsync: simplekv::storage::FsyncPolicy::Interval,
        ..small_config()
    };
    let (store, next) = a_failed_rotation(dir, &config);
    std::fs::remove_dir(&next).expect("unsquat");
    std::fs::File::create(&next).expect("the next segment, empty");
    let value = bytes::Bytes::from(vec![b'd'; small_value]);
    assert_eq!(store.append(&Write::put("d", value)).expect("d"), 2);
    store
}

#[test]
fn an_empty_segment_left_by_a_failed_rotation_is_dropped_at_open() {
    for small_value in [1, 970] {
        // 970: the old segment then ends exactly at its size, with no preallocated zeros.
        let dir = tempfile::tempdir().expect("tempdir");
        drop(failed_rotation_leaving_the_next_file(
            dir.path(),
            small_value,
        ));
        let store = open(dir.path(), &small_config());
        assert_eq!(
            store.log_end_offset(),
            3,
            "value of {small_value} bytes: offset 2 is in the old segment already"
        );
        assert!(visible(&store, b"d", 0).is_some());
        assert!(!dir.path().join(format!("{:020}.log", 2)).exists());
    }
}

#[test]
fn an_empty_active_segment_after_a_good_rotation_keeps_the_log_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let store = open(dir.path(), &config);
    for k in ["a", "b", "c"] {
        store.append(&Write::put(k, big())).expect("put");
    }
    // Truncating to the last segment's base leaves it empty: a real, empty active segment.
    store
        .truncate(2)
        .expect("truncate to the last segment's base");
    drop(store);
    let store = open(dir.path(), &config);
    assert_eq!(store.log_end_offset(), 2);
}

#[test]
fn records_written_under_larger_limits_survive_a_reopen_with_smaller_ones() {
    // An operator lowers max_value_bytes and max_key_bytes and restarts: what was written under
    // the old limits is data, not a torn tail (the active segment) or corruption (a sealed one).
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let big = "v".repeat(1500);
    let long_key = "k".repeat(300);
    {
        let store = open(dir.path(), &config);
        for i in 0..12 {
            store
                .append(&put_at(&format!("big-{i:02}"), &big, 1))
                .expect("put");
        }
        store.append(&put_at(&long_key, "short", 1)).expect("put");
        store
            .append(&put_at("after", "the last write", 1))
            .expect("put");
        store.sync().expect("sync");
    }
    assert!(segment_files(dir.path()).len() > 1, "some segments sealed");
    // Hints or not: the sealed segments are read both ways.
    for hints in [true, false] {
        if !hints {
            for entry in std::fs::read_dir(dir.path()).expect("dir").flatten() {
                if entry.path().extension().is_some_and(|e| e == "hint") {
                    std::fs::remove_file(entry.path()).expect("remove hint");
                }
            }
        }
        let smaller = simplekv::storage::StoreConfig {
            max_value_bytes: 100,
            max_key_bytes: 64,
            ..small_config()
        };
        let store = open(dir.path(), &smaller);
        assert_eq!(store.recovery().torn_bytes_dropped, 0, "hints {hints}");
        for i in 0..12 {
            let key = format!("big-{i:02}");
            assert_eq!(
                visible(&store, key.as_bytes(), 2).as_deref(),
                Some(big.as_bytes()),
                "{key}, hints {hints}"
            );
        }
        assert_eq!(
            visible(&store, long_key.as_bytes(), 2).as_deref(),
            Some(&b"short"[..])
        );
        assert_eq!(
            visible(&store, b"after", 2).as_deref(),
            Some(&b"the last write"[..])
        );
        // Replication reads them too, and new writes still obey the new limits.
        let raw = store.read_from(0, 1 << 20).expect("read").expect("records");
        assert!(raw.count > 0);
        assert!(matches!(
            store.append(&put_at("new", &big, 1)),
            Err(StorageError::ValueTooLarge { .. })
        ));
    }
}

#[test]
fn a_damaged_length_is_reported_by_a_replication_read_not_taken_for_the_log_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), &small_config());
    for i in 0..20 {
        store
            .append(&put_at(&format!("k{i:02}"), "v", 1))
            .expect("put");
    }
    // The first record's value length (the header's last four bytes) now claims 100,000 bytes:
    // past the segment, within what any store may hold.
    overwrite(
        &segment_files(dir.path())[0],
        (HEADER_LEN - 4) as u64,
        &100_000u32.to_le_bytes(),
    );
    // Skipping over it to reach offset 10 would run off the segment: before, that read as "no
    // records" and a follower fetching there waited for ever.
    assert!(
        matches!(store.read_from(10, 1024), Err(StorageError::Corrupt { .. })),
        "{:?}",
        store.read_from(10, 1024).map(|r| r.map(|r| r.count))
    );
    // Reading it whole is refused before the claimed length is read.
    assert!(matches!(
        store.read_from(0, 1024),
        Err(StorageError::Corrupt { .. })
    ));
}

#[test]
fn a_truncation_over_damage_refuses_before_it_removes_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), &small_config());
    for i in 0..400 {
        store
            .append(&put_at(&format!("k{i:03}"), "value", 1))
            .expect("put");
    }
    let segments = segment_files(dir.path());
    assert!(segments.len() > 3, "several segments");
    // Cut inside the third segment, whose first record is damaged on disk (a value byte: its CRC
    // no longer matches); the segments after it would go whole.
    let cut_segment = &segments[2];
    let base: u64 = cut_segment
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("a segment is named by its base offset");
    // Every key here is four bytes: the value starts right after them.
    overwrite(cut_segment, (HEADER_LEN + 4) as u64, b"X");
    assert!(matches!(
        store.truncate(base + 5),
        Err(StorageError::Corrupt { .. })
    ));
    assert_eq!(store.log_end_offset(), 400, "nothing was cut");
    assert_eq!(
        segment_files(dir.path()),
        segments,
        "no segment was removed"
    );
    assert_eq!(visible(&store, b"k399", 2).as_deref(), Some(&b"value"[..]));
}
