//! The soak in the suite: short rounds of every fault kind under acks=all and fsync always, each
//! checked for lost writes, linearizability and replicas agreeing (DESIGN §13–14).

use simplekv::command::FaultKind;
use simplekv::lab::LabConfig;
use simplekv::lab::soak::{self, SoakOptions};
use simplekv::replica::Acks;
use simplekv::storage::FsyncPolicy;
use std::time::Duration;

fn options(name: &str, rounds: u32, seed: u64, dir: &std::path::Path) -> SoakOptions {
    SoakOptions {
        rounds,
        seed,
        kinds: FaultKind::ALL.to_vec(),
        config: LabConfig {
            nodes: Some(3),
            partitions: Some(2),
            fsync: Some(FsyncPolicy::Always),
            // Faults (60 % of `every`) outlast the session and the lag limit, so pauses and
            // partitions depose leaders and shrink ISRs: zombies happen.
            session_timeout_ms: Some(1200),
            replica_lag_time_max_ms: Some(1200),
            ..LabConfig::default()
        },
        acks: Acks::All,
        duration: Duration::from_secs(5),
        every: Duration::from_secs(3),
        clients: 6,
        keys: 40,
        reads: 30,
        zk: Some(simplekv::testkit::zk_connect(name)),
        work_dir: dir.join("work"),
        save_dir: dir.to_path_buf(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_short_rounds_of_every_fault_lose_nothing_and_stay_linearizable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options("soak", 20, 1000, dir.path());
    let mut lines = Vec::new();
    let report = soak::run(&opts, &|_, _| {}, &mut |r| {
        lines.push(format!("{r:?}"));
    })
    .await
    .unwrap_or_else(|e| panic!("soak: {e}"));
    let table = report.table();
    assert_eq!(report.rounds.len(), 20);
    assert!(!report.failed(), "{table}\n{}", lines.join("\n"));
    for kind in FaultKind::ALL {
        assert!(
            report.rounds.iter().any(|r| r.kind == kind),
            "{kind:?} never ran"
        );
    }
    // The faults bit: pauses and partitions outlasted the session and deposed leaders.
    for kind in [FaultKind::Pause, FaultKind::Partition, FaultKind::Kill] {
        assert!(
            report
                .rounds
                .iter()
                .any(|r| r.kind == kind && r.elections > 0),
            "no {kind:?} round moved a leader:\n{}",
            lines.join("\n")
        );
    }
    assert!(
        report.rounds.iter().map(|r| r.acknowledged).sum::<u64>() > 100,
        "the load wrote little: {table}"
    );
}
