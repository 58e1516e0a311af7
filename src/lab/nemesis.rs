//! The nemesis's choices (DESIGN §13): which fault to inject next and on whom, from a seeded
//! generator, so a run's faults can be replayed from its seed. Pure: the lab carries the steps out
//! (see `control/nemesis.rs`).

use super::network::Node;
pub use super::rng::Rng;
use crate::command::FaultKind;
use std::time::Duration;

/// A random seed for runs not given one (printed, so the run can be replayed).
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Rng::new(nanos ^ u64::from(std::process::id())).next_u64() % 1_000_000
}

/// One fault the nemesis injects, and later heals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Crash the broker; heal: restore it.
    Kill(u32),
    /// Freeze the broker; heal: resume it.
    Pause(u32),
    /// Cut every link across the groups; heal: heal.
    Partition(Vec<Vec<Node>>),
    /// Cut the broker's power; heal: restore it.
    PowerLoss(u32),
    /// Crash the broker and replace its disk; heal: restore it empty.
    Wipe(u32),
    /// Delay the broker's links; heal: heal.
    Slow(u32, Duration, Duration),
}

impl Step {
    /// The kind of fault.
    pub fn kind(&self) -> FaultKind {
        match self {
            Self::Kill(_) => FaultKind::Kill,
            Self::Pause(_) => FaultKind::Pause,
            Self::Partition(_) => FaultKind::Partition,
            Self::PowerLoss(_) => FaultKind::PowerLoss,
            Self::Wipe(_) => FaultKind::Wipe,
            Self::Slow(..) => FaultKind::Slow,
        }
    }

    /// The command that injects it, as a person would type it.
    pub fn command(&self) -> String {
        match self {
            Self::Kill(b) => format!("kill {b}"),
            Self::Pause(b) => format!("pause {b}"),
            Self::PowerLoss(b) => format!("power-loss {b}"),
            Self::Wipe(b) => format!("kill {b}; wipe {b}"),
            Self::Slow(b, d, j) => format!("slow {b} {} jitter {}", d.as_millis(), j.as_millis()),
            Self::Partition(groups) => format!(
                "partition {}",
                groups
                    .iter()
                    .map(|g| g.iter().map(Node::to_string).collect::<Vec<_>>().join(","))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ),
        }
    }

    /// The command that heals it.
    pub fn heal_command(&self) -> String {
        match self {
            Self::Kill(b) | Self::PowerLoss(b) | Self::Wipe(b) => format!("restore {b}"),
            Self::Pause(b) => format!("resume {b}"),
            Self::Partition(_) | Self::Slow(..) => "heal".into(),
        }
    }
}

/// The next fault: a kind from `kinds`, aimed at a partition leader half of the time (`leaders`,
/// where failures hurt most) and at any live broker otherwise. `None` when no broker is up.
pub fn next_step(rng: &mut Rng, kinds: &[FaultKind], up: &[u32], leaders: &[u32]) -> Option<Step> {
    let kind = rng.pick(kinds)?;
    let target = match rng.below(2) {
        0 if !leaders.is_empty() => rng.pick(leaders)?,
        _ => rng.pick(up)?,
    };
    Some(match kind {
        FaultKind::Kill => Step::Kill(target),
        FaultKind::Pause => Step::Pause(target),
        FaultKind::PowerLoss => Step::PowerLoss(target),
        FaultKind::Wipe => Step::Wipe(target),
        FaultKind::Slow => Step::Slow(
            target,
            Duration::from_millis(50 + rng.below(250)),
            Duration::from_millis(rng.below(50)),
        ),
        FaultKind::Partition => {
            // The target alone on one side, or with a random share of the others; ZooKeeper
            // and the clients on a random side each (clients may also stay connected to all).
            let mut minority = vec![Node::Broker(target)];
            let mut majority = Vec::new();
            for &b in up.iter().filter(|&&b| b != target) {
                if rng.below(4) == 0 && minority.len() + 1 < up.len() {
                    minority.push(Node::Broker(b));
                } else {
                    majority.push(Node::Broker(b));
                }
            }
            if rng.below(4) == 0 {
                minority.push(Node::Zk);
            } else {
                majority.push(Node::Zk);
            }
            match rng.below(3) {
                0 => minority.push(Node::Clients),
                1 => majority.push(Node::Clients),
                _ => {}
            }
            Step::Partition(vec![minority, majority])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_faults_and_every_kind_is_drawn() {
        let kinds = FaultKind::ALL.to_vec();
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..50)
                .map(|_| next_step(&mut rng, &kinds, &[1, 2, 3], &[2]).expect("a step"))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        for k in FaultKind::ALL {
            assert!(run(7).iter().any(|s| s.kind() == k), "{k:?} never drawn");
        }
    }

    #[test]
    fn partitions_split_the_live_brokers_in_two_and_aim_at_the_target() {
        let mut rng = Rng::new(1);
        for _ in 0..200 {
            let Some(Step::Partition(groups)) =
                next_step(&mut rng, &[FaultKind::Partition], &[1, 2, 3], &[])
            else {
                panic!("a partition");
            };
            assert_eq!(groups.len(), 2);
            let brokers = |g: &Vec<Node>| g.iter().filter(|n| matches!(n, Node::Broker(_))).count();
            assert!(
                brokers(&groups[0]) >= 1 && brokers(&groups[1]) >= 1,
                "{groups:?}"
            );
            assert_eq!(brokers(&groups[0]) + brokers(&groups[1]), 3);
            assert_eq!(
                groups.iter().flatten().filter(|n| **n == Node::Zk).count(),
                1
            );
        }
        assert_eq!(next_step(&mut rng, &[FaultKind::Kill], &[], &[]), None);
    }
}
