//! Failures: a leader crash under load, a divergent log, controller failover, session expiry.

use crate::support::*;
use simplekv::client::Client;
use simplekv::events::EventKind;
use simplekv::replica::{Acks, Role};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Writers that record every acknowledged (key, value).
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<BTreeMap<String, String>>>,
}

fn start_load(client: &Client, writers: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let tasks = (0..writers)
        .map(|w| {
            let (client, stop, acked) = (client.clone(), Arc::clone(&stop), Arc::clone(&acked));
            tokio::spawn(async move {
                let mut ok = BTreeMap::new();
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let (k, v) = (format!("w{w}-{i}"), format!("v{i}"));
                    if client
                        .set(k.as_bytes(), v.as_bytes(), None, Acks::All)
                        .await
                        .is_ok()
                    {
                        ok.insert(k, v);
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    i += 1;
                }
                ok
            })
        })
        .collect();
    Load { stop, acked, tasks }
}

impl Load {
    async fn wait_acked(&self, n: u64, what: &str) {
        let acked = Arc::clone(&self.acked);
        wait_for(what, Duration::from_secs(30), || {
            let acked = Arc::clone(&acked);
            async move { acked.load(Ordering::SeqCst) >= n }
        })
        .await;
    }

    async fn finish(self) -> BTreeMap<String, String> {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = BTreeMap::new();
        for t in self.tasks {
            all.extend(t.await.expect("writer"));
        }
        all
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_crash_under_acks_all_load_loses_no_acknowledged_write() {
    let c = start("failover", spec(3, 2, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    let load = start_load(&client, 4);
    load.wait_acked(150, "writes before the crash").await;

    let old = leader_of(&c, 0).expect("leader");
    let old_epoch = epoch_of(&c, 0).expect("epoch");
    c.kill(old).await.expect("kill");
    let before = load.acked.load(Ordering::SeqCst);
    wait_for(
        "a new leader of partition 0",
        Duration::from_secs(20),
        || async { leader_of(&c, 0).is_some_and(|l| l != old) },
    )
    .await;
    assert!(
        epoch_of(&c, 0).expect("epoch") > old_epoch,
        "the new leader has a newer epoch"
    );
    // The client recovers by itself: writes keep being acknowledged after the failover.
    load.wait_acked(before + 150, "writes after the failover")
        .await;
    let acked = load.finish().await;

    let mut lost = Vec::new();
    for (k, v) in &acked {
        match client.get(k.as_bytes()).await.expect("get") {
            Some(got) if got == v.as_bytes() => {}
            other => lost.push((k.clone(), other)),
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(acked.len() >= 300);

    c.restore(old).await.expect("restore");
    wait_for_isr(&c, 3).await;
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_with_unreplicated_writes_truncates_and_converges() {
    let c = start_with(|d| {
        let mut o = options("diverge", spec(3, 1, 3, 1), d);
        // Keep the crashed followers in the ISR for the whole test.
        o.replication.replica_lag_time_max_ms = 120_000;
        o
    })
    .await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    for i in 0..10 {
        client
            .set(format!("base-{i}").as_bytes(), b"x", None, Acks::All)
            .await
            .expect("set");
    }
    let old = leader_of(&c, 0).expect("leader");
    let followers: Vec<u32> = c.ids().into_iter().filter(|&id| id != old).collect();
    wait_caught_up(&c, 0).await;
    for &f in &followers {
        c.kill(f).await.expect("kill follower");
    }
    // The leader takes acks=1 writes nobody else sees.
    for i in 0..7 {
        client
            .set(format!("lost-{i}").as_bytes(), b"y", None, Acks::One)
            .await
            .expect("acks=1 set");
    }
    let old_leo = log_of(&c, old, 0).log_end_offset();
    c.kill(old).await.expect("kill leader");
    for &f in &followers {
        c.restore(f).await.expect("restore follower");
    }
    wait_for(
        "a follower to take over",
        Duration::from_secs(20),
        || async { leader_of(&c, 0).is_some_and(|l| followers.contains(&l)) },
    )
    .await;
    for i in 0..5 {
        client
            .set(format!("new-{i}").as_bytes(), b"z", None, Acks::All)
            .await
            .expect("set on the new leader");
    }
    c.restore(old).await.expect("restore old leader");
    wait_for_isr(&c, 3).await;
    wait_caught_up(&c, 0).await;

    let truncations = c.events_of(EventKind::Truncation);
    let t = truncations
        .iter()
        .find(|e| e.broker == Some(old))
        .unwrap_or_else(|| panic!("no truncation by broker {old}: {truncations:?}"));
    assert!(t.message.contains("truncated 7 record(s)"), "{}", t.message);

    let leader = leader_of(&c, 0).expect("leader");
    let hw = c
        .broker(leader)
        .and_then(|b| b.replica(0))
        .expect("replica")
        .high_watermark();
    let reference = log_prefix(&log_of(&c, leader, 0), hw);
    for id in c.ids() {
        let log = log_of(&c, id, 0);
        assert_eq!(log_prefix(&log, hw), reference, "broker {id} converged");
        assert_eq!(
            log.get(b"lost-0").expect("get").value(),
            None,
            "broker {id} dropped the divergent write"
        );
    }
    assert!(hw < old_leo + 5, "the new log replaced the divergent tail");
    for i in 0..5 {
        assert_eq!(
            client
                .get(format!("new-{i}").as_bytes())
                .await
                .expect("get")
                .as_deref(),
            Some(&b"z"[..])
        );
    }
    assert_eq!(client.get(b"lost-3").await.expect("get"), None);
    c.cluster.shutdown().await;
}

fn controller(c: &simplekv::lab::Cluster) -> Option<(u32, u32)> {
    c.snapshots()
        .into_iter()
        .find_map(|(id, s)| s.and_then(|s| s.controller_epoch).map(|e| (id, e)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_controller_elects_another_with_a_higher_epoch() {
    let c = start("controller", spec(3, 3, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let (old, old_epoch) = controller(&c).expect("a controller");
    let old_led: Vec<u32> = (0..3).filter(|&p| leader_of(&c, p) == Some(old)).collect();
    c.kill(old).await.expect("kill controller");
    wait_for("a new controller", Duration::from_secs(20), || async {
        controller(&c).is_some_and(|(id, e)| id != old && e > old_epoch)
    })
    .await;
    // The new controller does the controller's job: partitions the old one led get new leaders.
    for p in old_led {
        wait_for(
            &format!("a new leader for partition {p}"),
            Duration::from_secs(20),
            || async { leader_of(&c, p).is_some_and(|l| l != old) },
        )
        .await;
    }
    let (_, new_epoch) = controller(&c).expect("controller");
    c.restore(old).await.expect("restore");
    wait_for_isr(&c, 3).await;
    let (now, epoch) = controller(&c).expect("controller");
    assert_ne!(now, old, "the restored broker does not take the role back");
    assert_eq!(epoch, new_epoch);
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_session_expires_steps_down_and_rejoins() {
    let c = start("expiry", spec(3, 1, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    client
        .set(b"before", b"1", None, Acks::All)
        .await
        .expect("set");
    let old = leader_of(&c, 0).expect("leader");
    let old_epoch = epoch_of(&c, 0).expect("epoch");
    c.isolate_from_zk(old).expect("isolate");

    // The isolated broker learns its session expired and stops serving.
    wait_for(
        "the isolated leader to step down",
        Duration::from_secs(20),
        || async {
            let s = c.broker(old).expect("still running").snapshot();
            s.replicas.iter().all(|r| r.role != Role::Leader)
        },
    )
    .await;
    // Asked directly over gRPC, the deposed leader refuses instead of serving a possibly stale value.
    let addr = c.broker(old).expect("still running").kv_addr();
    let mut direct = simplekv::rpc::kv_client::KvClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let status = direct
        .get(simplekv::rpc::GetRequest {
            key: bytes::Bytes::from_static(b"before"),
        })
        .await
        .expect_err("a deposed leader must not answer");
    assert_eq!(
        simplekv::rpc::reason_of(&status),
        Some(simplekv::rpc::Reason::NotLeader),
        "{status:?}"
    );
    let r = c.broker(old).and_then(|b| b.replica(0)).expect("replica");
    let err = r
        .read(b"before")
        .await
        .expect_err("a deposed leader must not answer");
    assert!(err.to_string().contains("is not the leader"), "{err}");
    wait_for("a new leader", Duration::from_secs(20), || async {
        leader_of(&c, 0).is_some_and(|l| l != old)
    })
    .await;
    assert!(epoch_of(&c, 0).expect("epoch") > old_epoch);
    client
        .set(b"during", b"2", None, Acks::All)
        .await
        .expect("set while isolated");

    c.reconnect_to_zk(old).expect("reconnect");
    wait_for_isr(&c, 3).await;
    wait_caught_up(&c, 0).await;
    let log = log_of(&c, old, 0);
    assert_eq!(
        log.get(b"during").expect("get").value().map(|v| v.to_vec()),
        Some(b"2".to_vec())
    );
    assert_eq!(
        client.get(b"before").await.expect("get").as_deref(),
        Some(&b"1"[..])
    );
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_zookeeper_stops_serving_when_its_lease_lapses() {
    // Issue 9 case 1b. A leader cut off from ZooKeeper (or paused) still believes it leads until
    // its client reports the session expired, which comes after the server expired it and
    // another leader may have committed newer values. Its lease, proven from its own clock,
    // lapses before the session can expire: from then on it serves no read and acknowledges no
    // acks=1 write, though it has not yet heard it was deposed.
    let c = start_with(|d| {
        let mut o = options("lease", spec(3, 1, 3, 2), d);
        o.session_timeout_ms = 6000;
        o
    })
    .await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    client
        .set(b"k", b"old", None, Acks::All)
        .await
        .expect("set");
    let old = leader_of(&c, 0).expect("leader");
    let r = c.broker(old).and_then(|b| b.replica(0)).expect("replica");
    assert!(
        r.snapshot().lease_held,
        "a connected leader holds its lease"
    );
    c.isolate_from_zk(old).expect("isolate");
    wait_for(
        "the cut-off leader's lease to lapse while it still believes it leads",
        Duration::from_secs(10),
        || async {
            let s = r.snapshot();
            s.role == Role::Leader && !s.fenced && !s.lease_held
        },
    )
    .await;
    let err = r.read(b"k").await.expect_err("no read without a lease");
    assert!(err.to_string().contains("lease has lapsed"), "{err}");
    let err = r
        .write(
            simplekv::storage::Write::put(&b"k"[..], &b"zombie"[..]),
            Acks::One,
        )
        .await
        .expect_err("no acks=1 write without a lease");
    assert!(err.to_string().contains("lease has lapsed"), "{err}");
    assert_eq!(
        r.log().get(b"k").expect("get").value().map(|v| v.to_vec()),
        Some(b"old".to_vec()),
        "refused before the append"
    );
    // The rest of the cluster elects a new leader and goes on.
    client
        .set(b"k", b"new", None, Acks::All)
        .await
        .expect("set on the new leader");
    c.reconnect_to_zk(old).expect("reconnect");
    wait_for(
        "the old leader to follow",
        Duration::from_secs(30),
        || async {
            leader_of(&c, 0).is_some_and(|l| l != old) && r.snapshot().role != Role::Leader
        },
    )
    .await;
    assert_eq!(
        client.get(b"k").await.expect("get").as_deref(),
        Some(&b"new"[..])
    );
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_restart_brings_back_every_partition_written_or_not() {
    // Every ISR member comes back as a new incarnation. A partition nobody wrote to has empty
    // logs everywhere; that is not a replaced disk, and it must lead again (the second review).
    let c = start("full-restart", spec(3, 3, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    client
        .set(b"only", b"one", None, Acks::All)
        .await
        .expect("set");
    for id in c.ids() {
        c.kill(id).await.expect("kill");
    }
    for id in c.ids() {
        c.restore(id).await.expect("restore");
    }
    let before: Vec<u32> = (0..3).map(|p| epoch_of(&c, p).unwrap_or(0)).collect();
    wait_for(
        "every partition to lead in a new epoch",
        Duration::from_secs(30),
        || async {
            (0..3).all(|p| {
                leader_of(&c, p).is_some()
                    && epoch_of(&c, p).is_some_and(|e| e > before[p as usize])
            })
        },
    )
    .await;
    assert_eq!(
        client.get(b"only").await.expect("get").as_deref(),
        Some(&b"one"[..])
    );
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_isr_member_back_on_a_replaced_disk_does_not_erase_what_others_hold() {
    // The fourth review's F1: min.insync 1, so when 2 and 3 die the ISR shrinks to [1] and
    // nobody is eligible. 1 then loses its disk. Every member is back and incomplete: every
    // replica is asked, and the longest log anywhere leads (not the empty one).
    let c = start("recovery", spec(3, 1, 3, 1)).await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    for i in 0..20 {
        let k = format!("k{i}");
        client
            .set(k.as_bytes(), b"v", None, Acks::All)
            .await
            .expect("set");
    }
    wait_caught_up(&c, 0).await;
    let l = leader_of(&c, 0).expect("leader");
    let others: Vec<u32> = c.ids().into_iter().filter(|&id| id != l).collect();
    for &o in &others {
        c.kill(o).await.expect("kill");
    }
    wait_for(
        "the ISR to shrink to the leader",
        Duration::from_secs(20),
        || async { isr_of(&c, 0) == vec![l] },
    )
    .await;
    c.kill(l).await.expect("kill");
    c.wipe(l).await.expect("wipe");
    for id in c.ids() {
        c.restore(id).await.expect("restore");
    }
    wait_for(
        "another broker to lead",
        Duration::from_secs(30),
        || async { leader_of(&c, 0).is_some_and(|x| x != l) },
    )
    .await;
    for i in 0..20 {
        let k = format!("k{i}");
        assert_eq!(
            client.get(k.as_bytes()).await.expect("get").as_deref(),
            Some(&b"v"[..]),
            "acknowledged {k} is lost"
        );
    }
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_unclean_election_a_partition_never_stays_offline_for_a_member_gone_for_good() {
    // The fourth review's F2: the ISR is [1, 3]; 1 comes back on a replaced disk, 3 never
    // comes back. With unclean election enabled the partition must not wait for 3 for ever.
    let mut s = spec(3, 1, 3, 2);
    s.unclean_leader_election = true;
    let c = start("unclean-fallback", s).await;
    wait_for_isr(&c, 3).await;
    let l = leader_of(&c, 0).expect("leader");
    let others: Vec<u32> = c.ids().into_iter().filter(|&id| id != l).collect();
    let (f, gone) = (others[0], others[1]);
    c.kill(f).await.expect("kill");
    wait_for("the ISR to shrink", Duration::from_secs(20), || async {
        isr_of(&c, 0).len() == 2
    })
    .await;
    let epoch = epoch_of(&c, 0).expect("epoch");
    c.kill(l).await.expect("kill");
    c.kill(gone).await.expect("kill");
    c.wipe(l).await.expect("wipe");
    c.restore(l).await.expect("restore");
    c.restore(f).await.expect("restore");
    wait_for(
        "a leader in a new epoch",
        Duration::from_secs(30),
        || async { epoch_of(&c, 0).is_some_and(|e| e > epoch) },
    )
    .await;
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_zookeeper_session_expired_opens_a_new_one_and_follows_it() {
    // Found by review: a RESP listener on a broker paused past its session answered "session
    // expired" and "no leader" for good, because its client never opened a new session.
    let c = start("client-expiry", spec(3, 3, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    let session = client.zk_session().expect("a ZooKeeper client");
    simplekv::testkit::expire_session(c.zk_connect(), session).await;
    // A leader dies. The client's watches ended with its session; with no request asking, it
    // opens a new session and its routes follow the election.
    let p = 0;
    let victim = leader_of(&c, p).expect("leader");
    c.kill(victim).await.expect("kill");
    wait_for(
        "the client's routes to follow the election in a new session, unasked",
        Duration::from_secs(20),
        || async {
            let l = client.cached_view().partitions[p as usize].leader;
            l.is_some() && l != Some(victim)
        },
    )
    .await;
    let key = (0..1000)
        .map(|i| format!("exp{i}"))
        .find(|k| client.partition_of(k.as_bytes()) == p)
        .expect("a key of partition 0");
    client
        .set(key.as_bytes(), b"v", None, Acks::All)
        .await
        .expect("the write finds the new leader in a new session");
    // The new session is followed too: another partition's leader change reaches the cached
    // routes with no request asking.
    c.restore(victim).await.expect("restore");
    wait_for_isr(&c, 3).await;
    let q = (0..3)
        .find(|&q| leader_of(&c, q).is_some_and(|l| l != victim))
        .expect("a partition another broker leads");
    let other = leader_of(&c, q).expect("leader");
    wait_for(
        "the client to see the leaders as they are",
        Duration::from_secs(20),
        || async { client.cached_view().partitions[q as usize].leader == Some(other) },
    )
    .await;
    c.kill(other).await.expect("kill");
    wait_for(
        "the client's cached routes to follow the election",
        Duration::from_secs(20),
        || async {
            let l = client.cached_view().partitions[q as usize].leader;
            l.is_some() && l != Some(other)
        },
    )
    .await;
    c.cluster.shutdown().await;
}
