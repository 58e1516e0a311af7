//! The client's write batches (`client::batch`) against real brokers: concurrent writes share
//! `WriteBatch` requests, and every write keeps its own outcome.

use crate::support::*;
use simplekv::client::{Client, ClientConfig, ClientError};
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

/// An in-process batch (a RESP listener's own partitions) skips the codec, but not its bound:
/// writes that pass every per-value limit yet sum past a message are refused whole, with
/// nothing written, as the same batch over a connection is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_batch_larger_than_a_message_is_refused_whole_as_over_the_wire() {
    let c = start("batch-bound", spec(1, 1, 1, 1)).await;
    wait_for_isr(&c, 1).await;
    let value = bytes::Bytes::from(vec![b'v'; 14 << 20]);
    let five = vec![(value.clone(), None); 5];
    let local = c.broker(1).expect("broker 1").local_kv();
    let req = simplekv::rpc::WriteBatchRequest {
        partition: 0,
        acks: simplekv::rpc::Acks::All as i32,
        writes: five
            .iter()
            .map(|(v, _)| simplekv::rpc::BatchedWrite {
                key: bytes::Bytes::from_static(b"big"),
                value: v.clone(),
                ttl_ms: 0,
                delete: false,
            })
            .collect(),
    };
    let status = local.write_batch(req).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("write batch"), "{status:?}");
    assert_eq!(log_of(&c, 1, 0).log_end_offset(), 0, "nothing was written");

    let remote = client(&c).await;
    let answers = remote.set_group(b"big", &five, Acks::All).await;
    assert_eq!(answers.len(), 5);
    for a in answers {
        assert!(matches!(a, Err(ClientError::InvalidArgument(_))), "{a:?}");
    }
    assert_eq!(log_of(&c, 1, 0).log_end_offset(), 0, "nor over the wire");
}

/// A queue to the broker in this process keeps more than four batches in flight: each write sent
/// while earlier ones wait for their commit goes out at once as its own batch, instead of waiting
/// for an earlier batch to commit before it is even appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_to_the_broker_in_this_process_does_not_hold_writes_behind_four_batches() {
    let c = start_with(|d| {
        let mut o = options("batch-local", spec(2, 1, 2, 2), d);
        // Nothing shrinks the ISR or times out while the follower is frozen: the writes wait.
        o.session_timeout_ms = 20_000;
        o.replication.replica_lag_time_max_ms = 30_000;
        o.replication.request_timeout_ms = 30_000;
        o
    })
    .await;
    wait_for_isr(&c, 2).await;
    let leader = leader_of(&c, 0).expect("a leader");
    let follower = follower_of(&c, leader);
    let client = Client::connect_zk(
        c.zk_connect(),
        ClientConfig {
            request_timeout: Duration::from_secs(15),
            zk_session_timeout: Duration::from_secs(3),
            local: Some(c.broker(leader).expect("the leader").local_kv()),
            ..ClientConfig::default()
        },
    )
    .await
    .expect("client");
    client
        .set(b"warm", b"up", None, Acks::All)
        .await
        .expect("set");
    let (before, _) = client.batch_stats();
    let pause = c.pause(follower).await.expect("pause");
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..8u64 {
        let writer = client.clone();
        writes.spawn(async move {
            writer
                .set(format!("k{i}").as_bytes(), b"v", None, Acks::All)
                .await
        });
        wait_for(
            &format!("write {i} to go out as its own batch"),
            // Far below the timeouts: nothing but a free slot can let it out.
            Duration::from_secs(5),
            || async { client.batch_stats().0 == before + i + 1 },
        )
        .await;
    }
    assert!(
        writes.try_join_next().is_none(),
        "nothing commits while the follower is frozen"
    );
    c.resume_pause(follower, pause).await.expect("resume");
    while let Some(done) = writes.join_next().await {
        done.expect("task")
            .expect("acknowledged once the follower is back");
    }
    assert_eq!(client.batch_stats().0, before + 8);
    c.cluster.shutdown().await;
}
