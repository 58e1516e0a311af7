//! The preferred-replica election's rules as pure functions: whether a partition's leadership
//! may go back to its first replica now, and the state that hands it over. The controller asks
//! the old leader to prepare the handover (`handover.rs`) before it writes that state.

use super::election::Live;
use crate::coord::PartitionState;

/// Why a partition's preferred replica (its first) does not lead now, or `None` when a handover
/// to it may go ahead. Kafka's preferred-replica election: only a current ISR member may take
/// over from a current leader, so it holds every committed write, and the old leader, still in
/// the ISR, must fetch from it before it commits anything new.
pub fn preferred_blocked(
    state: &PartitionState,
    replicas: &[u32],
    live: &Live,
) -> Option<PreferredBlocked> {
    let &preferred = replicas.first()?;
    let current = |r: u32| live.get(&r).is_some_and(|&e| state.is_current(r, e));
    let Some(leader) = state.leader() else {
        return Some(PreferredBlocked::NoLeader);
    };
    if leader == preferred {
        return Some(PreferredBlocked::Leads);
    }
    if !current(leader) {
        return Some(PreferredBlocked::NoLeader);
    }
    if !live.contains_key(&preferred) {
        return Some(PreferredBlocked::Down(preferred));
    }
    if !state.isr.contains(&preferred) || !current(preferred) {
        return Some(PreferredBlocked::NotInIsr(preferred));
    }
    None
}

/// Why [`preferred_blocked`] keeps leadership where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferredBlocked {
    /// The preferred replica leads already.
    Leads,
    /// No current leader: an election, not a handover, is due.
    NoLeader,
    /// The preferred replica is not registered.
    Down(u32),
    /// The preferred replica is registered but not (in this incarnation) in the ISR yet.
    NotInIsr(u32),
}

impl std::fmt::Display for PreferredBlocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Leads => write!(f, "its preferred replica leads already"),
            Self::NoLeader => write!(f, "it has no leader to hand over from"),
            Self::Down(b) => write!(f, "its preferred replica, broker {b}, is down"),
            Self::NotInIsr(b) => write!(
                f,
                "its preferred replica, broker {b}, is not in the ISR yet (it moves once it has caught up)"
            ),
        }
    }
}

/// The state after leadership is handed to `to`, a current ISR member: a new leader epoch, the
/// same ISR, eligible set and broker epochs.
pub fn handed_over(old: &PartitionState, to: u32, controller_epoch: u32) -> PartitionState {
    PartitionState {
        leader: to as i32,
        leader_epoch: old.leader_epoch + 1,
        controller_epoch,
        ..old.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::election::tests::{ALL, live, state};

    #[test]
    fn leadership_goes_back_only_to_a_current_isr_member_from_a_current_leader() {
        let replicas = [1, 2, 3];
        // Broker 1 is back, in the ISR in its new incarnation (11): it may take over.
        let back = state(2, &[2, 3, 1], &[(1, 11), (2, 20), (3, 30)]);
        let now = live(&[(1, 11), (2, 20), (3, 30)]);
        assert_eq!(preferred_blocked(&back, &replicas, &now), None);
        let next = handed_over(&back, 1, 9);
        assert_eq!((next.leader, next.leader_epoch), (1, 5));
        assert_eq!(next.isr, back.isr);
        assert_eq!(next.broker_epochs, back.broker_epochs);
        assert_eq!(next.controller_epoch, 9);
        // Registered but not yet in the ISR.
        let catching_up = state(2, &[2, 3], &[(2, 20), (3, 30)]);
        assert_eq!(
            preferred_blocked(&catching_up, &replicas, &now),
            Some(PreferredBlocked::NotInIsr(1))
        );
        // In the ISR only as an older incarnation (it restarted since it was listed).
        let stale = state(2, &[2, 3, 1], &[(1, 10), (2, 20), (3, 30)]);
        assert_eq!(
            preferred_blocked(&stale, &replicas, &now),
            Some(PreferredBlocked::NotInIsr(1))
        );
        // Down.
        let down = live(&[(2, 20), (3, 30)]);
        assert_eq!(
            preferred_blocked(&back, &replicas, &down),
            Some(PreferredBlocked::Down(1))
        );
        // The leader restarted: that is an election's business, not a handover's.
        let leader_back = live(&[(1, 11), (2, 21), (3, 30)]);
        assert_eq!(
            preferred_blocked(&back, &replicas, &leader_back),
            Some(PreferredBlocked::NoLeader)
        );
        assert_eq!(
            preferred_blocked(&state(-1, &[1], ALL), &replicas, &live(ALL)),
            Some(PreferredBlocked::NoLeader)
        );
        assert_eq!(
            preferred_blocked(&state(1, &[1, 2], ALL), &replicas, &live(ALL)),
            Some(PreferredBlocked::Leads)
        );
    }
}
