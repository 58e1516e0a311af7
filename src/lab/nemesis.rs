//! The nemesis's choices (DESIGN §13): which fault to inject next and on whom, from a seeded
//! generator, so a run's faults can be replayed from its seed. Pure: the lab carries the steps out
//! (see `control/nemesis.rs`).

use super::network::Node;
pub use super::rng::Rng;
use crate::command::FaultKind;
use std::time::Duration;

/// The least delay a `slow` step adds to a broker's links.
const SLOW_DELAY_MIN: Duration = Duration::from_millis(50);
/// How much more it may add, at random (milliseconds).
const SLOW_DELAY_SPREAD_MS: u64 = 250;
/// The most jitter it adds on top (milliseconds).
const SLOW_JITTER_MAX_MS: u64 = 50;

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
    /// Crash a server of the private ZooKeeper; heal: restore it.
    KillZk(u32),
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
            Self::KillZk(_) => FaultKind::Zk,
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
            Self::KillZk(n) => format!("kill zk:{n}"),
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
            Self::KillZk(n) => format!("restore zk:{n}"),
        }
    }
}

/// Who the nemesis may aim at now.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Brokers up (and not paused).
    pub up: Vec<u32>,
    /// Brokers that lead a partition.
    pub leaders: Vec<u32>,
    /// Private ZooKeeper servers up.
    pub zk_up: Vec<u32>,
    /// The server leading the ZooKeeper ensemble.
    pub zk_leader: Option<u32>,
}

/// The next fault: a kind from `kinds`, aimed at a leader half of the time (a partition's
/// leader, or the ZooKeeper ensemble's, where failures hurt most) and at any live broker (or
/// server) otherwise. `None` when there is nobody to aim at.
pub fn next_step(rng: &mut Rng, kinds: &[FaultKind], t: &Targets) -> Option<Step> {
    let kind = rng.pick(kinds)?;
    let aim_at_leader = rng.below(2) == 0;
    let broker = |rng: &mut Rng| {
        if aim_at_leader && !t.leaders.is_empty() {
            rng.pick(&t.leaders)
        } else {
            rng.pick(&t.up)
        }
    };
    Some(match kind {
        FaultKind::Kill => Step::Kill(broker(rng)?),
        FaultKind::Pause => Step::Pause(broker(rng)?),
        FaultKind::PowerLoss => Step::PowerLoss(broker(rng)?),
        FaultKind::Wipe => Step::Wipe(broker(rng)?),
        FaultKind::Slow => Step::Slow(
            broker(rng)?,
            SLOW_DELAY_MIN + Duration::from_millis(rng.below(SLOW_DELAY_SPREAD_MS)),
            Duration::from_millis(rng.below(SLOW_JITTER_MAX_MS)),
        ),
        FaultKind::Zk => match t.zk_leader {
            Some(l) if aim_at_leader => Step::KillZk(l),
            _ => Step::KillZk(rng.pick(&t.zk_up)?),
        },
        FaultKind::Partition => {
            let (target, up) = (broker(rng)?, &t.up);
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
        let t = Targets {
            up: vec![1, 2, 3],
            leaders: vec![2],
            zk_up: vec![1, 2, 3],
            zk_leader: Some(3),
        };
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..60)
                .map(|_| next_step(&mut rng, &kinds, &t).expect("a step"))
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
            let t = Targets {
                up: vec![1, 2, 3],
                ..Targets::default()
            };
            let Some(Step::Partition(groups)) = next_step(&mut rng, &[FaultKind::Partition], &t)
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
        assert_eq!(
            next_step(&mut rng, &[FaultKind::Kill], &Targets::default()),
            None
        );
    }

    #[test]
    fn zookeeper_faults_aim_at_its_leader_half_of_the_time_and_need_a_server() {
        let mut rng = Rng::new(5);
        let t = Targets {
            zk_up: vec![1, 2, 3],
            zk_leader: Some(2),
            ..Targets::default()
        };
        let steps: Vec<Step> = (0..200)
            .map(|_| next_step(&mut rng, &[FaultKind::Zk], &t).expect("a step"))
            .collect();
        let at_leader = steps.iter().filter(|s| **s == Step::KillZk(2)).count();
        assert!((100..190).contains(&at_leader), "{at_leader} of 200");
        assert!(steps.contains(&Step::KillZk(1)) && steps.contains(&Step::KillZk(3)));
        assert_eq!(Step::KillZk(2).command(), "kill zk:2");
        assert_eq!(Step::KillZk(3).heal_command(), "restore zk:3");
        assert_eq!(
            next_step(&mut rng, &[FaultKind::Zk], &Targets::default()),
            None,
            "no private ZooKeeper, no ZooKeeper fault"
        );
    }
}
