//! The controller's rules as pure functions of what it read: which partitions need an election,
//! which ISR members are gone, and the state an election writes. No ZooKeeper, no clock, no
//! network: the controller task reads, calls [`decide`], asks candidates for their offsets, calls
//! [`elected`] and writes.
//!
//! A broker is *current* for a partition when it is registered now with the broker epoch the
//! partition state recorded for it (Kafka KIP-380). A registration with another broker epoch is
//! a new incarnation — it crashed and came back, maybe on an empty disk — and holds neither the
//! leadership nor the ISR place its old incarnation had.

use crate::coord::PartitionState;
use std::collections::BTreeMap;

/// Live brokers: id → broker epoch.
pub type Live = BTreeMap<u32, i64>;

/// What the controller must do for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing: the leader is current and so is every ISR member.
    Nothing,
    /// A new partition: `isr[0]` leads in epoch 0.
    Create {
        /// The live replicas, preferred order; the first leads.
        isr: Vec<u32>,
    },
    /// The leader is gone or restarted: elect among `candidates` (preferred order) by comparing
    /// (last epoch, LEO).
    Elect {
        /// Who may lead.
        candidates: Vec<u32>,
        /// No ISR member is alive; unclean election is enabled and data may be lost.
        unclean: bool,
    },
    /// The leader is current but some ISR members are dead or restarted: remove them at once
    /// (instead of after the leader's lag time, stalling acks=all meanwhile).
    ShrinkIsr {
        /// The ISR without them.
        isr: Vec<u32>,
    },
    /// No replica may lead: mark the partition offline (leader -1), keeping its ISR.
    Offline,
}

/// Decides what partition `state` (`None`: not created yet) needs, given its `replicas` in
/// preferred order and the `live` brokers. `waited` says whether the controller has waited long
/// enough for every replica of a new partition to register.
pub fn decide(
    state: Option<&PartitionState>,
    replicas: &[u32],
    live: &Live,
    unclean_allowed: bool,
    waited: bool,
) -> Decision {
    let in_order = |pred: &dyn Fn(u32) -> bool| -> Vec<u32> {
        replicas.iter().copied().filter(|&r| pred(r)).collect()
    };
    let Some(s) = state else {
        let isr = in_order(&|r| live.contains_key(&r));
        if isr.is_empty() || (isr.len() < replicas.len() && !waited) {
            return Decision::Nothing;
        }
        return Decision::Create { isr };
    };
    let current = |r: u32| live.get(&r).is_some_and(|&e| s.is_current(r, e));
    if s.leader().is_some_and(current) {
        let stale: Vec<u32> = s.isr.iter().copied().filter(|&r| !current(r)).collect();
        if stale.is_empty() {
            return Decision::Nothing;
        }
        let isr = s
            .isr
            .iter()
            .copied()
            .filter(|r| !stale.contains(r))
            .collect();
        return Decision::ShrinkIsr { isr };
    }
    let current_isr = in_order(&|r| s.isr.contains(&r) && current(r));
    if !current_isr.is_empty() {
        return Decision::Elect {
            candidates: current_isr,
            unclean: false,
        };
    }
    // No ISR member survived in the incarnation that joined the ISR. Those that came back may
    // still lead: their logs hold whatever their fsync policy kept, and refusing them would keep
    // the partition offline for ever. (A lost disk on *every* ISR member loses data; Kafka has
    // the same limit without KIP-966.)
    let restarted_isr = in_order(&|r| s.isr.contains(&r) && live.contains_key(&r));
    if !restarted_isr.is_empty() {
        return Decision::Elect {
            candidates: restarted_isr,
            unclean: false,
        };
    }
    if unclean_allowed {
        let any = in_order(&|r| live.contains_key(&r));
        if !any.is_empty() {
            return Decision::Elect {
                candidates: any,
                unclean: true,
            };
        }
    }
    if s.leader != -1 {
        Decision::Offline
    } else {
        Decision::Nothing
    }
}

/// The first state of a new partition: `isr[0]` leads in epoch 0.
pub fn created(isr: &[u32], live: &Live, controller_epoch: u32) -> Option<PartitionState> {
    let &leader = isr.first()?;
    Some(PartitionState {
        leader: leader as i32,
        leader_epoch: 0,
        isr: isr.to_vec(),
        controller_epoch,
        broker_epochs: epochs_of(isr, live),
    })
}

/// The state after `leader` won an election among `candidates`: a new leader epoch (even when
/// the same broker wins again), the ISR of the current candidates (just the leader when the
/// election was unclean), and their broker epochs as registered now.
pub fn elected(
    old: &PartitionState,
    leader: u32,
    candidates: &[u32],
    unclean: bool,
    live: &Live,
    controller_epoch: u32,
) -> PartitionState {
    let isr = if unclean {
        vec![leader]
    } else {
        candidates.to_vec()
    };
    PartitionState {
        leader: leader as i32,
        leader_epoch: old.leader_epoch + 1,
        broker_epochs: epochs_of(&isr, live),
        isr,
        controller_epoch,
    }
}

/// The state with the ISR shrunk to `isr` (same leader, same leader epoch).
pub fn shrunk(old: &PartitionState, isr: &[u32], controller_epoch: u32) -> PartitionState {
    let mut broker_epochs = old.broker_epochs.clone();
    broker_epochs.retain(|id, _| isr.contains(id));
    PartitionState {
        isr: isr.to_vec(),
        controller_epoch,
        broker_epochs,
        ..old.clone()
    }
}

/// The state of an offline partition: no leader, the ISR kept so its members can return cleanly.
pub fn offline(old: &PartitionState, controller_epoch: u32) -> PartitionState {
    PartitionState {
        leader: -1,
        controller_epoch,
        ..old.clone()
    }
}

fn epochs_of(ids: &[u32], live: &Live) -> BTreeMap<u32, i64> {
    ids.iter()
        .filter_map(|id| live.get(id).map(|&e| (*id, e)))
        .collect()
}

/// Picks the election winner from candidates' answers `(id, last epoch, LEO)`, given in
/// preferred order: the largest (last epoch, LEO), ties to the earlier candidate. Candidates that
/// did not answer are simply absent.
pub fn best_by_offsets(answers: &[(u32, Option<u32>, u64)]) -> Option<(u32, Option<u32>, u64)> {
    let mut best: Option<(u32, Option<u32>, u64)> = None;
    for &a in answers {
        if best.is_none_or(|b| (a.1, a.2) > (b.1, b.2)) {
            best = Some(a);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(leader: i32, isr: &[u32], epochs: &[(u32, i64)]) -> PartitionState {
        PartitionState {
            leader,
            leader_epoch: 4,
            isr: isr.to_vec(),
            controller_epoch: 1,
            broker_epochs: epochs.iter().copied().collect(),
        }
    }

    fn live(brokers: &[(u32, i64)]) -> Live {
        brokers.iter().copied().collect()
    }

    const ALL: &[(u32, i64)] = &[(1, 10), (2, 20), (3, 30)];

    #[test]
    fn a_current_leader_with_a_current_isr_needs_nothing() {
        let s = state(1, &[1, 2, 3], ALL);
        assert_eq!(
            decide(Some(&s), &[1, 2, 3], &live(ALL), false, true),
            Decision::Nothing
        );
    }

    #[test]
    fn a_leader_back_with_a_new_broker_epoch_is_not_the_leader() {
        // Issue 9 case 1: broker 1 led in epoch 4, crashed, lost its disk and registered again
        // before any controller saw it gone. It must not keep leading in epoch 4.
        let s = state(1, &[1, 2, 3], ALL);
        let now = live(&[(1, 11), (2, 20), (3, 30)]);
        let d = decide(Some(&s), &[1, 2, 3], &now, false, true);
        assert_eq!(
            d,
            Decision::Elect {
                candidates: vec![2, 3],
                unclean: false
            }
        );
        let new = elected(&s, 2, &[2, 3], false, &now, 7);
        assert_eq!(new.leader, 2);
        assert_eq!(new.leader_epoch, 5, "always a new leader epoch");
        assert_eq!(
            new.isr,
            vec![2, 3],
            "the restarted broker rejoins as follower"
        );
        assert_eq!(new.broker_epochs, live(&[(2, 20), (3, 30)]));
        assert_eq!(new.controller_epoch, 7);
    }

    #[test]
    fn a_dead_leader_gets_an_election_among_the_live_isr() {
        let s = state(1, &[1, 2, 3], ALL);
        let d = decide(
            Some(&s),
            &[1, 2, 3],
            &live(&[(2, 20), (3, 30)]),
            false,
            true,
        );
        assert_eq!(
            d,
            Decision::Elect {
                candidates: vec![2, 3],
                unclean: false
            }
        );
    }

    #[test]
    fn dead_and_restarted_followers_leave_the_isr_at_once() {
        let s = state(1, &[1, 2, 3], ALL);
        // 2 is dead, 3 came back as a new incarnation.
        let d = decide(
            Some(&s),
            &[1, 2, 3],
            &live(&[(1, 10), (3, 31)]),
            false,
            true,
        );
        assert_eq!(d, Decision::ShrinkIsr { isr: vec![1] });
        let new = shrunk(&s, &[1], 9);
        assert_eq!(new.leader_epoch, 4, "an ISR change keeps the leader epoch");
        assert_eq!(new.broker_epochs, live(&[(1, 10)]));
    }

    #[test]
    fn a_state_without_broker_epochs_counts_as_stale() {
        let s = state(1, &[1, 2], &[]);
        let d = decide(Some(&s), &[1, 2], &live(&[(1, 10), (2, 20)]), false, true);
        assert_eq!(
            d,
            Decision::Elect {
                candidates: vec![1, 2],
                unclean: false
            }
        );
    }

    #[test]
    fn restarted_isr_members_lead_only_when_no_current_one_is_left() {
        let s = state(1, &[1, 2], &[(1, 10), (2, 20)]);
        let now = live(&[(1, 11), (3, 30)]);
        assert_eq!(
            decide(Some(&s), &[1, 2, 3], &now, false, true),
            Decision::Elect {
                candidates: vec![1],
                unclean: false
            }
        );
    }

    #[test]
    fn without_an_isr_member_the_partition_goes_offline_unless_unclean() {
        let s = state(1, &[1], &[(1, 10)]);
        let now = live(&[(2, 20), (3, 30)]);
        assert_eq!(
            decide(Some(&s), &[1, 2, 3], &now, false, true),
            Decision::Offline
        );
        assert_eq!(
            decide(Some(&s), &[1, 2, 3], &now, true, true),
            Decision::Elect {
                candidates: vec![2, 3],
                unclean: true
            }
        );
        let off = offline(&s, 2);
        assert_eq!(off.isr, vec![1], "an offline partition keeps its ISR");
        assert_eq!(
            decide(Some(&off), &[1, 2, 3], &now, false, true),
            Decision::Nothing,
            "already offline"
        );
        let unclean = elected(&s, 3, &[2, 3], true, &now, 2);
        assert_eq!(unclean.isr, vec![3]);
    }

    #[test]
    fn a_new_partition_waits_for_every_replica_then_takes_who_is_there() {
        let now = live(&[(2, 20), (3, 30)]);
        assert_eq!(
            decide(None, &[1, 2, 3], &now, false, false),
            Decision::Nothing
        );
        assert_eq!(
            decide(None, &[1, 2, 3], &now, false, true),
            Decision::Create { isr: vec![2, 3] }
        );
        assert_eq!(
            decide(None, &[1, 2, 3], &Live::new(), false, true),
            Decision::Nothing
        );
        let s = created(&[2, 3], &now, 1).expect("state");
        assert_eq!((s.leader, s.leader_epoch), (2, 0));
        assert_eq!(s.broker_epochs, now);
    }

    #[test]
    fn the_election_takes_the_largest_epoch_then_offset_ties_to_preferred() {
        assert_eq!(
            best_by_offsets(&[(1, Some(3), 10), (2, Some(4), 5), (3, Some(4), 9)]),
            Some((3, Some(4), 9))
        );
        assert_eq!(
            best_by_offsets(&[(2, Some(4), 9), (3, Some(4), 9)]),
            Some((2, Some(4), 9))
        );
        assert_eq!(
            best_by_offsets(&[(1, None, 0), (2, Some(0), 0)]),
            Some((2, Some(0), 0)),
            "an empty log loses to one with an epoch"
        );
        assert_eq!(best_by_offsets(&[]), None);
    }
}
