//! Preferred-replica elections (`rebalance`) as a clean handover, under the faults a fresh
//! reviewer found breaking the first version: a leader cut from ZooKeeper must not serve a stale
//! read after it handed over, acks=1 writes must survive the handover, and a handover onto a
//! broker cut from its peers must not happen.

use crate::support::*;
use simplekv::client::{Client, ClientConfig};
use simplekv::coord::Coord;
use simplekv::lab::Scenario;
use simplekv::replica::Acks;
use std::time::Duration;

/// Kills broker `x`, waits until another leads partition `p`, restores `x` and waits until every
/// partition's ISR is whole again. Returns the broker that took over `p`.
async fn away_and_back(c: &TestCluster, x: u32, p: u32) -> u32 {
    c.kill(x).await.expect("kill");
    wait_for("another leader", Duration::from_secs(30), || async {
        leader_of(c, p).is_some_and(|l| l != x)
    })
    .await;
    let deputy = leader_of(c, p).expect("leader");
    c.restore(x).await.expect("restore");
    wait_for_isr(c, 3).await;
    deputy
}

fn controller_of(c: &simplekv::lab::Cluster) -> Option<u32> {
    c.snapshots()
        .into_iter()
        .find_map(|(id, s)| s?.controller_epoch.map(|_| id))
}

/// The old leader, cut from ZooKeeper, hands partition 0 over and never hears of the new
/// leader. With a lease (4 s) longer than the lag time (1 s), the new leader drops it from the
/// ISR and commits a write while the old one's lease still holds: the old one must not answer
/// a read with the value that write replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_that_handed_over_serves_no_stale_read_while_its_lease_holds() {
    let c = start_with(|d| {
        let mut o = options("rebalance-stale-read", spec(3, 1, 3, 2), d);
        o.session_timeout_ms = 6000;
        o.replication.replica_lag_time_max_ms = 1000;
        o.replication.auto_leader_rebalance = false;
        o
    })
    .await;
    wait_for(
        "broker 1 leading with ISR 3",
        Duration::from_secs(30),
        || async { leader_of(&c, 0) == Some(1) && isr_of(&c, 0).len() == 3 },
    )
    .await;
    let client = client(&c).await;
    client
        .set(b"k", b"old", None, Acks::All)
        .await
        .expect("set old");
    let old = away_and_back(&c, 1, 0).await;
    // The controller must not be the old leader (it is about to lose ZooKeeper): delete
    // /controller until another broker wins it.
    let zk = zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(5))
        .connect(c.zk_connect())
        .await
        .expect("zk");
    wait_for(
        "a controller other than the old leader",
        Duration::from_secs(60),
        || async {
            if controller_of(&c).is_some_and(|x| x != old) {
                return true;
            }
            let _ = zk.delete("/controller", None).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            false
        },
    )
    .await;
    wait_for(
        "ISR 3 under the old leader",
        Duration::from_secs(30),
        || async { isr_of(&c, 0).len() == 3 && leader_of(&c, 0) == Some(old) },
    )
    .await;
    let coord = Coord::connect(c.zk_connect(), Duration::from_secs(5))
        .await
        .expect("coord");
    c.isolate_from_zk(old).expect("isolate");
    coord.request_rebalance().await.expect("request");
    wait_for(
        "ZooKeeper naming broker 1 leader",
        Duration::from_secs(20),
        || async {
            coord
                .partition_state(0)
                .await
                .ok()
                .flatten()
                .is_some_and(|(s, _)| s.leader == 1)
        },
    )
    .await;
    // The new leader drops the unreachable old one after the lag time and commits.
    client
        .set(b"k", b"new", None, Acks::All)
        .await
        .expect("write to the new leader");
    let old_replica = c.broker(old).and_then(|b| b.replica(0)).expect("replica");
    let direct = old_replica.read(b"k").await;
    assert!(
        direct.is_err(),
        "the old leader answered a read after handing over: {direct:?}"
    );
    let seed = Client::connect_brokers(
        vec![c.broker(old).expect("old up").kv_addr().to_string()],
        ClientConfig {
            request_timeout: Duration::from_millis(300),
            ..ClientConfig::default()
        },
    )
    .await;
    if let Ok(seed) = seed {
        let got = seed.get(b"k").await;
        assert!(
            !matches!(&got, Ok(Some(v)) if v.as_ref() == b"old"),
            "a client of the old leader read the replaced value: {got:?}"
        );
    }
    c.reconnect_to_zk(old).expect("heal");
}

/// Plays `yaml` on the test ZooKeeper and returns the transcript; panics if a step failed.
async fn play_text(name: &str, yaml: &str) -> String {
    let scenario = Scenario::parse(name, yaml).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    play_scenario(name, &scenario, dir.path(), false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_1_writes_survive_a_handover_under_load() {
    let text = play_text(
        "rebalance-acks1",
        r#"
name: acks=1 across a clean rebalance
cluster: {nodes: 3, partitions: 3, replication_factor: 3, min_insync_replicas: 2, auto_leader_rebalance: false}
steps:
  - run: wait isr 3
  - run: kill 1
  - run: wait leader-change 30s
  - run: restore 1
  - run: wait isr 3 30s
  - run: load 6000 clients 16 acks 1 background
  - run: sleep 300ms
  - run: rebalance
    expect: "/partition 0: broker [23] -> broker 1/"
  - run: wait load 120s
  - run: wait caught-up 30s
  - run: check lost-writes
    expect: "/lost 0$/"
  - run: check linearizable
    expect: "/^linearizable/"
  - run: check replicas-agree
    expect: OK
"#,
    )
    .await;
    assert!(text.contains("lost 0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_handover_onto_a_broker_cut_from_its_peers() {
    play_text(
        "rebalance-gray-peers",
        r#"
name: handover onto a broker cut from its peers
cluster: {nodes: 3, partitions: 1, replication_factor: 3, min_insync_replicas: 2, auto_leader_rebalance: false}
steps:
  - run: wait isr 3
  - run: acks all
  - run: kill 1
  - run: wait leader-change 30s
  - run: restore 1
  - run: wait isr 3 30s
  - run: set c 3
    expect: OK
  - run: isolate 1 peers
  - run: rebalance
    expect: "/partition 0: stays with broker [23]/"
  - run: set e 5
    expect: OK
  - run: heal
  - run: check lost-writes
    expect: "/lost 0$/"
"#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_rebalances_a_cluster_through_zookeeper() {
    let c = start("rebalance-cli", spec(3, 1, 3, 2)).await;
    wait_for(
        "broker 1 leading with ISR 3",
        Duration::from_secs(30),
        || async { leader_of(&c, 0) == Some(1) && isr_of(&c, 0).len() == 3 },
    )
    .await;
    away_and_back(&c, 1, 0).await;
    let zk = c.zk_connect().to_string();
    let out = crate::procs::cli(&["--zk", &zk, "rebalance"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("partition 0: broker ") && out.stdout.contains("-> broker 1"),
        "{}",
        out.stdout
    );
    wait_for(
        "broker 1 leading again",
        Duration::from_secs(10),
        || async { leader_of(&c, 0) == Some(1) },
    )
    .await;
    let addr = c.broker(2).expect("broker 2").kv_addr().to_string();
    let seeds = crate::procs::cli(&["--broker", &addr, "rebalance"]).await;
    assert_eq!(seeds.code, 1);
    assert!(seeds.stderr.contains("--zk"), "{}", seeds.stderr);
}

/// A fresh review's R1: the controller dies while the old leader waits for the preferred
/// replica, dropping the request. The attempt must still end (by its own timeout), or the leader
/// refuses every client request long after every fault healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_controller_dying_mid_handover_leaves_no_leader_refusing_clients() {
    let c = start_with(|d| {
        let mut o = options("rebalance-controller-dies", spec(3, 3, 3, 2), d);
        o.replication.auto_leader_rebalance = false;
        o
    })
    .await;
    wait_for_isr(&c, 3).await;
    let ctl = controller_of(&c).expect("controller");
    // Partition p's preferred replica is x, not the controller; while x is away, l leads it.
    let x = ctl % 3 + 1;
    let p = x - 1;
    let l = away_and_back(&c, x, p).await;
    assert_eq!(controller_of(&c), Some(ctl), "the controller stayed");
    let lrep = c.broker(l).and_then(|b| b.replica(p)).expect("replica");
    // x cannot catch up: the handover waits.
    c.network()
        .change(|f, all| f.isolate(x, all, false, true, false))
        .expect("isolate x from its peers");
    let coord = Coord::connect(c.zk_connect(), Duration::from_secs(5))
        .await
        .expect("coord");
    coord.request_rebalance().await.expect("request");
    wait_for("l handing over", Duration::from_secs(10), || async {
        lrep.handing_over().is_some()
    })
    .await;
    c.kill(ctl).await.expect("kill the controller mid-handover");
    coord.clear_rebalance_request().await.expect("clear");
    wait_for(
        "the old leader taking requests again",
        Duration::from_secs(15),
        || async { lrep.handing_over().is_none() },
    )
    .await;
    c.network().change(|f, _| f.cuts.clear()).expect("heal");
    c.restore(ctl).await.expect("restore the controller");
    wait_for_isr(&c, 3).await;
    let key = simplekv::storage::Write::put(&b"k"[..], &b"v"[..]);
    lrep.write(key, Acks::All)
        .await
        .expect("the partition takes writes again");
}
