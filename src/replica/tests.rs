//! The replica's protocol rules on a real log in a temporary directory, with no network: what
//! survives a reopen, which epochs it refuses, and the maximal ISR as the leader applies it.

use super::*;
use crate::replica::leader::FetchRequest;
use crate::storage::Write;
use crate::storage::checkpoint::LeaderEpochCache;
use bytes::Bytes;
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

fn members(isr: &[u32], pairs: &[(u32, i64)]) -> Membership {
    Membership {
        isr: isr.to_vec(),
        eligible: Vec::new(),
        broker_epochs: epochs(pairs),
    }
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
        r.become_leader(2, members(&[1], &[(1, 7)]), 0),
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
    let leader = LeaderView {
        high_watermark: 0,
        log_end_offset: 1,
        tombstone_horizon: 0,
        horizon_generation: 0,
        epochs: &[],
    };
    r.append_fetched(generation, &fetched, &leader)
        .await
        .expect("append");
    assert_eq!(r.snapshot().last_epoch, Some(4));
    // Told (by a stale state) to lead in epoch 3: its log already holds epoch 4.
    let r2 = {
        drop(r);
        open(dir.path())
    };
    assert!(!r2.become_leader(3, members(&[1], &[(1, 7)]), 0));
    assert_eq!(r2.snapshot().role, Role::Offline);
}

#[test]
fn a_joining_follower_counts_in_the_hw_while_its_isr_change_is_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = open(dir.path());
    // Leader in epoch 0 with ISR [1, 2]; 3 is outside.
    assert!(r.become_leader(0, members(&[1, 2], &[(1, 10), (2, 20)]), 0));
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
    assert_eq!(proposal.members.isr, vec![1, 2, 3]);
    assert_eq!(
        proposal.members.broker_epochs,
        epochs(&[(1, 10), (2, 20), (3, 30)])
    );
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

/// Replicas driven by hand, as the fetcher drives them, with small segments so merges happen.
mod by_hand {
    use super::*;

    pub fn replica(dir: &Path, id: u32, retention_ms: u64) -> Arc<Replica> {
        let lease = Arc::new(Lease::new());
        lease.extend_to(Instant::now() + Duration::from_secs(3600));
        let store = StoreConfig {
            segment_bytes: 4096,
            tombstone_retention_ms: retention_ms,
            ..StoreConfig::default()
        };
        let cfg = ReplicaConfig {
            broker_id: id,
            replicas: vec![1, 2, 3],
            ..config()
        };
        Replica::open(dir, store, cfg, lease, EventSink::log_only()).expect("open")
    }

    pub fn lead(r: &Replica, epoch: u32) {
        let me = r.config().broker_id;
        assert!(r.become_leader(epoch, members(&[me], &[(me, 1)]), 0));
    }

    pub async fn put(r: &Replica, k: &str, v: &str) -> u64 {
        let w = Write::put(Bytes::from(k.to_string()), Bytes::from(v.to_string()));
        r.write(w, Acks::One).await.expect("write")
    }

    /// One fetch of follower `f` from `leader`; true if it brought records.
    pub async fn fetch_once(f: &Replica, leader: &Replica) -> bool {
        let t = f.follow_target().expect("follower");
        let reply = leader
            .fetch(FetchRequest {
                follower: f.config().broker_id,
                broker_epoch: 7,
                offset: f.log().log_end_offset(),
                epoch: t.epoch,
                horizon_generation: f.horizon_generation(),
                max_bytes: 1 << 20,
                max_wait: Duration::ZERO,
            })
            .await
            .expect("fetch");
        if reply.truncate_to_empty {
            f.truncate_to_empty(
                t.generation,
                reply.tombstone_horizon,
                reply.horizon_generation,
            )
            .expect("empty");
            return true;
        }
        f.append_fetched(t.generation, &reply.records, &reply.leader())
            .await
            .expect("append");
        !reply.records.is_empty()
    }

    pub fn follow(f: &Replica, leader: &Replica, epoch: u32) {
        assert!(f.become_follower(leader.config().broker_id, epoch));
        let t = f.follow_target().expect("follower");
        let requested = f.latest_epoch();
        let answer = match requested {
            Some(e) => leader.offset_for_epoch(e, epoch).expect("epoch answer"),
            None => EpochAnswer::Undefined,
        };
        f.truncate_to_leader(requested, answer, t.generation)
            .expect("truncate");
    }

    /// Broker 1 leading epoch 1 with ISR [1, 2], broker 2 following it (handover tests).
    pub fn handover_pair() -> ([tempfile::TempDir; 2], Arc<Replica>, Arc<Replica>) {
        let dirs = [
            tempfile::tempdir().expect("d1"),
            tempfile::tempdir().expect("d2"),
        ];
        let l = replica(dirs[0].path(), 1, 0);
        let f = replica(dirs[1].path(), 2, 0);
        assert!(l.become_leader(1, members(&[1, 2], &[(1, 1), (2, 7)]), 0));
        follow(&f, &l, 1);
        (dirs, l, f)
    }

    pub fn value(r: &Replica, k: &str) -> Option<Bytes> {
        r.log().get(k.as_bytes()).expect("get").value().cloned()
    }
}

#[tokio::test]
async fn a_follower_cut_below_its_adopted_horizon_is_emptied_and_keeps_the_delete() {
    // The reviewer's power loss: a follower adopted the horizon, then lost its unsynced tail
    // (the horizon checkpoint had been synced). It must not keep a key the leader merged away.
    use by_hand::*;
    let (d1, d2) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let l = replica(d1.path(), 1, 0);
    lead(&l, 1);
    let f = replica(d2.path(), 2, 0);
    follow(&f, &l, 1);
    put(&l, "k", "alive").await;
    for i in 0..20 {
        put(&l, &format!("a{i}"), &"x".repeat(200)).await;
    }
    let del = l
        .write(Write::delete(&b"k"[..]), Acks::One)
        .await
        .expect("del");
    for i in 0..60 {
        put(&l, &format!("b{i}"), &"x".repeat(200)).await;
    }
    while fetch_once(&f, &l).await {}
    fetch_once(&f, &l).await; // carries the HW
    l.log()
        .merge_at(l.high_watermark(), crate::storage::now_ms())
        .expect("merge");
    assert!(l.log().tombstone_horizon() >= del);
    fetch_once(&f, &l).await; // adopts the horizon
    assert_eq!(f.log().tombstone_horizon(), l.log().tombstone_horizon());
    // Power loss: the log is cut below the delete; the checkpoints survive.
    f.log().truncate(del - 5).expect("cut");
    drop(f);
    let f = replica(d2.path(), 2, 0);
    assert_eq!(
        value(&f, "k").as_deref(),
        Some(&b"alive"[..]),
        "the cut log holds the put"
    );
    follow(&f, &l, 1);
    while fetch_once(&f, &l).await {}
    assert_eq!(f.log().log_end_offset(), l.log().log_end_offset());
    assert_eq!(value(&f, "k"), None, "the delete stands on the follower");
}

#[test]
fn an_isr_change_settled_by_a_newer_state_applies_it_as_the_pending_change_ends() {
    // The reviewer's case 4: the change adding 3 landed (its answer lost) and the controller
    // then shrank 2 out. The read-back finds {1, 3}: the HW must keep counting 3 throughout.
    let dir = tempfile::tempdir().expect("tempdir");
    let r = open(dir.path());
    assert!(r.become_leader(0, members(&[1, 2], &[(1, 10), (2, 20)]), 0));
    for i in 0..10u8 {
        let _st = r.lock();
        r.log
            .append(&Write::put(vec![i], &b"v"[..]).with_epoch(0))
            .expect("append");
    }
    let now = Instant::now();
    {
        let mut st = r.lock();
        for (id, leo, epoch) in [(2, 10, 20), (3, 4, 30)] {
            let p = st.followers.get_mut(&id).expect("follower");
            (p.leo, p.broker_epoch, p.last_caught_up) = (Some(leo), Some(epoch), now);
        }
        st.hw = 4;
    }
    let proposal = r.propose_isr_change().expect("3 may join");
    assert_eq!(proposal.members.isr, vec![1, 2, 3]);
    r.isr_change_superseded(0, members(&[1, 3], &[(1, 10), (3, 30)]), 2);
    assert_eq!(r.snapshot().isr, vec![1, 3]);
    assert_eq!(r.high_watermark(), 4, "3 (at 4) still holds the HW back");
    // A newer leader epoch in the read-back: this leader stops at once.
    r.isr_change_superseded(1, members(&[2], &[(2, 20)]), 3);
    assert_eq!(r.snapshot().role, Role::Offline);
    assert!(r.snapshot().fenced);
}

#[tokio::test]
async fn an_epoch_cache_copied_from_a_merged_log_keeps_the_true_epoch_starts() {
    // The reviewer's case 3. F leads epoch 1 and writes 0..33; B copies 0..29. B leads epoch 2,
    // writes 30..33, overwrites them and merges them away. N, a replaced disk, copies B's merged
    // log: epoch 2 must start at 30 in its cache, not at its first surviving record. N leads
    // epoch 3; F returns and must cut its uncommitted 30..33.
    use by_hand::*;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let f = replica(dirs[0].path(), 1, 60_000);
    let b = replica(dirs[1].path(), 2, 60_000);
    lead(&f, 1);
    for i in 0..30 {
        put(&f, &format!("base{i}"), "v").await;
    }
    follow(&b, &f, 1);
    while fetch_once(&b, &f).await {}
    for i in 0..4 {
        put(&f, &format!("K{i}"), "uncommitted").await;
    }
    lead(&b, 2);
    for round in ["first", "second"] {
        for i in 0..4 {
            put(&b, &format!("X{i}"), round).await;
        }
    }
    for i in 0..60 {
        put(&b, &format!("fill{i}"), &"y".repeat(200)).await;
    }
    let hw = b.log().log_end_offset();
    b.lock().hw = hw;
    b.log()
        .merge_at(hw, crate::storage::now_ms())
        .expect("merge");
    assert!(b.log().get(b"X0").expect("get").offset() > Some(33));
    let n = replica(dirs[2].path(), 3, 60_000);
    follow(&n, &b, 2);
    while fetch_once(&n, &b).await {}
    let epoch2 = n
        .lock_epochs()
        .entries()
        .iter()
        .find(|e| e.epoch == 2)
        .copied();
    assert_eq!(
        epoch2.map(|e| e.start_offset),
        Some(30),
        "the true start of epoch 2"
    );
    lead(&n, 3);
    follow(&f, &n, 3);
    assert_eq!(
        f.log().log_end_offset(),
        30,
        "F cut its never-committed 30..33"
    );
    while fetch_once(&f, &n).await {}
    assert_eq!(value(&f, "K0"), value(&n, "K0"), "the replicas agree");
    assert_eq!(value(&f, "K0"), None);
}

#[tokio::test]
async fn a_replica_cut_below_its_merged_prefix_copies_the_new_leader_whole() {
    // The second review's f3: l merged away j=a (keeping j=b); f lost its tail from j=b on (a
    // power loss) and leads. A plain truncation of l cannot bring j=a back: l must empty itself
    // and copy f, or the two serve different values for ever.
    use by_hand::*;
    let (d1, d2) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let l = replica(d1.path(), 1, 60_000);
    lead(&l, 1);
    let f = replica(d2.path(), 2, 60_000);
    follow(&f, &l, 1);
    put(&l, "j", "a").await;
    for i in 0..40 {
        put(&l, &format!("a{i}"), &"x".repeat(200)).await;
    }
    let jb = put(&l, "j", "b").await;
    for i in 0..60 {
        put(&l, &format!("b{i}"), &"x".repeat(200)).await;
    }
    while fetch_once(&f, &l).await {}
    fetch_once(&f, &l).await;
    l.log()
        .merge_at(l.high_watermark(), crate::storage::now_ms())
        .expect("merge");
    f.log().truncate(jb).expect("cut");
    lead(&f, 2);
    follow(&l, &f, 2);
    while fetch_once(&l, &f).await {}
    assert_eq!(value(&f, "j").as_deref(), Some(&b"a"[..]));
    assert_eq!(
        value(&l, "j"),
        value(&f, "j"),
        "the replicas serve the same value"
    );
}

#[tokio::test]
async fn a_replaced_disk_or_a_lost_committed_tail_stays_incomplete_until_copied_back() {
    use by_hand::*;
    let (d1, d2) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let l = replica(d1.path(), 1, 60_000);
    lead(&l, 1);
    for i in 0..50 {
        put(&l, &format!("k{i}"), "v").await;
    }
    // A replica on a directory that did not exist: a replaced disk.
    let fdir = d2.path().join("partition-0");
    let f = replica(&fdir, 2, 60_000);
    assert!(f.incomplete());
    follow(&f, &l, 1);
    let t = f.follow_target().expect("follows");
    let half = l
        .fetch(FetchRequest {
            follower: 2,
            broker_epoch: 7,
            offset: 0,
            epoch: 1,
            horizon_generation: 0,
            max_bytes: 600,
            max_wait: Duration::ZERO,
        })
        .await
        .expect("fetch");
    f.append_fetched(t.generation, &half.records, &half.leader())
        .await
        .expect("append");
    assert!(f.log().log_end_offset() < 50);
    drop(f);
    // Restarted half-way (the second review's double fault): still incomplete.
    let f = replica(&fdir, 2, 60_000);
    assert!(f.incomplete(), "the marker outlives a restart");
    follow(&f, &l, 1);
    while fetch_once(&f, &l).await {}
    assert!(!f.incomplete(), "caught up with the leader's log end");
    f.checkpoint_hw().expect("checkpoint");
    let hw = f.high_watermark();
    assert!(hw > 10);
    // A power loss below the checkpointed HW: incomplete again.
    f.log().truncate(10).expect("cut");
    drop(f);
    let f = replica(&fdir, 2, 60_000);
    assert!(f.incomplete(), "it lost committed records");
}

#[test]
fn a_log_open_when_the_machine_lost_power_is_incomplete_but_a_crash_is_not() {
    // The third review's F1: a power loss can cut records synced after the last HW checkpoint,
    // which the checkpoint cannot reveal. The running file's boot id can.
    let dir = tempfile::tempdir().expect("dir");
    let pdir = dir.path().join("partition-0");
    let r = by_hand::replica(&pdir, 1, 60_000);
    r.close().expect("close");
    drop(r);
    let r = by_hand::replica(&pdir, 1, 60_000);
    by_hand::lead(&r, 0);
    assert!(!r.incomplete(), "it became leader");
    drop(r); // a crash: no close, same boot
    let r = by_hand::replica(&pdir, 1, 60_000);
    assert!(!r.incomplete(), "a process crash keeps the page cache");
    drop(r);
    std::fs::write(pdir.join(RUNNING_FILE), "another-boot\n").expect("write");
    let r = by_hand::replica(&pdir, 1, 60_000);
    assert!(
        r.incomplete(),
        "opened by an earlier boot: the machine lost power"
    );
}

#[tokio::test]
async fn an_emptied_follower_is_incomplete_until_it_has_copied_the_leader_back() {
    // The third review's F3: emptied and half re-copied, it must not look complete.
    use by_hand::*;
    let (d1, d2) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let l = replica(d1.path(), 1, 60_000);
    lead(&l, 1);
    for i in 0..30 {
        put(&l, &format!("k{i}"), "v").await;
    }
    let f = replica(d2.path(), 2, 60_000);
    follow(&f, &l, 1);
    while fetch_once(&f, &l).await {}
    assert!(!f.incomplete());
    let t = f.follow_target().expect("follows");
    f.truncate_to_empty(t.generation, 10, 1).expect("empty");
    assert!(f.incomplete(), "emptied: marked before the records went");
    drop(f);
    let f = replica(d2.path(), 2, 60_000);
    assert!(f.incomplete(), "and the mark is durable");
    follow(&f, &l, 1);
    while fetch_once(&f, &l).await {}
    assert!(!f.incomplete(), "copied back");
}

/// A leader of members 1 and 2 (both in the ISR, min ISR 2) and its follower, by hand.
fn leader_and_follower(dir: &Path) -> (Arc<Replica>, Arc<Replica>) {
    let (l, f) = (
        by_hand::replica(&dir.join("1"), 1, 0),
        by_hand::replica(&dir.join("2"), 2, 0),
    );
    assert!(l.become_leader(1, members(&[1, 2], &[(1, 1), (2, 7)]), 0));
    by_hand::follow(&f, &l, 1);
    (l, f)
}

#[tokio::test]
async fn a_batch_is_appended_in_order_and_acknowledged_once_the_hw_passes_its_last() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (l, f) = leader_and_follower(dir.path());
    let too_big = Bytes::from(vec![b'x'; StoreConfig::default().max_value_bytes + 1]);
    let writes = vec![
        Write::put("a", "1"),
        Write::put(Bytes::from_static(b"big"), too_big),
        Write::delete(Bytes::from_static(b"b")),
        Write::put("c", "3"),
    ];
    let batch = tokio::spawn({
        let l = Arc::clone(&l);
        async move { l.write_batch(writes, Acks::All).await }
    });
    // Nothing is acknowledged before the follower has the records and has said so.
    tokio::task::yield_now().await;
    assert!(!batch.is_finished());
    assert!(
        by_hand::fetch_once(&f, &l).await,
        "the batch reaches the follower"
    );
    by_hand::fetch_once(&f, &l).await;
    let outcome = batch.await.expect("task").expect("batch accepted");
    assert!(outcome.acked.is_ok(), "{:?}", outcome.acked);
    let offsets: Vec<_> = outcome.appended.iter().map(|r| r.as_ref().ok()).collect();
    assert_eq!(offsets, vec![Some(&0), None, Some(&1), Some(&2)]);
    assert!(matches!(
        outcome.appended[1],
        Err(ReplicaError::Storage(StorageError::ValueTooLarge { .. }))
    ));
    assert_eq!(
        l.log().log_end_offset(),
        3,
        "the refused write took no offset"
    );
    assert_eq!(by_hand::value(&f, "c").as_deref(), Some(&b"3"[..]));
    assert_eq!(by_hand::value(&f, "big"), None);
}

#[tokio::test]
async fn a_batch_nobody_replicates_is_appended_but_its_outcome_unknown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (l, _f) = leader_and_follower(dir.path());
    let writes = vec![Write::put("a", "1"), Write::put("b", "2")];
    let outcome = l.write_batch(writes, Acks::All).await.expect("accepted");
    assert!(outcome.appended.iter().all(Result::is_ok));
    assert!(
        matches!(outcome.acked, Err(ReplicaError::Timeout { offset: 1, .. })),
        "one wait for the last write: {:?}",
        outcome.acked
    );
}

#[tokio::test]
async fn a_batch_sent_to_a_follower_is_refused_whole_and_nothing_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_l, f) = leader_and_follower(dir.path());
    let refused = f
        .write_batch(vec![Write::put("a", "1")], Acks::One)
        .await
        .expect_err("a follower refuses");
    assert!(
        matches!(refused, ReplicaError::NotLeader { .. }),
        "{refused:?}"
    );
    assert_eq!(f.log().log_end_offset(), 0);
}

#[tokio::test]
async fn a_batch_whose_log_write_fails_part_way_reports_the_rest_unknown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = by_hand::replica(&dir.path().join("1"), 1, 0);
    by_hand::lead(&l, 1);
    // Segments are 4096 bytes: two 1,500-byte records fit, the third needs segment 2, whose
    // file name is taken, so the rotation fails after the first two went in.
    std::fs::create_dir(dir.path().join("1").join(format!("{:020}.log", 2))).expect("squat");
    let v = || Bytes::from(vec![b'v'; 1500]);
    let writes = vec![
        Write::put(Bytes::from_static(b"a"), v()),
        Write::put(Bytes::from_static(b"b"), v()),
        Write::put(Bytes::from_static(b"c"), v()),
    ];
    let outcome = l.write_batch(writes, Acks::One).await.expect("accepted");
    assert!(outcome.acked.is_ok(), "{:?}", outcome.acked);
    assert!(matches!(outcome.appended[0], Ok(0)));
    assert!(matches!(outcome.appended[1], Ok(1)));
    assert!(
        matches!(
            outcome.appended[2],
            Err(ReplicaError::AppendInterrupted { .. })
        ),
        "never 'not written': {:?}",
        outcome.appended[2]
    );
    assert_eq!(l.log().log_end_offset(), 2);
    assert!(by_hand::value(&l, "a").is_some());
}

#[tokio::test]
async fn a_handover_takes_no_client_request_and_answers_once_the_new_leader_holds_the_log() {
    use by_hand::*;
    let (_dirs, l, f) = handover_pair();
    for i in 0..3 {
        put(&l, &format!("k{i}"), "v").await; // acks=1: acknowledged before 2 has them
    }
    let handover = {
        let l = Arc::clone(&l);
        tokio::spawn(async move { l.prepare_handover(2, 1, Duration::from_secs(10)).await })
    };
    // Wait until it is handing over (it sets that before its first look at the follower).
    while l.handing_over().is_none() {
        tokio::task::yield_now().await;
    }
    let w = Write::put(Bytes::from_static(b"late"), Bytes::from_static(b"x"));
    assert!(matches!(
        l.write(w, Acks::One).await,
        Err(ReplicaError::HandingOver { to: 2, .. })
    ));
    assert!(matches!(
        l.read(b"k0").await,
        Err(ReplicaError::HandingOver { .. })
    ));
    assert!(!handover.is_finished(), "2 has not fetched yet");
    while fetch_once(&f, &l).await {}
    let (leo, attempt) = handover.await.expect("task").expect("handover ready");
    assert_eq!(leo, 3);
    assert_eq!(
        f.log().log_end_offset(),
        3,
        "every acknowledged write is on 2"
    );
    assert_eq!(l.handing_over(), Some(attempt), "still refusing until told");
    // The controller's write never came: the broker takes the partition back.
    assert!(l.end_handover(attempt));
    put(&l, "after", "v").await;
}

#[tokio::test]
async fn a_second_handover_is_refused_while_one_is_under_way_and_never_ends_it() {
    // A fresh review's R2: a deposed controller's attempt and its successor's overlapped; the
    // first timed out and let writes in under the second, which then reported the log whole.
    use by_hand::*;
    let (_dirs, l, f) = handover_pair();
    put(&l, "k", "v").await;
    let first = {
        let l = Arc::clone(&l);
        tokio::spawn(async move { l.prepare_handover(2, 1, Duration::from_millis(100)).await })
    };
    while l.handing_over().is_none() {
        tokio::task::yield_now().await;
    }
    let stale = l.handing_over().expect("first attempt");
    assert!(matches!(
        l.prepare_handover(2, 1, Duration::from_secs(10)).await,
        Err(ReplicaError::HandingOver { to: 2, .. })
    ));
    assert!(matches!(
        first.await.expect("task"),
        Err(ReplicaError::Timeout { .. })
    ));
    put(&l, "late", "v").await;
    // A new attempt is not ended by the old one's end.
    let second = {
        let l = Arc::clone(&l);
        tokio::spawn(async move { l.prepare_handover(2, 1, Duration::from_secs(10)).await })
    };
    while l.handing_over().is_none() {
        tokio::task::yield_now().await;
    }
    assert!(!l.end_handover(stale), "the first attempt is over");
    assert!(l.handing_over().is_some());
    while fetch_once(&f, &l).await {}
    let (leo, _) = second.await.expect("task").expect("ready");
    assert_eq!(leo, 2, "the log it reports whole holds the late write");
}

#[tokio::test]
async fn a_handover_to_a_follower_that_does_not_catch_up_is_abandoned() {
    use by_hand::*;
    let (_dirs, l, _f) = handover_pair();
    put(&l, "k", "v").await;
    let r = l.prepare_handover(2, 1, Duration::from_millis(50)).await;
    assert!(matches!(r, Err(ReplicaError::Timeout { .. })), "{r:?}");
    assert_eq!(l.handing_over(), None, "it takes requests again");
    put(&l, "k2", "v").await;
    // Refused outright: a stale epoch, or a broker outside the ISR.
    assert!(matches!(
        l.prepare_handover(2, 0, Duration::from_millis(50)).await,
        Err(ReplicaError::Fenced { .. })
    ));
    assert!(matches!(
        l.prepare_handover(3, 1, Duration::from_millis(50)).await,
        Err(ReplicaError::UnknownReplica(3))
    ));
}
