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
pub use crate::replica::rules::next_eligible;
use std::collections::BTreeMap;

/// Live brokers: id → broker epoch.
pub type Live = BTreeMap<u32, i64>;

/// Which replicas an election may choose from, safest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Current ISR members: each holds every committed write.
    Isr,
    /// Current eligible leader replicas: each holds every acks=all write.
    Eligible,
    /// No ISR or eligible member survived in its incarnation; some came back. Every one that is
    /// back must answer, a replica that knows its log incomplete (a replaced disk, or a log cut
    /// below its checkpointed high watermark, not yet copied back up) never leads, and the
    /// longest log wins.
    Restarted,
    /// Every ISR and eligible member is back and knows its log incomplete: nothing better will
    /// come from them, so once every replica of the partition has answered, the longest log
    /// among all of them leads (Kafka KIP-966's recovery); what none kept is lost.
    Recovery,
    /// Any live replica (unclean leader election): acknowledged writes may be lost.
    Unclean,
}

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
        /// Where they come from.
        tier: Tier,
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
    let elect = |candidates: Vec<u32>, tier| Decision::Elect { candidates, tier };
    let current_isr = in_order(&|r| s.isr.contains(&r) && current(r));
    if !current_isr.is_empty() {
        return elect(current_isr, Tier::Isr);
    }
    let current_eligible = in_order(&|r| s.eligible.contains(&r) && current(r));
    if !current_eligible.is_empty() {
        return elect(current_eligible, Tier::Eligible);
    }
    let restarted =
        in_order(&|r| (s.isr.contains(&r) || s.eligible.contains(&r)) && live.contains_key(&r));
    if !restarted.is_empty() {
        return elect(restarted, Tier::Restarted);
    }
    if unclean_allowed {
        let any = in_order(&|r| live.contains_key(&r));
        if !any.is_empty() {
            return elect(any, Tier::Unclean);
        }
    }
    if s.leader != -1 {
        Decision::Offline
    } else {
        Decision::Nothing
    }
}

/// A candidate's answer to ReplicaStatus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The candidate.
    pub id: u32,
    /// Newest epoch in its leader-epoch cache.
    pub last_epoch: Option<u32>,
    /// Its log end.
    pub leo: u64,
    /// It knows its log may lack committed records (a replaced disk, or a log cut below its
    /// checkpointed high watermark) and has not yet copied back up to its leader's.
    pub incomplete: bool,
}

/// Which answers an election of `tier` may choose from, or `None` when it must wait: in the
/// restarted tier every candidate must have answered (the one missing may hold the longest log)
/// and an incomplete log never leads. An empty log that was never written may lead. In the
/// recovery tier every replica must have answered, and any may lead.
pub fn eligible_answers(tier: Tier, candidates: &[u32], answers: &[Answer]) -> Option<Vec<Answer>> {
    match tier {
        Tier::Restarted => {
            if answers.len() < candidates.len() {
                return None;
            }
            Some(answers.iter().copied().filter(|a| !a.incomplete).collect())
        }
        Tier::Recovery if answers.len() < candidates.len() => None,
        _ => Some(answers.to_vec()),
    }
}

/// Whether a restarted election that found no complete log may go on to recovery: only once
/// every ISR and eligible member (`members`) is back and has answered — all incomplete, so
/// nothing better will come from them.
pub fn may_recover(members: &[u32], answers: &[Answer]) -> bool {
    members.iter().all(|m| answers.iter().any(|a| a.id == *m))
}

/// The members an election of restarted replicas waits for: the ISR and the eligible ones.
pub fn members(state: &PartitionState) -> Vec<u32> {
    let mut all = state.isr.clone();
    all.extend(state.eligible.iter().filter(|r| !state.isr.contains(r)));
    all
}

/// Who joins the ISR after `winner` won an election of `tier` among `usable` answers: in the
/// restarted tier only those whose log is exactly as long in the same epoch (the others may
/// lack committed writes the winner has, and rejoin once they catch up); otherwise every
/// candidate.
pub fn chosen(tier: Tier, winner: Answer, usable: &[Answer], candidates: &[u32]) -> Vec<u32> {
    if !matches!(tier, Tier::Restarted | Tier::Recovery) {
        return candidates.to_vec();
    }
    usable
        .iter()
        .filter(|a| (a.last_epoch, a.leo) == (winner.last_epoch, winner.leo))
        .map(|a| a.id)
        .collect()
}

/// The first state of a new partition: `isr[0]` leads in epoch 0.
pub fn created(isr: &[u32], live: &Live, controller_epoch: u32) -> Option<PartitionState> {
    let &leader = isr.first()?;
    Some(PartitionState {
        leader: leader as i32,
        leader_epoch: 0,
        isr: isr.to_vec(),
        controller_epoch,
        eligible: Vec::new(),
        broker_epochs: epochs_of(isr, live),
    })
}

/// The state after `leader` won an election and `chosen` join the ISR: a new leader epoch (even
/// when the same broker wins again), that ISR (just the leader when the election was unclean)
/// with their broker epochs as registered now, and — while the ISR is below `min_isr` — the
/// old ISR and eligible members left out, as eligible, with the broker epochs they had.
pub fn elected(
    old: &PartitionState,
    leader: u32,
    chosen: &[u32],
    tier: Tier,
    live: &Live,
    min_isr: u32,
    controller_epoch: u32,
) -> PartitionState {
    let isr = if tier == Tier::Unclean {
        vec![leader]
    } else {
        chosen.to_vec()
    };
    let eligible = if tier == Tier::Unclean {
        Vec::new()
    } else {
        next_eligible(&old.isr, &old.eligible, &isr, min_isr)
    };
    let mut broker_epochs = epochs_of(&isr, live);
    for r in &eligible {
        if let Some(&e) = old.broker_epochs.get(r) {
            broker_epochs.insert(*r, e);
        }
    }
    PartitionState {
        leader: leader as i32,
        leader_epoch: old.leader_epoch + 1,
        isr,
        controller_epoch,
        eligible,
        broker_epochs,
    }
}

/// The state with the ISR shrunk to `isr` (same leader, same leader epoch); members that left
/// become eligible while the ISR is below `min_isr`, keeping the broker epochs they had.
pub fn shrunk(
    old: &PartitionState,
    isr: &[u32],
    min_isr: u32,
    controller_epoch: u32,
) -> PartitionState {
    let eligible = next_eligible(&old.isr, &old.eligible, isr, min_isr);
    let mut broker_epochs = old.broker_epochs.clone();
    broker_epochs.retain(|id, _| isr.contains(id) || eligible.contains(id));
    PartitionState {
        isr: isr.to_vec(),
        controller_epoch,
        eligible,
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

/// Picks the election winner from candidates' answers, given in preferred order: the largest
/// (last epoch, LEO), ties to the earlier candidate.
pub fn best_by_offsets(answers: &[Answer]) -> Option<Answer> {
    let mut best: Option<Answer> = None;
    for &a in answers {
        if best.is_none_or(|b| (a.last_epoch, a.leo) > (b.last_epoch, b.leo)) {
            best = Some(a);
        }
    }
    best
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::broker) fn state(
        leader: i32,
        isr: &[u32],
        epochs: &[(u32, i64)],
    ) -> PartitionState {
        PartitionState {
            leader,
            leader_epoch: 4,
            isr: isr.to_vec(),
            controller_epoch: 1,
            eligible: Vec::new(),
            broker_epochs: epochs.iter().copied().collect(),
        }
    }

    pub(in crate::broker) fn live(brokers: &[(u32, i64)]) -> Live {
        brokers.iter().copied().collect()
    }

    fn elect(candidates: &[u32], tier: Tier) -> Decision {
        Decision::Elect {
            candidates: candidates.to_vec(),
            tier,
        }
    }

    pub(in crate::broker) const ALL: &[(u32, i64)] = &[(1, 10), (2, 20), (3, 30)];

    fn ans(id: u32, last_epoch: Option<u32>, leo: u64, incomplete: bool) -> Answer {
        Answer {
            id,
            last_epoch,
            leo,
            incomplete,
        }
    }

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
        assert_eq!(d, elect(&[2, 3], Tier::Isr));
        let new = elected(&s, 2, &[2, 3], Tier::Isr, &now, 2, 7);
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
        assert_eq!(d, elect(&[2, 3], Tier::Isr));
    }

    #[test]
    fn dead_and_restarted_followers_leave_the_isr_at_once_and_stay_eligible_below_min_isr() {
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
        let new = shrunk(&s, &[1], 2, 9);
        assert_eq!(new.leader_epoch, 4, "an ISR change keeps the leader epoch");
        assert_eq!(
            new.eligible,
            vec![2, 3],
            "below min.insync they hold every acks=all write"
        );
        assert_eq!(
            new.broker_epochs, s.broker_epochs,
            "with the epochs they had"
        );
        let plenty = shrunk(&s, &[1, 2], 2, 9);
        assert!(
            plenty.eligible.is_empty(),
            "at min.insync writes commit without them"
        );
        assert_eq!(plenty.broker_epochs, live(&[(1, 10), (2, 20)]));
    }

    #[test]
    fn a_state_without_broker_epochs_counts_as_restarted() {
        let s = state(1, &[1, 2], &[]);
        let d = decide(Some(&s), &[1, 2], &live(&[(1, 10), (2, 20)]), false, true);
        assert_eq!(d, elect(&[1, 2], Tier::Restarted));
    }

    #[test]
    fn eligible_members_lead_before_restarted_ones() {
        // The reviewer's F1b: 2 and 3 died (ISR shrank to {1}, so they became eligible), then 1
        // lost its disk and every broker came back.
        let mut s = shrunk(&state(1, &[1, 2, 3], ALL), &[1], 2, 1);
        assert_eq!(s.eligible, vec![2, 3]);
        // 2 alive in its old incarnation (it had only been cut off): it leads before anyone.
        let d = decide(
            Some(&s),
            &[1, 2, 3],
            &live(&[(1, 11), (2, 20), (3, 31)]),
            false,
            true,
        );
        assert_eq!(d, elect(&[2], Tier::Eligible));
        // All restarted: everyone in the ISR or eligible is a candidate; the answers decide.
        s.leader = 1;
        let now = live(&[(1, 11), (2, 21), (3, 31)]);
        let d = decide(Some(&s), &[1, 2, 3], &now, false, true);
        assert_eq!(d, elect(&[1, 2, 3], Tier::Restarted));
        let answers = [
            ans(1, None, 0, true),
            ans(2, Some(0), 300, false),
            ans(3, Some(0), 300, false),
        ];
        let ok = eligible_answers(Tier::Restarted, &[1, 2, 3], &answers).expect("all answered");
        assert_eq!(ok, answers[1..].to_vec(), "the replaced disk is out");
        let winner = best_by_offsets(&ok).expect("a winner");
        assert_eq!(winner, answers[1]);
        assert_eq!(chosen(Tier::Restarted, winner, &ok, &[1, 2, 3]), vec![2, 3]);
    }

    #[test]
    fn an_incomplete_log_never_wins_a_restarted_election() {
        // The second review's f1: 2 (eligible) lost its disk and has re-copied half the log; 1,
        // the only ISR member, holds all of it but is down. 2 must not lead, even after a
        // second restart: its log stays incomplete until it has copied up to a leader's HW.
        let s = PartitionState {
            eligible: vec![2],
            ..state(1, &[1], &[(1, 10), (2, 20)])
        };
        let d = decide(Some(&s), &[1, 2], &live(&[(2, 21)]), false, true);
        assert_eq!(d, elect(&[2], Tier::Restarted));
        let ok = eligible_answers(Tier::Restarted, &[2], &[ans(2, Some(4), 50, true)]);
        assert_eq!(
            ok,
            Some(vec![]),
            "nobody may lead: the partition waits offline"
        );
        // Both back: the longest log wins, and only an equal log joins its ISR.
        let answers = [ans(1, Some(4), 100, false), ans(2, Some(4), 50, false)];
        let ok = eligible_answers(Tier::Restarted, &[1, 2], &answers).expect("answered");
        let winner = best_by_offsets(&ok).expect("winner");
        assert_eq!(winner.id, 1);
        assert_eq!(
            chosen(Tier::Restarted, winner, &ok, &[1, 2]),
            vec![1],
            "the shorter log rejoins the ISR only once it has caught up"
        );
    }

    #[test]
    fn when_every_member_is_back_and_incomplete_the_longest_replica_anywhere_leads() {
        // The third review's F2 (all members incomplete: offline for ever) and the fourth's F1
        // (min.insync 1: the ISR shrank to [1], 1 lost its disk, and 2 and 3 hold the data
        // outside the ISR): recovery asks every replica and the longest log leads.
        let back = [ans(1, None, 0, true)];
        assert!(
            eligible_answers(Tier::Restarted, &[1], &back)
                .expect("answered")
                .is_empty()
        );
        assert!(may_recover(&[1], &back), "every member is back");
        assert!(!may_recover(&[1, 3], &back), "3 is away: wait for it");
        let all = [
            ans(1, None, 0, true),
            ans(2, Some(0), 20, false),
            ans(3, Some(0), 20, false),
        ];
        assert_eq!(
            eligible_answers(Tier::Recovery, &[1, 2, 3], &all[..2]),
            None
        );
        let ok = eligible_answers(Tier::Recovery, &[1, 2, 3], &all).expect("all answered");
        let winner = best_by_offsets(&ok).expect("a winner");
        assert_eq!(winner.id, 2);
        assert_eq!(chosen(Tier::Recovery, winner, &ok, &[1, 2, 3]), vec![2, 3]);
        let s = PartitionState {
            eligible: vec![3, 2],
            ..state(1, &[1, 2], &[])
        };
        assert_eq!(members(&s), vec![1, 2, 3]);
    }

    #[test]
    fn a_partition_never_written_leads_again_after_a_full_restart() {
        // The second review's f2: nothing was ever written, every replica restarted (the epoch
        // cache trimmed to the empty log). Not a replaced disk: it may lead.
        let answers = [ans(1, None, 0, false), ans(2, None, 0, false)];
        let ok = eligible_answers(Tier::Restarted, &[1, 2], &answers).expect("answered");
        assert_eq!(best_by_offsets(&ok).map(|a| a.id), Some(1));
    }

    #[test]
    fn members_an_election_leaves_out_stay_eligible_below_min_isr() {
        // The second review's f4: the leader dies, 2 is elected alone (min.insync 2): 1 holds
        // every committed write and must stay eligible, with the broker epoch it had.
        let s = state(1, &[1, 2], &[(1, 10), (2, 20)]);
        let new = elected(&s, 2, &[2], Tier::Isr, &live(&[(2, 20)]), 2, 1);
        assert_eq!(new.isr, vec![2]);
        assert_eq!(new.eligible, vec![1]);
        assert_eq!(new.broker_epochs, live(&[(1, 10), (2, 20)]));
    }

    #[test]
    fn a_restarted_election_waits_for_every_answer_and_never_elects_a_replaced_disk() {
        // The first review's F1a: only the wiped broker is back and answers.
        assert_eq!(
            eligible_answers(Tier::Restarted, &[1], &[ans(1, None, 0, true)]),
            Some(vec![]),
            "nobody can lead: the partition stays offline"
        );
        // 2 is registered but has not answered: it may hold the longest log.
        assert_eq!(
            eligible_answers(Tier::Restarted, &[1, 2], &[ans(1, Some(3), 10, false)]),
            None
        );
        // Outside the restarted tier every answer counts, and missing ones are passed over.
        let fresh = ans(1, None, 0, true);
        assert_eq!(
            eligible_answers(Tier::Isr, &[1, 2], &[fresh]),
            Some(vec![fresh])
        );
    }

    #[test]
    fn the_eligible_set_follows_the_isr() {
        assert_eq!(next_eligible(&[1, 2, 3], &[], &[1], 2), vec![2, 3]);
        assert_eq!(next_eligible(&[1], &[2, 3], &[1, 3], 2), Vec::<u32>::new());
        assert_eq!(next_eligible(&[1, 2], &[3], &[2], 3), vec![3, 1]);
        let s = PartitionState {
            eligible: vec![2, 3],
            ..state(-1, &[1], &[(1, 10), (2, 20), (3, 30)])
        };
        let new = elected(
            &s,
            2,
            &[2],
            Tier::Eligible,
            &live(&[(2, 20), (3, 30)]),
            2,
            1,
        );
        assert_eq!(new.isr, vec![2]);
        assert_eq!(
            new.eligible,
            vec![3, 1],
            "still below min.insync: 3 stays eligible, and 1 (the ISR) becomes so"
        );
        assert_eq!(new.broker_epochs, live(&[(1, 10), (2, 20), (3, 30)]));
    }

    #[test]
    fn without_any_candidate_the_partition_goes_offline_unless_unclean() {
        let s = state(1, &[1], &[(1, 10)]);
        let now = live(&[(2, 20), (3, 30)]);
        assert_eq!(
            decide(Some(&s), &[1, 2, 3], &now, false, true),
            Decision::Offline
        );
        assert_eq!(
            decide(Some(&s), &[1, 2, 3], &now, true, true),
            elect(&[2, 3], Tier::Unclean)
        );
        let off = offline(&s, 2);
        assert_eq!(off.isr, vec![1], "an offline partition keeps its ISR");
        assert_eq!(
            decide(Some(&off), &[1, 2, 3], &now, false, true),
            Decision::Nothing,
            "already offline"
        );
        let unclean = elected(&s, 3, &[2, 3], Tier::Unclean, &now, 2, 2);
        assert_eq!(unclean.isr, vec![3]);
        assert!(unclean.eligible.is_empty());
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
        let id = |a: &[Answer]| best_by_offsets(a).map(|w| w.id);
        let a = |id, e, leo| ans(id, e, leo, false);
        assert_eq!(
            id(&[a(1, Some(3), 10), a(2, Some(4), 5), a(3, Some(4), 9)]),
            Some(3)
        );
        assert_eq!(id(&[a(2, Some(4), 9), a(3, Some(4), 9)]), Some(2));
        assert_eq!(
            id(&[a(1, None, 0), a(2, Some(0), 0)]),
            Some(2),
            "an empty log loses to one with an epoch"
        );
        assert_eq!(best_by_offsets(&[]), None);
    }
}
