//! Bad input through `cli`: one clear line each, a non-zero exit, and nothing lost.

use crate::procs::{cli, cli_piped};
use crate::support::*;
use std::time::Duration;

fn one_error_line(out: &crate::procs::Output, want: &str) {
    assert_eq!(out.code, 1, "exit code; stderr: {}", out.stderr);
    assert_eq!(out.stdout, "", "nothing on stdout");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", out.stderr);
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(want),
        "{:?} lacks {want:?}",
        lines[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_one_clear_line_and_loses_nothing() {
    let c = start_with(|d| {
        let mut o = options("cli-input", spec(3, 1, 2, 1), d);
        o.storage.max_value_bytes = 1024;
        o
    })
    .await;
    wait_for_isr(&c, 2).await;
    let zk = c.zk_connect().to_string();
    let ok = cli(&["--zk", &zk, "--acks", "all", "set", "good", "1"]).await;
    assert_eq!((ok.code, ok.stdout.as_str()), (0, "OK\n"), "{}", ok.stderr);
    let leader = leader_of(&c, 0).expect("leader");
    let leo = log_of(&c, leader, 0).log_end_offset();

    one_error_line(
        &cli(&["--zk", &zk, "set", "onlykey"]).await,
        "usage: set KEY VALUE [ttl MS]",
    );
    one_error_line(
        &cli(&["--zk", &zk, "frobnicate", "x"]).await,
        "unknown command 'frobnicate'",
    );
    one_error_line(&cli(&["--zk", &zk, "get"]).await, "usage: get KEY");
    one_error_line(
        &cli(&["--zk", &zk, "expire", "good", "-5"]).await,
        "0 or more seconds",
    );
    one_error_line(
        &cli(&["--zk", &zk, "set", "k", "v", "ttl", "-5"]).await,
        "positive number of milliseconds",
    );
    let big = "x".repeat(2000);
    one_error_line(
        &cli(&["--zk", &zk, "set", "big", &big]).await,
        "the value is 2000 bytes; the limit is 1024 bytes",
    );

    one_error_line(
        &cli(&["--zk", &zk, "set", "k", "v", "ttl", "9223372036854775807"]).await,
        "100 years",
    );
    one_error_line(
        &cli(&["--zk", &zk, "expire", "good", "9223372036854775807"]).await,
        "100 years",
    );

    let log = log_of(&c, leader, 0);
    assert_eq!(
        log.log_end_offset(),
        leo,
        "no bad command appended anything"
    );
    drop(log);
    let got = cli(&["--zk", &zk, "get", "good"]).await;
    assert_eq!(got.stdout, "1\n");

    // No leader available: both replicas of the partition go down (follower first, so the ISR
    // shrinks to the leader); the third broker's controller marks it offline.
    let follower = [1, 2]
        .into_iter()
        .find(|&id| id != leader)
        .expect("follower");
    c.kill(follower).await.expect("kill");
    wait_for("the ISR to shrink", Duration::from_secs(20), || async {
        isr_of(&c, 0) == vec![leader]
    })
    .await;
    c.kill(leader).await.expect("kill");
    wait_for(
        "partition 0 to go offline",
        Duration::from_secs(20),
        || async {
            c.broker(3).is_some_and(|b| {
                b.metadata()
                    .states
                    .get(&0)
                    .is_some_and(|(s, _)| s.leader == -1)
            })
        },
    )
    .await;
    one_error_line(
        &cli(&["--zk", &zk, "--timeout", "1s", "get", "good"]).await,
        "no leader available for partition 0",
    );

    c.restore(leader).await.expect("restore");
    let got = cli(&["--zk", &zk, "--timeout", "20s", "get", "good"]).await;
    assert_eq!(
        (got.code, got.stdout.as_str()),
        (0, "1\n"),
        "{}",
        got.stderr
    );
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_zookeeper_is_one_line() {
    let port = simplekv::coord::server::free_port().expect("port");
    let out = cli(&["--zk", &format!("127.0.0.1:{port}"), "get", "k"]).await;
    one_error_line(&out, &format!("cannot reach ZooKeeper at 127.0.0.1:{port}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_transcript_works_verbatim_in_the_repl_and_with_a_seed_broker() {
    let c = start("transcript", spec(3, 3, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let zk = c.zk_connect().to_string();
    let transcript = "set hello 1\nget hello\nexpire hello 200\nttl hello\ndel hello\nget hello\n";
    let out = cli_piped(&["--zk", &zk], Some(transcript.as_bytes().to_vec())).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{} / {}", out.stdout, out.stderr);
    assert_eq!(out.code, 0, "a script whose commands all worked exits 0");
    assert_eq!(lines[..3], ["OK", "1", "OK"]);
    let ttl: i64 = lines[3].parse().expect("a number");
    assert!((198..=200).contains(&ttl), "{ttl}");
    assert_eq!(lines[4..], ["OK", "record not found"]);

    // Discovery through a seed broker's Metadata instead of ZooKeeper.
    let seed = c.broker(2).expect("up").kv_addr().to_string();
    let out = cli(&["--broker", &seed, "set", "via-seed", "yes"]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "OK\n"),
        "{}",
        out.stderr
    );
    let out = cli(&["--broker", &seed, "get", "via-seed"]).await;
    assert_eq!(out.stdout, "yes\n");

    // Flags may follow the command.
    let out = cli(&["--broker", &seed, "get", "via-seed", "--timeout", "5s"]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "yes\n"),
        "{}",
        out.stderr
    );

    // A seed that is a peer port says so instead of printing an empty reason.
    let peer = c.broker(2).expect("up").peer_addr().to_string();
    one_error_line(&cli(&["--broker", &peer, "get", "k"]).await, "peer port");

    // A TLS client of a plaintext port is told so.
    let certs = tempfile::tempdir().expect("dir");
    simplekv::net::certs::make(certs.path(), 1, &[]).expect("certs");
    let ca = certs.path().join("ca.pem");
    let args = ["--zk", &zk, "--timeout", "2s", "--tls-ca"];
    let out = cli(&[&args[..], &[ca.to_str().expect("path"), "get", "k"]].concat()).await;
    one_error_line(&out, "leave out --tls-ca");

    // A piped script runs every line, even after one that is not text, and exits 1 when any
    // line failed.
    let script = b"set piped 1\n\xff\xfe\nget\nget piped\n".to_vec();
    let out = cli_piped(&["--zk", &zk], Some(script)).await;
    assert_eq!(out.stdout, "OK\n1\n", "{}", out.stderr);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("line 2 is not UTF-8"), "{}", out.stderr);
    assert!(out.stderr.contains("usage: get KEY"), "{}", out.stderr);
    c.cluster.shutdown().await;
}

#[tokio::test]
async fn node_with_a_bad_config_says_which_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.yaml");
    std::fs::write(&path, "id: 1\ndata_dir: d\nreplication:\n  lag_time: 5\n").expect("write");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(crate::procs::BIN)
            .args(["node", "--config"])
            .arg(&path)
            .output()
            .expect("run")
    })
    .await
    .expect("task");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("node.yaml: line 4: replication: unknown field `lag_time`"),
        "{stderr}"
    );
}
