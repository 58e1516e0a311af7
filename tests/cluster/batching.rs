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
    let (c, leader, follower) = patient_cluster("batch-local", 2).await;
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
    // Appended, not just sent: each batch reached the leader's log.
    wait_for(
        "the eight writes in the leader's log",
        Duration::from_secs(5),
        || async { log_of(&c, leader, 0).log_end_offset() == 9 },
    )
    .await;
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

/// Two brokers, one partition, min ISR `min_isr`, where nothing shrinks the ISR or times out
/// while the follower is frozen (writes and reads wait for it); with its leader and follower.
async fn patient_cluster(name: &str, min_isr: u32) -> (TestCluster, u32, u32) {
    let c = start_with(|d| {
        let mut o = options(name, spec(2, 1, 2, min_isr), d);
        o.session_timeout_ms = 20_000;
        o.replication.replica_lag_time_max_ms = 30_000;
        o.replication.request_timeout_ms = 30_000;
        o
    })
    .await;
    wait_for_isr(&c, 2).await;
    let leader = leader_of(&c, 0).expect("a leader");
    let follower = follower_of(&c, leader);
    (c, leader, follower)
}

/// Reads sent to a broker over a connection share `GetBatch` requests, and each gets what a
/// `Get` of its key would have: the value, or nothing for a missing key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_share_requests_and_each_gets_its_own_answer() {
    let c = start("read-batching", spec(3, 1, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    // No broker in the client's process: every read goes over a connection.
    let client = client(&c).await;
    for i in 0..200u32 {
        client
            .set(
                format!("k{i}").as_bytes(),
                format!("v{i}").as_bytes(),
                None,
                Acks::All,
            )
            .await
            .expect("set");
    }
    let mut reads = tokio::task::JoinSet::new();
    for i in 0..300u32 {
        let client = client.clone();
        reads.spawn(async move { (i, client.get(format!("k{i}").as_bytes()).await) });
    }
    while let Some(done) = reads.join_next().await {
        let (i, got) = done.expect("task");
        let want = (i < 200).then(|| format!("v{i}"));
        assert_eq!(
            got.expect("get")
                .map(|v| String::from_utf8_lossy(&v).to_string()),
            want,
            "k{i}"
        );
    }
    let (requests, carried, alone) = client.read_batch_stats();
    assert_eq!(carried, 300, "every read went through a batch");
    assert_eq!(alone, 0, "every committed key was answered in its batch");
    assert!(
        requests < carried,
        "{carried} concurrent reads took {requests} requests: nothing was batched"
    );
    c.cluster.shutdown().await;
}

/// A key whose latest record is not committed is not answered in the batch: it is asked alone,
/// and that read waits for the commit, while the rest of its batch is answered at once. A
/// broker that does not lead the partition refuses the whole batch, naming the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncommitted_key_waits_alone_and_holds_up_no_other_read() {
    let (c, leader, follower) = patient_cluster("read-batch-alone", 1).await;
    // No broker in the client's process: every read goes over a connection.
    let client = client(&c).await;
    client
        .set(b"cold", b"1", None, Acks::All)
        .await
        .expect("set");
    let kv_of = |id: u32| {
        let addr = c.broker(id).expect("up").kv_addr();
        async move {
            simplekv::rpc::kv_client::KvClient::connect(format!("http://{addr}"))
                .await
                .expect("connect")
        }
    };
    let batch = |keys: &[&'static [u8]]| simplekv::rpc::GetBatchRequest {
        partition: 0,
        keys: keys.iter().map(|k| bytes::Bytes::from_static(k)).collect(),
    };
    let refused = kv_of(follower)
        .await
        .get_batch(batch(&[b"cold"]))
        .await
        .expect_err("a follower refuses");
    assert_eq!(
        simplekv::rpc::reason_of(&refused),
        Some(simplekv::rpc::Reason::NotLeader),
        "{refused:?}"
    );
    assert_eq!(
        simplekv::rpc::leader_of(&refused),
        Some(c.broker(leader).expect("up").kv_addr().to_string()),
        "the refusal names the leader"
    );
    let mut direct = kv_of(leader).await;
    let pause = c.pause(follower).await.expect("pause");
    // Appended and durable on the leader, not committed: the follower cannot fetch it.
    client
        .set(b"hot", b"2", None, Acks::One)
        .await
        .expect("set");
    let answered = tokio::time::timeout(
        Duration::from_secs(10),
        direct.get_batch(batch(&[b"hot", b"cold", b"missing"])),
    )
    .await
    .expect("a batch with an uncommitted key is answered at once")
    .expect("get_batch")
    .into_inner()
    .results;
    assert_eq!(answered.len(), 3);
    assert!(answered[0].retry_alone, "hot: {:?}", answered[0]);
    assert!(
        answered[1].found && answered[1].value == "1" && !answered[1].retry_alone,
        "cold: {:?}",
        answered[1]
    );
    assert!(
        !answered[2].found && !answered[2].retry_alone && answered[2].error_reason.is_empty(),
        "missing: {:?}",
        answered[2]
    );
    let hot = {
        let client = client.clone();
        tokio::spawn(async move { client.get(b"hot").await })
    };
    wait_for("the hot read's batch", Duration::from_secs(10), || async {
        client.read_batch_stats().1 > 0
    })
    .await;
    let cold = tokio::time::timeout(Duration::from_secs(10), client.get(b"cold"))
        .await
        .expect("a committed key is answered while another waits for its commit")
        .expect("get");
    assert_eq!(cold.as_deref(), Some(&b"1"[..]));
    assert!(
        !hot.is_finished(),
        "the uncommitted key is not answered before its commit"
    );
    c.resume_pause(follower, pause).await.expect("resume");
    let hot = hot.await.expect("task").expect("get");
    assert_eq!(hot.as_deref(), Some(&b"2"[..]), "read once committed");
    assert_eq!(
        client.read_batch_stats().2,
        1,
        "only the hot read was asked alone"
    );
    c.cluster.shutdown().await;
}
