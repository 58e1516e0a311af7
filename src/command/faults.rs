//! The fault commands of DESIGN §13 beyond kill / restore / wipe: links (`partition`,
//! `isolate`, `slow`, `heal`), machines (`pause`, `resume`, `power-loss`) and the background
//! `nemesis`. Parsed here; the lab carries them out.

use super::parse::{Target, parse_duration, target};
use std::time::Duration;

/// One side of a `partition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    /// A broker (or `leader:P`, `controller`, ... resolved when the command runs).
    Broker(Target),
    /// The ZooKeeper server.
    Zk,
    /// The lab's clients (shell, load, checks).
    Clients,
}

/// Which of a broker's links `isolate` cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sides {
    /// Its ZooKeeper link.
    pub zk: bool,
    /// Its links with other brokers (both directions).
    pub peers: bool,
    /// The clients' links to it.
    pub clients: bool,
}

impl Sides {
    /// Every link.
    pub const ALL: Self = Self {
        zk: true,
        peers: true,
        clients: true,
    };
}

/// A kind of fault the nemesis (and the soak) can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// Crash a broker, restore it later.
    Kill,
    /// Freeze a broker, resume it later.
    Pause,
    /// Split the brokers (and ZooKeeper) in two, heal later.
    Partition,
    /// Cut a broker's power, restore it later.
    PowerLoss,
    /// Crash a broker, replace its disk, restore it empty.
    Wipe,
    /// Slow a broker's links, heal later.
    Slow,
    /// Crash a server of the lab's private ZooKeeper, restore it later.
    Zk,
}

impl FaultKind {
    /// Every kind, in the order tables list them.
    pub const ALL: [Self; 7] = [
        Self::Kill,
        Self::Pause,
        Self::Partition,
        Self::PowerLoss,
        Self::Wipe,
        Self::Slow,
        Self::Zk,
    ];

    /// The name commands use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Pause => "pause",
            Self::Partition => "partition",
            Self::PowerLoss => "power-loss",
            Self::Wipe => "wipe",
            Self::Slow => "slow",
            Self::Zk => "zk",
        }
    }
}

impl std::str::FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "'{s}' is not a fault kind; kinds are {}",
                    Self::ALL.map(Self::name).join(", ")
                )
            })
    }
}

/// Parses `kill,pause,...` (or `all`).
pub fn fault_kinds(word: &str) -> Result<Vec<FaultKind>, String> {
    if word == "all" {
        return Ok(FaultKind::ALL.to_vec());
    }
    let mut kinds = Vec::new();
    for w in word.split(',').filter(|w| !w.is_empty()) {
        let k: FaultKind = w.parse()?;
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    if kinds.is_empty() {
        return Err("name at least one fault kind, e.g. kill,pause".into());
    }
    Ok(kinds)
}

/// A `nemesis` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NemesisSpec {
    /// Which faults it picks from.
    pub kinds: Vec<FaultKind>,
    /// Time between one fault's start and the next (each is healed before the next).
    pub every: Duration,
    /// How long it runs (until `nemesis stop` when `None`).
    pub duration: Option<Duration>,
    /// Seed of its choices (a random one, printed, when `None`).
    pub seed: Option<u64>,
}

/// Time between nemesis faults unless told otherwise.
pub const NEMESIS_DEFAULT_EVERY: Duration = Duration::from_secs(10);
/// The shortest time between nemesis faults: a fault must have time to act and heal.
pub const NEMESIS_MIN_EVERY: Duration = Duration::from_secs(1);

/// A server of the lab's private ZooKeeper ensemble (`zk:2`, `zk:leader`, `zk:follower`,
/// `zk:all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZkTarget {
    /// Server N (1-based, as in its `server.N` line).
    Server(u32),
    /// Whichever server leads the ensemble now.
    Leader,
    /// A server following the ensemble's leader now.
    Follower,
    /// Every server.
    All,
}

/// Parses `zk:N`, `zk:leader`, `zk:follower` or `zk:all`; `None` when `word` names no
/// ZooKeeper server at all (it does not start with `zk:`).
pub(super) fn zk_target(word: &str) -> Option<Result<ZkTarget, String>> {
    let rest = word.strip_prefix("zk:")?;
    Some(match rest {
        "leader" => Ok(ZkTarget::Leader),
        "follower" => Ok(ZkTarget::Follower),
        "all" => Ok(ZkTarget::All),
        n => n
            .parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .map(ZkTarget::Server)
            .ok_or_else(|| {
                format!("'{word}' is not a ZooKeeper server: write zk:1, zk:2, ..., zk:leader, zk:follower or zk:all")
            }),
    })
}

/// A fault command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `kill zk:N`: crash a server of the private ZooKeeper ensemble.
    KillZk(ZkTarget),
    /// `restore zk:N`: start it again on its data.
    RestoreZk(ZkTarget),
    /// `pause B [DURATION]`
    Pause(Target, Option<Duration>),
    /// `resume B`
    Resume(Target),
    /// `power-loss B`
    PowerLoss(Target),
    /// `partition A,B | C [| ...]`
    Partition(Vec<Vec<Member>>),
    /// `isolate B [zk|peers|clients]`
    Isolate(Target, Sides),
    /// `slow B MS [jitter MS]`
    Slow(Target, Duration, Duration),
    /// `heal`: every link whole and fast again.
    Heal,
    /// `nemesis KINDS [every D] [for D] [seed N]`
    Nemesis(NemesisSpec),
    /// `nemesis stop`
    NemesisStop,
}

fn usage(form: &str) -> String {
    format!("usage: {form}")
}

/// `pause B [DURATION]`
pub(super) fn parse_pause(args: &[String]) -> Result<Fault, String> {
    match args {
        [b] => Ok(Fault::Pause(target(b)?, None)),
        [b, d] => Ok(Fault::Pause(target(b)?, Some(parse_duration(d)?))),
        _ => Err(usage("pause BROKER [DURATION], e.g. pause leader 8s")),
    }
}

/// Milliseconds as a bare number (`200`) or a duration (`200ms`, `1s`).
fn millis(word: &str) -> Result<Duration, String> {
    match word.parse::<u64>() {
        Ok(ms) if ms <= 60_000 => Ok(Duration::from_millis(ms)),
        Ok(ms) => Err(format!("{ms} ms is more than a minute")),
        Err(_) => parse_duration(word),
    }
}

/// `slow B MS [jitter MS]`
pub(super) fn parse_slow(args: &[String]) -> Result<Fault, String> {
    let form = "slow BROKER MS [jitter MS], e.g. slow 2 100 jitter 50";
    match args {
        [b, ms] => Ok(Fault::Slow(target(b)?, millis(ms)?, Duration::ZERO)),
        [b, ms, j, jms] if j == "jitter" => Ok(Fault::Slow(target(b)?, millis(ms)?, millis(jms)?)),
        _ => Err(usage(form)),
    }
}

/// `isolate B [zk|peers|clients]`
pub(super) fn parse_isolate(args: &[String]) -> Result<Fault, String> {
    let form = "isolate BROKER [zk|peers|clients]";
    let (b, sides) = match args {
        [b] => (b, Sides::ALL),
        [b, s] => {
            let none = Sides {
                zk: false,
                peers: false,
                clients: false,
            };
            let sides = match s.as_str() {
                "zk" => Sides { zk: true, ..none },
                "peers" => Sides {
                    peers: true,
                    ..none
                },
                "clients" => Sides {
                    clients: true,
                    ..none
                },
                other => {
                    return Err(format!(
                        "isolate from '{other}'? write zk, peers or clients"
                    ));
                }
            };
            (b, sides)
        }
        _ => return Err(usage(form)),
    };
    Ok(Fault::Isolate(target(b)?, sides))
}

/// `partition A,B | C [| ...]`: members are broker ids (or leader:P, controller, ...), `zk`
/// and `clients`; whatever no group names stays connected to everything.
pub(super) fn parse_partition(args: &[String]) -> Result<Fault, String> {
    let form = "partition A,B | C (brokers, zk, clients), e.g. partition 1 | 2,3,zk";
    let joined = args.join(" ");
    let mut groups = Vec::new();
    for group in joined.split('|') {
        let mut members = Vec::new();
        for w in group
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| !w.is_empty())
        {
            let m = match w {
                "zk" | "zookeeper" => Member::Zk,
                "clients" => Member::Clients,
                "all" => return Err("a partition side cannot be 'all'".into()),
                w => Member::Broker(target(w)?),
            };
            if members.contains(&m) {
                return Err(format!("'{w}' is named twice"));
            }
            members.push(m);
        }
        if members.is_empty() {
            return Err(usage(form));
        }
        groups.push(members);
    }
    if groups.len() < 2 {
        return Err(usage(form));
    }
    Ok(Fault::Partition(groups))
}

/// `nemesis KINDS [every D] [for D] [seed N]` or `nemesis stop`
pub(super) fn parse_nemesis(args: &[String]) -> Result<Fault, String> {
    let form = "nemesis KINDS [every D] [for D] [seed N] | nemesis stop, e.g. nemesis kill,pause every 10s for 2m";
    let [kinds, rest @ ..] = args else {
        return Err(usage(form));
    };
    if kinds == "stop" && rest.is_empty() {
        return Ok(Fault::NemesisStop);
    }
    let mut spec = NemesisSpec {
        kinds: fault_kinds(kinds)?,
        every: NEMESIS_DEFAULT_EVERY,
        duration: None,
        seed: None,
    };
    let mut it = rest.iter();
    while let Some(w) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("nemesis: '{w}' needs a value"))?;
        match w.as_str() {
            "every" => spec.every = parse_duration(value)?.max(NEMESIS_MIN_EVERY),
            "for" => spec.duration = Some(parse_duration(value)?),
            "seed" => {
                spec.seed = Some(
                    value
                        .parse()
                        .map_err(|_| format!("the seed is a whole number, not '{value}'"))?,
                )
            }
            other => {
                return Err(format!(
                    "nemesis: unknown option '{other}'; {}",
                    usage(form)
                ));
            }
        }
    }
    Ok(Fault::Nemesis(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn zookeeper_servers_are_named_zk_colon_something() {
        assert_eq!(zk_target("zk:2"), Some(Ok(ZkTarget::Server(2))));
        assert_eq!(zk_target("zk:leader"), Some(Ok(ZkTarget::Leader)));
        assert_eq!(zk_target("zk:follower"), Some(Ok(ZkTarget::Follower)));
        assert_eq!(zk_target("zk:all"), Some(Ok(ZkTarget::All)));
        assert_eq!(zk_target("2"), None);
        for bad in ["zk:0", "zk:", "zk:x"] {
            let err = zk_target(bad).expect("a zk word").expect_err(bad);
            assert!(err.contains("zk:1, zk:2"), "{err}");
        }
    }

    #[test]
    fn partitions_name_brokers_zookeeper_and_clients() {
        assert_eq!(
            parse_partition(&words("1 | 2,3,zk")),
            Ok(Fault::Partition(vec![
                vec![Member::Broker(Target::Broker(1))],
                vec![
                    Member::Broker(Target::Broker(2)),
                    Member::Broker(Target::Broker(3)),
                    Member::Zk
                ],
            ]))
        );
        assert_eq!(
            parse_partition(&words("leader:1|clients")),
            Ok(Fault::Partition(vec![
                vec![Member::Broker(Target::Leader(1))],
                vec![Member::Clients],
            ]))
        );
        assert!(
            parse_partition(&words("1,2")).is_err(),
            "one side is no partition"
        );
        assert!(parse_partition(&words("1 | | 2")).is_err());
        assert!(parse_partition(&words("1,1 | 2")).is_err());
    }

    #[test]
    fn machine_and_link_faults_parse_with_clear_errors() {
        assert_eq!(
            parse_pause(&words("leader 8s")),
            Ok(Fault::Pause(
                Target::Leader(0),
                Some(Duration::from_secs(8))
            ))
        );
        assert_eq!(
            parse_slow(&words("2 100 jitter 50ms")),
            Ok(Fault::Slow(
                Target::Broker(2),
                Duration::from_millis(100),
                Duration::from_millis(50)
            ))
        );
        assert_eq!(
            parse_isolate(&words("3 zk")),
            Ok(Fault::Isolate(
                Target::Broker(3),
                Sides {
                    zk: true,
                    peers: false,
                    clients: false
                }
            ))
        );
        assert_eq!(
            parse_isolate(&words("3")),
            Ok(Fault::Isolate(Target::Broker(3), Sides::ALL))
        );
        assert!(
            parse_isolate(&words("3 disk"))
                .unwrap_err()
                .contains("zk, peers or clients")
        );
        assert!(parse_slow(&words("2 fast")).is_err());
    }

    #[test]
    fn the_nemesis_takes_kinds_period_duration_and_seed() {
        assert_eq!(
            parse_nemesis(&words("kill,pause every 5s for 1m seed 42")),
            Ok(Fault::Nemesis(NemesisSpec {
                kinds: vec![FaultKind::Kill, FaultKind::Pause],
                every: Duration::from_secs(5),
                duration: Some(Duration::from_secs(60)),
                seed: Some(42),
            }))
        );
        assert_eq!(parse_nemesis(&words("stop")), Ok(Fault::NemesisStop));
        assert_eq!(fault_kinds("all").expect("all").len(), FaultKind::ALL.len());
        assert!(
            parse_nemesis(&words("meteor"))
                .unwrap_err()
                .contains("not a fault kind")
        );
        assert!(parse_nemesis(&words("kill every")).is_err());
    }
}
