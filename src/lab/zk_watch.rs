//! The lab's watch on its private ZooKeeper servers: each server's mode (`srvr`), polled a few
//! times a second for the console, and events when the ensemble elects a leader or loses or
//! regains its quorum. The rule for those events is a pure function of two polls.

use crate::coord::ZkMode;
use crate::coord::ensemble::{quorum_of, quorum_stands};

/// How often the servers are asked.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(250);

fn leader(modes: &[ZkMode]) -> Option<usize> {
    modes
        .iter()
        .position(|&m| m == ZkMode::Leader)
        .map(|i| i + 1)
}

fn serving(modes: &[ZkMode]) -> usize {
    modes.iter().filter(|m| m.serves()).count()
}

/// What changed between two polls of an ensemble, as sentences for the event log: a lost or
/// regained quorum, a new leader. Nothing for the first poll, a standalone server (it has no
/// quorum to lose but itself, which `kill` reports), or servers merely coming and going while
/// the same leader leads.
pub fn changes(before: &[ZkMode], after: &[ZkMode]) -> Vec<String> {
    if before.len() != after.len() || after.len() < 2 {
        return Vec::new();
    }
    let n = after.len();
    let quorum = quorum_of(n);
    let (was, is) = (quorum_stands(before), quorum_stands(after));
    let mut out = Vec::new();
    if was && !is {
        out.push(format!(
            "ZooKeeper has no quorum: {} of {n} servers serve, {quorum} needed{}. Elections, ISR \
             changes and registrations wait; leaders serve on only while their leases last",
            serving(after),
            if after.contains(&ZkMode::NotServing) {
                " (those up are electing a leader, or too few are up)"
            } else {
                ""
            }
        ));
    } else if !was && is {
        out.push(format!(
            "ZooKeeper's quorum is back: {} of {n} servers serve{}",
            serving(after),
            leader(after).map_or(String::new(), |l| format!(", zk:{l} leads"))
        ));
    } else if is
        && let Some(l) = leader(after)
        && leader(before) != Some(l)
    {
        out.push(format!(
            "ZooKeeper elected zk:{l} to lead its ensemble{}",
            leader(before).map_or(String::new(), |b| format!(" (zk:{b} led before)"))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ZkMode::*;

    #[test]
    fn a_follower_going_down_changes_nothing_worth_an_event() {
        assert!(changes(&[Leader, Follower, Follower], &[Leader, Down, Follower]).is_empty());
        assert!(changes(&[], &[Leader, Follower, Follower]).is_empty());
        assert!(changes(&[Standalone], &[Down]).is_empty());
    }

    #[test]
    fn a_new_leader_a_lost_quorum_and_its_return_are_told() {
        let e = changes(&[Leader, Follower, Follower], &[Down, Follower, Leader]);
        assert_eq!(
            e,
            vec!["ZooKeeper elected zk:3 to lead its ensemble (zk:1 led before)"]
        );
        let e = changes(&[Down, Follower, Leader], &[Down, Down, NotServing]);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with(
                "ZooKeeper has no quorum: 0 of 3 servers serve, 2 needed (those up are electing"
            ),
            "{e:?}"
        );
        let e = changes(&[Down, Down, NotServing], &[Down, Follower, Leader]);
        assert_eq!(
            e,
            vec!["ZooKeeper's quorum is back: 2 of 3 servers serve, zk:3 leads"]
        );
    }

    #[test]
    fn an_election_seen_mid_way_is_a_quorum_lost_then_back() {
        let during = [Down, NotServing, NotServing];
        assert_eq!(changes(&[Leader, Follower, Follower], &during).len(), 1);
        assert!(changes(&during, &[Down, Leader, Follower])[0].contains("zk:2 leads"));
    }
}
