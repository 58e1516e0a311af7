use crate::support::*;
use simplekv::replica::Acks;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_serves_the_seed_transcript() {
    let c = start("smoke", spec(3, 3, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    client
        .set(b"hello", b"1", None, Acks::All)
        .await
        .expect("set");
    assert_eq!(
        client.get(b"hello").await.expect("get").as_deref(),
        Some(&b"1"[..])
    );
    assert!(
        client
            .expire(b"hello", 200, Acks::All)
            .await
            .expect("expire")
    );
    let ttl = client.ttl(b"hello").await.expect("ttl");
    assert!((198..=200).contains(&ttl), "{ttl}");
    client.del(b"hello", Acks::All).await.expect("del");
    assert_eq!(client.get(b"hello").await.expect("get"), None);
    assert_eq!(client.ttl(b"hello").await.expect("ttl"), -2);
    c.cluster.shutdown().await;
}
