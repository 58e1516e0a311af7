//! `simplekv-lab bench`: drives a cluster with concurrent clients and reports throughput and
//! latency. With `--nodes` it starts its own in-process cluster on a private ZooKeeper, exactly
//! as the lab does; with `--zk` or `--broker` it measures a running cluster.

use crate::cli::{Discovery, connect_with};
use crate::client::{Client, ClientConfig};
use crate::coord::ClusterSpec;
use crate::events::EventSink;
use crate::lab::load::{self, LoadPlan, LoadReport};
use crate::lab::{Cluster, ClusterOptions};
use crate::replica::CommitPath;
use crate::replica::timing::Mean;
use crate::storage::FsyncPolicy;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Which cluster to measure.
#[derive(Debug, Clone)]
pub enum BenchTarget {
    /// Start N brokers in this process on a private ZooKeeper.
    Nodes(u32),
    /// A running cluster, found through ZooKeeper.
    Zk(String),
    /// A running cluster, found through a seed broker.
    Broker(String),
}

/// Everything `bench` takes.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The cluster.
    pub target: BenchTarget,
    /// Partitions (own cluster only).
    pub partitions: u32,
    /// fsync policy (own cluster only).
    pub fsync: FsyncPolicy,
    /// The load.
    pub plan: LoadPlan,
    /// Whether the client batches writes and reads (see `client::batch`); off, each is a request.
    pub batch_writes: bool,
}

/// A finished benchmark.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// What ran, in words.
    pub setup: String,
    /// The measurements.
    pub report: LoadReport,
    /// CPU time this process spent during the run, by thread group (Linux; empty elsewhere).
    pub cpu: CpuUse,
    /// `WriteBatch` requests the client sent and the writes they carried (0, 0 unbatched).
    pub batches: (u64, u64),
    /// Where acks=all writes spent their time on their leaders (own cluster only).
    pub commit: Option<CommitPath>,
}

/// The commit stages of every replica of `c`, merged: only replicas that have led record any.
fn commit_path(c: &Cluster) -> CommitPath {
    let mut path = CommitPath::default();
    for id in c.ids() {
        let Some(broker) = c.broker(id) else { continue };
        for p in 0..c.spec().partitions {
            if let Some(r) = broker.replica(p) {
                path.merge(&r.commit_path());
            }
        }
    }
    path
}

/// CPU seconds a run cost, split by who spent them: the brokers' threads, their fsync threads,
/// and the rest (the load generator and its client).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuUse {
    /// Broker threads (their runtimes).
    pub brokers_s: f64,
    /// The stores' fsync threads.
    pub fsync_s: f64,
    /// Everything else: the load generator, the client, ZooKeeper watches.
    pub load_s: f64,
}

impl CpuUse {
    /// All of it.
    pub fn total_s(&self) -> f64 {
        self.brokers_s + self.fsync_s + self.load_s
    }

    /// CPU milliseconds per 1,000 operations: comparable across machines and runs.
    pub fn ms_per_1k_ops(&self, ops: u64) -> f64 {
        self.total_s() * 1e6 / ops.max(1) as f64
    }
}

/// `/proc` counts CPU time in USER_HZ ticks, fixed at 100 per second by Linux's ABI.
const USER_HZ: f64 = 100.0;

/// A `/proc/.../stat` line split as `pid (comm) state ppid ...`: the name (which may hold spaces
/// and parentheses, so it ends at the last ')') and the fields after it.
fn stat_line(stat: &str) -> Option<(&str, Vec<&str>)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    Some((
        stat.get(open + 1..close)?,
        stat[close + 1..].split_whitespace().collect(),
    ))
}

/// The sum of the numeric fields at `at` (counted after the name; field N of the line is N - 3).
fn ticks(fields: &[&str], at: &[usize]) -> u64 {
    at.iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum()
}

/// CPU ticks so far per thread of this process (name, ticks), from `/proc/self/task`.
fn thread_ticks() -> Vec<(u32, String, u64)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let Some(tid) = t.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let Some((name, fields)) = stat_line(&stat) else {
            continue;
        };
        // Fields 14 and 15 of the line: utime, stime.
        out.push((tid, name.to_string(), ticks(&fields, &[11, 12])));
    }
    out
}

/// CPU ticks so far of this process's children that have ended and been waited for (Linux's
/// `cutime` + `cstime`; 0 elsewhere).
fn children_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // Fields 16 and 17 of the line: cutime, cstime.
    stat_line(&stat).map_or(0, |(_, fields)| ticks(&fields, &[13, 14]))
}

/// CPU spent by each thread group between two readings of [`thread_ticks`].
fn cpu_between(before: &[(u32, String, u64)], after: &[(u32, String, u64)]) -> CpuUse {
    let mut cpu = CpuUse::default();
    for (tid, name, ticks) in after {
        let was = before
            .iter()
            .find(|(t, _, _)| t == tid)
            .map_or(0, |(_, _, t)| *t);
        let s = ticks.saturating_sub(was) as f64 / USER_HZ;
        match thread_group(name) {
            ThreadGroup::Brokers => cpu.brokers_s += s,
            ThreadGroup::Fsync => cpu.fsync_s += s,
            ThreadGroup::Load => cpu.load_s += s,
        }
    }
    cpu
}

/// Who a thread of this process works for, as `bench` splits CPU time (and the flame graph).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadGroup {
    /// A broker's own thread (its runtime).
    Brokers,
    /// A store's fsync thread.
    Fsync,
    /// The load generator, its client, ZooKeeper watches: everything else.
    Load,
}

impl ThreadGroup {
    /// The group's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            ThreadGroup::Brokers => "brokers",
            ThreadGroup::Fsync => "fsync",
            ThreadGroup::Load => "load generator and client",
        }
    }
}

/// The group of the thread called `name`.
pub fn thread_group(name: &str) -> ThreadGroup {
    if name.starts_with("broker-") {
        ThreadGroup::Brokers
    } else if name.starts_with("fsync") {
        ThreadGroup::Fsync
    } else {
        ThreadGroup::Load
    }
}

impl BenchResult {
    /// The human-readable report.
    pub fn text(&self) -> String {
        let t = &self.report.tally;
        let mut s = format!(
            "{}\nops        {} in {:.2}s ({} completed, {} failed, {} unknown outcome)\nthroughput {:.0} ops/s\nlatency    p50 {:.2}ms  p90 {:.2}ms  p99 {:.2}ms  p99.9 {:.2}ms  max {:.2}ms",
            self.setup,
            t.ops,
            self.report.elapsed.as_secs_f64(),
            t.ok,
            t.error_count(),
            t.unknown,
            self.report.ops_per_sec(),
            t.latency_ms(0.5),
            t.latency_ms(0.9),
            t.latency_ms(0.99),
            t.latency_ms(0.999),
            t.max_ms(),
        );
        if !t.errors.is_empty() {
            let kinds: Vec<String> = t.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
            s.push_str(&format!("\nerrors     {}", kinds.join(", ")));
        }
        let c = &self.cpu;
        if c.total_s() > 0.0 {
            s.push_str(&format!(
                "\ncpu        {:.1} ms per 1,000 ops ({:.2} s: brokers {:.0} %, fsync {:.0} %, load generator {:.0} %)",
                c.ms_per_1k_ops(t.ops),
                c.total_s(),
                100.0 * c.brokers_s / c.total_s(),
                100.0 * c.fsync_s / c.total_s(),
                100.0 * c.load_s / c.total_s(),
            ));
        }
        if let Some(line) = self.commit.as_ref().and_then(CommitPath::describe) {
            s.push_str(&format!("\ncommit     {line}"));
        }
        if let (requests @ 1.., writes) = self.batches {
            s.push_str(&format!(
                "\nbatching   {:.1} writes per request ({requests} requests)",
                writes as f64 / requests as f64
            ));
        }
        s
    }

    /// One machine-readable object.
    pub fn json(&self) -> serde_json::Value {
        let t = &self.report.tally;
        serde_json::json!({
            "ops": t.ops,
            "ok": t.ok,
            "errors": t.error_count(),
            "unknown": t.unknown,
            "errors_by_kind": t.errors,
            "elapsed_s": self.report.elapsed.as_secs_f64(),
            "ops_per_sec": self.report.ops_per_sec(),
            "p50_ms": t.latency_ms(0.5),
            "p90_ms": t.latency_ms(0.9),
            "p99_ms": t.latency_ms(0.99),
            "p999_ms": t.latency_ms(0.999),
            "max_ms": t.max_ms(),
            "cpu_ms_per_1k_ops": self.cpu.ms_per_1k_ops(t.ops),
            "batch_requests": self.batches.0,
            "writes_per_request": self.batches.1 as f64 / self.batches.0.max(1) as f64,
            "cpu_brokers_s": self.cpu.brokers_s,
            "cpu_fsync_s": self.cpu.fsync_s,
            "cpu_load_s": self.cpu.load_s,
            "commit_us": self.commit.map(|c| {
                let us = |m: Mean| m.get().map(|d| d.as_secs_f64() * 1e6);
                serde_json::json!({
                    "own_fsync": us(c.own_fsync),
                    "fetch_wait": us(c.fetch_wait),
                    "turnaround": us(c.turnaround),
                    "committed": us(c.committed),
                    "appends_committed": c.committed.count,
                })
            }),
            "setup": self.setup,
        })
    }
}

/// A benchmark client's request timeout, retries included: long, so that a slow operation is
/// measured rather than counted as failed.
const BENCH_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a benchmark waits for leaders and full ISRs before it measures.
const READY_WAIT: Duration = Duration::from_secs(60);
/// How often it looks while it waits.
const READY_POLL: Duration = Duration::from_millis(50);
/// How often the progress bar moves.
const PROGRESS_PERIOD: Duration = Duration::from_millis(100);

/// Runs the benchmark. `progress` shows a progress bar on stderr.
pub async fn run(options: BenchOptions, progress: bool) -> Result<BenchResult, String> {
    let cfg = ClientConfig {
        request_timeout: BENCH_REQUEST_TIMEOUT,
        batch_writes: options.batch_writes,
        batch_reads: options.batch_writes,
        ..ClientConfig::default()
    };
    let mut temp = None;
    let mut cluster = None;
    let (client, setup) = match &options.target {
        BenchTarget::Nodes(n) => {
            let (c, dir, rf) = own_cluster(*n, &options).await?;
            let client =
                connect_with(&Discovery::Zk(c.zk_connect().to_string()), cfg.clone()).await?;
            wait_ready(&client, rf).await?;
            let setup = format!(
                "{n} brokers in this process (private ZooKeeper), {} partitions, RF {rf}, fsync {}",
                options.partitions, options.fsync
            );
            temp = Some(dir);
            cluster = Some(c);
            (client, setup)
        }
        BenchTarget::Zk(zk) => (
            connect_with(&Discovery::Zk(zk.clone()), cfg.clone()).await?,
            format!("the cluster at ZooKeeper {zk}"),
        ),
        BenchTarget::Broker(b) => (
            connect_with(&Discovery::Brokers(vec![b.clone()]), cfg.clone()).await?,
            format!("the cluster behind broker {b}"),
        ),
    };
    let stats = client.clone();
    let before = thread_ticks();
    let result = measure(client, &options.plan, progress).await;
    let batches = stats.batch_stats();
    let cpu = cpu_between(&before, &thread_ticks());
    let commit = cluster.as_ref().map(commit_path);
    if let Some(c) = cluster {
        c.shutdown().await;
    }
    drop(temp);
    let report = result?;
    let p = &options.plan;
    let mix = if p.read_ratio > 0.0 {
        format!(", {:.0}% reads", p.read_ratio * 100.0)
    } else {
        String::new()
    };
    let rate = p
        .rate
        .map_or(String::new(), |r| format!(", paced at {r:.0} ops/s"));
    let in_flight = if p.in_flight > 1 {
        format!(" x {} in flight", p.in_flight)
    } else {
        String::new()
    };
    let batching = if options.batch_writes {
        "batched writes and reads"
    } else {
        "a request per write and per read"
    };
    Ok(BenchResult {
        setup: format!(
            "bench: {setup}; {} clients{in_flight}, {batching}, acks {}, {}-byte values{mix}{rate}",
            p.clients, p.acks, p.value_size
        ),
        report,
        cpu,
        batches,
        commit,
    })
}

/// Starts `n` brokers in this process on a temporary directory, dialing each other directly,
/// with `options`' partitions and fsync policy: the cluster, its directory and the RF.
async fn own_cluster(
    n: u32,
    options: &BenchOptions,
) -> Result<(Cluster, tempfile::TempDir, u32), String> {
    let dir = tempfile::Builder::new()
        .prefix("simplekv-bench-")
        .tempdir()
        .map_err(|e| format!("cannot create a data directory: {e}"))?;
    let rf = n.min(3);
    let spec = ClusterSpec {
        brokers: n,
        partitions: options.partitions,
        replication_factor: rf,
        min_insync_replicas: rf.min(2),
        unclean_leader_election: false,
    };
    let mut o = ClusterOptions::lab(dir.path().to_path_buf(), spec);
    o.proxied_links = false;
    o.storage.fsync = options.fsync;
    let c = Cluster::start(o, EventSink::log_only())
        .await
        .map_err(|e| e.to_string())?;
    Ok((c, dir, rf))
}

/// Starts the cluster `options` describes (`BenchTarget::Nodes` only), then runs the real
/// `redis-benchmark -p PORT ARGS` against broker `via`'s RESP listener (which serves the keys
/// its broker leads in-process and forwards the rest to their leaders, acks=all) and returns
/// what it printed, after a line saying what ran.
pub async fn redis_benchmark(
    options: &BenchOptions,
    via: u32,
    args: &[String],
) -> Result<String, String> {
    let BenchTarget::Nodes(n) = options.target else {
        return Err(
            "--redis-benchmark measures its own cluster: point redis-benchmark at a node's \
             resp_port for a running one"
                .into(),
        );
    };
    let (c, dir, rf) = own_cluster(n, options).await?;
    let outcome = async {
        let client = connect_with(
            &Discovery::Zk(c.zk_connect().to_string()),
            ClientConfig::default(),
        )
        .await?;
        wait_ready(&client, rf).await?;
        let port = c
            .resp_ports()
            .get((via as usize).wrapping_sub(1))
            .copied()
            .flatten()
            .ok_or_else(|| format!("there is no broker {via} with a RESP listener"))?;
        let (before, children_before) = (thread_ticks(), children_ticks());
        let out = tokio::process::Command::new("redis-benchmark")
            .arg("-p")
            .arg(port.to_string())
            .args(args)
            .output()
            .await
            .map_err(|e| format!("cannot run redis-benchmark (install redis-tools): {e}"))?;
        let cpu = cpu_between(&before, &thread_ticks());
        let load_s = children_ticks().saturating_sub(children_before) as f64 / USER_HZ;
        let commit = commit_path(&c)
            .describe()
            .map_or(String::new(), |line| format!("commit: {line}\n"));
        let mut text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        if !out.status.success() {
            return Err(format!("redis-benchmark failed: {}", text.trim()));
        }
        // The lab's own threads and redis-benchmark (a child, waited for): what the run cost
        // (ZooKeeper, a process of its own, is left out).
        Ok(format!(
            "redis-benchmark {} against broker {via}'s RESP port {port}: {n} brokers in this process, \
             {} partitions, RF {rf}, acks all, fsync {}\n{text}\
             cpu: brokers {:.2}s, fsync {:.2}s, other lab threads {:.2}s, redis-benchmark {load_s:.2}s\n\
             {commit}",
            args.join(" "),
            options.partitions,
            options.fsync,
            cpu.brokers_s,
            cpu.fsync_s,
            cpu.load_s,
        ))
    }
    .await;
    c.shutdown().await;
    drop(dir);
    outcome
}

/// Waits until every partition has a leader and a full ISR: a benchmark measures a cluster at
/// work, not one still electing its first leaders.
async fn wait_ready(client: &Client, rf: u32) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    loop {
        let view = client.cluster_view().await.map_err(|e| e.to_string())?;
        let ready = view
            .partitions
            .iter()
            .all(|p| p.leader.is_some() && p.isr.len() == rf as usize);
        if ready {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "the cluster did not get leaders and full ISRs within {READY_WAIT:?}"
            ));
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

async fn measure(client: Client, plan: &LoadPlan, progress: bool) -> Result<LoadReport, String> {
    if plan.read_ratio > 0.0 {
        load::preload(&client, plan)
            .await
            .map_err(|e| format!("cannot preload the keys: {e}"))?;
    }
    let counters = load::counters();
    let bar = progress.then(|| {
        let bar = match plan.ops {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new(plan.duration.map_or(0, |d| d.as_millis() as u64)),
        };
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    });
    let task = tokio::spawn(load::run(client, plan.clone(), None, Arc::clone(&counters)));
    let started = std::time::Instant::now();
    while !task.is_finished() {
        if let Some(bar) = &bar {
            let done = counters.done.load(Ordering::Relaxed);
            match plan.ops {
                Some(_) => bar.set_position(done),
                None => bar.set_position(started.elapsed().as_millis() as u64),
            }
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!("{:.0} ops/s", done as f64 / secs));
        }
        tokio::time::sleep(PROGRESS_PERIOD).await;
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    task.await.map_err(|e| format!("the benchmark failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_splits_at_the_last_paren_of_the_name() {
        let line = "42 (fsync (a) b) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14\n";
        let (name, fields) = stat_line(line).expect("a stat line");
        assert_eq!(name, "fsync (a) b");
        // utime, stime (fields 14, 15) and cutime, cstime (16, 17) of the line.
        assert_eq!(ticks(&fields, &[11, 12]), 11 + 12);
        assert_eq!(ticks(&fields, &[13, 14]), 13 + 14);
        assert!(stat_line("no name").is_none());
    }

    #[test]
    fn cpu_is_counted_per_thread_group_and_per_thousand_operations() {
        let before = vec![
            (1, "broker-1".to_string(), 100),
            (2, "main".to_string(), 50),
        ];
        let after = vec![
            (1, "broker-1".to_string(), 300),
            (2, "main".to_string(), 150),
            (3, "fsync /tmp/x".to_string(), 40),
        ];
        let cpu = cpu_between(&before, &after);
        assert_eq!(
            cpu,
            CpuUse {
                brokers_s: 2.0,
                fsync_s: 0.4,
                load_s: 1.0
            }
        );
        assert!((cpu.ms_per_1k_ops(10_000) - 340.0).abs() < 1e-9);
        // This very thread has spent some CPU by now, and is found by name.
        let spin = (0..2_000_000u64).fold(0u64, |a, b| a.wrapping_add(b * b));
        assert!(spin > 0);
        assert!(!thread_ticks().is_empty());
    }
}
