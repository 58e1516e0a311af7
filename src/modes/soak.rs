//! `simplekv-lab soak`: its flags, and the rounds it runs with a progress bar.

use crate::{RUNTIME_STOP, init_file_logs, runtime};
use clap::Args;
use simplekv::lab::LabConfig;
use simplekv::replica::Acks;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct SoakArgs {
    /// Rounds to run.
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// Seed of round 0 (round r uses seed + r); random when not given.
    #[arg(long)]
    seed: Option<u64>,
    /// Fault kinds, one per round in turn: kill, pause, partition, power-loss, wipe, slow, zk
    /// (crash ZooKeeper servers of a private ensemble), all.
    #[arg(long, default_value = "kill,pause,partition,power-loss,wipe", value_parser = simplekv::command::fault_kinds)]
    faults: std::vec::Vec<simplekv::command::FaultKind>,
    /// always | interval | never
    #[arg(long, default_value = "always")]
    fsync: simplekv::storage::FsyncPolicy,
    /// Acks of the load's writes: 1 or all.
    #[arg(long, default_value = "all")]
    acks: Acks,
    /// Load and nemesis time per round (e.g. 20s).
    #[arg(long, default_value = "15s", value_parser = simplekv::command::parse_duration)]
    duration: Duration,
    /// Time between faults within a round (each lasts 60 % of it).
    #[arg(long, default_value = "5s", value_parser = simplekv::command::parse_duration)]
    every: Duration,
    /// Brokers' ZooKeeper session timeout and ISR lag limit: shorter than a fault, so pauses and
    /// partitions depose leaders.
    #[arg(long, default_value = "2s", value_parser = simplekv::command::parse_duration)]
    session_timeout: Duration,
    /// Brokers.
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// Partitions.
    #[arg(long, default_value_t = 2)]
    partitions: u32,
    /// Concurrent clients of the load.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Keys the load spreads over.
    #[arg(long, default_value_t = 100)]
    keys: u64,
    /// Percent of reads in the load.
    #[arg(long, default_value_t = 30)]
    reads: u8,
    /// Use this ZooKeeper (host:port[/chroot]) instead of a private one.
    #[arg(long)]
    zk: Option<String>,
    /// Run every round on a private ZooKeeper ensemble of this many servers (rounds of the zk
    /// fault always get one, of three servers unless this says otherwise).
    #[arg(long)]
    zk_servers: Option<u32>,
    /// Where the histories of failing rounds are saved.
    #[arg(long, default_value = ".")]
    save_dir: PathBuf,
}

pub fn run_soak(a: SoakArgs) -> Result<bool, String> {
    use simplekv::lab::soak::{self, SoakOptions};
    let work = tempfile::Builder::new()
        .prefix("simplekv-soak-")
        .tempdir()
        .map_err(|e| format!("cannot create a work directory: {e}"))?;
    init_file_logs(&work.path().join("soak.log"))?;
    let seed = a.seed.unwrap_or_else(simplekv::lab::nemesis::fresh_seed);
    let opts = SoakOptions {
        rounds: a.rounds,
        seed,
        kinds: a.faults.clone(),
        config: LabConfig {
            nodes: Some(a.nodes),
            partitions: Some(a.partitions),
            fsync: Some(a.fsync),
            session_timeout_ms: Some(a.session_timeout.as_millis() as u64),
            replica_lag_time_max_ms: Some(a.session_timeout.as_millis() as u64),
            zk_servers: a.zk_servers,
            ..LabConfig::default()
        },
        acks: a.acks,
        duration: a.duration,
        every: a.every,
        clients: a.clients,
        keys: a.keys,
        reads: a.reads,
        zk: a.zk.clone(),
        work_dir: work.path().to_path_buf(),
        save_dir: a.save_dir.clone(),
    };
    let kinds: Vec<&str> = a.faults.iter().map(|k| k.name()).collect();
    println!(
        "soak: {} rounds of {:?} (faults {}, fsync {}, acks {}), seed {seed}",
        a.rounds,
        a.duration,
        kinds.join(","),
        a.fsync,
        a.acks
    );
    let bar = indicatif::ProgressBar::new(u64::from(a.rounds));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} rounds · {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = |round: u32, phase: &str| bar.set_message(format!("round {round}: {phase}"));
    let say = |line: String| {
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    };
    let mut done = |r: &soak::RoundResult| {
        bar.inc(1);
        let verdict = if r.failed() { "FAILED" } else { "ok" };
        say(format!(
            "round {:>3} seed {:<8} {:<10} ops {:>6} acknowledged {:>6} unknown {:>4} elections {:>2} lost {} violations {}  {verdict}",
            r.round,
            r.seed,
            r.kind.name(),
            r.ops,
            r.acknowledged,
            r.unknown,
            r.elections,
            r.lost,
            r.violations + r.gave_up
        ));
        for p in &r.problems {
            say(format!("    {}", p.replace('\n', "\n    ")));
        }
        if r.failed() {
            say(format!(
                "    reproduce: simplekv-lab soak --rounds 1 --seed {} --faults {} --fsync {} --acks {} --duration {}ms --every {}ms --session-timeout {}ms --nodes {} --partitions {} --clients {} --keys {} --reads {}{}{}",
                r.seed,
                r.kind.name(),
                a.fsync,
                a.acks,
                a.duration.as_millis(),
                a.every.as_millis(),
                a.session_timeout.as_millis(),
                a.nodes,
                a.partitions,
                a.clients,
                a.keys,
                a.reads,
                a.zk_servers
                    .map_or(String::new(), |n| format!(" --zk-servers {n}")),
                r.history
                    .as_ref()
                    .map_or(String::new(), |h| format!("  (history: {})", h.display()))
            ));
        }
    };
    let rt = runtime()?;
    let report = rt.block_on(soak::run(&opts, &progress, &mut done));
    rt.shutdown_timeout(RUNTIME_STOP);
    bar.finish_and_clear();
    let report = report?;
    println!("{}", report.table());
    Ok(!report.failed())
}
