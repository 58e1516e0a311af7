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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_on_one_stream_are_answered_in_order_and_a_refusal_ends_it() {
    use simplekv::replica::Acks;
    use simplekv::rpc::Reason;
    let c = start("fetch-stream", spec(2, 1, 2, 1)).await;
    wait_for_isr(&c, 2).await;
    let client = client(&c).await;
    for i in 0..3 {
        client
            .set(format!("k{i}").as_bytes(), b"v", None, Acks::All)
            .await
            .expect("set");
    }
    let leader = leader_of(&c, 0).expect("leader");
    let f = follower_of(&c, leader);
    let coord = simplekv::coord::Coord::connect(c.zk_connect(), std::time::Duration::from_secs(5))
        .await
        .expect("zk");
    let broker_epoch = coord
        .broker(f)
        .await
        .expect("zk")
        .expect("registered")
        .epoch;
    let epoch = epoch_of(&c, 0).expect("epoch");
    let b = c.broker(leader).expect("up");
    let replica = b.replica(0).expect("replica");
    // The test fetches as the follower, which must not fetch for itself meanwhile.
    c.kill(f).await.expect("kill");
    let leo = replica.snapshot().log_end_offset;
    let fetch = |offset: u64, leader_epoch: u32, max_wait_ms: u32| rpc::FetchRequest {
        partition: 0,
        replica_id: f,
        fetch_offset: offset,
        leader_epoch,
        max_bytes: 1 << 20,
        max_wait_ms,
        broker_epoch,
        ..Default::default()
    };

    let mut peer = ReplicationClient::connect(format!("http://{}", b.peer_addr()))
        .await
        .expect("peer");
    let (requests, rx) = tokio::sync::mpsc::channel(1);
    requests.send(fetch(0, epoch, 0)).await.expect("send");
    let mut replies = peer
        .fetch_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("a stream")
        .into_inner();
    let first = next_reply(&mut replies).await.expect("reply").expect("one");
    assert_eq!(first.log_end_offset, leo);
    for i in 0..3 {
        let key = format!("k{i}");
        assert!(
            first
                .records
                .windows(key.len())
                .any(|w| w == key.as_bytes()),
            "{key}"
        );
    }
    // The next fetch on the stream waits at the log end and brings what is written next.
    requests
        .send(fetch(leo, epoch, 10_000))
        .await
        .expect("send");
    client
        .set(b"later", b"v", None, Acks::One)
        .await
        .expect("set");
    let second = next_reply(&mut replies).await.expect("reply").expect("one");
    assert!(second.log_end_offset > leo);
    assert!(second.records.windows(5).any(|w| w == b"later"));
    assert!(
        !second.records.windows(2).any(|w| w == b"k0"),
        "from {leo} on only"
    );
    // A refusal is the stream's last reply, with the reason the unary call gives.
    requests.send(fetch(leo, epoch + 1, 0)).await.expect("send");
    let refused = next_reply(&mut replies).await.expect_err("a future epoch");
    assert_eq!(
        rpc::reason_of(&refused),
        Some(Reason::Fenced),
        "{refused:?}"
    );
    let _ = requests.send(fetch(leo, epoch, 0)).await;
    assert!(
        matches!(next_reply(&mut replies).await, Ok(None)),
        "nothing is answered after a refusal"
    );
    // A fetch past the log end tells the follower to truncate, as the unary call does.
    let far = first_streamed(&mut peer, fetch(leo + 100, epoch, 0)).await;
    let far = far.expect_err("past the log end");
    assert_eq!(
        rpc::reason_of(&far),
        Some(Reason::OffsetOutOfRange),
        "{far:?}"
    );
    c.cluster.shutdown().await;
}

/// The next reply on a fetch stream; panics if none comes within 20 s (a bound on a hang).
async fn next_reply(
    replies: &mut tonic::Streaming<rpc::FetchResponse>,
) -> Result<Option<rpc::FetchResponse>, tonic::Status> {
    tokio::time::timeout(std::time::Duration::from_secs(20), replies.message())
        .await
        .expect("a reply")
}

/// Reads until the server closes the connection (end of stream or an error); panics if it is
/// still open after `guard` (a bound on a hang, not a measured time).
async fn closed_by_server(conn: &mut tokio::net::TcpStream, guard: std::time::Duration) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    tokio::time::timeout(guard, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .expect("the server never closed the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_bounded_silent_ones_closed_and_slots_freed() {
    use simplekv::events::EventKind;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    let guard = std::time::Duration::from_secs(20);
    let c = start_with(|d| {
        let mut o = options("bounded", spec(1, 1, 1, 1), d);
        o.connections = simplekv::net::listen::ConnectionLimits {
            max_per_port: 16,
            max_per_address: 16,
            handshake_timeout_ms: 1_000,
            keepalive_interval_ms: 300,
            keepalive_timeout_ms: 700,
        };
        o
    })
    .await;
    let addr = c.broker(1).expect("up").kv_addr();

    // Far more half-open connections than the limit: the ones past it are refused (and the
    // broker says so); the rest say nothing and are closed at the handshake deadline.
    let mut held = Vec::new();
    for _ in 0..40 {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    wait_for("a refused connection", guard, || async {
        c.events_of(EventKind::Warning).iter().any(|e| {
            e.message
                .contains("kv port: 16 connections open, the limit")
        })
    })
    .await;
    for conn in &mut held {
        closed_by_server(conn, guard).await;
    }

    // A peer that speaks HTTP/2 and then never answers a ping is dropped too.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    silent
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("preface and empty SETTINGS");
    closed_by_server(&mut silent, guard).await;

    // The slots are free again: a real client gets in and works.
    let client = client(&c).await;
    client
        .set(b"after", b"1", None, simplekv::replica::Acks::All)
        .await
        .expect("a write once the held connections are gone");
    c.cluster.shutdown().await;
}
