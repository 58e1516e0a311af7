//! Every `demo/*.yaml` plays in the test suite through the same code as `simplekv-lab run`, on the
//! test ZooKeeper; and the `run` front end itself on passing and failing scenarios.

use crate::procs::BIN;
use simplekv::lab::{LabConfig, Scenario};
use std::path::{Path, PathBuf};

const DEMOS: [&str; 18] = [
    "seed-transcript.yaml",
    "leader-failover.yaml",
    "isr-shrink-expand.yaml",
    "min-insync.yaml",
    "unclean-election.yaml",
    "divergent-truncation.yaml",
    "controller-failover.yaml",
    "empty-disk-return.yaml",
    "eligible-leaders.yaml",
    "zombie-leader.yaml",
    "zombie-acks1.yaml",
    "leader-cut-from-zookeeper.yaml",
    "power-loss-fsync-never.yaml",
    "power-loss-fsync-always.yaml",
    "preferred-leader.yaml",
    "zookeeper-follower-dies.yaml",
    "zookeeper-leader-dies.yaml",
    "zookeeper-quorum-lost.yaml",
];

fn demo(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("demo")
        .join(file)
}

async fn play_demo(file: &str) {
    let scenario = Scenario::load(&demo(file)).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let text = crate::support::play_scenario(file, &scenario, dir.path(), true).await;
    assert!(text.contains("scenario passed"), "{text}");
    // The run was recorded, and `replay` can open it: its changes and events read back.
    let recorded = simplekv::lab::Timeline::load(&dir.path().join("run.jsonl"))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(
        recorded.len() > 1 && recorded.events() > 0,
        "{file}: {recorded:?}"
    );
    let last = recorded.snapshot(recorded.len() - 1).expect("last change");
    assert_eq!(last.partitions.len() as u32, scenario_partitions(&scenario));
    // The console draws it as `replay` would: the first, a middle and the last change.
    let mut app = simplekv::tui::app::App::new();
    app.log.partition = Some(0);
    for i in [0, recorded.len() / 2, recorded.len() - 1] {
        let snap = recorded.snapshot(i).expect("change");
        app.replay = Some(i);
        app.replay_title = Some(simplekv::tui::replay::title(
            &recorded,
            i,
            Some("run.jsonl"),
        ));
        let mut t =
            ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 36)).expect("terminal");
        t.draw(|f| simplekv::tui::draw::draw(f, &app, &snap))
            .expect("draw");
        let buf = t.backend().buffer();
        let screen: String = (0..buf.area.height)
            .flat_map(|y| (0..buf.area.width).map(move |x| (x, y)))
            .map(|(x, y)| buf[(x, y)].symbol().to_string())
            .collect();
        assert!(screen.contains("REPLAY of run.jsonl +"), "{file}: {screen}");
        assert!(screen.contains("Log of partition 0"), "{file}: {screen}");
    }
}

fn scenario_partitions(s: &Scenario) -> u32 {
    LabConfig::default()
        .overlay(&s.cluster)
        .spec()
        .expect("spec")
        .partitions
}

macro_rules! demo_test {
    ($name:ident, $file:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            play_demo($file).await;
        }
    };
}

demo_test!(demo_seed_transcript, "seed-transcript.yaml");
demo_test!(demo_leader_failover_loses_nothing, "leader-failover.yaml");
demo_test!(demo_isr_shrink_and_expand, "isr-shrink-expand.yaml");
demo_test!(demo_min_insync_refuses, "min-insync.yaml");
demo_test!(demo_unclean_election_loses_writes, "unclean-election.yaml");
demo_test!(demo_divergent_log_is_truncated, "divergent-truncation.yaml");
demo_test!(demo_controller_failover, "controller-failover.yaml");
demo_test!(demo_a_zombie_leader_loses_nothing, "zombie-leader.yaml");
demo_test!(
    demo_a_zombie_leader_under_acks_1_loses_writes,
    "zombie-acks1.yaml"
);
demo_test!(
    demo_a_leader_cut_from_zookeeper_serves_nothing_without_a_lease,
    "leader-cut-from-zookeeper.yaml"
);
demo_test!(
    demo_power_loss_under_fsync_never_loses_acknowledged_writes,
    "power-loss-fsync-never.yaml"
);
demo_test!(
    demo_power_loss_under_fsync_always_loses_nothing,
    "power-loss-fsync-always.yaml"
);
demo_test!(
    demo_a_broker_back_on_an_empty_disk_loses_nothing,
    "empty-disk-return.yaml"
);
demo_test!(demo_eligible_leaders_keep_the_data, "eligible-leaders.yaml");
demo_test!(
    demo_rebalance_hands_leadership_back_under_load,
    "preferred-leader.yaml"
);
demo_test!(
    demo_a_zookeeper_follower_dies_and_nothing_notices,
    "zookeeper-follower-dies.yaml"
);
demo_test!(
    demo_the_brokers_ride_through_a_zookeeper_election,
    "zookeeper-leader-dies.yaml"
);
demo_test!(
    demo_a_lost_zookeeper_quorum_stops_metadata_and_loses_nothing,
    "zookeeper-quorum-lost.yaml"
);

#[test]
fn every_demo_file_is_played_by_a_test() {
    let mut files: Vec<String> = std::fs::read_dir(demo(""))
        .expect("demo/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = DEMOS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed, "add a demo_test! line for every demo");
}

/// Runs `simplekv-lab run ARGS...` to completion: exit code, stdout, stderr.
pub fn run_binary(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(BIN)
        .arg("run")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_prints_each_step_and_exits_zero_on_success() {
    let zk = simplekv::testkit::zk_connect("run-ok");
    let path = demo("seed-transcript.yaml");
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run_binary(&[path.to_str().expect("utf8"), "--zk", &zk])
    })
    .await
    .expect("task");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("== The seed transcript =="), "{out}");
    assert!(out.contains("1. set hello 1\n    OK\n    PASS"), "{out}");
    assert_eq!(out.matches("PASS").count(), 6, "{out}");
    assert!(out.contains("scenario passed: 6 passed, 0 failed"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_stops_the_run_with_exit_one_and_stops_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fails.yaml");
    std::fs::write(
        &path,
        "name: Fails\ndescription: a wrong expectation\ncluster: {nodes: 1, partitions: 1}\nsteps:\n  - run: set k 1\n    expect: OK\n  - run: get k\n    expect: \"2\"\n  - run: get k\n    expect: \"1\"\n",
    )
    .expect("write");
    let data = dir.path().join("data");
    // A private ZooKeeper this time: it must be stopped on the failure path too.
    let args = [
        path.display().to_string(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        run_binary(&a)
    })
    .await
    .expect("task");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("FAIL") && out.contains("expected \"2\", got \"1\""),
        "{out}"
    );
    assert!(
        !out.contains("3. get k"),
        "stopped at the first failure: {out}"
    );
    assert!(out.contains("scenario FAILED: 1 passed, 1 failed"), "{out}");
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("ps");
    let left: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(&data.display().to_string()) && !l.contains("ps -eo"))
        .map(str::to_owned)
        .collect();
    assert!(left.is_empty(), "still running: {left:?}");

    // --keep-going plays every step and still fails.
    let zk = simplekv::testkit::zk_connect("run-keep-going");
    let p = path.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || {
        run_binary(&[p.to_str().expect("utf8"), "--zk", &zk, "--keep-going"])
    })
    .await
    .expect("task");
    assert_eq!(code, 1);
    assert!(out.contains("3. get k"), "{out}");
    assert!(out.contains("scenario FAILED: 2 passed, 1 failed"), "{out}");
}

#[test]
fn a_bad_scenario_file_is_one_line_naming_file_and_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "name: Bad\nsteps:\n  - run: frobnicate\n").expect("write");
    let (code, out, err) = run_binary(&[path.to_str().expect("utf8")]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.yaml: step 1: unknown command 'frobnicate'"),
        "{err}"
    );
}
