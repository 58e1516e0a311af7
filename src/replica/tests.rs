//! The replica's protocol rules on a real log in a temporary directory, with no network: what
//! survives a reopen, which epochs it refuses, and the maximal ISR as the leader applies it.

use super::*;
use crate::storage::Write;
use crate::storage::checkpoint::LeaderEpochCache;
use std::collections::BTreeMap;

fn config() -> ReplicaConfig {
    ReplicaConfig {
        broker_id: 1,
        partition: 0,
        replicas: vec![1, 2, 3],
        min_insync_replicas: 1,
        replica_lag_time_max: Duration::from_secs(10),
        request_timeout: Duration::from_millis(200),
    }
}

fn open(dir: &Path) -> Arc<Replica> {
    Replica::open(
        dir,
        StoreConfig::default(),
        config(),
        Arc::new(Lease::new()),
        EventSink::log_only(),
    )
    .expect("open")
}

fn epochs(pairs: &[(u32, i64)]) -> BTreeMap<u32, i64> {
    pairs.iter().copied().collect()
}

#[test]
fn the_epoch_cache_is_trimmed_to_the_recovered_log() {
    // A power loss under fsync interval: the checkpoint (synced at every epoch change) names
    // epochs 3 and 5 whose records never reached the disk.
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path(), StoreConfig::default()).expect("store");
        for i in 0..4u8 {
            store
                .append(&Write::put(vec![b'k', i], &b"v"[..]).with_epoch(1))
                .expect("append");
        }
        store.sync().expect("sync");
        let mut cache = LeaderEpochCache::open(dir.path()).expect("cache");
        cache.assign(1, 0).expect("assign");
        cache.assign(3, 4).expect("assign");
        cache.assign(5, 9).expect("assign");
    }
    let r = open(dir.path());
    assert_eq!(
        r.snapshot().last_epoch,
        Some(1),
        "elections must see epoch 1, not 5"
    );
    assert!(
        r.become_leader(2, vec![1], epochs(&[(1, 7)]), 0),
        "the next epoch is not refused"
    );
}

#[tokio::test]
async fn a_replica_refuses_to_lead_in_an_epoch_older_than_its_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = open(dir.path());
    assert!(r.become_follower(2, 4));
    let generation = r.follow_target().expect("follows").generation;
    let mut fetched = Vec::new();
    crate::storage::record::encode_into(
        &mut fetched,
        0,
        &Write::put(&b"k"[..], &b"v"[..]).with_epoch(4),
    );
    r.append_fetched(generation, &fetched, 0, 0)
        .await
        .expect("append");
    assert_eq!(r.snapshot().last_epoch, Some(4));
    // Told (by a stale state) to lead in epoch 3: its log already holds epoch 4.
    let r2 = {
        drop(r);
        open(dir.path())
    };
    assert!(!r2.become_leader(3, vec![1], epochs(&[(1, 7)]), 0));
    assert_eq!(r2.snapshot().role, Role::Offline);
}

#[test]
fn a_joining_follower_counts_in_the_hw_while_its_isr_change_is_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = open(dir.path());
    // Leader in epoch 0 with ISR [1, 2]; 3 is outside.
    assert!(r.become_leader(0, vec![1, 2], epochs(&[(1, 10), (2, 20)]), 0));
    for i in 0..10u8 {
        let st = r.lock();
        r.log
            .append(&Write::put(vec![i], &b"v"[..]).with_epoch(0))
            .expect("append");
        drop(st);
    }
    let now = Instant::now();
    {
        let mut st = r.lock();
        let p2 = st.followers.get_mut(&2).expect("2");
        p2.leo = Some(10);
        p2.broker_epoch = Some(20);
        p2.last_caught_up = now;
        let p3 = st.followers.get_mut(&3).expect("3");
        p3.leo = Some(4);
        p3.broker_epoch = Some(30);
        p3.last_caught_up = now;
        st.hw = 4;
    }
    let proposal = r
        .propose_isr_change()
        .expect("3 is caught up to the HW: it may join");
    assert_eq!(proposal.isr, vec![1, 2, 3]);
    assert_eq!(proposal.broker_epochs, epochs(&[(1, 10), (2, 20), (3, 30)]));
    {
        let mut st = r.lock();
        r.maybe_advance_hw(&mut st);
        assert_eq!(
            st.hw, 4,
            "while ZooKeeper is being told, the HW waits for 3"
        );
    }
    r.isr_change_committed(&proposal, 1);
    assert_eq!(r.snapshot().isr, vec![1, 2, 3]);
    assert_eq!(r.high_watermark(), 4);
}
