//! The wire as an outsider sees it: raw gRPC requests that no well-behaved client of ours
//! sends, answered the same way on every path and within bounds.

use crate::support::*;
use simplekv::rpc::{self, kv_client::KvClient, replication_client::ReplicationClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_requests_are_checked_alike_and_a_fetch_reply_is_capped() {
    let c = start_with(|d| {
        let mut o = options("wire", spec(2, 1, 2, 1), d);
        o.replication.fetch_max_bytes = 64 << 10;
        o
    })
    .await;
    wait_for_isr(&c, 2).await;
    let leader = leader_of(&c, 0).expect("leader");
    let b = c.broker(leader).expect("up");
    let mut kv = KvClient::connect(format!("http://{}", b.kv_addr()))
        .await
        .expect("kv");

    // A key longer than any write may store is refused by reads as by writes.
    let long = bytes::Bytes::from(vec![b'k'; (64 << 10) + 1]);
    let get = kv
        .get(rpc::GetRequest { key: long.clone() })
        .await
        .expect_err("an oversized key");
    let set = kv
        .set(rpc::SetRequest {
            key: long,
            value: "v".into(),
            ..Default::default()
        })
        .await
        .expect_err("an oversized key");
    for s in [&get, &set] {
        assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
        assert!(s.message().contains("the limit is 65536 bytes"), "{s:?}");
    }

    // An expiry no clock can reach is refused, and says why, instead of being stored.
    let s = kv
        .set(rpc::SetRequest {
            key: "k".into(),
            value: "v".into(),
            ttl_ms: u64::MAX,
            ..Default::default()
        })
        .await
        .expect_err("an expiry past the horizon");
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("100 years"), "{s:?}");
    let s = kv
        .expire(rpc::ExpireRequest {
            key: "k".into(),
            seconds: i64::MAX,
            ..Default::default()
        })
        .await
        .expect_err("an expiry past the horizon");
    assert!(s.message().contains("100 years"), "{s:?}");

    // 20 records of 20 KiB; a fetch asking for 4 GiB gets at most the leader's own fetch size
    // (and one whole record more).
    let client = client(&c).await;
    for i in 0..20 {
        client
            .set(
                format!("big-{i}").as_bytes(),
                vec![b'v'; 20 << 10].as_slice(),
                None,
                simplekv::replica::Acks::All,
            )
            .await
            .expect("set");
    }
    let epoch = epoch_of(&c, 0).expect("epoch");
    let mut peer = ReplicationClient::connect(format!("http://{}", b.peer_addr()))
        .await
        .expect("peer");
    let reply = peer
        .fetch(rpc::FetchRequest {
            partition: 0,
            replica_id: follower_of(&c, leader),
            fetch_offset: 0,
            leader_epoch: epoch,
            max_bytes: u32::MAX,
            max_wait_ms: 0,
            ..Default::default()
        })
        .await
        .expect("fetch")
        .into_inner();
    assert!(!reply.records.is_empty());
    assert!(
        reply.records.len() <= (64 << 10) + (21 << 10),
        "{} bytes in one reply",
        reply.records.len()
    );
    c.cluster.shutdown().await;
}
