//! `simplekv-lab node` processes on the shipped `conf/cluster3` files, driven by `cli` one-shot
//! commands; one is killed with SIGKILL and the data stays readable.

use crate::procs::{Nodes, cli};
use simplekv::broker::BrokerConfig;
use simplekv::client::{Client, ClientConfig};
use simplekv::replica::Acks;
use std::time::Duration;

/// Node configs from the shipped `conf/cluster3`, on the test ZooKeeper, free ports and `dir`.
fn node_configs(zk: &str, dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    shipped_configs("cluster3", zk, dir)
}

/// Node configs from the shipped `conf/<name>`, on the test ZooKeeper, free ports and `dir`
/// (TLS files in `dir/certs`).
fn shipped_configs(name: &str, zk: &str, dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    // Nine distinct ports at once (one at a time, the kernel may hand out one twice).
    let ports = simplekv::coord::ensemble::free_ports(9).expect("ports");
    (1..=3)
        .map(|i| {
            let port = |k: usize| ports[3 * (i - 1) + k];
            let shipped = format!("{}/conf/{name}/node-{i}.yaml", env!("CARGO_MANIFEST_DIR"));
            let mut cfg =
                BrokerConfig::load(std::path::Path::new(&shipped)).expect("shipped config loads");
            if let Some(tls) = &mut cfg.tls {
                for file in [&mut tls.ca, &mut tls.cert, &mut tls.key] {
                    *file = dir.join("certs").join(file.file_name().expect("a file"));
                }
            }
            cfg.zookeeper.connect = zk.to_string();
            cfg.zookeeper.session_timeout_ms = 2000;
            cfg.kv_port = port(0);
            cfg.peer_port = port(1);
            cfg.resp_port = Some(port(2));
            cfg.data_dir = dir.join(format!("node-{i}"));
            let path = dir.join(format!("node-{i}.yaml"));
            std::fs::write(&path, serde_yaml::to_string(&cfg).expect("yaml")).expect("write");
            path
        })
        .collect()
}

/// Waits until the first broker up has created the cluster in ZooKeeper (until then the cli says
/// there is none).
async fn wait_for_cluster(zk: &str) {
    crate::support::wait_for(
        "the brokers to create the cluster",
        Duration::from_secs(30),
        || async {
            Client::connect_zk(zk, ClientConfig::default())
                .await
                .is_ok()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_processes_keep_the_data_through_a_sigkill() {
    let zk = simplekv::testkit::zk_connect("nodes");
    let dir = tempfile::tempdir().expect("tempdir");
    let configs = node_configs(&zk, dir.path());
    let mut nodes = Nodes::spawn(&configs, dir.path());
    wait_for_cluster(&zk).await;

    let set = |k: String, v: String| {
        let zk = zk.clone();
        async move {
            cli(&[
                "--zk",
                &zk,
                "--acks",
                "all",
                "--timeout",
                "30s",
                "set",
                &k,
                &v,
            ])
            .await
        }
    };
    for i in 0..20 {
        let out = set(format!("key-{i}"), format!("value-{i}")).await;
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "OK\n"),
            "set key-{i}: {}",
            out.stderr
        );
    }

    let client = Client::connect_zk(&zk, ClientConfig::default())
        .await
        .expect("client");
    let view = client.cluster_view().await.expect("view");
    let victim = view.partitions[0].leader.expect("partition 0 has a leader");
    nodes.0[victim as usize - 1].kill().expect("SIGKILL");
    let _ = nodes.0[victim as usize - 1].wait();

    for i in 0..20 {
        let out = cli(&["--zk", &zk, "--timeout", "30s", "get", &format!("key-{i}")]).await;
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, format!("value-{i}\n").as_str()),
            "get key-{i}: {}",
            out.stderr
        );
    }
    let out = set("after".into(), "kill".into()).await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    // The others stop cleanly on SIGTERM.
    for (i, child) in nodes.0.iter_mut().enumerate() {
        if i as u32 + 1 == victim {
            continue;
        }
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "SIGTERM sent");
        let status = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(s) = child.try_wait().expect("wait") {
                    return s;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("node stops within 20s");
        assert!(status.success(), "node {} exited with {status}", i + 1);
        // Nothing it ran panicked on the way out (its ZooKeeper client's tasks included).
        let log = std::fs::read_to_string(dir.path().join(format!("node-{}.out", i + 1)))
            .expect("the node's output");
        assert!(!log.contains("panicked"), "node {}: {log}", i + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_sigkilled_and_restarted_at_once_on_an_empty_disk_loses_nothing() {
    // Issue 9 case 1, with real processes: the controller, which also leads a partition, is
    // SIGKILLed, its data directory deleted and the node started again at once. It registers as
    // soon as its old session expires, before any controller saw it gone; it must not lead, or
    // serve, in its old epoch with its empty log.
    let zk = simplekv::testkit::zk_connect("nodes-wipe");
    let dir = tempfile::tempdir().expect("tempdir");
    let configs = node_configs(&zk, dir.path());
    let mut nodes = Nodes::spawn(&configs, dir.path());
    wait_for_cluster(&zk).await;
    let cfg = ClientConfig {
        request_timeout: Duration::from_secs(30),
        ..ClientConfig::default()
    };
    let client = Client::connect_zk(&zk, cfg).await.expect("client");
    crate::support::wait_for(
        "every partition to lead",
        Duration::from_secs(30),
        || async {
            client
                .cluster_view()
                .await
                .is_ok_and(|v| v.partitions.iter().all(|p| p.isr.len() == 3))
        },
    )
    .await;
    let keys: Vec<String> = (0..300).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        client
            .set(k.as_bytes(), k.as_bytes(), None, Acks::All)
            .await
            .unwrap_or_else(|e| panic!("set {k}: {e}"));
    }
    let view = client.cluster_view().await.expect("view");
    let coord = simplekv::coord::Coord::connect(&zk, Duration::from_secs(3))
        .await
        .expect("zk");
    let controller = coord
        .controller()
        .await
        .expect("read /controller")
        .expect("a controller")
        .broker_id;
    drop(coord);
    let p = view
        .partitions
        .iter()
        .position(|p| p.leader == Some(controller))
        .expect("the controller leads a partition (each broker prefers one)");
    let victim = controller as usize;
    nodes.0[victim - 1].kill().expect("SIGKILL");
    let _ = nodes.0[victim - 1].wait();
    std::fs::remove_dir_all(dir.path().join(format!("node-{victim}"))).expect("wipe");
    nodes.respawn(victim - 1, &configs[victim - 1], dir.path());

    // Its partition gets a new leader epoch once the old session expires; the victim comes back
    // as a follower, copies the log and rejoins every ISR.
    let old_epoch = view.partitions[p].leader_epoch;
    crate::support::wait_for(
        "a new epoch for its partition and the wiped broker back in every ISR",
        Duration::from_secs(60),
        || async {
            client.cluster_view().await.is_ok_and(|v| {
                v.partitions[p].leader_epoch > old_epoch
                    && v.partitions
                        .iter()
                        .all(|p| p.isr.len() == 3 && p.leader.is_some())
            })
        },
    )
    .await;
    for k in &keys {
        let v = client
            .get(k.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("get {k}: {e}"));
        assert_eq!(v.as_deref(), Some(k.as_bytes()), "acknowledged {k} is lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_writes_through_one_node_and_reads_through_another() {
    let zk = simplekv::testkit::zk_connect("nodes-resp");
    let dir = tempfile::tempdir().expect("tempdir");
    let configs = node_configs(&zk, dir.path());
    let ports: Vec<u16> = configs
        .iter()
        .map(|p| {
            BrokerConfig::load(p)
                .expect("config")
                .resp_port
                .expect("a RESP port")
        })
        .collect();
    let _nodes = Nodes::spawn(&configs, dir.path());
    wait_for_cluster(&zk).await;
    let redis_cli = |port: u16, args: Vec<&'static str>| async move {
        let out = tokio::process::Command::new("redis-cli")
            .arg("-p")
            .arg(port.to_string())
            .args(&args)
            .output()
            .await
            .expect("redis-cli (make test installs redis-tools)");
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    };
    for &port in &ports {
        crate::support::wait_for(
            "every node's RESP listener",
            Duration::from_secs(30),
            || async move { redis_cli(port, vec!["ping"]).await == "PONG" },
        )
        .await;
    }
    // Every key, whichever partition it falls in, through any one node.
    for key in ["a", "b", "c", "d", "e", "f"] {
        let args = vec!["set", key, "through-node-1"];
        assert_eq!(redis_cli(ports[0], args).await, "OK", "set {key}");
    }
    for key in ["a", "b", "c", "d", "e", "f"] {
        assert_eq!(
            redis_cli(ports[2], vec!["get", key]).await,
            "through-node-1",
            "get {key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_from_the_shipped_configs_serves_the_cli_and_redis_cli() {
    let zk = simplekv::testkit::zk_connect("nodes-tls");
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let made = tokio::process::Command::new(crate::procs::BIN)
        .args(["certs", "--out"])
        .arg(&certs)
        .args(["--brokers", "3"])
        .output()
        .await
        .expect("certs");
    assert!(made.status.success(), "{made:?}");
    let configs = shipped_configs("cluster3-tls", &zk, dir.path());
    let resp = BrokerConfig::load(&configs[0])
        .expect("config")
        .resp_port
        .expect("a RESP port");
    let _nodes = Nodes::spawn(&configs, dir.path());
    wait_for_cluster(&zk).await;
    let ca = certs.join("ca.pem");
    let ca = ca.to_str().expect("utf-8 path");

    // The cli reaches TLS client ports with the CA; every partition, so every broker.
    for key in ["a", "b", "c", "d", "e", "f"] {
        crate::support::wait_for("a write over TLS", Duration::from_secs(30), || {
            let zk = zk.clone();
            async move {
                let out = cli(&["--zk", &zk, "--tls-ca", ca, "set", key, "v"]).await;
                out.code == 0
            }
        })
        .await;
        let out = cli(&["--zk", &zk, "--tls-ca", ca, "get", key]).await;
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "v\n"),
            "{}",
            out.stderr
        );
    }
    // Without the CA it cannot, and says so in one line.
    let out = cli(&["--zk", &zk, "--timeout", "2s", "get", "a"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("--tls-ca"), "{out:?}");
    // A write fails as plainly (its outcome may be called unknown: a broken pipe does not tell
    // the client whether the broker read the request) and changes nothing.
    let out = cli(&["--zk", &zk, "--timeout", "2s", "set", "a", "w"]).await;
    assert_eq!((out.code, out.stderr.lines().count()), (1, 1), "{out:?}");
    let out = cli(&["--zk", &zk, "--tls-ca", ca, "get", "a"]).await;
    assert_eq!(out.stdout, "v\n", "{out:?}");

    // With ZooKeeper credentials only brokers change the cluster: an anonymous rebalance request
    // is refused in one line.
    let out = cli(&["--zk", &zk, "rebalance"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("only the cluster's brokers may change it"),
        "{out:?}"
    );

    // redis-cli through one node reaches the keys other brokers lead (it forwards over TLS).
    for key in ["a", "b", "c", "d", "e", "f"] {
        let out = tokio::process::Command::new("redis-cli")
            .args(["-p", &resp.to_string(), "get", key])
            .output()
            .await
            .expect("redis-cli (make test installs redis-tools)");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim_end(),
            "v",
            "get {key}"
        );
    }
}
