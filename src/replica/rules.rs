//! The replication rules as pure functions of their inputs, with the clock passed in: the high
//! watermark, ISR membership and the follower's truncation point. `Replica` calls these under its
//! lock; the tests below try each rule against the faults that break it.

use super::{EpochAnswer, Progress};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The high watermark a leader may move to: the minimum of its own log end (durable part, under
/// `fsync: always`) and the log ends of every member of the *maximal* ISR — the ISR as ZooKeeper
/// holds it plus members of an expansion still being written there, so the HW never passes a
/// member ZooKeeper is about to list. `None` while a member has not fetched in this epoch.
pub fn high_watermark(
    own_leo: u64,
    me: u32,
    maximal_isr: &[u32],
    followers: &BTreeMap<u32, Progress>,
) -> Option<u64> {
    let mut hw = own_leo;
    for r in maximal_isr.iter().filter(|&&r| r != me) {
        hw = hw.min(followers.get(r)?.leo?);
    }
    Some(hw)
}

/// The ISR as ZooKeeper holds it plus the members of a pending change.
pub fn maximal_isr(isr: &[u32], pending: Option<&[u32]>) -> Vec<u32> {
    let mut all = isr.to_vec();
    for r in pending.unwrap_or_default() {
        if !all.contains(r) {
            all.push(*r);
        }
    }
    all
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
        assert_eq!(high_watermark(9, 1, &[1, 2], &f), Some(7));
        // Issue 9 case 4: 3 is joining; until ZooKeeper lists it the HW must not pass its LEO.
        let maximal = maximal_isr(&[1, 2], Some(&[1, 2, 3]));
        assert_eq!(maximal, vec![1, 2, 3]);
        assert_eq!(high_watermark(9, 1, &maximal, &f), Some(4));
        assert_eq!(high_watermark(9, 1, &[1], &f), Some(9), "a lone leader");
        let unknown: BTreeMap<u32, Progress> =
            [(2, progress(None, Duration::ZERO, Some(20), now))].into();
        assert_eq!(high_watermark(9, 1, &[1, 2], &unknown), None);
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
