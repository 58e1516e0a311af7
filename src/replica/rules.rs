//! The replication rules as pure functions of their inputs, with the clock passed in: the high
//! watermark, ISR membership and the follower's truncation point. `Replica` calls these under its
//! lock; the tests below try each rule against the faults that break it.

use super::{EpochAnswer, Progress};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The high watermark a leader may move to: the minimum of its own log end (durable part, under
/// `fsync: always`) and the log ends of every member of the *maximal* ISR — the ISR as ZooKeeper
/// holds it plus members of an expansion still being written there, so the HW never passes a
/// member ZooKeeper is about to list. `isr` is the ISR ZooKeeper holds, `pending` the ISR of a
/// change being written (empty when none). `None` while a member has not fetched in this epoch,
/// and while `isr` is below `min_isr` (Kafka KIP-966): the members that left it then stay
/// eligible to lead, which is safe only if nothing commits without them.
pub fn high_watermark(
    own_leo: u64,
    me: u32,
    isr: &[u32],
    pending: &[u32],
    followers: &BTreeMap<u32, Progress>,
    min_isr: u32,
) -> Option<u64> {
    if isr.len() < min_isr as usize {
        return None;
    }
    let mut hw = own_leo;
    for r in isr.iter().chain(pending).filter(|&&r| r != me) {
        hw = hw.min(followers.get(r)?.leo?);
    }
    Some(hw)
}

/// The eligible leader replicas after the ISR went from `old_isr` to `new_isr`: while the new
/// ISR is below `min_isr`, those who left it join the old eligible set (the HW does not move
/// without them from now on); once it is back at `min_isr`, writes commit without them and the
/// set empties. Members of the new ISR are never in it.
pub fn next_eligible(
    old_isr: &[u32],
    old_eligible: &[u32],
    new_isr: &[u32],
    min_isr: u32,
) -> Vec<u32> {
    if new_isr.len() >= min_isr as usize {
        return Vec::new();
    }
    let mut out: Vec<u32> = old_eligible.to_vec();
    for r in old_isr {
        if !out.contains(r) {
            out.push(*r);
        }
    }
    out.retain(|r| !new_isr.contains(r));
    out
}

/// A leader's horizon generation: its leader epoch, then how many merges of its store dropped
/// records. It grows with every dropping merge of one leader and with every new leader, so a
/// follower that adopted an older one may have missed a dropped delete.
pub fn horizon_generation(leader_epoch: u32, drops: u64) -> u64 {
    (u64::from(leader_epoch) << 32) | (drops & 0xffff_ffff)
}

/// Whether a follower fetching at `offset`, whose log reflects the leader's merges up to
/// `follower_generation`, must empty itself: its log ends at or below the leader's tombstone
/// `horizon`, so it may hold a key whose delete a merge it has not seen dropped. A follower
/// fetching from 0 holds nothing to resurrect.
pub fn must_empty(offset: u64, horizon: u64, follower_generation: u64, generation: u64) -> bool {
    offset > 0 && offset <= horizon && follower_generation < generation
}

/// What the ISR rule looks at.
#[derive(Debug, Clone, Copy)]
pub struct IsrInputs<'a> {
    /// The leader.
    pub me: u32,
    /// Every replica, preferred order.
    pub replicas: &'a [u32],
    /// The ISR as ZooKeeper accepted it.
    pub isr: &'a [u32],
    /// The broker epochs the partition state recorded for the ISR members.
    pub member_epochs: &'a BTreeMap<u32, i64>,
    /// Followers' progress in this leader epoch.
    pub followers: &'a BTreeMap<u32, Progress>,
    /// The leader's high watermark.
    pub hw: u64,
    /// The first offset of the current leader epoch.
    pub epoch_start: u64,
    /// `replica_lag_time_max`.
    pub lag: Duration,
}

/// The ISR the leader wants at `now`, in preferred order. A member stays while it has caught up
/// with the leader's log end within the lag time and is still the incarnation that joined (a
/// fetch with another broker epoch is a restarted broker that may have lost its disk). A
/// non-member joins once it has so caught up *now*, its log end reaches the HW and the start of
/// the current epoch, and its broker epoch is known (ZooKeeper records it with the membership).
pub fn desired_isr(i: &IsrInputs<'_>, now: Instant) -> Vec<u32> {
    let recently_caught_up = |p: &Progress| now.duration_since(p.last_caught_up) <= i.lag;
    i.replicas
        .iter()
        .copied()
        .filter(|r| {
            if *r == i.me {
                return true;
            }
            let p = i.followers.get(r);
            if i.isr.contains(r) {
                let same_incarnation = p
                    .and_then(|p| p.broker_epoch)
                    .is_none_or(|e| i.member_epochs.get(r) == Some(&e));
                same_incarnation && p.is_none_or(recently_caught_up)
            } else {
                p.is_some_and(|p| {
                    recently_caught_up(p)
                        && p.broker_epoch.is_some()
                        && p.leo.is_some_and(|l| l >= i.hw && l >= i.epoch_start)
                })
            }
        })
        .collect()
}

/// Where a follower truncates before fetching from a new leader (KIP-101/279). `requested` is
/// the newest epoch in its own cache (`None`: its cache is empty), `answer` the leader's reply
/// about it, `mine` this follower's end of the epoch the leader answered with, `hw` and `leo` its
/// own. A follower with no epoch to ask about keeps only its committed prefix.
pub fn truncation_point(
    requested: Option<u32>,
    answer: EpochAnswer,
    mine: Option<u64>,
    hw: u64,
    leo: u64,
) -> u64 {
    match (requested, answer) {
        (None, _) | (_, EpochAnswer::Undefined) => hw.min(leo),
        (Some(req), EpochAnswer::At { epoch, end_offset }) if epoch == req => end_offset.min(leo),
        (Some(_), EpochAnswer::At { end_offset, .. }) => end_offset.min(mine.unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(
        leo: Option<u64>,
        caught_up_ago: Duration,
        epoch: Option<i64>,
        now: Instant,
    ) -> Progress {
        Progress {
            leo,
            last_fetch: now,
            last_caught_up: now - caught_up_ago,
            leader_leo_at_last_fetch: 0,
            broker_epoch: epoch,
        }
    }

    #[test]
    fn the_hw_is_the_minimum_over_the_maximal_isr() {
        let now = Instant::now();
        let f: BTreeMap<u32, Progress> = [
            (2, progress(Some(7), Duration::ZERO, Some(20), now)),
            (3, progress(Some(4), Duration::ZERO, Some(30), now)),
        ]
        .into();
        assert_eq!(high_watermark(9, 1, &[1, 2], &[], &f, 2), Some(7));
        // Issue 9 case 4: 3 is joining; until ZooKeeper lists it the HW must not pass its LEO.
        assert_eq!(high_watermark(9, 1, &[1, 2], &[1, 2, 3], &f, 2), Some(4));
        assert_eq!(
            high_watermark(9, 1, &[1], &[], &f, 1),
            Some(9),
            "a lone leader"
        );
        assert_eq!(
            high_watermark(9, 1, &[1], &[], &f, 2),
            None,
            "below min.insync nothing commits: those who left stay eligible to lead"
        );
        let unknown: BTreeMap<u32, Progress> =
            [(2, progress(None, Duration::ZERO, Some(20), now))].into();
        assert_eq!(high_watermark(9, 1, &[1, 2], &[], &unknown, 2), None);
    }

    fn inputs<'a>(
        isr: &'a [u32],
        member_epochs: &'a BTreeMap<u32, i64>,
        followers: &'a BTreeMap<u32, Progress>,
    ) -> IsrInputs<'a> {
        IsrInputs {
            me: 1,
            replicas: &[1, 2, 3],
            isr,
            member_epochs,
            followers,
            hw: 10,
            epoch_start: 5,
            lag: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_member_that_stops_catching_up_leaves_after_the_lag_time() {
        let now = Instant::now();
        let epochs: BTreeMap<u32, i64> = [(2, 20), (3, 30)].into();
        let f: BTreeMap<u32, Progress> = [
            (2, progress(Some(3), Duration::from_secs(9), Some(20), now)),
            (3, progress(Some(3), Duration::from_secs(11), Some(30), now)),
        ]
        .into();
        assert_eq!(
            desired_isr(&inputs(&[1, 2, 3], &epochs, &f), now),
            vec![1, 2]
        );
    }

    #[test]
    fn a_member_that_restarted_leaves_at_once() {
        let now = Instant::now();
        let epochs: BTreeMap<u32, i64> = [(2, 20), (3, 30)].into();
        // 3 fetches as a new incarnation (a wiped disk: it starts from offset 0).
        let f: BTreeMap<u32, Progress> = [
            (2, progress(Some(10), Duration::ZERO, Some(20), now)),
            (3, progress(Some(0), Duration::ZERO, Some(31), now)),
        ]
        .into();
        assert_eq!(
            desired_isr(&inputs(&[1, 2, 3], &epochs, &f), now),
            vec![1, 2]
        );
    }

    #[test]
    fn a_follower_joins_only_when_caught_up_now_to_the_hw_and_epoch_start() {
        let now = Instant::now();
        let epochs: BTreeMap<u32, i64> = [(2, 20)].into();
        let join = |leo: u64, ago: u64, epoch: Option<i64>| {
            let f: BTreeMap<u32, Progress> = [
                (2, progress(Some(10), Duration::ZERO, Some(20), now)),
                (3, progress(Some(leo), Duration::from_secs(ago), epoch, now)),
            ]
            .into();
            desired_isr(&inputs(&[1, 2], &epochs, &f), now).contains(&3)
        };
        assert!(join(10, 0, Some(30)));
        assert!(!join(9, 0, Some(30)), "below the HW");
        assert!(
            !join(10, 11, Some(30)),
            "caught up too long ago (it may be dead)"
        );
        assert!(!join(10, 0, None), "its broker epoch is unknown");
        let no_progress: BTreeMap<u32, Progress> = BTreeMap::new();
        assert_eq!(
            desired_isr(&inputs(&[1, 2], &epochs, &no_progress), now),
            vec![1, 2],
            "a member that has not fetched yet in this epoch keeps its place"
        );
    }

    #[test]
    fn a_follower_is_emptied_once_per_merge_it_has_not_seen_while_below_the_horizon() {
        let g1 = horizon_generation(3, 1);
        let g2 = horizon_generation(3, 2);
        assert!(
            must_empty(10, 50, 0, g1),
            "below the horizon, never adopted"
        );
        assert!(
            !must_empty(10, 50, g1, g1),
            "adopted: copying the merged log"
        );
        // The reviewer's case: a later merge drops an older delete below the same horizon.
        assert!(must_empty(10, 50, g1, g2));
        assert!(
            !must_empty(51, 50, 0, g2),
            "above the horizon it holds every delete"
        );
        assert!(
            !must_empty(0, 50, 0, g2),
            "an empty log has nothing to resurrect"
        );
        assert!(
            horizon_generation(4, 0) > horizon_generation(3, 9),
            "a new leader's generation is newer than any of the last one's"
        );
    }

    #[test]
    fn truncation_follows_kip_279() {
        let at = |epoch, end_offset| EpochAnswer::At { epoch, end_offset };
        assert_eq!(truncation_point(Some(3), at(3, 50), Some(60), 40, 60), 50);
        assert_eq!(truncation_point(Some(3), at(3, 80), Some(60), 40, 60), 60);
        // The leader never saw epoch 3: cut to the end of the epoch both know, on both sides.
        assert_eq!(truncation_point(Some(3), at(2, 45), Some(42), 40, 60), 42);
        assert_eq!(truncation_point(Some(3), at(2, 41), Some(42), 40, 60), 41);
        assert_eq!(
            truncation_point(Some(3), EpochAnswer::Undefined, None, 40, 60),
            40
        );
        // Issue 9 case 3: records but no epoch (the cache was lost): keep the committed prefix.
        assert_eq!(
            truncation_point(None, EpochAnswer::Undefined, None, 40, 60),
            40
        );
    }
}
