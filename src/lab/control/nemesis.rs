//! The nemesis in the background (DESIGN §13): one fault at a time from a seeded plan, each
//! healed before the next, every fault and heal an event.

use super::Lab;
use crate::command::{CommandError, FaultKind, NemesisSpec};
use crate::coord::ZkMode;
use crate::events::EventKind;
use crate::lab::ClusterError;
use crate::lab::nemesis::{Rng, Step, Targets, fresh_seed, next_step};
use crate::lab::network::Node;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// A running nemesis.
pub(super) struct NemesisRun {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<BTreeMap<FaultKind, u64>>,
    seed: u64,
}

/// What healing one nemesis step undoes.
enum Undo {
    /// Restore the broker (if down).
    Restore(u32),
    /// End this pause of the broker.
    Resume(u32, u64),
    /// Remove the cuts the step added.
    Cuts(std::collections::BTreeSet<(Node, Node)>),
    /// Put the party's slowness back as it was.
    Slow(Node, Option<(std::time::Duration, std::time::Duration)>),
    /// Restore the ZooKeeper server (if down).
    RestoreZk(u32),
}

/// Share of each period a fault stays in force before it is healed (the rest lets the cluster
/// recover before the next one).
const FAULT_SHARE: f64 = 0.6;

impl Lab {
    /// `nemesis KINDS [every D] [for D] [seed N]`
    pub(super) fn start_nemesis(
        self: &Arc<Self>,
        spec: NemesisSpec,
    ) -> Result<String, CommandError> {
        let mut slot = self.nemesis.lock();
        if slot.as_ref().is_some_and(|n| !n.task.is_finished()) {
            return Err(CommandError::Refused(
                "a nemesis is already running; 'nemesis stop' first".into(),
            ));
        }
        // ZooKeeper faults need the lab's own servers: `all` leaves them out on an external
        // ZooKeeper, and asking for them alone there is an error.
        let mut kinds = spec.kinds.clone();
        if self.cluster.zk_server_count() == 0 && kinds.contains(&FaultKind::Zk) {
            kinds.retain(|&k| k != FaultKind::Zk);
            if kinds.is_empty() {
                return Err(CommandError::Refused(
                    "the zk fault crashes the lab's own ZooKeeper servers, and this lab uses an external one (--zk)"
                        .into(),
                ));
            }
        }
        let seed = spec.seed.unwrap_or_else(fresh_seed);
        let stop = CancellationToken::new();
        let weak = Arc::downgrade(self);
        let token = stop.clone();
        let shown: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        let shown = shown.join(",");
        let (every, duration) = (spec.every, spec.duration);
        let task = tokio::spawn(async move {
            let mut rng = Rng::new(seed);
            let mut done: BTreeMap<FaultKind, u64> = BTreeMap::new();
            let started = Instant::now();
            while !token.is_cancelled() && duration.is_none_or(|d| started.elapsed() < d) {
                let Some(lab) = weak.upgrade() else { break };
                let up: Vec<u32> = lab
                    .cluster
                    .ids()
                    .into_iter()
                    .filter(|&b| lab.cluster.is_up(b) && !lab.cluster.is_paused(b))
                    .collect();
                let leaders: Vec<u32> = lab
                    .leaders()
                    .values()
                    .filter_map(|(l, _)| *l)
                    .filter(|l| up.contains(l))
                    .collect();
                let zk = lab.zk_modes.lock().clone();
                let targets = Targets {
                    up,
                    leaders,
                    zk_up: (1..=zk.len() as u32)
                        .filter(|&n| zk[n as usize - 1] != ZkMode::Down)
                        .collect(),
                    zk_leader: zk
                        .iter()
                        .position(|&m| m == ZkMode::Leader)
                        .map(|i| i as u32 + 1),
                };
                let step = next_step(&mut rng, &kinds, &targets);
                let mut undo = None;
                if let Some(step) = &step {
                    lab.nemesis_event(
                        seed,
                        &format!("{} (heals with '{}')", step.command(), step.heal_command()),
                    );
                    match lab.apply_step(step).await {
                        Ok(u) => {
                            undo = Some(u);
                            *done.entry(step.kind()).or_default() += 1;
                            lab.faults_injected
                                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        Err(e) => {
                            lab.nemesis_event(seed, &format!("{} failed: {e}", step.command()))
                        }
                    }
                    lab.publish();
                }
                drop(lab);
                let on = every.mul_f64(FAULT_SHARE);
                tokio::select! {
                    () = tokio::time::sleep(on) => {}
                    () = token.cancelled() => {}
                }
                let Some(lab) = weak.upgrade() else { break };
                if let (Some(step), Some(undo)) = (&step, undo) {
                    lab.nemesis_event(seed, &step.heal_command());
                    if let Err(e) = lab.heal_step(undo).await {
                        lab.nemesis_event(seed, &format!("{} failed: {e}", step.heal_command()));
                    }
                    lab.publish();
                }
                drop(lab);
                tokio::select! {
                    () = tokio::time::sleep(every.saturating_sub(on)) => {}
                    () = token.cancelled() => {}
                }
            }
            done
        });
        *slot = Some(NemesisRun { stop, task, seed });
        Ok(format!(
            "nemesis started: {shown} every {:?}{} (seed {seed}; 'nemesis stop' ends it)",
            spec.every,
            spec.duration
                .map_or(String::new(), |d| format!(" for {d:?}"))
        ))
    }

    /// `nemesis stop`: heals the fault in force and reports what was injected.
    pub(super) async fn stop_nemesis(&self) -> Result<String, CommandError> {
        let run = self.nemesis.lock().take();
        let Some(run) = run else {
            return Err(CommandError::Refused("no nemesis is running".into()));
        };
        run.stop.cancel();
        let done = run
            .task
            .await
            .map_err(|e| CommandError::Failed(format!("the nemesis failed: {e}")))?;
        let counts: Vec<String> = done
            .iter()
            .map(|(k, n)| format!("{} {n}", k.name()))
            .collect();
        Ok(format!(
            "nemesis stopped (seed {}): {}",
            run.seed,
            if counts.is_empty() {
                "no faults injected".into()
            } else {
                counts.join(", ")
            }
        ))
    }

    /// Stops the nemesis at once, healing nothing (the lab is going away).
    pub(super) fn abort_nemesis(&self) {
        if let Some(run) = self.nemesis.lock().take() {
            run.stop.cancel();
            run.task.abort();
        }
    }

    /// The running nemesis's seed.
    pub(super) fn nemesis_seed(&self) -> Option<u64> {
        self.nemesis
            .lock()
            .as_ref()
            .filter(|n| !n.task.is_finished())
            .map(|n| n.seed)
    }

    fn nemesis_event(&self, seed: u64, what: &str) {
        self.cluster.events().emit(
            EventKind::Fault,
            None,
            format!("nemesis (seed {seed}): {what}"),
        );
    }

    /// Injects `step`; returns what healing it must undo (and only that: faults someone else
    /// set stay in force).
    async fn apply_step(&self, step: &Step) -> Result<Undo, ClusterError> {
        let c = &self.cluster;
        match step {
            Step::Kill(b) => c.kill(*b).await.map(|()| Undo::Restore(*b)),
            Step::KillZk(n) => c.kill_zk(*n).await.map(|()| Undo::RestoreZk(*n)),
            Step::Pause(b) => c.pause(*b).await.map(|n| Undo::Resume(*b, n)),
            Step::PowerLoss(b) => c.power_loss(*b).await.map(|_| Undo::Restore(*b)),
            Step::Wipe(b) => {
                c.kill(*b).await?;
                c.wipe(*b).await.map(|()| Undo::Restore(*b))
            }
            Step::Slow(b, d, j) => {
                let node = Node::Broker(*b);
                let before = c.network().faults().slow.get(&node).copied();
                c.change_links(&step.command(), |f, _| {
                    f.slow.insert(node, (*d, *j));
                })?;
                Ok(Undo::Slow(node, before))
            }
            Step::Partition(groups) => {
                let before = c.network().faults().cuts;
                let after = c.change_links(&step.command(), |f, _| f.partition(groups))?;
                Ok(Undo::Cuts(
                    after.cuts.difference(&before).copied().collect(),
                ))
            }
        }
    }

    async fn heal_step(&self, undo: Undo) -> Result<(), ClusterError> {
        let c = &self.cluster;
        match undo {
            Undo::Restore(b) if !c.is_up(b) => c.restore(b).await,
            Undo::Resume(b, n) => c.resume_pause(b, n).await,
            Undo::Cuts(cuts) => c
                .change_links("heal the nemesis's partition", |f, _| {
                    f.cuts.retain(|cut| !cuts.contains(cut));
                })
                .map(|_| ()),
            Undo::Slow(node, before) => c
                .change_links("heal the nemesis's slow link", |f, _| match before {
                    Some(v) => {
                        f.slow.insert(node, v);
                    }
                    None => {
                        f.slow.remove(&node);
                    }
                })
                .map(|_| ()),
            Undo::Restore(_) => Ok(()),
            Undo::RestoreZk(n) if !c.zk_server_up(n) => c.restore_zk(n).await,
            Undo::RestoreZk(_) => Ok(()),
        }
    }

    /// Ends every fault: stops the nemesis, heals every link, resumes paused brokers and
    /// restores down ones. Returns what it did.
    pub async fn heal_everything(self: &Arc<Self>) -> Result<String, CommandError> {
        let mut done = Vec::new();
        if self.nemesis.lock().is_some() {
            done.push(self.stop_nemesis().await?);
        }
        if !self.cluster.network().faults().is_empty() {
            self.cluster
                .change_links("heal", |f, _| *f = Default::default())?;
            done.push("links healed".into());
        }
        for n in 1..=self.cluster.zk_server_count() as u32 {
            if !self.cluster.zk_server_up(n) {
                self.cluster.restore_zk(n).await?;
                done.push(format!("restored zk:{n}"));
            }
        }
        for b in self.cluster.ids() {
            if self.cluster.is_paused(b) {
                self.cluster.resume(b).await?;
                done.push(format!("resumed {b}"));
            }
            if !self.cluster.is_up(b) {
                self.cluster.restore(b).await?;
                done.push(format!("restored {b}"));
            }
        }
        self.publish();
        Ok(if done.is_empty() {
            "nothing to heal".into()
        } else {
            done.join("; ")
        })
    }
}
