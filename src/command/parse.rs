//! The command language's parser: one line in, one [`Command`] or one clear error out. The shell,
//! `cli` and scenarios all use it.

use super::CommandError;
use super::faults::{self, Fault};
use crate::replica::Acks;
use bytes::Bytes;
use std::time::Duration;

/// Largest key the language accepts (brokers enforce their own limit too).
pub const MAX_KEY_BYTES: usize = 64 << 10;

/// Which broker a fault command means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A broker id.
    Broker(u32),
    /// The leader of a partition (partition 0 when not given).
    Leader(u32),
    /// A live follower of a partition (partition 0 when not given).
    Follower(u32),
    /// The controller.
    Controller,
    /// Every broker.
    All,
}

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Some partition's leader or epoch differs from before the previous command.
    LeaderChange,
    /// Another broker became controller since before the previous command.
    ControllerChange,
    /// Every partition has a leader and exactly this many in-sync replicas.
    Isr(u32),
    /// Every partition has a leader that is up.
    Available,
    /// No partition has a leader serving clients (each is down, stepped down, or without a
    /// lease): what a lost ZooKeeper quorum comes to once the leases lapse.
    Unavailable,
    /// Every live replica has caught up with its leader.
    CaughtUp,
    /// Background load has finished.
    Load,
}

/// A `load` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSpec {
    /// Operations in all.
    pub ops: u64,
    /// Concurrent writers.
    pub clients: u32,
    /// Acks to use (the session's when `None`).
    pub acks: Option<Acks>,
    /// Distinct keys written (every op writes a new key when `None`).
    pub keys: Option<u64>,
    /// Return at once and run in the background.
    pub background: bool,
    /// Percent of operations that are reads of keys already written (the rest are writes).
    pub reads: u8,
}

/// What `check` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Every acknowledged write is still readable.
    LostWrites,
    /// ISR members' logs are identical up to the high watermark.
    ReplicasAgree,
    /// The recorded history is linearizable, key by key, after a final read of every key.
    Linearizable,
}

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `set K V [ttl MS]`
    Set {
        /// Key.
        key: Bytes,
        /// Value.
        value: Bytes,
        /// Expiry in milliseconds.
        ttl_ms: Option<u64>,
    },
    /// `get K`
    Get {
        /// Key.
        key: Bytes,
    },
    /// `del K`
    Del {
        /// Key.
        key: Bytes,
    },
    /// `expire K SECONDS`
    Expire {
        /// Key.
        key: Bytes,
        /// Seconds from now.
        seconds: i64,
    },
    /// `ttl K`
    Ttl {
        /// Key.
        key: Bytes,
    },
    /// `acks 0|1|all`
    Acks(Acks),
    /// `kill B`
    Kill(Target),
    /// `restore B`
    Restore(Target),
    /// `wipe B`: B (down) loses its disk; `restore` starts it empty.
    Wipe(Target),
    /// `rebalance`: leadership back to each partition's preferred replica where it is in sync.
    Rebalance,
    /// A link, machine or nemesis fault (`partition`, `pause`, `power-loss`, ...).
    Fault(Fault),
    /// `history save FILE`
    SaveHistory(std::path::PathBuf),
    /// `status`
    Status,
    /// `wait COND [TIMEOUT]`
    Wait(WaitCondition, Option<Duration>),
    /// `sleep DURATION`
    Sleep(Duration),
    /// `load OPS [clients C] [acks A] [keys K] [background]`
    Load(LoadSpec),
    /// `check lost-writes | replicas-agree`
    Check(Check),
    /// `help`
    Help,
    /// `quit` / `exit`
    Quit,
}

/// The help text: one line per command.
pub const HELP: &str = "\
set K V [ttl MS]      store V under K (quote values with spaces: \"a b\")
get K                 the committed value of K, or 'record not found'
del K                 delete K (deleting a missing key is OK)
expire K SECONDS      make K expire SECONDS from now
ttl K                 seconds K has left; -1 no expiry, -2 missing
acks 0|1|all          how many copies a write needs before OK (this session)
kill B | restore B    crash / restart broker B (an id, leader[:P], follower[:P], controller, all)
kill zk:N | restore zk:N   crash / restart ZooKeeper server N (or zk:leader, zk:follower, zk:all)
wipe B                replace down broker B's disk: restore starts it empty
rebalance             hand each partition back to its preferred (first) replica, if in sync
pause B [DURATION]    freeze broker B whole (a zombie when it resumes) | resume B
power-loss B          crash B and drop every byte it had not fsynced
partition A,B | C     cut every link across the groups (ids, zk, clients) | heal
isolate B [zk|peers|clients]   cut B's links (all of them by default)
slow B MS [jitter MS] delay every byte on B's links
nemesis KINDS [every D] [for D] [seed N]   random faults in the background | nemesis stop
status                brokers, partitions, and where leaders' commits spend their time
wait COND [TIMEOUT]   available | unavailable | leader-change | controller-change | isr N | caught-up | load
sleep DURATION        pause (e.g. sleep 500ms)
load OPS [clients C] [acks A] [keys K] [reads PCT] [background]   concurrent ops, all recorded
check lost-writes     read back every acknowledged write
check linearizable    check every recorded operation against a register, key by key
check replicas-agree  compare the ISR members' logs up to the high watermark
history save FILE     write every recorded operation as JSON Lines
help | quit";

/// Splits a line into words: double quotes group (with `\"`, `\\`, `\n`, `\t` escapes), single
/// quotes group literally.
pub fn tokenize(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err("unterminated double quote".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => cur.push('\n'),
                            Some('t') => cur.push('\t'),
                            Some(other) => cur.push(other),
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(other) => cur.push(other),
                    }
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err("unterminated single quote".into()),
                        Some('\'') => break,
                        Some(other) => cur.push(other),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Parses a duration: `500ms`, `10s`, `2m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("'{s}' is not a duration; write e.g. 500ms, 10s or 2m");
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if !n.is_finite() || n < 0.0 {
        return Err(bad());
    }
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    if secs > 86_400.0 {
        return Err(format!("'{s}' is longer than a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn key(word: &str) -> Result<Bytes, String> {
    if word.is_empty() {
        return Err("the key is empty".into());
    }
    if word.len() > MAX_KEY_BYTES {
        return Err(format!(
            "the key is {} bytes; the limit is {MAX_KEY_BYTES} bytes",
            word.len()
        ));
    }
    Ok(Bytes::copy_from_slice(word.as_bytes()))
}

fn usage(cmd: &str, form: &str, got: usize) -> String {
    format!("usage: {cmd} {form} (got {got} argument(s))")
}

pub(super) fn target(word: &str) -> Result<Target, String> {
    match word {
        "leader" => Ok(Target::Leader(0)),
        "follower" => Ok(Target::Follower(0)),
        "controller" => Ok(Target::Controller),
        "all" => Ok(Target::All),
        w => {
            if let Some(p) = w.strip_prefix("leader:") {
                return p
                    .parse()
                    .map(Target::Leader)
                    .map_err(|_| format!("'{w}': write leader:PARTITION, e.g. leader:1"));
            }
            if let Some(p) = w.strip_prefix("follower:") {
                return p
                    .parse()
                    .map(Target::Follower)
                    .map_err(|_| format!("'{w}': write follower:PARTITION, e.g. follower:1"));
            }
            w.parse::<u32>()
                .ok()
                .filter(|&id| id > 0)
                .map(Target::Broker)
                .ok_or_else(|| {
                    format!("'{w}' is not a broker: use an id (1, 2, ...), leader[:P], follower[:P], controller or all")
                })
        }
    }
}

fn count(word: &str, what: &str) -> Result<u64, String> {
    word.parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{what} must be a positive whole number, not '{word}'"))
}

/// Parses one line. `Ok(None)` for a blank line or a comment (`# ...`).
pub fn parse(line: &str) -> Result<Option<Command>, CommandError> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let words = tokenize(trimmed).map_err(CommandError::Usage)?;
    parse_words(&words)
}

/// Parses a command already split into words (e.g. a program's arguments).
pub fn parse_words(words: &[String]) -> Result<Option<Command>, CommandError> {
    command(words).map_err(CommandError::Usage)
}

/// The command `words` make, or what is wrong with them.
fn command(words: &[String]) -> Result<Option<Command>, String> {
    let Some((name, args)) = words.split_first() else {
        return Ok(None);
    };
    let n = args.len();
    let name = name.to_ascii_lowercase();
    let one = |usage_args: &str| match args {
        [a] => Ok(a),
        _ => Err(usage(&name, usage_args, n)),
    };
    let cmd = match name.as_str() {
        "set" => parse_set(args)?,
        "get" => Command::Get {
            key: key(one("KEY")?)?,
        },
        "del" => Command::Del {
            key: key(one("KEY")?)?,
        },
        "expire" => parse_expire(args)?,
        "ttl" => Command::Ttl {
            key: key(one("KEY")?)?,
        },
        "acks" => Command::Acks(one("0|1|all")?.parse()?),
        "kill" => match faults::zk_target(one("BROKER|zk:N")?) {
            Some(zk) => Command::Fault(Fault::KillZk(zk?)),
            None => Command::Kill(target(one("BROKER")?)?),
        },
        "restore" => match faults::zk_target(one("BROKER|zk:N")?) {
            Some(zk) => Command::Fault(Fault::RestoreZk(zk?)),
            None => Command::Restore(target(one("BROKER")?)?),
        },
        "wipe" => Command::Wipe(target(one("BROKER")?)?),
        "rebalance" if args.is_empty() => Command::Rebalance,
        "rebalance" => return Err(usage("rebalance", "", n)),
        "pause" => Command::Fault(faults::parse_pause(args)?),
        "resume" => Command::Fault(Fault::Resume(target(one("BROKER")?)?)),
        "power-loss" => Command::Fault(Fault::PowerLoss(target(one("BROKER")?)?)),
        "partition" => Command::Fault(faults::parse_partition(args)?),
        "isolate" => Command::Fault(faults::parse_isolate(args)?),
        "slow" => Command::Fault(faults::parse_slow(args)?),
        "heal" if args.is_empty() => Command::Fault(Fault::Heal),
        "heal" => return Err(usage("heal", "", n)),
        "nemesis" => Command::Fault(faults::parse_nemesis(args)?),
        "history" => match args {
            [w, file] if w == "save" => Command::SaveHistory(file.into()),
            _ => return Err("usage: history save FILE".into()),
        },
        "status" if args.is_empty() => Command::Status,
        "status" => return Err(usage("status", "", n)),
        "sleep" => Command::Sleep(parse_duration(one("DURATION")?)?),
        "wait" => parse_wait(args)?,
        "load" => parse_load(args)?,
        "check" => parse_check(args)?,
        "help" | "?" => Command::Help,
        "quit" | "exit" => Command::Quit,
        other => {
            return Err(format!(
                "unknown command '{other}'; type 'help' for the list"
            ));
        }
    };
    Ok(Some(cmd))
}

/// Clients a `load` uses unless told otherwise.
const LOAD_DEFAULT_CLIENTS: u32 = 4;
/// The most clients one `load` may start.
const LOAD_MAX_CLIENTS: u64 = 1024;

/// `set K V [ttl MS]`
fn parse_set(args: &[String]) -> Result<Command, String> {
    let ttl_ms = match args {
        [_, _] => None,
        [_, _, t, ms] if t.eq_ignore_ascii_case("ttl") => {
            let ms: i64 = ms
                .parse()
                .map_err(|_| format!("ttl takes milliseconds as a whole number, not '{ms}'"))?;
            if ms <= 0 {
                return Err(format!(
                    "ttl must be a positive number of milliseconds, not {ms}"
                ));
            }
            Some(ms as u64)
        }
        _ => return Err(usage("set", "KEY VALUE [ttl MS]", args.len())),
    };
    Ok(Command::Set {
        key: key(&args[0])?,
        value: Bytes::copy_from_slice(args[1].as_bytes()),
        ttl_ms,
    })
}

/// `expire K SECONDS`
fn parse_expire(args: &[String]) -> Result<Command, String> {
    let [k, s] = args else {
        return Err(usage("expire", "KEY SECONDS", args.len()));
    };
    let seconds: i64 = s
        .parse()
        .map_err(|_| format!("expire takes whole seconds, not '{s}'"))?;
    if seconds < 0 {
        return Err(format!("expire takes 0 or more seconds, not {seconds}"));
    }
    Ok(Command::Expire {
        key: key(k)?,
        seconds,
    })
}

/// `wait COND [TIMEOUT]`
fn parse_wait(args: &[String]) -> Result<Command, String> {
    let (cond, rest) = match args {
        [c, rest @ ..] if c == "leader-change" => (WaitCondition::LeaderChange, rest),
        [c, rest @ ..] if c == "controller-change" => (WaitCondition::ControllerChange, rest),
        [c, rest @ ..] if c == "caught-up" => (WaitCondition::CaughtUp, rest),
        [c, rest @ ..] if c == "available" => (WaitCondition::Available, rest),
        [c, rest @ ..] if c == "unavailable" => (WaitCondition::Unavailable, rest),
        [c, rest @ ..] if c == "load" => (WaitCondition::Load, rest),
        [c, k, rest @ ..] if c == "isr" => {
            (WaitCondition::Isr(count(k, "the ISR size")? as u32), rest)
        }
        _ => {
            return Err(
                "usage: wait available|unavailable|leader-change|controller-change|isr N|caught-up|load [TIMEOUT], e.g. wait isr 3 10s".into(),
            );
        }
    };
    let timeout = match rest {
        [] => None,
        [t] => Some(parse_duration(t)?),
        _ => return Err("usage: wait COND [TIMEOUT]".into()),
    };
    Ok(Command::Wait(cond, timeout))
}

/// `load OPS [clients C] [acks A] [keys K] [background]`
fn parse_load(args: &[String]) -> Result<Command, String> {
    let [ops, rest @ ..] = args else {
        return Err(usage(
            "load",
            "OPS [clients C] [acks A] [keys K] [background]",
            args.len(),
        ));
    };
    let mut spec = LoadSpec {
        ops: count(ops, "OPS")?,
        clients: LOAD_DEFAULT_CLIENTS,
        acks: None,
        keys: None,
        background: false,
        reads: 0,
    };
    let mut it = rest.iter();
    while let Some(w) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .ok_or_else(|| format!("load: '{what}' needs a value"))
        };
        match w.as_str() {
            "clients" => {
                spec.clients = count(value("clients")?, "clients")?.min(LOAD_MAX_CLIENTS) as u32
            }
            "acks" => spec.acks = Some(value("acks")?.parse()?),
            "keys" => spec.keys = Some(count(value("keys")?, "keys")?),
            "background" => spec.background = true,
            "reads" => {
                let pct = value("reads")?;
                spec.reads = pct
                    .trim_end_matches('%')
                    .parse::<u8>()
                    .ok()
                    .filter(|&p| p <= 100)
                    .ok_or_else(|| format!("reads is a percentage from 0 to 100, not '{pct}'"))?
            }
            other => {
                return Err(format!(
                    "load: unknown option '{other}'; options are clients C, acks A, keys K, reads PCT, background"
                ));
            }
        }
    }
    Ok(Command::Load(spec))
}

/// `check lost-writes | replicas-agree`
fn parse_check(args: &[String]) -> Result<Command, String> {
    match args {
        [w] if w == "lost-writes" => Ok(Command::Check(Check::LostWrites)),
        [w] if w == "replicas-agree" => Ok(Command::Check(Check::ReplicasAgree)),
        [w] if w == "linearizable" => Ok(Command::Check(Check::Linearizable)),
        _ => Err("usage: check lost-writes | linearizable | replicas-agree".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        parse(line).expect("parses").expect("a command")
    }

    fn err(line: &str) -> String {
        match parse(line) {
            Err(CommandError::Usage(e)) => e,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn the_seed_transcript_parses() {
        assert_eq!(
            ok("set hello 1"),
            Command::Set {
                key: Bytes::from_static(b"hello"),
                value: Bytes::from_static(b"1"),
                ttl_ms: None
            }
        );
        assert_eq!(
            ok("get hello"),
            Command::Get {
                key: Bytes::from_static(b"hello")
            }
        );
        assert_eq!(
            ok("expire hello 200"),
            Command::Expire {
                key: Bytes::from_static(b"hello"),
                seconds: 200
            }
        );
        assert_eq!(
            ok("ttl hello"),
            Command::Ttl {
                key: Bytes::from_static(b"hello")
            }
        );
        assert_eq!(
            ok("del hello"),
            Command::Del {
                key: Bytes::from_static(b"hello")
            }
        );
    }

    #[test]
    fn quotes_group_words() {
        assert_eq!(
            tokenize(r#"set "a key" "say \"hi\"" 'it''s'"#).expect("ok"),
            vec!["set", "a key", "say \"hi\"", "its"]
        );
        assert_eq!(
            ok(r#"set k "a b" ttl 500"#),
            Command::Set {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"a b"),
                ttl_ms: Some(500)
            }
        );
        assert_eq!(tokenize(r#"set k """#).expect("ok"), vec!["set", "k", ""]);
        assert!(err(r#"set k "open"#).contains("unterminated"));
    }

    #[test]
    fn bad_input_gets_one_clear_line() {
        for (line, want) in [
            ("set onlykey", "usage: set KEY VALUE [ttl MS]"),
            ("get", "usage: get KEY"),
            ("frobnicate x", "unknown command 'frobnicate'"),
            ("expire k -5", "0 or more seconds"),
            ("expire k soon", "whole seconds"),
            ("set k v ttl -1", "positive number of milliseconds"),
            ("acks 2", "acks must be 0, 1 or all"),
            ("kill zero", "is not a broker"),
            ("wait isr", "usage: wait"),
            ("sleep forever", "not a duration"),
            ("load 10 clients", "needs a value"),
            ("check everything", "usage: check"),
        ] {
            let e = err(line);
            assert!(e.contains(want), "{line}: {e}");
            assert!(!e.contains('\n'), "{line}: one line");
        }
        let long = format!("get {}", "k".repeat(MAX_KEY_BYTES + 1));
        assert!(err(&long).contains("the limit is 65536 bytes"));
    }

    #[test]
    fn lab_commands_parse() {
        assert_eq!(ok("kill leader"), Command::Kill(Target::Leader(0)));
        assert_eq!(ok("kill leader:2"), Command::Kill(Target::Leader(2)));
        assert_eq!(ok("kill follower"), Command::Kill(Target::Follower(0)));
        assert_eq!(
            ok("wait controller-change 5s"),
            Command::Wait(
                WaitCondition::ControllerChange,
                Some(Duration::from_secs(5))
            )
        );
        assert_eq!(ok("restore 3"), Command::Restore(Target::Broker(3)));
        assert_eq!(ok("rebalance"), Command::Rebalance);
        assert!(parse("rebalance 1").is_err());
        assert_eq!(ok("wipe 2"), Command::Wipe(Target::Broker(2)));
        assert_eq!(
            ok("wait isr 3 10s"),
            Command::Wait(WaitCondition::Isr(3), Some(Duration::from_secs(10)))
        );
        assert_eq!(
            ok("wait leader-change"),
            Command::Wait(WaitCondition::LeaderChange, None)
        );
        assert_eq!(
            ok("sleep 500ms"),
            Command::Sleep(Duration::from_millis(500))
        );
        assert_eq!(
            ok("load 100 clients 8 acks all keys 10 reads 30% background"),
            Command::Load(LoadSpec {
                ops: 100,
                clients: 8,
                acks: Some(Acks::All),
                keys: Some(10),
                background: true,
                reads: 30,
            })
        );
        assert!(err("load 100 reads 101").contains("percentage"));
        assert_eq!(
            ok("history save run.jsonl"),
            Command::SaveHistory("run.jsonl".into())
        );
        assert_eq!(
            ok("check linearizable"),
            Command::Check(Check::Linearizable)
        );
        assert_eq!(ok("heal"), Command::Fault(Fault::Heal));
        assert!(matches!(
            ok("nemesis kill,pause"),
            Command::Fault(Fault::Nemesis(_))
        ));
        assert_eq!(ok("check lost-writes"), Command::Check(Check::LostWrites));
        assert_eq!(parse("  # a comment").expect("ok"), None);
        assert_eq!(parse("   ").expect("ok"), None);
    }
}
