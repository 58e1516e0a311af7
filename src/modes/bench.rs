//! `simplekv-lab bench`: its flags, checked, and the run (the built-in load or redis-benchmark).

use crate::{RUNTIME_STOP, init_logs, profile, runtime};
use clap::Args;
use simplekv::replica::Acks;
use std::io::IsTerminal;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Start this many brokers in this process (the default: 3).
    #[arg(long, conflicts_with_all = ["zk", "broker"])]
    nodes: Option<u32>,
    /// Measure the running cluster at this ZooKeeper (host:port[/chroot]).
    #[arg(long, conflicts_with = "broker")]
    zk: Option<String>,
    /// Measure the running cluster behind this broker (host:port).
    #[arg(long)]
    broker: Option<String>,
    /// Partitions (own cluster).
    #[arg(long, default_value_t = 3)]
    partitions: u32,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: u32,
    /// Operations each client keeps in flight (pipelining; 1 = one at a time).
    #[arg(long, default_value_t = 1)]
    in_flight: u32,
    /// Send every write and read as its own request instead of through the client's batches.
    #[arg(long)]
    no_batching: bool,
    /// Operations in all (default 20000 unless --duration is given).
    #[arg(long, conflicts_with = "duration")]
    ops: Option<u64>,
    /// Run for this long instead (e.g. 10s).
    #[arg(long, value_parser = simplekv::command::parse_duration)]
    duration: Option<Duration>,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Distinct keys (default: every write a new key; 10000 when the mix has reads).
    #[arg(long)]
    keys: Option<u64>,
    /// Acks for writes: 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: Acks,
    /// Writes to reads, e.g. 1:0 (writes only) or 1:4.
    #[arg(long, default_value = "1:0")]
    mix: String,
    /// Pace the clients to this many operations per second in all.
    #[arg(long)]
    rate: Option<f64>,
    /// fsync policy of the brokers (own cluster): always, interval or never.
    #[arg(long, default_value = "never")]
    fsync: simplekv::storage::FsyncPolicy,
    /// Print one JSON object on the last line.
    #[arg(long)]
    json: bool,
    /// Sample the run's stacks (SIGPROF, 499 Hz) and write a flame graph here (SVG). Needs a
    /// build with `--features profile`.
    #[arg(long, value_name = "FILE.svg")]
    flamegraph: Option<std::path::PathBuf>,
    /// Instead of the built-in load, run the real `redis-benchmark` with these arguments
    /// against broker 1's RESP port (own cluster; writes acks=all), e.g.
    /// --redis-benchmark "-t set,get -n 200000 -c 50 -P 16 -q"
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true, conflicts_with_all = ["zk", "broker"])]
    redis_benchmark: Option<String>,
    /// The broker whose RESP port --redis-benchmark talks to (it serves the partitions it leads
    /// in-process and forwards the rest; redis-benchmark's one key without -r is partition 1's,
    /// led by broker 2 at start).
    #[arg(long, default_value_t = 1, requires = "redis_benchmark")]
    via: u32,
}

fn parse_mix(mix: &str) -> Result<f64, String> {
    let bad = || format!("--mix takes SETS:GETS, e.g. 1:1, not '{mix}'");
    let (s, g) = mix.split_once(':').ok_or_else(bad)?;
    let (s, g): (u32, u32) = (s.parse().map_err(|_| bad())?, g.parse().map_err(|_| bad())?);
    if s + g == 0 {
        return Err(bad());
    }
    Ok(f64::from(g) / f64::from(s + g))
}

pub fn run_bench(args: BenchArgs) -> Result<(), String> {
    use simplekv::bench::{BenchOptions, BenchTarget, run};
    init_logs("error");
    let read_ratio = parse_mix(&args.mix)?;
    if args.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    if args.in_flight == 0 {
        return Err("--in-flight must be at least 1".into());
    }
    if args.rate.is_some_and(|r| r <= 0.0) {
        return Err("--rate must be positive".into());
    }
    let target = match (args.zk, args.broker) {
        (Some(zk), _) => BenchTarget::Zk(zk),
        (None, Some(b)) => BenchTarget::Broker(b),
        (None, None) => BenchTarget::Nodes(args.nodes.unwrap_or(3)),
    };
    let tag = format!(
        "bench{}-{}",
        std::process::id(),
        simplekv::storage::now_ms()
    );
    let plan = simplekv::lab::load::LoadPlan {
        ops: args.ops.or(if args.duration.is_none() {
            Some(20_000)
        } else {
            None
        }),
        duration: args.duration,
        clients: args.clients,
        in_flight: args.in_flight,
        acks: args.acks,
        keys: args.keys.or((read_ratio > 0.0).then_some(10_000)),
        value_size: args.value_size,
        read_ratio,
        rate: args.rate,
        tag,
    };
    let options = BenchOptions {
        target,
        partitions: args.partitions,
        fsync: args.fsync,
        plan,
        batch_writes: !args.no_batching,
    };
    let rt = runtime()?;
    let profiler = args.flamegraph.map(profile::Sampler::start).transpose()?;
    if let Some(rb) = &args.redis_benchmark {
        let words: Vec<String> = rb.split_whitespace().map(String::from).collect();
        let text = rt.block_on(simplekv::bench::redis_benchmark(&options, args.via, &words))?;
        if let Some(p) = profiler {
            p.finish()?;
        }
        rt.shutdown_timeout(RUNTIME_STOP);
        print!("{text}");
        return Ok(());
    }
    let result = rt.block_on(run(options, std::io::stderr().is_terminal()))?;
    if let Some(p) = profiler {
        p.finish()?;
    }
    rt.shutdown_timeout(RUNTIME_STOP);
    println!("{}", result.text());
    if args.json {
        println!("{}", result.json());
    }
    Ok(())
}
