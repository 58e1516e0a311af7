//! Fault control: which brokers (or ZooKeeper servers) a target names, and killing, restoring
//! and wiping them.

use super::Lab;
use crate::command::{CommandError, Target, ZkTarget};
use crate::coord::ZkMode;

impl Lab {
    /// The brokers `target` names now (`leader:P` and `follower:P` as ZooKeeper says).
    pub(super) fn resolve(&self, target: Target) -> Result<Vec<u32>, CommandError> {
        let ids = self.cluster.ids();
        match target {
            Target::Broker(id) if ids.contains(&id) => Ok(vec![id]),
            Target::Broker(id) => Err(CommandError::Refused(format!(
                "there is no broker {id}; brokers are 1..{}",
                ids.len()
            ))),
            Target::All => Ok(ids),
            Target::Leader(p) => {
                if p >= self.info.spec.partitions {
                    return Err(CommandError::Refused(format!(
                        "there is no partition {p}; partitions are 0..{}",
                        self.info.spec.partitions - 1
                    )));
                }
                self.zk()
                    .states
                    .get(&p)
                    .and_then(|s| s.leader())
                    .map(|l| vec![l])
                    .ok_or_else(|| {
                        CommandError::Refused(format!("partition {p} has no leader right now"))
                    })
            }
            Target::Follower(p) => {
                if p >= self.info.spec.partitions {
                    return Err(CommandError::Refused(format!(
                        "there is no partition {p}; partitions are 0..{}",
                        self.info.spec.partitions - 1
                    )));
                }
                let zk = self.zk();
                let leader = zk.states.get(&p).and_then(|s| s.leader());
                self.info
                    .spec
                    .replicas_of(p)
                    .into_iter()
                    .find(|&r| Some(r) != leader && self.cluster.is_up(r))
                    .map(|r| vec![r])
                    .ok_or_else(|| {
                        CommandError::Refused(format!(
                            "partition {p} has no live follower right now"
                        ))
                    })
            }
            Target::Controller => self
                .zk()
                .controller
                .map(|c| vec![c.broker_id])
                .ok_or_else(|| CommandError::Refused("there is no controller right now".into())),
        }
    }

    /// `kill B`
    pub(super) async fn kill_brokers(&self, target: Target) -> Result<String, CommandError> {
        let ids = self.resolve(target)?;
        for id in &ids {
            if !self.cluster.is_up(*id) {
                if ids.len() == 1 {
                    return Err(CommandError::Refused(format!(
                        "broker {id} is already down"
                    )));
                }
                continue;
            }
            self.cluster.kill(*id).await?;
        }
        self.publish();
        Ok("OK".into())
    }

    /// `restore B`
    pub(super) async fn restore_brokers(&self, target: Target) -> Result<String, CommandError> {
        let ids = match target {
            Target::Broker(_) | Target::All => self.resolve(target)?,
            _ => {
                return Err(CommandError::Usage(
                    "restore takes a broker id or all".into(),
                ));
            }
        };
        for id in &ids {
            if self.cluster.is_up(*id) {
                if ids.len() == 1 {
                    return Err(CommandError::Refused(format!("broker {id} is already up")));
                }
                continue;
            }
            self.cluster.restore(*id).await?;
        }
        self.publish();
        Ok("OK".into())
    }

    /// `wipe B`
    pub(super) async fn wipe_brokers(&self, target: Target) -> Result<String, CommandError> {
        let ids = match target {
            Target::Broker(_) | Target::All => self.resolve(target)?,
            _ => {
                return Err(CommandError::Usage(
                    "wipe takes a broker id or all (kill it first)".into(),
                ));
            }
        };
        for id in &ids {
            self.cluster.wipe(*id).await?;
        }
        self.publish();
        Ok("OK".into())
    }

    /// The private ZooKeeper servers `target` names now (`zk:leader` by asking each its mode).
    async fn resolve_zk(&self, target: ZkTarget) -> Result<Vec<u32>, CommandError> {
        let count = self.cluster.zk_server_count() as u32;
        if count == 0 {
            return Err(CommandError::Refused(
                "this lab uses an external ZooKeeper (--zk): it cannot kill or restore its servers"
                    .into(),
            ));
        }
        let in_mode = |want: ZkMode, modes: &[ZkMode]| {
            modes
                .iter()
                .position(|&m| m == want)
                .map(|i| vec![i as u32 + 1])
        };
        match target {
            ZkTarget::Server(n) if (1..=count).contains(&n) => Ok(vec![n]),
            ZkTarget::Server(n) => Err(CommandError::Refused(format!(
                "there is no ZooKeeper server zk:{n}; this lab runs zk:1..zk:{count} (start it with --zk-servers 3 for an ensemble)"
            ))),
            ZkTarget::All => Ok((1..=count).collect()),
            ZkTarget::Leader if count == 1 => Err(
                CommandError::Refused("a single standalone ZooKeeper server has no leader or followers: name it zk:1 (or start the lab with --zk-servers 3)".into()),
            ),
            ZkTarget::Follower if count == 1 => Err(
                CommandError::Refused("a single standalone ZooKeeper server has no leader or followers: name it zk:1 (or start the lab with --zk-servers 3)".into()),
            ),
            ZkTarget::Leader => in_mode(ZkMode::Leader, &self.cluster.zk_modes().await)
                .ok_or_else(|| CommandError::Refused("no ZooKeeper server leads right now (no quorum, or an election under way)".into())),
            ZkTarget::Follower => in_mode(ZkMode::Follower, &self.cluster.zk_modes().await)
                .ok_or_else(|| CommandError::Refused("no ZooKeeper server follows a leader right now".into())),
        }
    }

    /// `kill zk:N`
    pub(super) async fn kill_zk_servers(&self, target: ZkTarget) -> Result<String, CommandError> {
        let ids = self.resolve_zk(target).await?;
        let modes = self.cluster.zk_modes().await;
        let mut killed = Vec::new();
        for &n in &ids {
            match self.cluster.kill_zk(n).await {
                Ok(()) => killed.push(match modes.get(n as usize - 1) {
                    Some(m @ (ZkMode::Leader | ZkMode::Follower)) => {
                        format!("zk:{n} (was {})", m.name())
                    }
                    _ => format!("zk:{n}"),
                }),
                Err(e) if ids.len() == 1 => return Err(e.into()),
                Err(_) => {}
            }
        }
        self.poll_zookeeper().await;
        self.publish();
        if killed.is_empty() {
            return Err(CommandError::Refused(
                "every ZooKeeper server named was already down".into(),
            ));
        }
        Ok(format!("OK: killed {}", killed.join(", ")))
    }

    /// `restore zk:N`
    pub(super) async fn restore_zk_servers(
        &self,
        target: ZkTarget,
    ) -> Result<String, CommandError> {
        let ids = match target {
            ZkTarget::Server(_) | ZkTarget::All => self.resolve_zk(target).await?,
            _ => return Err(CommandError::Usage("restore takes zk:N or zk:all".into())),
        };
        let mut restored = Vec::new();
        for &n in &ids {
            match self.cluster.restore_zk(n).await {
                Ok(()) => restored.push(format!("zk:{n}")),
                Err(e) if ids.len() == 1 => return Err(e.into()),
                Err(_) => {}
            }
        }
        self.poll_zookeeper().await;
        self.publish();
        if restored.is_empty() {
            return Err(CommandError::Refused(
                "every ZooKeeper server named was already up".into(),
            ));
        }
        Ok(format!("OK: restored {}", restored.join(", ")))
    }
}
