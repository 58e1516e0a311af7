//! `simplekv-lab bench --nodes 3 --ops 500` keeps working: it starts its own cluster, completes
//! the operations and reports them, with a machine-readable last line, including where the
//! acks=all writes spent their time on their leaders.

use crate::procs::BIN;

#[test]
fn bench_runs_a_short_load_on_its_own_cluster_and_reports_json() {
    let out = std::process::Command::new(BIN)
        .args([
            "bench",
            "--nodes",
            "3",
            "--ops",
            "500",
            "--clients",
            "8",
            "--fsync",
            "always",
            "--json",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("throughput") && stdout.contains("p99.9"),
        "{stdout}"
    );
    let last = stdout.lines().last().expect("a last line");
    let json: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"));
    let num = |k: &str| {
        json[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} missing: {json}"))
    };
    assert_eq!(num("ops"), 500.0, "every operation counted once");
    assert_eq!(num("ok") + num("errors") + num("unknown"), 500.0);
    assert_eq!(num("errors"), 0.0, "{json}");
    assert!(num("ops_per_sec") > 0.0);
    let (p50, p90, p99, p999, max) = (
        num("p50_ms"),
        num("p90_ms"),
        num("p99_ms"),
        num("p999_ms"),
        num("max_ms"),
    );
    assert!(
        0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
        "{json}"
    );
    // The commit path: every stage was seen, and a write commits only after its leader's own
    // fsync (the HW counts only durable records under `always`) and after its followers fetched it.
    let commit = &json["commit_us"];
    let stage = |k: &str| {
        commit[k]
            .as_f64()
            .unwrap_or_else(|| panic!("commit_us.{k} missing: {json}"))
    };
    let appends = commit["appends_committed"].as_u64().unwrap_or(0);
    assert!((1..=500).contains(&appends), "{json}");
    let (own_fsync, fetch_wait, turnaround, committed) = (
        stage("own_fsync"),
        stage("fetch_wait"),
        stage("turnaround"),
        stage("committed"),
    );
    assert!(
        own_fsync > 0.0 && fetch_wait > 0.0 && turnaround > 0.0,
        "{json}"
    );
    assert!(committed >= own_fsync && committed >= fetch_wait, "{json}");
    assert!(
        stdout.contains("\ncommit     after the append: leader's fsync"),
        "{stdout}"
    );
}

#[test]
fn bench_rejects_a_bad_mix_in_one_line() {
    let out = std::process::Command::new(BIN)
        .args(["bench", "--mix", "lots"])
        .output()
        .expect("run bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--mix takes SETS:GETS"), "{stderr}");
}

#[test]
fn bench_runs_the_real_redis_benchmark_against_its_clusters_resp_port() {
    let out = std::process::Command::new(BIN)
        .args(["bench", "--nodes", "3", "--fsync", "never", "--via", "2"])
        .args(["--redis-benchmark", "-t set,get -n 2000 -c 4 -r 500 --csv"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("acks all, fsync never"), "{stdout}");
    assert!(stdout.contains("against broker 2's RESP port"), "{stdout}");
    for cmd in ["\"SET\"", "\"GET\""] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(cmd))
            .unwrap_or_else(|| panic!("no {cmd} row: {stdout}"));
        let rps: f64 = row
            .split(',')
            .nth(1)
            .and_then(|r| r.trim_matches('"').parse().ok())
            .unwrap_or_else(|| panic!("{row}"));
        assert!(rps > 0.0, "{row}");
    }
    assert!(!stdout.contains("WARNING"), "{stdout}");
    // What the run cost: the brokers did the work, and redis-benchmark (a child) is counted.
    let cpu = stdout
        .lines()
        .find_map(|l| l.strip_prefix("cpu: "))
        .unwrap_or_else(|| panic!("no cpu line: {stdout}"));
    let seconds: Vec<f64> = cpu
        .split(", ")
        .filter_map(|part| part.rsplit(' ').next()?.strip_suffix('s')?.parse().ok())
        .collect();
    assert_eq!(seconds.len(), 4, "{cpu}");
    assert!(seconds[0] > 0.0, "the brokers' CPU: {cpu}");
    assert!(seconds[3] > 0.0, "redis-benchmark's CPU: {cpu}");
    let commit = stdout
        .lines()
        .find_map(|l| l.strip_prefix("commit: after the append: "))
        .unwrap_or_else(|| panic!("no commit line: {stdout}"));
    assert!(commit.contains("sent to a follower"), "{commit}");
}
