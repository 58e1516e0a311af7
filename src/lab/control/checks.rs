//! The checks: `check lost-writes` (the history against what the cluster serves) and
//! `check replicas-agree` (every ISR member against its leader, below the high watermark).

use super::Lab;
use crate::lab::history::{self, Op};
use std::collections::BTreeMap;

impl Lab {
    pub(super) async fn check_lost_writes(&self) -> Result<String, String> {
        let ops: Vec<Op> = self.history.ops();
        let keys = history::keys_to_read(&ops);
        let mut read = BTreeMap::new();
        let mut pending = tokio::task::JoinSet::new();
        let mut it = keys.into_iter();
        loop {
            while pending.len() < 16 {
                let Some(k) = it.next() else { break };
                let client = self.client.clone();
                pending.spawn(async move {
                    let v = client.get(&k).await;
                    (k, v)
                });
            }
            let Some(done) = pending.join_next().await else {
                break;
            };
            let (k, v) = done.map_err(|e| format!("a read failed: {e}"))?;
            let v =
                v.map_err(|e| format!("cannot read {} back: {e}", String::from_utf8_lossy(&k)))?;
            read.insert(k, v);
        }
        Ok(history::check(&ops, &read).summary())
    }

    pub(super) fn check_replicas_agree(&self) -> Result<String, String> {
        let zk = self.zk();
        let mut problems = Vec::new();
        for p in 0..self.info.spec.partitions {
            let Some(state) = zk.states.get(&p) else {
                problems.push(format!("partition {p} has no state yet"));
                continue;
            };
            let Some(leader) = state.leader().and_then(|l| self.cluster.broker(l)) else {
                problems.push(format!("partition {p} has no live leader"));
                continue;
            };
            let Some(lr) = leader.replica(p) else {
                continue;
            };
            let hw = lr.high_watermark();
            let reference = lr.log().records_below(hw).map_err(|e| e.to_string())?;
            for &id in state.isr.iter().filter(|&&id| id != leader.id()) {
                let Some(r) = self.cluster.broker(id).and_then(|b| b.replica(p)) else {
                    continue;
                };
                let mine = r.log().records_below(hw).map_err(|e| e.to_string())?;
                let max = r.log().config().max_record_bytes();
                if let Some(why) = crate::lab::agree::disagreement(&reference, &mine, max)? {
                    problems.push(format!(
                        "partition {p}: broker {id} disagrees with leader {} below the high watermark {hw}: {why}",
                        leader.id()
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok("OK".into())
        } else {
            Err(problems.join("; "))
        }
    }
}
