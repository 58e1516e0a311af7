//! The tombstone horizon: a follower that was down while the leader merged a delete away must not
//! bring the deleted key back.

use crate::support::*;
use simplekv::events::EventKind;
use simplekv::replica::Acks;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_dead_follower_does_not_resurrect_a_merged_away_delete() {
    let c = start_with(|d| {
        let mut o = options("horizon", spec(3, 1, 3, 1), d);
        o.storage.segment_bytes = 4096;
        o.storage.tombstone_retention_ms = 0;
        o.replication.merge_interval_ms = 500;
        // Catching up takes many fetches below the horizon (issue 9 case 2: with one fetch per
        // 2 KiB, a follower emptied for the horizon was emptied again on every later fetch).
        o.replication.fetch_max_bytes = 2048;
        o
    })
    .await;
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    client
        .set(b"zombie", b"alive", None, Acks::All)
        .await
        .expect("set");
    wait_caught_up(&c, 0).await;
    let leader = leader_of(&c, 0).expect("leader");
    let sleeper = follower_of(&c, leader);
    c.kill(sleeper).await.expect("kill");

    // The delete lands in the middle, so the merged log keeps many live records below the
    // horizon (the delete's offset) for the restored follower to copy.
    for i in 0..300 {
        if i == 150 {
            client.del(b"zombie", Acks::All).await.expect("del");
        }
        client
            .set(
                format!("fill-{i}").as_bytes(),
                &[b'x'; 100],
                None,
                Acks::All,
            )
            .await
            .expect("fill");
    }
    let log = log_of(&c, leader, 0);
    wait_for(
        "the leader to merge the tombstone away",
        Duration::from_secs(20),
        || async { log.tombstone_horizon() > 150 },
    )
    .await;
    drop(log);

    c.restore(sleeper).await.expect("restore");
    wait_for_isr(&c, 3).await;
    wait_caught_up(&c, 0).await;
    let emptied: Vec<_> = c
        .events_of(EventKind::Truncation)
        .into_iter()
        .filter(|e| e.broker == Some(sleeper) && e.message.contains("tombstone horizon"))
        .collect();
    assert_eq!(
        emptied.len(),
        1,
        "emptied once for the horizon: {emptied:?}"
    );
    let r = c
        .broker(sleeper)
        .and_then(|b| b.replica(0))
        .expect("replica");
    assert_eq!(
        r.log().get(b"zombie").expect("get").value(),
        None,
        "the delete stands on the restored follower"
    );
    assert!(r.log().get(b"fill-299").expect("get").value().is_some());
    assert!(
        r.log().tombstone_horizon() >= log_of(&c, leader, 0).tombstone_horizon(),
        "the follower adopted the leader's horizon, so it keeps the rule if it leads"
    );
    // Even if it led, the key would stay deleted.
    assert_eq!(client.get(b"zombie").await.expect("get"), None);
    c.cluster.shutdown().await;
}
