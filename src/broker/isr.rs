//! The ISR task of one replica: when the replica (as leader) wants its ISR changed, write the
//! change to ZooKeeper by compare-and-set on the state znode, and apply it only once accepted.
//! While the write is out, the proposed members already count in the high watermark (maximal
//! ISR); when its outcome is unknown (a timeout), the task reads the znode back to learn it —
//! ZooKeeper answers one session's requests in order, so that read settles the write.

use super::Inner;
use crate::coord::{Coord, CoordError, PartitionState};
use crate::replica::{IsrProposal, Replica};
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn run(inner: Arc<Inner>, replica: Arc<Replica>) {
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
        match write(&inner, &coord, &proposal).await {
            Some(version) => replica.isr_change_committed(&proposal, version),
            None => replica.isr_change_failed(),
        }
    }
}

/// Writes `proposal`; returns the new znode version if ZooKeeper took it.
async fn write(inner: &Inner, coord: &Coord, proposal: &IsrProposal) -> Option<i32> {
    let p = proposal.partition;
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
        broker_epochs: proposal.broker_epochs.clone(),
    };
    let version = match coord
        .write_state_cas(p, &state, proposal.expected_version)
        .await
    {
        Ok(version) => version,
        Err(CoordError::BadVersion(_)) => return None,
        Err(e) => {
            tracing::debug!(broker = inner.id(), partition = p, error = %e, "ISR change outcome unknown; reading it back");
            settle(inner, coord, proposal, &state).await?
        }
    };
    inner.update_metadata(|m| {
        let newer = m.states.get(&p).is_none_or(|(_, v)| *v < version);
        if newer {
            m.states.insert(p, (state, version));
        }
    });
    Some(version)
}

/// Learns whether a write of `state` whose answer was lost took effect: read the znode until
/// ZooKeeper answers (or the session or broker ends). Meanwhile the proposal stays pending, so
/// the HW keeps counting its members.
async fn settle(
    inner: &Inner,
    coord: &Coord,
    proposal: &IsrProposal,
    state: &PartitionState,
) -> Option<i32> {
    loop {
        match coord.partition_state(proposal.partition).await {
            Ok(Some((now, version))) => {
                let ours = version == proposal.expected_version + 1 && now == *state;
                return ours.then_some(version);
            }
            Ok(None) | Err(CoordError::SessionExpired) => return None,
            Err(_) if inner.shutdown.is_cancelled() => return None,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
