//! The lab's published snapshots tell the truth through a failover: the session window of a killed
//! leader, the new leader, the ISR shrink, and after a restore the catch-up and the rejoin.

use crate::support::*;
use simplekv::command::{CommandError, Session};
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

/// A lab of three brokers and one partition, once its leader has a full ISR.
async fn lab_with_a_full_isr(
    name: &str,
    dir: &std::path::Path,
) -> (
    Arc<Lab>,
    watch::Receiver<Arc<LabSnapshot>>,
    Arc<LabSnapshot>,
) {
    let lab = Lab::start(LabOptions {
        cluster: options(name, spec(3, 1, 3, 2), dir),
        data_kept: true,
        log_file: dir.join("lab.log"),
        record: None,
    })
    .await
    .expect("lab");
    let mut rx = lab.subscribe();
    let s = wait_snapshot(&mut rx, "a leader with a full ISR", |s| {
        s.partitions[0].leader.is_some() && s.partitions[0].isr.len() == 3
    })
    .await;
    (lab, rx, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_snapshots_show_a_failover_and_a_rejoin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lab, mut rx, s) = lab_with_a_full_isr("lab", dir.path()).await;
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
    // A failed command says what kind of failure it was, beside its one line.
    let failed = |r: Option<Result<_, CommandError>>| match r {
        Some(Err(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    };
    let e = failed(session.run_line("kill 9").await);
    assert!(matches!(e, CommandError::Refused(_)), "{e:?}");
    assert_eq!(e.to_string(), "there is no broker 9; brokers are 1..3");
    let e = failed(session.run_line(&format!("restore {new}")).await);
    assert!(matches!(e, CommandError::Refused(_)), "{e:?}");
    let e = failed(session.run_line("wait leader-change 300ms").await);
    assert!(matches!(e, CommandError::TimedOut { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "timed out after 300ms waiting for a leader change"
    );
    let e = failed(session.run_line("frobnicate").await);
    assert!(matches!(e, CommandError::Usage(_)), "{e:?}");
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
    // `set b 2` committed on the new leader: status says where its time went.
    assert!(
        status.contains(&format!(
            "\ncommit path on each leader (since its broker started)\n  p0 on broker {new}: \
             after the append: "
        )),
        "{status}"
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_shown_as_a_zombie_and_a_timed_pause_ends_only_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (lab, mut rx, s) = lab_with_a_full_isr("lab-pause", dir.path()).await;
    let old = s.partitions[0].leader.expect("leader");
    let idx = old as usize - 1;
    let mut session = Session::new(lab.client().clone(), Acks::All, Arc::clone(&lab));
    assert_eq!(run(&mut session, "set a 1").await, "OK");
    assert!(
        run(&mut session, &format!("pause {old}"))
            .await
            .starts_with("OK: paused")
    );
    // Deposed while frozen: ZooKeeper names another leader, the zombie still believes it leads.
    let s = wait_snapshot(&mut rx, "a new leader while the old one is frozen", |s| {
        s.partitions[0].leader.is_some_and(|l| l != old)
    })
    .await;
    assert_eq!(s.brokers[idx].state, BrokerState::Paused);
    assert!(
        s.faults.contains(&format!("paused {old}")),
        "{:?}",
        s.faults
    );
    let stale = s.disagreement(old, 0).expect("a stale belief");
    assert!(stale.starts_with("believes it leads"), "{stale}");
    assert_eq!(run(&mut session, "set b 2").await, "OK");
    // Resumed, it learns the truth and rejoins.
    assert_eq!(run(&mut session, &format!("resume {old}")).await, "OK");
    wait_snapshot(
        &mut rx,
        "the zombie back in the ISR, agreeing with ZooKeeper",
        |s| s.partitions[0].isr.contains(&old) && s.disagreement(old, 0).is_none(),
    )
    .await;
    // A timed pause, resumed by hand, must not end the next pause when its time is up.
    assert!(
        run(&mut session, &format!("pause {old} 1s"))
            .await
            .starts_with("OK: paused for")
    );
    assert_eq!(run(&mut session, &format!("resume {old}")).await, "OK");
    assert!(
        run(&mut session, &format!("pause {old}"))
            .await
            .starts_with("OK: paused until")
    );
    // The only way to show the old timer does nothing is to outlive it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        lab.cluster().is_paused(old),
        "the old timer resumed a later pause"
    );
    assert_eq!(run(&mut session, &format!("resume {old}")).await, "OK");
    assert_eq!(
        run(&mut session, "check lost-writes").await,
        "acknowledged 2, lost 0"
    );
    let lin = run(&mut session, "check linearizable").await;
    assert!(lin.starts_with("linearizable: "), "{lin}");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_preferred_leader_gets_its_leadership_back_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = options("lab-auto-rebalance", spec(3, 1, 3, 2), dir.path());
    cluster.replication.auto_leader_rebalance = true;
    cluster.replication.leader_imbalance_check_interval_ms = 500;
    let lab = Lab::start(LabOptions {
        cluster,
        data_kept: true,
        log_file: dir.path().join("lab.log"),
        record: None,
    })
    .await
    .expect("lab");
    let mut rx = lab.subscribe();
    let s = wait_snapshot(&mut rx, "broker 1 leading with a full ISR", |s| {
        s.partitions[0].leader == Some(1) && s.partitions[0].isr.len() == 3
    })
    .await;
    let first_epoch = s.partitions[0].leader_epoch;
    let mut session = Session::new(lab.client().clone(), Acks::All, Arc::clone(&lab));
    assert_eq!(run(&mut session, "set a 1").await, "OK");
    assert_eq!(run(&mut session, "kill 1").await, "OK");
    let s = wait_snapshot(&mut rx, "another leader", |s| {
        s.partitions[0].leader.is_some_and(|l| l != 1)
    })
    .await;
    let deputy = s.partitions[0].leader.expect("leader");
    let deputy_epoch = s.partitions[0].leader_epoch;
    assert!(deputy_epoch > first_epoch);
    assert_eq!(run(&mut session, "set b 2").await, "OK");
    assert_eq!(run(&mut session, "restore 1").await, "OK");
    // Nobody asks: the controller's periodic check hands partition 0 back once broker 1 is in
    // the ISR again, in a new leader epoch.
    let s = wait_snapshot(&mut rx, "broker 1 leading again", |s| {
        s.partitions[0].leader == Some(1)
    })
    .await;
    assert_eq!(s.partitions[0].leader_epoch, deputy_epoch + 1);
    assert!(s.partitions[0].isr.contains(&deputy));
    let handed = wait_snapshot(&mut rx, "the handover's event", |s| {
        s.events.iter().any(|e| {
            e.message
                .contains("handed back to its preferred replica, broker 1")
        })
    })
    .await;
    let why = handed
        .events
        .iter()
        .find(|e| e.message.contains("handed back"))
        .map(|e| e.message.clone())
        .unwrap_or_default();
    assert!(why.contains("automatic rebalance"), "{why}");
    assert_eq!(run(&mut session, "set c 3").await, "OK");
    assert_eq!(run(&mut session, "get b").await, "2");
    assert_eq!(
        run(&mut session, "check lost-writes").await,
        "acknowledged 3, lost 0"
    );
    lab.shutdown().await;
}
