//! ISR membership: shrink after the lag time, expand after catching up, and min.insync refusals.

use crate::support::*;
use simplekv::client::ClientError;
use simplekv::events::EventKind;
use simplekv::replica::Acks;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_follower_leaves_the_isr_when_its_session_expires_not_after_the_lag_time() {
    // Issue 9 case 1c: the lag time is a minute, the session 1.5 s. The controller removes a
    // broker whose session expired from every ISR at once, so acks=all carries on.
    let c = start_with(|d| {
        let mut o = options("isr-expiry", spec(3, 1, 3, 2), d);
        o.replication.replica_lag_time_max_ms = 60_000;
        o
    })
    .await;
    wait_for_isr(&c, 3).await;
    let leader = leader_of(&c, 0).expect("leader");
    let follower = follower_of(&c, leader);
    c.kill(follower).await.expect("kill");
    wait_for(
        "the controller to take the dead follower out of the ISR",
        Duration::from_secs(20),
        || async {
            let isr = isr_of(&c, 0);
            isr.len() == 2 && !isr.contains(&follower)
        },
    )
    .await;
    let client = client(&c).await;
    client
        .set(b"after", b"v", None, Acks::All)
        .await
        .expect("acks=all with the dead follower out of the ISR");
    let why = c.events_of(EventKind::LeaderElected);
    assert!(
        why.iter().any(|e| e.message.contains("died or came back")),
        "the controller did it: {why:?}"
    );
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_follower_leaves_the_isr_and_rejoins_after_catching_up() {
    let c = start("isr", spec(3, 1, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    let leader = leader_of(&c, 0).expect("leader");
    let follower = follower_of(&c, leader);
    let killed_at = simplekv::storage::now_ms();
    c.kill(follower).await.expect("kill");
    wait_for("the ISR to shrink", Duration::from_secs(20), || async {
        let isr = isr_of(&c, 0);
        isr.len() == 2 && !isr.contains(&follower)
    })
    .await;
    // A quiet cluster (no writes, so the HW stays where the dead follower's log ends) until ZooKeeper
    // notices the crash: the leader must not re-admit the dead follower meanwhile.
    wait_for(
        "the dead follower's session to expire",
        Duration::from_secs(20),
        || async {
            c.broker(leader)
                .is_some_and(|b| !b.metadata().brokers.contains_key(&follower))
        },
    )
    .await;
    for i in 0..200 {
        client
            .set(format!("k{i}").as_bytes(), b"v", None, Acks::All)
            .await
            .expect("set with ISR of 2");
    }
    c.restore(follower).await.expect("restore");
    wait_for(
        "the follower to rejoin the ISR",
        Duration::from_secs(20),
        || async { isr_of(&c, 0).contains(&follower) },
    )
    .await;
    let r = c
        .broker(follower)
        .and_then(|b| b.replica(0))
        .expect("replica");
    assert!(
        r.log().log_end_offset() >= 200,
        "it caught up before rejoining"
    );
    // Exactly once each: a dead follower is not re-admitted on its stale log end (no flapping).
    let count = |kind: EventKind, what: &str| {
        c.events_of(kind)
            .iter()
            .filter(|e| e.at_ms >= killed_at && e.message.contains(&format!("[{follower}] {what}")))
            .count()
    };
    assert_eq!(
        count(EventKind::IsrShrink, "fell behind"),
        1,
        "{:?}",
        c.events_of(EventKind::IsrShrink)
    );
    assert_eq!(
        count(EventKind::IsrExpand, "caught up"),
        1,
        "{:?}",
        c.events_of(EventKind::IsrExpand)
    );
    // ZooKeeper agrees with the leader.
    let md = c.broker(leader).expect("leader").metadata();
    assert!(md.states[&0].0.isr.contains(&follower));
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_below_min_insync_replicas_is_refused_and_appends_nothing() {
    let c = start("min-isr", spec(3, 1, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    client
        .set(b"k", b"before", None, Acks::All)
        .await
        .expect("set");
    let leader = leader_of(&c, 0).expect("leader");
    for id in c.ids().into_iter().filter(|&id| id != leader) {
        c.kill(id).await.expect("kill");
    }
    wait_for(
        "the ISR to shrink to the leader",
        Duration::from_secs(20),
        || async { isr_of(&c, 0) == vec![leader] },
    )
    .await;
    let log = log_of(&c, leader, 0);
    let leo = log.log_end_offset();
    let err = client
        .set(b"k", b"refused", None, Acks::All)
        .await
        .expect_err("refused");
    assert!(matches!(err, ClientError::NotEnoughReplicas(_)), "{err:?}");
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert_eq!(log.log_end_offset(), leo, "nothing appended");
    assert_eq!(
        client.get(b"k").await.expect("get").as_deref(),
        Some(&b"before"[..])
    );
    // acks=1 still works: the leader alone may take it.
    client
        .set(b"k", b"acks1", None, Acks::One)
        .await
        .expect("acks=1");
    assert_eq!(log.log_end_offset(), leo + 1);
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_acks_gets_acks_all_and_unknown_acks_are_refused() {
    // Issue 9: the wire's unset acks used to mean acks=1, and 3, 7 or -1 were taken as acks=1.
    let c = start("acks-default", spec(2, 1, 2, 2)).await;
    wait_for_isr(&c, 2).await;
    let leader = leader_of(&c, 0).expect("leader");
    let follower = follower_of(&c, leader);
    c.kill(follower).await.expect("kill");
    wait_for_isr(&c, 1).await;
    let addr = c.broker(leader).expect("up").kv_addr();
    let mut direct = simplekv::rpc::kv_client::KvClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let set = |acks: i32| simplekv::rpc::SetRequest {
        key: bytes::Bytes::from_static(b"k"),
        value: bytes::Bytes::from_static(b"v"),
        ttl_ms: 0,
        acks,
    };
    let unset = direct
        .set(simplekv::rpc::SetRequest {
            key: bytes::Bytes::from_static(b"k"),
            value: bytes::Bytes::from_static(b"v"),
            ..Default::default()
        })
        .await
        .expect_err("unset acks is acks=all: refused below min.insync");
    assert_eq!(
        simplekv::rpc::reason_of(&unset),
        Some(simplekv::rpc::Reason::NotEnoughReplicas),
        "{unset:?}"
    );
    for bad in [3, 7, -1] {
        let err = direct.set(set(bad)).await.expect_err("undefined acks");
        assert_eq!(
            simplekv::rpc::reason_of(&err),
            Some(simplekv::rpc::Reason::InvalidArgument),
            "acks {bad}: {err:?}"
        );
    }
    direct
        .set(set(simplekv::rpc::Acks::One as i32))
        .await
        .expect("acks=1 is still possible when asked for");
    c.cluster.shutdown().await;
}
