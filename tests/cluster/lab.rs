//! The lab's published snapshots tell the truth through a failover: the session window of a killed
//! leader, the new leader, the ISR shrink, and after a restore the catch-up and the rejoin.

use crate::support::*;
use simplekv::command::{Reply, Session};
use simplekv::lab::{BrokerState, Lab, LabOptions, LabSnapshot};
use simplekv::replica::Acks;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

async fn wait_snapshot(
    rx: &mut watch::Receiver<Arc<LabSnapshot>>,
    what: &str,
    pred: impl Fn(&LabSnapshot) -> bool,
) -> Arc<LabSnapshot> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let snap = Arc::clone(&rx.borrow_and_update());
        if pred(&snap) {
            return snap;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!("timed out waiting for the lab to show {what}"),
        }
    }
}

async fn run(session: &mut Session<Arc<Lab>>, line: &str) -> String {
    match session.run_line(line).await {
        Some(Ok(Reply::Text(t))) => t,
        other => panic!("{line}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_snapshots_show_a_failover_and_a_rejoin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = Lab::start(LabOptions {
        cluster: options("lab", spec(3, 1, 3, 2), dir.path()),
        data_kept: true,
        log_file: dir.path().join("lab.log"),
    })
    .await
    .expect("lab");
    let mut rx = lab.subscribe();
    let s = wait_snapshot(&mut rx, "a leader with a full ISR", |s| {
        s.partitions[0].leader.is_some() && s.partitions[0].isr.len() == 3
    })
    .await;
    let old = s.partitions[0].leader.expect("leader");
    let old_epoch = s.partitions[0].leader_epoch;

    let mut session = Session::new(lab.client().clone(), Acks::All, Arc::clone(&lab));
    assert_eq!(run(&mut session, "set a 1").await, "OK");
    assert_eq!(run(&mut session, "kill leader").await, "OK");

    let idx = old as usize - 1;
    wait_snapshot(&mut rx, "the killed leader's session lingering", |s| {
        s.brokers[idx].state == BrokerState::DownSessionLingering
    })
    .await;
    let s = wait_snapshot(&mut rx, "a new leader", |s| {
        s.partitions[0].leader.is_some_and(|l| l != old) && s.partitions[0].leader_epoch > old_epoch
    })
    .await;
    assert!(
        !s.partitions[0].isr.contains(&old),
        "the ISR shrank: {:?}",
        s.partitions[0].isr
    );
    let new = s.partitions[0].leader.expect("leader");
    assert!(s.events.iter().any(|e| e.message.contains("killed")));
    assert!(
        s.events
            .iter()
            .any(|e| e.message.contains(&format!("broker {new} elected leader")))
    );
    wait_snapshot(&mut rx, "ZooKeeper dropping the dead broker", |s| {
        s.brokers[idx].state == BrokerState::Down
    })
    .await;

    assert_eq!(run(&mut session, "set b 2").await, "OK");
    assert_eq!(run(&mut session, &format!("restore {old}")).await, "OK");
    let s = wait_snapshot(
        &mut rx,
        "the restored broker caught up and back in the ISR",
        |s| {
            let leo = s.leader_leo(0);
            s.partitions[0].isr.contains(&old)
                && s.brokers[idx]
                    .replica(0)
                    .is_some_and(|r| Some(r.log_end_offset) == leo)
        },
    )
    .await;
    assert_eq!(s.brokers[idx].state, BrokerState::Up);
    assert!(s.disagreement(old, 0).is_none());
    let status = run(&mut session, "status").await;
    assert!(
        status.contains("partitions (ZooKeeper)") && status.contains(&format!("follow {new}")),
        "{status}"
    );
    lab.shutdown().await;
}
