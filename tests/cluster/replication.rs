//! Replication through real brokers: acks=all means every ISR member has the record; replica logs
//! are identical record by record up to the high watermark.

use crate::support::*;
use simplekv::replica::Acks;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acks_all_write_is_on_every_isr_member_before_ok() {
    let c = start_with(|d| {
        let mut o = options("acks-all", spec(3, 2, 3, 2), d);
        o.replication.replica_lag_time_max_ms = 30_000;
        o
    })
    .await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    for i in 0..60 {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        let ack = client
            .set(key.as_bytes(), value.as_bytes(), None, Acks::All)
            .await
            .expect("set");
        let isr = isr_of(&c, ack.partition);
        assert_eq!(isr.len(), 3);
        for id in isr {
            let log = c
                .broker(id)
                .and_then(|b| b.replica(ack.partition))
                .expect("replica")
                .log()
                .clone();
            let got = log.get(key.as_bytes()).expect("get");
            assert_eq!(
                got.value().map(|v| v.to_vec()),
                Some(value.clone().into_bytes()),
                "broker {id} lacks {key}"
            );
            assert_eq!(got.offset(), Some(ack.offset));
        }
    }
    for p in 0..2 {
        wait_caught_up(&c, p).await;
        let l = leader_of(&c, p).expect("leader");
        let leader_log = log_of(&c, l, p);
        let hw = c
            .broker(l)
            .and_then(|b| b.replica(p))
            .expect("replica")
            .high_watermark();
        assert!(hw > 0);
        let reference = log_prefix(&leader_log, hw);
        for id in c.ids() {
            let r = c.broker(id).and_then(|b| b.replica(p)).expect("replica");
            assert_eq!(
                log_prefix(r.log(), hw),
                reference,
                "broker {id}, partition {p}"
            );
        }
    }
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_only_committed_writes_and_values_round_trip() {
    let c = start("reads", spec(3, 1, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    client.set(b"k", b"v1", None, Acks::All).await.expect("set");
    client.set(b"k", b"v2", None, Acks::One).await.expect("set");
    // Replicated by now (or the read waits for it): the newer value, never the older one.
    let got = client.get(b"k").await.expect("get");
    assert_eq!(got.as_deref(), Some(&b"v2"[..]));
    client
        .set(b"ttl", b"x", Some(Duration::from_millis(300)), Acks::All)
        .await
        .expect("set");
    assert_eq!(
        client.get(b"ttl").await.expect("get").as_deref(),
        Some(&b"x"[..])
    );
    wait_for("the key to expire", Duration::from_secs(5), || async {
        client.get(b"ttl").await.expect("get").is_none()
    })
    .await;
    assert_eq!(client.ttl(b"ttl").await.expect("ttl"), -2);
    assert_eq!(client.ttl(b"k").await.expect("ttl"), -1);
    assert!(
        !client
            .expire(b"missing", 10, Acks::All)
            .await
            .expect("expire")
    );
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_no_follower_has_is_not_readable_until_it_commits() {
    // Dead followers stay in the ISR until their sessions expire (the controller then removes
    // them) or the lag time passes: both long here, so the HW cannot pass what only the leader
    // has; reads give up quickly.
    let c = start_with(|d| {
        let mut o = options("uncommitted", spec(3, 1, 3, 1), d);
        o.session_timeout_ms = 12_000;
        o.replication.replica_lag_time_max_ms = 60_000;
        o.replication.request_timeout_ms = 1000;
        o
    })
    .await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    client
        .set(b"k", b"committed", None, Acks::All)
        .await
        .expect("set");
    client
        .set(b"gone", b"committed", None, Acks::All)
        .await
        .expect("set");
    wait_caught_up(&c, 0).await;
    let leader = leader_of(&c, 0).expect("leader");
    for id in c.ids().into_iter().filter(|&id| id != leader) {
        c.kill(id).await.expect("kill follower");
    }
    client
        .set(b"k", b"uncommitted", None, Acks::One)
        .await
        .expect("acks=1 set");
    let log = log_of(&c, leader, 0);
    assert_eq!(
        log.get(b"k").expect("get").value().map(|v| v.to_vec()),
        Some(b"uncommitted".to_vec()),
        "the leader has it"
    );
    let err = client
        .get(b"k")
        .await
        .expect_err("not committed: must not be read");
    assert!(
        matches!(err, simplekv::client::ClientError::NotCommitted(_)),
        "{err:?}"
    );
    assert_eq!(
        client.ttl(b"k").await.expect_err("ttl reads too").kind(),
        "not_committed"
    );
    // expire decides from committed data too: an uncommitted delete (which a failover may
    // truncate) is not yet "record not found", and an uncommitted value is not copied.
    client.del(b"gone", Acks::One).await.expect("acks=1 del");
    for (key, latest) in [(&b"gone"[..], "delete"), (&b"k"[..], "value")] {
        let err = client
            .expire(key, 100, Acks::One)
            .await
            .expect_err("the latest record is not committed");
        assert_eq!(
            err.kind(),
            "not_committed",
            "an uncommitted {latest}: {err}"
        );
    }
    // Once every ISR member has it, it is committed and readable: the restored followers catch up,
    // or their old sessions expire and the controller takes them out of the ISR.
    for id in c.ids().into_iter().filter(|&id| id != leader) {
        c.restore(id).await.expect("restore follower");
    }
    wait_for("the write to commit", Duration::from_secs(20), || async {
        client.get(b"k").await.ok().flatten().as_deref() == Some(&b"uncommitted"[..])
    })
    .await;
    c.cluster.shutdown().await;
}
