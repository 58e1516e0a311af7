//! `simplekv-lab`: the command line. Picks a mode and turns errors into one readable line.

mod modes;
mod profile;

use clap::{Args, Parser, Subcommand};
use modes::bench::{BenchArgs, run_bench};
use modes::soak::{SoakArgs, run_soak};
use simplekv::broker::{Broker, BrokerConfig};
use simplekv::cli::{self, Discovery};
use simplekv::events::EventSink;
use simplekv::lab::{Lab, LabConfig, LabOptions, Scenario};
use simplekv::net::tls::ClientTls;
use simplekv::replica::Acks;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// SimpleKV lab: a replicated Bitcask key-value store you can watch.
#[derive(Parser, Debug)]
#[command(
    name = "simplekv-lab",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    lab: LabArgs,
}

/// The lab console (the default mode).
#[derive(Args, Debug)]
struct LabArgs {
    /// Brokers to run in this process.
    #[arg(long)]
    nodes: Option<u32>,
    /// Partitions.
    #[arg(long)]
    partitions: Option<u32>,
    /// Replicas per partition.
    #[arg(long)]
    replication_factor: Option<u32>,
    /// Use this ZooKeeper (host:port[/chroot]) instead of a private one.
    #[arg(long)]
    zk: Option<String>,
    /// Run the private ZooKeeper as an ensemble of this many servers (1, 3 or 5).
    #[arg(long)]
    zk_servers: Option<u32>,
    /// Keep data here (a restarted lab resumes on it).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Lab settings file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Play a scenario in the console.
    #[arg(long)]
    script: Option<PathBuf>,
    /// Record the run's timeline (every change and event) as JSON Lines, for `replay`.
    #[arg(long)]
    record: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Measure throughput and latency of a cluster (its own, or a running one).
    Bench(BenchArgs),
    /// Play a scenario headless: each step, its reply, PASS/FAIL; exit 1 on a failure.
    Run {
        /// The scenario file (demo/*.yaml).
        scenario: PathBuf,
        /// Brokers (overrides the scenario).
        #[arg(long)]
        nodes: Option<u32>,
        /// Use this ZooKeeper (host:port[/chroot]) instead of a private one.
        #[arg(long)]
        zk: Option<String>,
        /// Run the private ZooKeeper as an ensemble of this many servers (overrides the
        /// scenario).
        #[arg(long)]
        zk_servers: Option<u32>,
        /// Keep the data here instead of a fresh directory deleted on exit.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Run every step even after a failure.
        #[arg(long)]
        keep_going: bool,
        /// Record the run's timeline (every change and event) as JSON Lines, for `replay`.
        #[arg(long)]
        record: Option<PathBuf>,
    },
    /// Open a recorded run (`--record`) in the console, without starting any broker or
    /// ZooKeeper: step through it with [ and ].
    Replay {
        /// The recording (JSON Lines).
        file: PathBuf,
    },
    /// Rounds of a fresh lab under load and the nemesis, each healed and checked for lost
    /// writes, linearizability and replicas agreeing; exit 1 on any loss or violation.
    Soak(SoakArgs),
    /// Run one broker for a real deployment.
    Node {
        /// Its configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Make a cluster's CA and a certificate per broker, for mutual TLS between brokers
    /// (`tls:` in each node's config). A CA already in the directory is kept and signs the rest.
    Certs {
        /// Where to write them (ca.pem, ca.key, broker-N.pem, broker-N.key).
        #[arg(long)]
        out: PathBuf,
        /// How many brokers.
        #[arg(long)]
        brokers: u32,
        /// Another name or address the brokers are reached at (besides localhost and
        /// 127.0.0.1); repeat for more.
        #[arg(long)]
        host: Vec<String>,
    },
    /// Talk to a running cluster: a REPL, or one command when given.
    Cli {
        /// Find the cluster through ZooKeeper (host:port[/chroot]).
        #[arg(long, conflicts_with = "broker")]
        zk: Option<String>,
        /// Find the cluster through a broker's client address (host:port); repeat for more seeds.
        #[arg(long)]
        broker: Vec<String>,
        /// Acks for writes: 0, 1 or all.
        #[arg(long, default_value = "all")]
        acks: Acks,
        /// Dial brokers' client ports over TLS, trusting this CA (brokers with
        /// `tls.client_port: true`).
        #[arg(long, value_name = "CA.pem")]
        tls_ca: Option<PathBuf>,
        /// How long one command may take, retries included (e.g. 10s).
        #[arg(long, default_value = "10s", value_parser = simplekv::command::parse_duration)]
        timeout: Duration,
        /// The command to run once (omit for the REPL). Flags may come before or after it; a
        /// word of the command that starts with '-' goes after '--' (negative numbers need not).
        #[arg(allow_negative_numbers = true)]
        command: Vec<String>,
    },
}

/// mimalloc: the profile of the 64-client acks=all run put 11 % in the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long the runtime's remaining tasks (brokers, ZooKeeper clients) have to stop when a
/// mode ends.
const RUNTIME_STOP: Duration = Duration::from_secs(2);
/// The same for `cli`, which holds no broker.
const CLI_RUNTIME_STOP: Duration = Duration::from_millis(100);

const DEFAULT_ZK: &str = "127.0.0.1:2181/simplekv";

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn run_node(config: PathBuf) -> Result<(), String> {
    init_logs("info");
    let cfg = BrokerConfig::load(&config).map_err(|e| e.to_string())?;
    let rt = runtime()?;
    rt.block_on(async {
        let resp = match cfg.resp_port {
            Some(port) => {
                let addr = format!("{}:{port}", cfg.host);
                let listener = tokio::net::TcpListener::bind(&addr)
                    .await
                    .map_err(|e| format!("cannot listen for RESP on {addr}: {e}"))?;
                Some((listener, cfg.resp_acks()?))
            }
            None => None,
        };
        let zk = cfg.zookeeper.connect.clone();
        let broker = Broker::start(cfg, EventSink::log_only())
            .await
            .map_err(|e| e.to_string())?;
        let stop_resp = tokio_util::sync::CancellationToken::new();
        if let Some((listener, acks)) = resp {
            // Keys this broker leads are served in-process; the rest go to their leaders.
            let client_cfg = simplekv::client::ClientConfig {
                request_timeout: simplekv::resp::CLIENT_TIMEOUT,
                local: Some(broker.local_kv()),
                tls: broker.client_tls(),
                ..Default::default()
            };
            let client = cli::connect_with(&Discovery::Zk(zk), client_cfg).await?;
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "serving the Redis protocol (redis-cli -p {})", addr.port());
            }
            let opts = simplekv::resp::ExecOptions::new(acks, Some(broker.clone()));
            tokio::spawn(simplekv::resp::serve(
                listener,
                client,
                opts,
                stop_resp.clone(),
            ));
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("cannot watch for SIGTERM: {e}"))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        stop_resp.cancel();
        broker.shutdown().await;
        Ok(())
    })
}

/// Log lines go to a file, never to the terminal the console draws on.
fn init_file_logs(path: &std::path::Path) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Arc::new(file))
        .with_ansi(false)
        .try_init();
    Ok(())
}

/// Where the lab keeps its data: the given directory (kept), or a fresh one (deleted on exit).
fn data_dir(given: Option<PathBuf>) -> Result<(PathBuf, Option<tempfile::TempDir>), String> {
    match given {
        Some(d) => {
            std::fs::create_dir_all(&d)
                .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
            Ok((d, None))
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("simplekv-lab-")
                .tempdir()
                .map_err(|e| format!("cannot create a data directory: {e}"))?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}

/// What the lab starts for ZooKeeper, for its first line.
fn zk_what(zk: &simplekv::lab::ZkChoice) -> String {
    match zk {
        simplekv::lab::ZkChoice::External(_) => "on the given ZooKeeper".into(),
        simplekv::lab::ZkChoice::Private { servers: 1, .. } => "a private ZooKeeper".into(),
        simplekv::lab::ZkChoice::Private { servers, .. } => {
            format!("a private ZooKeeper ensemble of {servers} servers")
        }
    }
}

/// The lab's settings: the `--config` file, then a scenario's `cluster:` section, then flags —
/// each layer overriding the one before.
fn lab_config(
    file: Option<&std::path::Path>,
    scenario: Option<&Scenario>,
    flags: LabConfig,
) -> Result<LabConfig, String> {
    let file = match file {
        Some(p) => LabConfig::load(p).map_err(|e| e.to_string())?,
        None => LabConfig::default(),
    };
    let scenario = scenario.map(|s| s.cluster.clone()).unwrap_or_default();
    Ok(file.overlay(&scenario).overlay(&flags))
}

fn run_lab(args: LabArgs) -> Result<(), String> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(
            "the lab console needs a terminal; without one, play a scenario with: simplekv-lab run demo/seed-transcript.yaml".into(),
        );
    }
    let script = args
        .script
        .as_deref()
        .map(Scenario::load)
        .transpose()
        .map_err(|e| e.to_string())?;
    let flags = LabConfig {
        nodes: args.nodes,
        partitions: args.partitions,
        replication_factor: args.replication_factor,
        zk_servers: args.zk_servers,
        ..LabConfig::default()
    };
    let cfg = lab_config(args.config.as_deref(), script.as_ref(), flags)?;
    let (dir, temp) = data_dir(args.data_dir.clone())?;
    let log_file = dir.join("lab.log");
    init_file_logs(&log_file)?;
    let zk = args
        .zk
        .as_deref()
        .map(|zk| simplekv::lab::config::lab_connect(zk, &dir, temp.is_none()))
        .transpose()?;
    let cluster = cfg.cluster_options(dir.clone(), zk)?;
    let nodes = cluster.spec.brokers;
    println!(
        "SimpleKV lab: starting {} and {nodes} brokers (data in {}) ...",
        zk_what(&cluster.zk),
        dir.display()
    );
    let rt = runtime()?;
    let outcome = rt.block_on(async {
        let lab = Lab::start(LabOptions {
            cluster,
            data_kept: temp.is_none(),
            log_file: log_file.clone(),
            record: args.record.clone(),
        })
        .await
        .map_err(|e| e.to_string())?;
        let ui = simplekv::tui::run(lab.clone(), script).await;
        println!("SimpleKV lab: stopping brokers and ZooKeeper ...");
        lab.shutdown().await;
        ui
    });
    rt.shutdown_timeout(RUNTIME_STOP);
    match temp {
        Some(t) => {
            let path = t.path().display().to_string();
            drop(t);
            println!(
                "SimpleKV lab: stopped; its data directory {path} was deleted (use --data-dir to keep one)."
            );
        }
        None => println!(
            "SimpleKV lab: stopped; data kept in {} (log: {}).",
            dir.display(),
            log_file.display()
        ),
    }
    outcome
}

fn run_scenario(
    path: PathBuf,
    flags: LabConfig,
    zk: Option<String>,
    data: Option<PathBuf>,
    keep_going: bool,
    record: Option<PathBuf>,
) -> Result<bool, String> {
    let scenario = Scenario::load(&path).map_err(|e| e.to_string())?;
    let cfg = lab_config(None, Some(&scenario), flags)?;
    let (dir, temp) = data_dir(data)?;
    let log_file = dir.join("lab.log");
    init_file_logs(&log_file)?;
    let connect = zk
        .as_deref()
        .map(|zk| simplekv::lab::config::lab_connect(zk, &dir, temp.is_none()))
        .transpose()?;
    let cluster = cfg.cluster_options(dir.clone(), connect)?;
    println!("== {} ==", scenario.name);
    for line in scenario.description.lines() {
        println!("   {line}");
    }
    println!(
        "(starting {} and {} brokers; log: {})",
        zk_what(&cluster.zk),
        cluster.spec.brokers,
        log_file.display()
    );
    let rt = runtime()?;
    let options = LabOptions {
        cluster,
        data_kept: temp.is_none(),
        log_file,
        record: record.clone(),
    };
    let summary = rt.block_on(async {
        let mut out = std::io::stdout();
        simplekv::lab::play(&scenario, options, &mut out, keep_going).await
    });
    rt.shutdown_timeout(RUNTIME_STOP);
    drop(temp);
    let summary = summary?;
    if let Some(r) = record {
        println!(
            "(recorded to {}; replay it with: simplekv-lab replay {})",
            r.display(),
            r.display()
        );
    }
    Ok(summary.failed == 0)
}

fn run_replay(file: PathBuf) -> Result<(), String> {
    let timeline = simplekv::lab::Timeline::load(&file)?;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(format!(
            "replay needs a terminal; {} holds {} snapshots and {} events",
            file.display(),
            timeline.len(),
            timeline.events()
        ));
    }
    let rt = runtime()?;
    let name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let outcome = rt.block_on(simplekv::tui::replay(timeline, name));
    rt.shutdown_timeout(CLI_RUNTIME_STOP);
    outcome
}

fn main() -> ExitCode {
    let args = Cli::parse();
    // Brokers bound their connections per port (1,024 by default, several ports per process in
    // the lab): a soft descriptor limit of 1,024 would run out first. Raise it to the hard limit,
    // as servers commonly do; where that fails the limits still bound each port.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    match args.mode {
        Some(Mode::Run {
            scenario,
            nodes,
            zk,
            zk_servers,
            data_dir,
            keep_going,
            record,
        }) => match run_scenario(
            scenario,
            LabConfig {
                nodes,
                zk_servers,
                ..LabConfig::default()
            },
            zk,
            data_dir,
            keep_going,
            record,
        ) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("simplekv-lab run: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Mode::Replay { file }) => match run_replay(file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("simplekv-lab replay: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Mode::Bench(args)) => match run_bench(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("simplekv-lab bench: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Mode::Soak(args)) => match run_soak(args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("simplekv-lab soak: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Mode::Node { config }) => match run_node(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("simplekv-lab node: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Mode::Certs { out, brokers, host }) => {
            match simplekv::net::certs::make(&out, brokers, &host) {
                Ok(files) => {
                    for f in files {
                        println!("wrote {}", f.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("simplekv-lab certs: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Mode::Cli {
            zk,
            broker,
            acks,
            tls_ca,
            timeout,
            command,
        }) => {
            init_logs("error");
            let tls = match tls_ca.as_deref().map(ClientTls::from_ca_file).transpose() {
                Ok(tls) => tls,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let discovery = if broker.is_empty() {
                Discovery::Zk(zk.unwrap_or_else(|| DEFAULT_ZK.to_string()))
            } else {
                Discovery::Brokers(broker)
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let how = cli::Connect {
                discovery,
                timeout,
                tls,
            };
            let code = if command.is_empty() {
                cli::repl(&rt, &how, acks)
            } else {
                cli::one_shot(&rt, &how, acks, &command)
            };
            rt.shutdown_timeout(CLI_RUNTIME_STOP);
            ExitCode::from(code as u8)
        }
        None => match run_lab(args.lab) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("simplekv-lab: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
