//! The ISR task of one replica: when the replica (as leader) wants its ISR changed, write the
//! change to ZooKeeper by compare-and-set on the state znode, and apply it only once accepted.
//! While the write is out, the proposed members already count in the high watermark (maximal
//! ISR); when its outcome is unknown (a timeout, a lost connection), the task sends the same
//! compare-and-set again to learn it (a read alone could come from a server behind the one the
//! write went to).

use super::Inner;
use crate::coord::{CasOutcome, Coord, CoordError, PartitionState};
use crate::replica::{IsrProposal, Membership, Replica};
use std::sync::Arc;
use std::time::Duration;

/// A leader checks its ISR every quarter of the lag time, within these bounds.
const CHECK_MIN: Duration = Duration::from_millis(50);
/// See [`CHECK_MIN`].
const CHECK_MAX: Duration = Duration::from_secs(1);
/// The wait before asking ZooKeeper again whether an ISR change whose answer was lost took.
const SETTLE_RETRY: Duration = Duration::from_millis(100);

pub(super) async fn run(inner: Arc<Inner>, replica: Arc<Replica>) {
    let period = (replica.config().replica_lag_time_max / 4).clamp(CHECK_MIN, CHECK_MAX);
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
            Outcome::Taken(version) => replica.isr_change_committed(&proposal, version),
            Outcome::Refused => replica.isr_change_failed(),
            // The session (or the broker) ended before the write's fate was learned: it may
            // have committed, so its members keep counting in the HW until the step-down that
            // the session's end brings fences the replica.
            Outcome::Unknown => {}
            Outcome::Superseded(state, version) => {
                let members = Membership {
                    isr: state.isr,
                    eligible: state.eligible,
                    broker_epochs: state.broker_epochs,
                };
                replica.isr_change_superseded(state.leader_epoch, members, version);
            }
        }
    }
}

/// How an ISR change ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// ZooKeeper took it: the new znode version.
    Taken(i32),
    /// ZooKeeper refused it (compare-and-set lost).
    Refused,
    /// Its answer was lost and the session or the broker ended before it was learned.
    Unknown,
    /// Its answer was lost and a read-back found another state (newer, or ours under a later
    /// write): apply it as the pending change ends.
    Superseded(PartitionState, i32),
}

/// Writes `proposal` and learns how it ended.
async fn write(inner: &Inner, coord: &Coord, proposal: &IsrProposal) -> Outcome {
    let p = proposal.partition;
    let controller_epoch = inner
        .metadata()
        .states
        .get(&p)
        .map_or(0, |(s, _)| s.controller_epoch);
    let state = PartitionState {
        leader: proposal.leader as i32,
        leader_epoch: proposal.leader_epoch,
        isr: proposal.members.isr.clone(),
        controller_epoch,
        eligible: proposal.members.eligible.clone(),
        broker_epochs: proposal.members.broker_epochs.clone(),
    };
    let outcome = match coord
        .write_state_cas(p, &state, proposal.expected_version)
        .await
    {
        Ok(version) => Outcome::Taken(version),
        Err(CoordError::BadVersion(_)) => Outcome::Refused,
        Err(e) => {
            tracing::debug!(broker = inner.id(), partition = p, error = %e, "ISR change outcome unknown; reading it back");
            settle(inner, coord, proposal, &state).await
        }
    };
    if let Outcome::Taken(version) = outcome {
        inner.update_metadata(|m| {
            let newer = m.states.get(&p).is_none_or(|(_, v)| *v < version);
            if newer {
                m.states.insert(p, (state, version));
            }
        });
    }
    outcome
}

/// Learns how a write of `state` whose answer was lost ended, by sending it again until
/// ZooKeeper answers (or the session or broker ends): see [`Coord::settle_state_cas`]. A plain
/// read would not do: after the lost answer the session may have moved to a server that has not
/// applied the write yet, and the read would call it superseded while it commits. Meanwhile the
/// proposal stays pending, so the HW keeps counting its members.
async fn settle(
    inner: &Inner,
    coord: &Coord,
    proposal: &IsrProposal,
    state: &PartitionState,
) -> Outcome {
    loop {
        let answer = coord
            .settle_state_cas(proposal.partition, state, proposal.expected_version)
            .await;
        match settled(answer, inner.shutdown.is_cancelled()) {
            Some(outcome) => return outcome,
            None => tokio::time::sleep(SETTLE_RETRY).await,
        }
    }
}

/// What one resend of a lost ISR change tells (`None`: ask again). Only ZooKeeper's answer
/// settles it: when the session or the broker ends first, the outcome stays unknown, and the
/// change must not be called refused (its members would stop counting in the HW while
/// ZooKeeper may list them in the ISR).
fn settled(answer: Result<CasOutcome, CoordError>, stopping: bool) -> Option<Outcome> {
    match answer {
        Ok(CasOutcome::Taken(version)) => Some(Outcome::Taken(version)),
        Ok(CasOutcome::Superseded(now, version)) => Some(Outcome::Superseded(now, version)),
        Ok(CasOutcome::Gone) => Some(Outcome::Refused),
        Err(CoordError::SessionExpired) => Some(Outcome::Unknown),
        Err(_) if stopping => Some(Outcome::Unknown),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_change_is_refused_only_by_zookeeper_never_by_the_end_of_a_session() {
        assert_eq!(
            settled(Ok(CasOutcome::Taken(4)), false),
            Some(Outcome::Taken(4))
        );
        assert_eq!(settled(Ok(CasOutcome::Gone), false), Some(Outcome::Refused));
        assert_eq!(
            settled(Err(CoordError::SessionExpired), false),
            Some(Outcome::Unknown),
            "the session ended: the change may have committed"
        );
        let timeout = || CoordError::Timeout(Duration::from_secs(2));
        assert_eq!(settled(Err(timeout()), false), None, "ask again");
        assert_eq!(settled(Err(timeout()), true), Some(Outcome::Unknown));
    }
}
