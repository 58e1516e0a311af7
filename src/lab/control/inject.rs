//! Link, machine and nemesis faults (DESIGN §13): the lab's side of the fault commands.

use super::Lab;
use crate::command::{CommandError, Fault, Member, Target};
use crate::lab::network::Node;
use std::sync::Arc;

impl Lab {
    /// Carries out `fault`.
    pub(super) async fn inject(self: &Arc<Self>, fault: Fault) -> Result<String, CommandError> {
        let reply = match fault {
            Fault::KillZk(target) => self.kill_zk_servers(target).await?,
            Fault::RestoreZk(target) => self.restore_zk_servers(target).await?,
            Fault::Pause(target, duration) => self.pause_brokers(target, duration).await?,
            Fault::Resume(target) => {
                let ids = self.resolve(target)?;
                // `resume all` resumes whichever are paused.
                let many = ids.len() > 1;
                for id in ids {
                    if many && !self.cluster.is_paused(id) {
                        continue;
                    }
                    self.cluster.resume(id).await?;
                }
                "OK".into()
            }
            Fault::PowerLoss(target) => {
                let mut lines = Vec::new();
                for id in self.resolve(target)? {
                    let r = self.cluster.power_loss(id).await?;
                    lines.push(format!(
                        "broker {id} lost power: {} bytes never fsynced are gone ({} files cut back, {} vanished)",
                        r.bytes_lost(),
                        r.cut.len(),
                        r.vanished.len()
                    ));
                }
                lines.join("\n")
            }
            Fault::Partition(groups) => {
                let mut nodes = Vec::new();
                for g in &groups {
                    let mut side = Vec::new();
                    for m in g {
                        match *m {
                            Member::Zk => side.push(Node::Zk),
                            Member::Clients => side.push(Node::Clients),
                            Member::Broker(t) => {
                                side.extend(self.resolve(t)?.into_iter().map(Node::Broker))
                            }
                        }
                    }
                    nodes.push(side);
                }
                let what = nodes
                    .iter()
                    .map(|g| g.iter().map(Node::to_string).collect::<Vec<_>>().join(","))
                    .collect::<Vec<_>>()
                    .join(" | ");
                let f = self
                    .cluster
                    .change_links(&format!("partition {what}"), |f, _| f.partition(&nodes))?;
                format!("OK: {}", f.describe().join(", "))
            }
            Fault::Isolate(target, sides) => {
                let ids = self.resolve(target)?;
                let f = self.cluster.change_links(
                    &format!(
                        "isolate {}",
                        ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
                    ),
                    |f, all| {
                        for &id in &ids {
                            f.isolate(id, all, sides.zk, sides.peers, sides.clients);
                        }
                    },
                )?;
                format!("OK: {}", f.describe().join(", "))
            }
            Fault::Slow(target, delay, jitter) => {
                let ids = self.resolve(target)?;
                let f = self.cluster.change_links("slow", |f, _| {
                    for &id in &ids {
                        if delay.is_zero() && jitter.is_zero() {
                            f.slow.remove(&Node::Broker(id));
                        } else {
                            f.slow.insert(Node::Broker(id), (delay, jitter));
                        }
                    }
                })?;
                format!("OK: {}", f.describe().join(", "))
            }
            Fault::Heal => {
                self.cluster
                    .change_links("heal", |f, _| *f = Default::default())?;
                "OK: every link is whole".into()
            }
            Fault::Nemesis(spec) => self.start_nemesis(spec)?,
            Fault::NemesisStop => self.stop_nemesis().await?,
        };
        self.publish();
        Ok(reply)
    }

    /// `pause B [DURATION]`: with a duration, the broker resumes by itself afterwards.
    async fn pause_brokers(
        self: &Arc<Self>,
        target: Target,
        duration: Option<std::time::Duration>,
    ) -> Result<String, CommandError> {
        let ids = self.resolve(target)?;
        for &id in &ids {
            if ids.len() > 1 && (!self.cluster.is_up(id) || self.cluster.is_paused(id)) {
                continue;
            }
            let number = self.cluster.pause(id).await?;
            if let Some(d) = duration {
                let lab = Arc::downgrade(self);
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    if let Some(lab) = lab.upgrade() {
                        let _ = lab.cluster.resume_pause(id, number).await;
                        lab.publish();
                    }
                });
            }
        }
        let session = self.cluster.session_timeout_ms();
        Ok(match duration {
            Some(d) => format!(
                "OK: paused for {d:?}; its ZooKeeper session expires after {session} ms without it"
            ),
            None => format!(
                "OK: paused until 'resume'; its ZooKeeper session expires after {session} ms without it"
            ),
        })
    }

    /// `history save FILE`
    pub fn write_history(&self, path: &std::path::Path) -> Result<String, CommandError> {
        let ops = self.history.ops();
        let file = std::fs::File::create(path)
            .map_err(|e| CommandError::Failed(format!("cannot create {}: {e}", path.display())))?;
        let mut out = std::io::BufWriter::new(file);
        crate::lab::jsonl::write_all(&ops, &mut out)
            .and_then(|()| std::io::Write::flush(&mut out))
            .map_err(|e| CommandError::Failed(format!("cannot write {}: {e}", path.display())))?;
        Ok(format!(
            "wrote {} operations to {} (JSON Lines, DESIGN §14)",
            ops.len(),
            path.display()
        ))
    }
}

impl Lab {
    /// Marks paused brokers and every fault in force on a snapshot, for the console and `status`.
    pub(super) fn add_faults(&self, snap: &mut crate::lab::LabSnapshot) {
        let net = self.cluster.network().faults();
        for b in &mut snap.brokers {
            if self.cluster.is_paused(b.id) {
                b.state = crate::lab::BrokerState::Paused;
            }
            if self.cluster.is_wiped(b.id) {
                b.faults.push("disk wiped".into());
            }
            let node = Node::Broker(b.id);
            let cut = net.cut_from(node);
            if !cut.is_empty() {
                let names: Vec<String> = cut.iter().map(Node::to_string).collect();
                b.faults.push(format!("cut {}", names.join(",")));
            }
            if let Some((d, j)) = net.slow.get(&node) {
                b.faults.push(if j.is_zero() {
                    format!("slow +{}ms", d.as_millis())
                } else {
                    format!("slow +{}±{}ms", d.as_millis(), j.as_millis())
                });
            }
        }
        snap.faults = net.describe();
        for b in &snap.brokers {
            if b.state == crate::lab::BrokerState::Paused {
                snap.faults.push(format!("paused {}", b.id));
            }
            if self.cluster.is_wiped(b.id) {
                snap.faults.push(format!("wiped {}", b.id));
            }
        }
        if let Some(seed) = self.nemesis_seed() {
            snap.faults.push(format!("nemesis (seed {seed})"));
        }
    }
}
