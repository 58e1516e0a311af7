//! The soak (`simplekv-lab soak`, DESIGN §13–14): round after round, a fresh lab runs a mixed
//! load under the nemesis, is healed, settles, and is checked — lost writes, linearizability,
//! replicas agreeing. Each round has a seed of its own, so a failing round can be replayed alone,
//! and its history is saved for an outside checker.

use super::config::LabConfig;
use super::control::{Lab, LabOptions};
use super::load::LoadPlan;
use crate::command::{FaultKind, LabControl, NemesisSpec, WaitCondition};
use crate::coord::{ServerOptions, ZkServer, split_connect};
use crate::lab::linearizable::{KeyVerdict, Kind, Outcome};
use crate::replica::Acks;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long a healed cluster may take to serve every partition and catch every replica up.
const SETTLE: Duration = Duration::from_secs(60);

/// What a soak runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// Rounds to run.
    pub rounds: u32,
    /// Seed of round 0; round r uses `seed + r`.
    pub seed: u64,
    /// Fault kinds; round r injects `kinds[r % len]` only.
    pub kinds: Vec<FaultKind>,
    /// Lab settings (brokers, partitions, fsync, ...).
    pub config: LabConfig,
    /// Acks of the load's writes.
    pub acks: Acks,
    /// Load and nemesis time per round.
    pub duration: Duration,
    /// Time between nemesis faults.
    pub every: Duration,
    /// Concurrent clients of the load.
    pub clients: u32,
    /// Keys the load spreads over (reused, so reads and writes meet).
    pub keys: u64,
    /// Percent of reads in the load.
    pub reads: u8,
    /// An external ZooKeeper (`host:port[/chroot]`); a private one when `None`.
    pub zk: Option<String>,
    /// Where rounds keep their data (each round's is deleted after it).
    pub work_dir: PathBuf,
    /// Where the histories of failing rounds are saved.
    pub save_dir: PathBuf,
}

/// One round's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundResult {
    /// Its number, from 0.
    pub round: u32,
    /// Its seed (the nemesis's).
    pub seed: u64,
    /// The fault kind it injected.
    pub kind: FaultKind,
    /// Client operations recorded (final reads included).
    pub ops: u64,
    /// Writes acknowledged.
    pub acknowledged: u64,
    /// Writes of unknown outcome.
    pub unknown: u64,
    /// Acknowledged writes gone.
    pub lost: u64,
    /// Keys whose history no order explains.
    pub violations: u64,
    /// Keys the linearizability search gave up on.
    pub gave_up: u64,
    /// Leader elections after the first ones (how hard the faults bit).
    pub elections: u64,
    /// Anything else that went wrong (a cluster that did not settle, replicas that differ).
    pub problems: Vec<String>,
    /// Where its history was saved (failing rounds only).
    pub history: Option<PathBuf>,
}

impl RoundResult {
    /// Whether the round found a loss, a violation or another problem.
    pub fn failed(&self) -> bool {
        self.lost > 0 || self.violations > 0 || self.gave_up > 0 || !self.problems.is_empty()
    }
}

/// All rounds.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    /// Each round, in order.
    pub rounds: Vec<RoundResult>,
}

impl SoakReport {
    /// Whether any round failed.
    pub fn failed(&self) -> bool {
        self.rounds.iter().any(RoundResult::failed)
    }

    /// The final table: one row per fault kind, and a total.
    pub fn table(&self) -> String {
        #[derive(Default)]
        struct Row {
            rounds: u64,
            ops: u64,
            acknowledged: u64,
            unknown: u64,
            lost: u64,
            violations: u64,
        }
        let mut rows: BTreeMap<FaultKind, Row> = BTreeMap::new();
        let mut total = Row::default();
        for r in &self.rounds {
            for row in [rows.entry(r.kind).or_default(), &mut total] {
                row.rounds += 1;
                row.ops += r.ops;
                row.acknowledged += r.acknowledged;
                row.unknown += r.unknown;
                row.lost += r.lost;
                row.violations += r.violations + r.gave_up;
            }
        }
        let mut out = format!(
            "{:<11} {:>6} {:>11} {:>12} {:>8} {:>6} {:>10}\n",
            "fault", "rounds", "operations", "acknowledged", "unknown", "lost", "violations"
        );
        let line = |name: &str, r: &Row| {
            format!(
                "{:<11} {:>6} {:>11} {:>12} {:>8} {:>6} {:>10}\n",
                name, r.rounds, r.ops, r.acknowledged, r.unknown, r.lost, r.violations
            )
        };
        for (k, r) in &rows {
            out.push_str(&line(k.name(), r));
        }
        out.push_str(&line("all", &total));
        out
    }
}

/// Runs the soak; `progress` hears each phase of each round, `done` each finished round.
pub async fn run(
    opts: &SoakOptions,
    progress: &(dyn Fn(u32, &str) + Sync),
    done: &mut (dyn FnMut(&RoundResult) + Send),
) -> Result<SoakReport, String> {
    if opts.kinds.is_empty() {
        return Err("name at least one fault kind".into());
    }
    std::fs::create_dir_all(&opts.work_dir)
        .map_err(|e| format!("cannot create {}: {e}", opts.work_dir.display()))?;
    let needs_shared = opts.kinds.iter().any(|&k| !private_zookeeper(opts, k));
    let (mut server, connect) = match &opts.zk {
        Some(c) => (None, c.clone()),
        None if !needs_shared => (None, String::new()),
        None => {
            let dir = opts.work_dir.join("zookeeper");
            let so = ServerOptions {
                tick_ms: opts.config.zk_tick_ms.unwrap_or(200),
                remove_dir_on_exit: true,
                ..ServerOptions::default()
            };
            let server = tokio::task::spawn_blocking(move || ZkServer::start(&dir, &so))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            let addr = server.addr().to_string();
            (Some(server), addr)
        }
    };
    let mut report = SoakReport::default();
    for round in 0..opts.rounds {
        let result = run_round(opts, &connect, round, progress).await;
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                if let Some(s) = server.as_mut() {
                    s.stop();
                }
                return Err(format!("round {round}: {e}"));
            }
        };
        done(&result);
        report.rounds.push(result);
    }
    if let Some(mut s) = server {
        let _ = tokio::task::spawn_blocking(move || s.stop()).await;
    }
    Ok(report)
}

/// Whether a round runs on a ZooKeeper of its own rather than the soak's shared one: a round
/// of ZooKeeper faults needs servers its lab controls, and `zk_servers` above one asks for an
/// ensemble in every round.
fn private_zookeeper(opts: &SoakOptions, kind: FaultKind) -> bool {
    kind == FaultKind::Zk || opts.config.zk_servers.is_some_and(|n| n > 1)
}

async fn run_round(
    opts: &SoakOptions,
    connect: &str,
    round: u32,
    progress: &(dyn Fn(u32, &str) + Sync),
) -> Result<RoundResult, String> {
    let seed = opts.seed.wrapping_add(u64::from(round));
    let kind = opts.kinds[round as usize % opts.kinds.len()];
    let dir = opts.work_dir.join(format!("round-{round}"));
    let _ = std::fs::remove_dir_all(&dir);
    let cluster = if private_zookeeper(opts, kind) {
        // Its own ensemble, which the nemesis may crash servers of (three unless told).
        let config = LabConfig {
            zk_servers: Some(opts.config.zk_servers.unwrap_or(3)),
            ..opts.config.clone()
        };
        config.cluster_options(dir.clone(), None)?
    } else {
        let (servers, chroot) = split_connect(connect);
        let zk = format!("{servers}{chroot}/soak-{seed}-{round}");
        opts.config.cluster_options(dir.clone(), Some(zk))?
    };
    progress(round, "starting a fresh lab");
    let lab = Lab::start(LabOptions {
        cluster,
        data_kept: false,
        log_file: opts.work_dir.join("soak.log"),
        record: None,
    })
    .await
    .map_err(|e| e.to_string())?;
    let result = exercise(&lab, opts, round, seed, kind, progress).await;
    let mut result = match result {
        Ok(r) => r,
        Err(e) => RoundResult {
            round,
            seed,
            kind,
            ops: 0,
            acknowledged: 0,
            unknown: 0,
            lost: 0,
            violations: 0,
            gave_up: 0,
            elections: 0,
            problems: vec![e.to_string()],
            history: None,
        },
    };
    if result.failed() {
        let path = opts
            .save_dir
            .join(format!("soak-seed-{seed}-round-{round}.jsonl"));
        if lab.write_history(&path).is_ok() {
            result.history = Some(path);
        }
    }
    progress(round, "stopping");
    lab.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(result)
}

async fn exercise(
    lab: &Arc<Lab>,
    opts: &SoakOptions,
    round: u32,
    seed: u64,
    kind: FaultKind,
    progress: &(dyn Fn(u32, &str) + Sync),
) -> Result<RoundResult, crate::command::CommandError> {
    lab.wait(WaitCondition::Available, Some(SETTLE)).await?;
    progress(round, &format!("load and nemesis ({})", kind.name()));
    let plan = LoadPlan {
        ops: None,
        duration: Some(opts.duration),
        keys: Some(opts.keys.max(1)),
        read_ratio: f64::from(opts.reads.min(100)) / 100.0,
        ..LoadPlan::writes(0, opts.clients.max(1), opts.acks, format!("soak{round}"))
    };
    lab.start_plan(plan, 0);
    lab.fault(crate::command::Fault::Nemesis(NemesisSpec {
        kinds: vec![kind],
        every: opts.every,
        duration: None,
        seed: Some(seed),
    }))
    .await?;
    tokio::time::sleep(opts.duration).await;
    progress(round, "healing");
    lab.heal_everything().await?;
    lab.finish_load().await?;
    progress(round, "settling");
    let mut problems = Vec::new();
    if lab.faults_injected() == 0 {
        // A round that tried nothing proves nothing.
        problems.push(format!(
            "the nemesis injected no {} fault (see the events for why)",
            kind.name()
        ));
    }
    for cond in [WaitCondition::Available, WaitCondition::CaughtUp] {
        if let Err(e) = lab.wait(cond, Some(SETTLE)).await {
            problems.push(format!("the healed cluster did not settle: {e}"));
        }
    }
    progress(round, "checking");
    let lost = lab.lost_writes().await?;
    let lin = lab.linearizability().await?;
    if let Err(e) = lab.check_replicas_agree() {
        problems.push(format!("replicas differ: {e}"));
    }
    if !lin.is_linearizable() {
        problems.push(lin.to_string());
    }
    let ops = lab.history().ops();
    let elections = lab
        .snapshot()
        .events
        .iter()
        .filter(|e| {
            e.kind == crate::events::EventKind::LeaderElected
                && !e.message.contains("from the start")
        })
        .count() as u64;
    let writes = || {
        ops.iter()
            .filter(|o| matches!(o.kind, Kind::Set | Kind::Del))
    };
    Ok(RoundResult {
        round,
        seed,
        kind,
        ops: ops.len() as u64,
        acknowledged: writes().filter(|o| o.outcome == Outcome::Ok).count() as u64,
        unknown: writes().filter(|o| o.outcome == Outcome::Unknown).count() as u64,
        lost: lost.lost.len() as u64,
        violations: lin
            .verdicts
            .iter()
            .filter(|v| matches!(v, KeyVerdict::Violation { .. }))
            .count() as u64,
        gave_up: lin
            .verdicts
            .iter()
            .filter(|v| matches!(v, KeyVerdict::GaveUp { .. }))
            .count() as u64,
        elections,
        problems,
        history: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(kind: FaultKind, lost: u64) -> RoundResult {
        RoundResult {
            round: 0,
            seed: 1,
            kind,
            ops: 100,
            acknowledged: 40,
            unknown: 2,
            lost,
            violations: 0,
            gave_up: 0,
            elections: 0,
            problems: Vec::new(),
            history: None,
        }
    }

    #[test]
    fn the_table_sums_rounds_per_fault_kind_and_a_loss_fails_the_soak() {
        let mut report = SoakReport {
            rounds: vec![
                round(FaultKind::Kill, 0),
                round(FaultKind::Kill, 0),
                round(FaultKind::Pause, 0),
            ],
        };
        assert!(!report.failed());
        let table = report.table();
        assert!(
            table
                .contains("kill             2         200           80        4      0          0"),
            "{table}"
        );
        assert!(table.contains("all              3         300"), "{table}");
        report.rounds.push(round(FaultKind::PowerLoss, 3));
        assert!(report.failed());
        assert!(
            report
                .table()
                .contains("power-loss       1         100           40        2      3")
        );
    }
}
