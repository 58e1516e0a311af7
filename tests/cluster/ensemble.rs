//! ZooKeeper as an ensemble (DESIGN §16): the lab's private ensemble starts, elects, loses and
//! regains servers, and stops every JVM on every exit path; brokers ride out the loss of a
//! minority under acks=all load without a session expiring and without losing a write.

use crate::support::*;
use simplekv::command::Session;
use simplekv::coord::{ServerOptions, ZkMode};
use simplekv::events::EventKind;
use simplekv::lab::{Cluster, ClusterOptions, Lab, LabOptions, ZkChoice};
use simplekv::replica::Acks;
use std::sync::Arc;
use std::time::Duration;

fn ensemble_options(dir: &std::path::Path, servers: u32) -> ClusterOptions {
    let mut o = ClusterOptions::lab(dir.to_path_buf(), spec(3, 2, 3, 2));
    o.zk = ZkChoice::Private {
        options: ServerOptions::default(),
        servers,
    };
    o
}

/// Processes whose command line names `dir` (the servers' watchdogs and JVMs).
fn processes_under(dir: &std::path::Path) -> Vec<String> {
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("ps");
    String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(&dir.display().to_string()) && !l.contains("ps -eo"))
        .map(str::to_owned)
        .collect()
}

fn count(modes: &[ZkMode], m: ZkMode) -> usize {
    modes.iter().filter(|&&x| x == m).count()
}

async fn wait_modes(c: &Cluster, what: &str, ok: impl Fn(&[ZkMode]) -> bool) -> Vec<ZkMode> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let modes = c.zk_modes().await;
        if ok(&modes) {
            return modes;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {modes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A cluster on a private ensemble of three under `dir`.
async fn start_on_three(dir: &std::path::Path) -> Cluster {
    Cluster::start(
        ensemble_options(dir, 3),
        simplekv::events::EventSink::default(),
    )
    .await
    .expect("cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_elects_survives_a_minority_and_stops_every_server_on_every_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zk_dir = dir.path().join("zookeeper");
    let c = start_on_three(dir.path()).await;
    assert_eq!(c.zk_server_count(), 3);
    assert_eq!(
        c.zk_connect()
            .split('/')
            .next()
            .map(|s| s.split(',').count()),
        Some(3),
        "clients get every server: {}",
        c.zk_connect()
    );
    let modes = c.zk_modes().await;
    assert_eq!(
        (
            count(&modes, ZkMode::Leader),
            count(&modes, ZkMode::Follower)
        ),
        (1, 2),
        "{modes:?}"
    );
    assert_eq!(processes_under(&zk_dir).len(), 6, "3 JVMs and 3 watchdogs");

    // The leader dies: the two left elect one of themselves.
    let old = modes
        .iter()
        .position(|&m| m == ZkMode::Leader)
        .expect("leader") as u32
        + 1;
    c.kill_zk(old).await.expect("kill");
    let modes = wait_modes(&c, "a new ZooKeeper leader", |m| {
        count(m, ZkMode::Leader) == 1 && count(m, ZkMode::Follower) == 1
    })
    .await;
    assert_eq!(modes[old as usize - 1], ZkMode::Down);
    assert!(c.kill_zk(old).await.is_err(), "already down");
    // A second server: no quorum, the last one stops serving.
    let other = (1..=3).find(|&n| n != old).expect("another");
    c.kill_zk(other).await.expect("kill");
    wait_modes(&c, "no server serving", |m| !m.iter().any(|x| x.serves())).await;
    c.restore_zk(old).await.expect("restore");
    c.restore_zk(other).await.expect("restore");
    wait_modes(&c, "all three serving", |m| m.iter().all(|x| x.serves())).await;
    assert!(c.restore_zk(old).await.is_err(), "already up");
    assert!(c.kill_zk(4).await.is_err(), "no zk:4");

    c.shutdown().await;
    assert!(
        processes_under(&zk_dir).is_empty(),
        "still running after shutdown"
    );
    drop(c);

    // Dropped without a shutdown (an error path): every server stops too.
    let dir = tempfile::tempdir().expect("tempdir");
    let zk_dir = dir.path().join("zookeeper");
    let c = start_on_three(dir.path()).await;
    assert_eq!(processes_under(&zk_dir).len(), 6);
    tokio::task::spawn_blocking(move || drop(c))
        .await
        .expect("drop");
    assert!(
        processes_under(&zk_dir).is_empty(),
        "still running after drop"
    );
}

/// Two of five ZooKeeper servers — zk:1 and the leader — die under acks=all load and stay down
/// for two session timeouts: every broker whose connection ran to one of them moves to another
/// server within its session, no session expires, no partition changes leader, and every
/// acknowledged write is there and linearizable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_loss_under_acks_all_load_loses_nothing_and_expires_no_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = Lab::start(LabOptions {
        cluster: ensemble_options(dir.path(), 5),
        data_kept: true,
        log_file: dir.path().join("lab.log"),
        record: None,
    })
    .await
    .expect("lab");
    let mut session = Session::new(lab.client().clone(), Acks::All, Arc::clone(&lab));
    run(&mut session, "wait isr 3 30s").await;
    let before: Vec<(Option<u32>, u32)> = lab
        .snapshot()
        .partitions
        .iter()
        .map(|p| (p.leader, p.leader_epoch))
        .collect();
    let started = simplekv::storage::now_ms();
    run(&mut session, "load 10000 clients 4 acks all background").await;
    let killed = run(&mut session, "kill zk:leader").await;
    assert!(killed.contains("(was leader)"), "{killed}");
    // zk:1 too (or zk:2 if zk:1 led): the first server of every connect string is gone.
    let second = if killed.contains("zk:1 ") {
        "zk:2"
    } else {
        "zk:1"
    };
    run(&mut session, &format!("kill {second}")).await;
    // The fault lasts two session timeouts: a broker that could not move would expire.
    tokio::time::sleep(Duration::from_millis(
        2 * lab.cluster().session_timeout_ms(),
    ))
    .await;
    let done = run(&mut session, "wait load 120s").await;
    assert!(done.contains("errors 0, unknown 0"), "{done}");
    assert!(
        run(&mut session, "check lost-writes")
            .await
            .ends_with("lost 0"),
        "acknowledged writes lost"
    );
    let lin = run(&mut session, "check linearizable").await;
    assert!(lin.starts_with("linearizable: "), "{lin}");

    let snap = lab.snapshot();
    let after: Vec<(Option<u32>, u32)> = snap
        .partitions
        .iter()
        .map(|p| (p.leader, p.leader_epoch))
        .collect();
    assert_eq!(before, after, "no partition changed leader");
    assert_eq!(
        (count(&snap.zk_servers, ZkMode::Down), snap.zk_servers.len()),
        (2, 5),
        "{:?}",
        snap.zk_servers
    );
    let expired: Vec<String> = snap
        .events
        .iter()
        .filter(|e| e.at_ms >= started && e.kind == EventKind::Session)
        .filter(|e| e.message.contains("expired"))
        .map(|e| e.message.clone())
        .collect();
    assert!(expired.is_empty(), "sessions expired: {expired:?}");
    assert!(
        snap.events
            .iter()
            .any(|e| e.kind == EventKind::Session && e.message.contains("reconnected")),
        "brokers moved to another server"
    );
    assert!(
        snap.events.iter().any(|e| e.kind == EventKind::Zk
            && e.message.starts_with("ZooKeeper elected zk:")
            || e.message.starts_with("ZooKeeper's quorum is back")),
        "the ensemble's election is told"
    );
    run(&mut session, "restore zk:all").await;
    lab.shutdown().await;
}

/// The binary's exit paths: a failing scenario on an ensemble stops every server before `run`
/// exits, and an even ensemble is refused in one line before anything starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_its_ensemble_on_failure_and_refuses_an_even_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fails.yaml");
    std::fs::write(
        &path,
        "name: Fails\ndescription: a wrong expectation\ncluster: {nodes: 1, partitions: 1}\nsteps:\n  - run: status\n    expect: /quorum stands \\(3 of 3 serve\\)/\n  - run: set k 1\n    expect: \"2\"\n",
    )
    .expect("write");
    let data = dir.path().join("data");
    let run = {
        let (path, data) = (path.display().to_string(), data.display().to_string());
        move |extra: &[&str]| {
            let mut args = vec![path.as_str(), "--data-dir", data.as_str()];
            args.extend_from_slice(extra);
            crate::demos::run_binary(&args)
        }
    };
    let (code, out, err) = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&["--zk-servers", "3"])
    })
    .await
    .expect("task");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("ensemble of 3 servers")
            && out.contains("1. status\n")
            && out.contains("PASS"),
        "{out}"
    );
    assert!(out.contains("scenario FAILED: 1 passed, 1 failed"), "{out}");
    assert!(
        processes_under(&data).is_empty(),
        "still running: {:?}",
        processes_under(&data)
    );
    // Its data directory remembers an ensemble of three: a standalone server is refused there.
    let (code, out, err) = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&[])
    })
    .await
    .expect("task");
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("start with --zk-servers 3"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.trim_end().ends_with("or use a fresh --data-dir"),
        "{err}"
    );
    assert!(
        processes_under(&data).is_empty(),
        "still running: {:?}",
        processes_under(&data)
    );
    let (code, out, err) = tokio::task::spawn_blocking(move || run(&["--zk-servers", "2"]))
        .await
        .expect("task");
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("zk_servers is 2; give an odd number"), "{err}");
}

/// The shipped `conf/ensemble3`, as README runs it on one machine: its three ZooKeeper servers
/// started by its own `zk-server.sh`, three `node` processes on its broker configs, `cli` through
/// the whole connect string; the ZooKeeper leader is SIGKILLed and writes go on. Every port is
/// moved to a free one and every directory into a temporary one; nothing else changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_ensemble3_runs_three_nodes_through_the_loss_of_its_leader() {
    use crate::procs::{Nodes, cli};
    use simplekv::broker::BrokerConfig;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/ensemble3");
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path();
    std::fs::create_dir_all(work.join("conf")).expect("mkdir");
    std::fs::copy(root.join("zk-server.sh"), work.join("conf/zk-server.sh")).expect("script");
    // Distinct ports, all at once: one at a time, the kernel handed out the same port twice.
    let ports = simplekv::coord::ensemble::free_ports(18).expect("ports");
    let client_port = |n: usize| ports[n - 1];
    for n in 1..=3 {
        let shipped = std::fs::read_to_string(root.join(format!("zoo-{n}.cfg"))).expect("cfg");
        let mut cfg = shipped
            .replace(
                &format!("clientPort=218{n}"),
                &format!("clientPort={}", client_port(n)),
            )
            .replace(
                "dataDir=data/",
                &format!("dataDir={}/data/", work.display()),
            );
        for m in 1..=3 {
            cfg = cfg.replace(
                &format!("server.{m}=127.0.0.1:{}:{}", 2887 + m, 3887 + m),
                &format!(
                    "server.{m}=127.0.0.1:{}:{}",
                    ports[1 + 2 * m],
                    ports[2 + 2 * m]
                ),
            );
        }
        assert!(
            !cfg.contains(":2888") && !cfg.contains("=218"),
            "every port moved:\n{cfg}"
        );
        std::fs::write(work.join(format!("conf/zoo-{n}.cfg")), cfg).expect("write");
    }
    struct Servers(Vec<std::process::Child>);
    impl Drop for Servers {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut servers = Servers(
        (1..=3)
            .map(|n| {
                let log = std::fs::File::create(work.join(format!("zk-{n}.out"))).expect("log");
                std::process::Command::new(work.join("conf/zk-server.sh"))
                    .arg(n.to_string())
                    .stdin(std::process::Stdio::null())
                    .stdout(log.try_clone().expect("log"))
                    .stderr(log)
                    .spawn()
                    .expect("zk-server.sh")
            })
            .collect(),
    );
    let addr = |n: usize| std::net::SocketAddr::from(([127, 0, 0, 1], client_port(n)));
    let modes =
        || async {
            futures_util::future::join_all((1..=3).map(|n| {
                simplekv::coord::server::mode_of_async(addr(n), Duration::from_millis(1000))
            }))
            .await
        };
    crate::support::wait_for(
        "the shipped ensemble to serve",
        Duration::from_secs(60),
        || async { modes().await.iter().all(|m| m.is_some_and(ZkMode::serves)) },
    )
    .await;
    for n in 1..=3 {
        let myid = std::fs::read_to_string(work.join(format!("data/ensemble3/zk-{n}/myid")));
        assert_eq!(
            myid.expect("myid").trim(),
            n.to_string(),
            "zk-server.sh wrote myid"
        );
    }

    let connect = format!("{},{},{}/simplekv-ensemble3", addr(1), addr(2), addr(3));
    let configs: Vec<std::path::PathBuf> = (1..=3)
        .map(|i| {
            let mut cfg = BrokerConfig::load(&root.join(format!("node-{i}.yaml")))
                .expect("shipped config loads");
            assert_eq!(
                cfg.zookeeper.connect,
                "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183/simplekv-ensemble3",
                "node-{i} names every server"
            );
            cfg.zookeeper.connect = connect.clone();
            let port = |k: usize| ports[9 + 3 * (i - 1) + k];
            cfg.kv_port = port(0);
            cfg.peer_port = port(1);
            cfg.resp_port = Some(port(2));
            cfg.data_dir = work.join(format!("node-{i}"));
            let path = work.join(format!("node-{i}.yaml"));
            std::fs::write(&path, serde_yaml::to_string(&cfg).expect("yaml")).expect("write");
            path
        })
        .collect();
    let _nodes = Nodes::spawn(&configs, work);
    let set = |k: String| {
        let connect = connect.clone();
        async move { cli(&["--zk", &connect, "--timeout", "30s", "set", &k, "v"]).await }
    };
    crate::support::wait_for("the nodes to serve", Duration::from_secs(60), || async {
        set("first".into()).await.code == 0
    })
    .await;

    let leader = modes()
        .await
        .iter()
        .position(|&m| m == Some(ZkMode::Leader))
        .expect("a ZooKeeper leader");
    servers.0[leader].kill().expect("SIGKILL");
    let _ = servers.0[leader].wait();
    for i in 0..10 {
        let out = set(format!("after-{i}")).await;
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "OK\n"),
            "{}",
            out.stderr
        );
    }
    let out = cli(&["--zk", &connect, "get", "after-9"]).await;
    assert_eq!(out.stdout, "v\n", "{}", out.stderr);
}
