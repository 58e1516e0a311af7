//! Fault control: which brokers a target names, and killing, restoring and wiping them.

use super::Lab;
use crate::command::Target;

impl Lab {
    /// The brokers `target` names now (`leader:P` and `follower:P` as ZooKeeper says).
    pub(super) fn resolve(&self, target: Target) -> Result<Vec<u32>, String> {
        let ids = self.cluster.ids();
        match target {
            Target::Broker(id) if ids.contains(&id) => Ok(vec![id]),
            Target::Broker(id) => Err(format!(
                "there is no broker {id}; brokers are 1..{}",
                ids.len()
            )),
            Target::All => Ok(ids),
            Target::Leader(p) => {
                if p >= self.info.spec.partitions {
                    return Err(format!(
                        "there is no partition {p}; partitions are 0..{}",
                        self.info.spec.partitions - 1
                    ));
                }
                self.zk()
                    .states
                    .get(&p)
                    .and_then(|s| s.leader())
                    .map(|l| vec![l])
                    .ok_or_else(|| format!("partition {p} has no leader right now"))
            }
            Target::Follower(p) => {
                if p >= self.info.spec.partitions {
                    return Err(format!(
                        "there is no partition {p}; partitions are 0..{}",
                        self.info.spec.partitions - 1
                    ));
                }
                let zk = self.zk();
                let leader = zk.states.get(&p).and_then(|s| s.leader());
                self.info
                    .spec
                    .replicas_of(p)
                    .into_iter()
                    .find(|&r| Some(r) != leader && self.cluster.is_up(r))
                    .map(|r| vec![r])
                    .ok_or_else(|| format!("partition {p} has no live follower right now"))
            }
            Target::Controller => self
                .zk()
                .controller
                .map(|c| vec![c.broker_id])
                .ok_or_else(|| "there is no controller right now".to_string()),
        }
    }

    /// `kill B`
    pub(super) async fn kill_brokers(&self, target: Target) -> Result<String, String> {
        let ids = self.resolve(target)?;
        for id in &ids {
            if !self.cluster.is_up(*id) {
                if ids.len() == 1 {
                    return Err(format!("broker {id} is already down"));
                }
                continue;
            }
            self.cluster.kill(*id).await.map_err(|e| e.to_string())?;
        }
        self.publish();
        Ok("OK".into())
    }

    /// `restore B`
    pub(super) async fn restore_brokers(&self, target: Target) -> Result<String, String> {
        let ids = match target {
            Target::Broker(_) | Target::All => self.resolve(target)?,
            _ => return Err("restore takes a broker id or all".into()),
        };
        for id in &ids {
            if self.cluster.is_up(*id) {
                if ids.len() == 1 {
                    return Err(format!("broker {id} is already up"));
                }
                continue;
            }
            self.cluster.restore(*id).await.map_err(|e| e.to_string())?;
        }
        self.publish();
        Ok("OK".into())
    }

    /// `wipe B`
    pub(super) async fn wipe_brokers(&self, target: Target) -> Result<String, String> {
        let ids = match target {
            Target::Broker(_) | Target::All => self.resolve(target)?,
            _ => return Err("wipe takes a broker id or all (kill it first)".into()),
        };
        for id in &ids {
            self.cluster.wipe(*id).await.map_err(|e| e.to_string())?;
        }
        self.publish();
        Ok("OK".into())
    }
}
