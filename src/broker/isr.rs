//! The ISR task of one replica: when the replica (as leader) wants its ISR changed, write the
//! change to ZooKeeper by compare-and-set on the state znode, and apply it only once accepted.

use super::Inner;
use crate::coord::PartitionState;
use crate::replica::Replica;
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn run(inner: Arc<Inner>, replica: Arc<Replica>) {
    let p = replica.partition();
    let period = (replica.config().replica_lag_time_max / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = replica.isr_change_wanted() => {}
            _ = tokio::time::sleep(period) => {}
            _ = inner.shutdown.cancelled() => return,
        }
        let Some(proposal) = replica.propose_isr_change() else {
            continue;
        };
        let Some(coord) = inner.current_session() else {
            replica.isr_change_failed();
            continue;
        };
        let controller_epoch = inner
            .metadata()
            .states
            .get(&p)
            .map_or(0, |(s, _)| s.controller_epoch);
        let state = PartitionState {
            leader: proposal.leader as i32,
            leader_epoch: proposal.leader_epoch,
            isr: proposal.isr.clone(),
            controller_epoch,
        };
        match coord
            .write_state_cas(p, &state, proposal.expected_version)
            .await
        {
            Ok(version) => {
                replica.isr_change_committed(&proposal, version);
                inner.update_metadata(|m| {
                    let newer = m.states.get(&p).is_none_or(|(_, v)| *v < version);
                    if newer {
                        m.states.insert(p, (state, version));
                    }
                });
            }
            Err(e) => {
                tracing::debug!(broker = inner.id(), partition = p, error = %e, "ISR change refused");
                replica.isr_change_failed();
            }
        }
    }
}
