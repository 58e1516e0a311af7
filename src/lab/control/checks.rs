//! The checks: `check lost-writes` (the history against what the cluster serves),
//! `check linearizable` (the history against a register, key by key, DESIGN §14) and
//! `check replicas-agree` (every ISR member against its leader, below the high watermark).

use super::Lab;
use crate::command::CommandError;
use crate::lab::history;
use crate::lab::linearizable::{self, Kind, Operation, Outcome};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Instant;

impl Lab {
    pub(super) async fn check_lost_writes(&self) -> Result<String, CommandError> {
        Ok(self.lost_writes().await?.summary())
    }

    /// Reads back every key written and says which acknowledged writes are gone.
    pub async fn lost_writes(&self) -> Result<history::LostWrites, CommandError> {
        let ops = self.history.ops();
        let read = self.final_reads(&history::keys_to_read(&ops)).await?;
        Ok(history::check(&ops, &read))
    }

    /// Like Jepsen, reads every key written once more and adds those reads to the history (so a
    /// lost write shows up as a read no order explains), then checks the whole history.
    pub async fn linearizability(&self) -> Result<linearizable::Report, CommandError> {
        let keys = history::keys_to_read(&self.history.ops());
        self.final_reads(&keys).await?;
        let ops = self.history.ops();
        tokio::task::spawn_blocking(move || {
            linearizable::check(&ops, &linearizable::Limits::default())
        })
        .await
        .map_err(|e| CommandError::Failed(format!("the checker failed: {e}")))
    }

    pub(super) async fn check_linearizable(&self) -> Result<String, CommandError> {
        let report = self.linearizability().await?;
        if report.is_linearizable() {
            Ok(report.to_string())
        } else {
            Err(CommandError::CheckFailed(report.to_string()))
        }
    }

    /// Reads `keys` now, each as one recorded operation of a client of its own.
    async fn final_reads(
        &self,
        keys: &[Bytes],
    ) -> Result<BTreeMap<Bytes, Option<Bytes>>, CommandError> {
        let mut read = BTreeMap::new();
        let mut pending = tokio::task::JoinSet::new();
        let mut it = keys.iter().cloned();
        loop {
            while pending.len() < 16 {
                let Some(k) = it.next() else { break };
                let client = self.client.clone();
                let history = std::sync::Arc::clone(&self.history);
                let me = history.new_client();
                pending.spawn(async move {
                    let started = Instant::now();
                    let v = client.get(&k).await;
                    history.record(Operation {
                        client: me,
                        kind: Kind::Get,
                        key: k.clone(),
                        value: v.as_ref().ok().cloned().flatten(),
                        ttl_ms: None,
                        call_ns: history.ns(started),
                        return_ns: history.ns(Instant::now()),
                        outcome: if v.is_ok() {
                            Outcome::Ok
                        } else {
                            Outcome::Unknown
                        },
                    });
                    (k, v)
                });
            }
            let Some(done) = pending.join_next().await else {
                break;
            };
            let (k, v) = done.map_err(|e| CommandError::Failed(format!("a read failed: {e}")))?;
            let v = v.map_err(|e| {
                CommandError::Failed(format!(
                    "cannot read {} back: {e}",
                    String::from_utf8_lossy(&k)
                ))
            })?;
            read.insert(k, v);
        }
        Ok(read)
    }

    /// ISR members' logs are identical up to the high watermark: `OK`, or what differs.
    pub fn check_replicas_agree(&self) -> Result<String, CommandError> {
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
            let reference = lr
                .log()
                .records_below(hw)
                .map_err(|e| CommandError::Failed(e.to_string()))?;
            for &id in state.isr.iter().filter(|&&id| id != leader.id()) {
                let Some(r) = self.cluster.broker(id).and_then(|b| b.replica(p)) else {
                    continue;
                };
                let mine = r
                    .log()
                    .records_below(hw)
                    .map_err(|e| CommandError::Failed(e.to_string()))?;
                let max = r.log().config().max_record_bytes();
                if let Some(why) = crate::lab::agree::disagreement(&reference, &mine, max)
                    .map_err(CommandError::Failed)?
                {
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
            Err(CommandError::CheckFailed(problems.join("; ")))
        }
    }
}
