//! The client's write batches (`client::batch`) against real brokers: concurrent writes share
//! `WriteBatch` requests, and every write keeps its own outcome.

use crate::support::*;
use simplekv::client::ClientError;
use simplekv::replica::Acks;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_requests_and_each_keeps_its_own_outcome() {
    let c = start_with(|d| {
        let mut o = options("batching", spec(3, 1, 3, 2), d);
        o.storage.max_value_bytes = 1024;
        o
    })
    .await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..300u32 {
        let client = client.clone();
        writes.spawn(async move {
            // Every 100th value is larger than the brokers take.
            let value = if i % 100 == 7 {
                vec![b'x'; 2000]
            } else {
                format!("v{i}").into_bytes()
            };
            let key = format!("k{i}");
            let r = client.set(key.as_bytes(), &value, None, Acks::All).await;
            (i, r)
        });
    }
    let mut offsets = std::collections::BTreeSet::new();
    let mut refused = Vec::new();
    while let Some(done) = writes.join_next().await {
        let (i, r) = done.expect("task");
        match r {
            Ok(ack) => assert!(offsets.insert(ack.offset), "offset {} twice", ack.offset),
            Err(ClientError::InvalidArgument(msg)) => {
                assert!(msg.contains("value"), "{msg}");
                refused.push(i);
            }
            Err(e) => panic!("write {i}: {e}"),
        }
    }
    refused.sort_unstable();
    assert_eq!(refused, vec![7, 107, 207], "only the oversized writes fail");
    assert_eq!(offsets.len(), 297);
    assert_eq!(
        offsets.iter().copied().collect::<Vec<_>>(),
        (0..297).collect::<Vec<u64>>(),
        "the refused writes took no offsets"
    );
    for i in (0..300u32).filter(|i| i % 100 != 7) {
        let got = client.get(format!("k{i}").as_bytes()).await.expect("get");
        assert_eq!(got.as_deref(), Some(format!("v{i}").as_bytes()), "k{i}");
    }
    let (requests, carried) = client.batch_stats();
    assert_eq!(carried, 300, "every write went through a batch");
    assert!(
        requests < carried,
        "{carried} concurrent writes took {requests} requests: nothing was batched"
    );
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_batched_writes_survive_the_death_of_their_leader() {
    let c = start("batching-kill", spec(3, 1, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    let leader = leader_of(&c, 0).expect("a leader");
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..400u32 {
        let client = client.clone();
        writes.spawn(async move {
            let key = format!("k{i}");
            (
                key.clone(),
                client.set(key.as_bytes(), b"v", None, Acks::All).await,
            )
        });
    }
    c.kill(leader).await.expect("kill");
    let mut acked = Vec::new();
    while let Some(done) = writes.join_next().await {
        let (key, r) = done.expect("task");
        match r {
            Ok(_) => acked.push(key),
            Err(e) => assert!(
                e.outcome_unknown()
                    || matches!(
                        e,
                        ClientError::NoLeader { .. } | ClientError::Unavailable(_)
                    ),
                "{key}: {e}"
            ),
        }
    }
    wait_for("a new leader", Duration::from_secs(20), || async {
        leader_of(&c, 0).is_some_and(|l| l != leader)
    })
    .await;
    for key in &acked {
        let got = client.get(key.as_bytes()).await.expect("get");
        assert_eq!(
            got.as_deref(),
            Some(&b"v"[..]),
            "acknowledged {key} was lost"
        );
    }
    c.cluster.shutdown().await;
}
