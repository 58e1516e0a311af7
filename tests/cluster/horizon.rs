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
    let sleeper = c
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("follower");
    c.kill(sleeper).await.expect("kill");

    client.del(b"zombie", Acks::All).await.expect("del");
    for i in 0..300 {
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
        || async { log.tombstone_horizon() > 0 },
    )
    .await;
    drop(log);

    c.restore(sleeper).await.expect("restore");
    wait_caught_up(&c, 0).await;
    let emptied = c.events_of(EventKind::Truncation);
    assert!(
        emptied
            .iter()
            .any(|e| e.broker == Some(sleeper) && e.message.contains("tombstone horizon")),
        "{emptied:?}"
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
    // Even if it led, the key would stay deleted.
    assert_eq!(client.get(b"zombie").await.expect("get"), None);
    c.cluster.shutdown().await;
}
