//! `simplekv-lab node` processes on the shipped `conf/cluster3` files, driven by `cli` one-shot
//! commands; one is killed with SIGKILL and the data stays readable.

use crate::procs::{Nodes, cli};
use simplekv::broker::BrokerConfig;
use simplekv::client::{Client, ClientConfig};
use simplekv::coord::server::free_port;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_processes_keep_the_data_through_a_sigkill() {
    let zk = simplekv::testkit::zk_connect("nodes");
    let dir = tempfile::tempdir().expect("tempdir");
    let configs: Vec<_> = (1..=3)
        .map(|i| {
            let shipped = format!("{}/conf/cluster3/node-{i}.yaml", env!("CARGO_MANIFEST_DIR"));
            let mut cfg =
                BrokerConfig::load(std::path::Path::new(&shipped)).expect("shipped config loads");
            cfg.zookeeper.connect = zk.clone();
            cfg.zookeeper.session_timeout_ms = 2000;
            cfg.kv_port = free_port().expect("port");
            cfg.peer_port = free_port().expect("port");
            cfg.data_dir = dir.path().join(format!("node-{i}"));
            let path = dir.path().join(format!("node-{i}.yaml"));
            std::fs::write(&path, serde_yaml::to_string(&cfg).expect("yaml")).expect("write");
            path
        })
        .collect();
    let mut nodes = Nodes::spawn(&configs, dir.path());
    // The first broker up creates the cluster in ZooKeeper; until then the cli says there is none.
    crate::support::wait_for(
        "the brokers to create the cluster",
        Duration::from_secs(30),
        || async {
            Client::connect_zk(&zk, ClientConfig::default())
                .await
                .is_ok()
        },
    )
    .await;

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
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
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
    }
}
