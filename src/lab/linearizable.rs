//! Checks that a recorded history of key-value operations is linearizable.
//!
//! Why: the lab's store is driven by concurrent clients that record what they
//! asked, what they got back and when. A store that loses acknowledged writes
//! or serves stale reads can pass every single-client test; the oracle for a
//! concurrent history is linearizability: one total order of the operations,
//! consistent with real time (an operation that returned before another was
//! called comes first), in which every read sees the latest write.
//!
//! How, and why that way:
//! * Keys are independent registers and linearizability is compositional (a
//!   history is linearizable exactly when each key's sub-history is), so each
//!   key is checked alone, and keys are checked in parallel, largest first.
//! * Per key: the Wing & Gong search with Lowe's memoisation, as Porcupine does
//!   it (in the sibling file `linearizable_window.rs`, with the window search).
//!   Operations that share an instant overlap. The search is exponential in
//!   the worst case, so each key has a step budget; running out yields
//!   [`KeyVerdict::GaveUp`], never a silent pass.
//! * An operation with an unknown outcome may take effect at any moment after
//!   its call, or never: it is *optional* and has no return. An unknown write
//!   whose value no read returned cannot change any verdict (remove it from
//!   any valid order and that order stays valid), so it is dropped up front;
//!   this keeps timeouts from inflating the search.
//! * A bare "no" does not help anyone debug a store, so a failing key is
//!   reduced to a small window of operations that no order explains, from any
//!   value the key may have held before them (see `Windows` in the sibling
//!   file for the method and why such a window proves the violation). A
//!   window is looked for where the search got stuck even when it ran out of
//!   steps: a failing window decides the key then too.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use bytes::Bytes;

use super::linearizable_window::check_key;

/// How an operation ended as its client saw it; it decides what the checker may assume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: the operation took effect once, between its call and its return.
    Ok,
    /// Refused: the operation certainly took no effect, so the checker ignores it.
    Fail,
    /// The client gave up (timeout, lost connection): it may have taken effect, at any later time, or never.
    Unknown,
}

/// The command an operation ran; each acts on the register of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Writes a value (optionally with an expiry, see [`Operation::ttl_ms`]).
    Set,
    /// Reads the value, or learns that the key is absent.
    Get,
    /// Removes the key: the register becomes absent.
    Del,
    /// Gives the key an expiry; keys that have one are not checked, as their values vanish by design.
    Expire,
}

/// One client operation with its real-time interval: the unit of a recorded history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Which client issued it; only shown in reports (each client is sequential).
    pub client: u32,
    /// The command.
    pub kind: Kind,
    /// The key it acted on; keys are checked independently.
    pub key: Bytes,
    /// Set: the value written; Get: the value read (None = not found); Del/Expire: None.
    pub value: Option<Bytes>,
    /// A set that also gave the key an expiry.
    pub ttl_ms: Option<u64>,
    /// When the client sent it, on one monotonic clock shared by all clients (ns).
    pub call_ns: u64,
    /// When the client got the answer; for [`Outcome::Unknown`], when it gave up (ns).
    pub return_ns: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// Default for [`Limits::max_steps_per_key`]. A step visits one event of the
/// search (about 50 ns) and keeps at most one small memo entry, so a key that
/// exhausts the default has cost about 0.1 s and some 15 MB on a 2-core lab
/// machine, while real keys need far fewer: in the bench, a 10,000-operation
/// key written by 16 clients, with slow operations spanning up to 20 ms, needs
/// about 220,000, and keys of a 100,000-operation, 1,000-key history a few thousand.
pub const DEFAULT_MAX_STEPS_PER_KEY: u64 = 2_000_000;

/// Bounds on the work spent per key, so one pathological key cannot stall a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Search steps allowed to decide one key; a key not shown linearizable may spend as
    /// many again looking for a small failing window (which also decides a key whose
    /// search ran out).
    pub max_steps_per_key: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_steps_per_key: DEFAULT_MAX_STEPS_PER_KEY,
        }
    }
}

/// What the checker found for one key that was not shown linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyVerdict {
    /// No order explains the key's history; `window` is a small part of it that no order explains either.
    Violation {
        /// The key.
        key: Bytes,
        /// The operations of the window, sorted by call.
        window: Vec<Operation>,
        /// Writes that could take effect among the window's operations without being part of
        /// it: called before it and still running when it started, or called after its last
        /// call but before its last return; sorted by call. The window fails even if any of
        /// them took effect anywhere inside it, or never.
        in_flight: Vec<Operation>,
        /// True when the window begins at the key's first operation and is only shown to fail
        /// given that the key starts absent; false when no value held before it explains it.
        from_initial: bool,
    },
    /// The step budget ran out: whether the key is linearizable is unknown.
    GaveUp {
        /// The key.
        key: Bytes,
        /// How many of its operations were checked.
        ops: usize,
        /// Steps spent before giving up.
        steps: u64,
    },
}

/// The result of [`check`]: what was checked and every key that was not shown linearizable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Operations checked (failed operations and reads without an answer are not counted).
    pub operations: usize,
    /// Keys checked.
    pub keys: usize,
    /// Keys left out because some operation on them set an expiry.
    pub keys_skipped_expiry: usize,
    /// Keys not shown linearizable, sorted by key; empty when the history is linearizable.
    pub verdicts: Vec<KeyVerdict>,
}

impl Report {
    /// True only when every checked key was shown linearizable (a key that gave up counts against it).
    pub fn is_linearizable(&self) -> bool {
        self.verdicts.is_empty()
    }

    /// True when the search gave up on some key, so the report cannot be read as a pass.
    pub fn gave_up(&self) -> bool {
        self.verdicts
            .iter()
            .any(|v| matches!(v, KeyVerdict::GaveUp { .. }))
    }
}

/// Checks `ops` (any order, any mix of keys) for linearizability, key by key, in parallel.
///
/// Failed operations and reads that failed or got no answer are ignored; keys
/// that ever received an expiry (an `expire`, or a `set` with `ttl_ms`, that
/// did not fail) are skipped and counted. A return time before the call time
/// is read as equal to it, and a set without a value as writing absent.
pub fn check(ops: &[Operation], limits: &Limits) -> Report {
    let mut by_key: HashMap<&Bytes, Vec<&Operation>> = HashMap::new();
    for op in ops {
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut report = Report::default();
    let mut jobs = Vec::new();
    for (key, list) in by_key {
        let expires = |o: &&Operation| {
            o.outcome != Outcome::Fail
                && (o.kind == Kind::Expire || (o.kind == Kind::Set && o.ttl_ms.is_some()))
        };
        if list.iter().any(expires) {
            report.keys_skipped_expiry += 1;
            continue;
        }
        let kept: Vec<&Operation> = list
            .into_iter()
            .filter(|o| match o.kind {
                Kind::Get => o.outcome == Outcome::Ok,
                _ => o.outcome != Outcome::Fail,
            })
            .collect();
        if !kept.is_empty() {
            report.operations += kept.len();
            report.keys += 1;
            jobs.push((key, kept));
        }
    }
    // Largest keys first, claimed one at a time: the long ones start early and the rest fill in.
    jobs.sort_by_key(|(key, list)| (Reverse(list.len()), *key));
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut found = Vec::new();
        while let Some((key, list)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
            found.extend(check_key(key, list, limits));
        }
        found
    };
    let threads = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len());
    if threads <= 1 {
        report.verdicts = worker();
    } else {
        thread::scope(|scope| {
            let handles: Vec<_> = (0..threads).map(|_| scope.spawn(worker)).collect();
            for handle in handles {
                let found = handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                report.verdicts.extend(found);
            }
        });
    }
    report
        .verdicts
        .sort_by(|a, b| verdict_key(a).cmp(verdict_key(b)));
    report
}

fn verdict_key(v: &KeyVerdict) -> &Bytes {
    match v {
        KeyVerdict::Violation { key, .. } | KeyVerdict::GaveUp { key, .. } => key,
    }
}

/// At most this many keys of each kind are detailed in a report.
const SHOWN_KEYS: usize = 5;
/// At most this many operations of a window are listed.
const SHOWN_OPS: usize = 40;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let skipped = match self.keys_skipped_expiry {
            0 => String::new(),
            n => format!("; {} with expiries not checked", count(n, "key")),
        };
        let checked = format!(
            "{} on {}",
            count(self.operations, "operation"),
            count(self.keys, "key")
        );
        if self.is_linearizable() {
            return write!(f, "linearizable: {checked}{skipped}");
        }
        let bad = self
            .verdicts
            .iter()
            .filter(|v| matches!(v, KeyVerdict::Violation { .. }))
            .count();
        let unsure = self.verdicts.len() - bad;
        for (violation, total) in [(true, bad), (false, unsure)] {
            let listed = self
                .verdicts
                .iter()
                .filter(|v| matches!(v, KeyVerdict::Violation { .. }) == violation);
            for verdict in listed.take(SHOWN_KEYS) {
                write_verdict(f, verdict)?;
            }
            if let Some(more @ 1..) = total.checked_sub(SHOWN_KEYS) {
                let what = if violation {
                    "not linearizable"
                } else {
                    "where the search gave up"
                };
                writeln!(f, "and {} {what}", count(more, "more key"))?;
            }
        }
        let (bad, unsure) = (count(bad, "key"), count(unsure, "key"));
        write!(
            f,
            "checked {checked}: {bad} not linearizable, {unsure} undecided{skipped}"
        )
    }
}

/// One key's verdict: a violation with its window, or a search that gave up.
fn write_verdict(f: &mut fmt::Formatter<'_>, verdict: &KeyVerdict) -> fmt::Result {
    let (key, window, in_flight, from_initial) = match verdict {
        KeyVerdict::Violation {
            key,
            window,
            in_flight,
            from_initial,
        } => (key, window, in_flight, from_initial),
        KeyVerdict::GaveUp { key, ops, steps } => {
            let (key, ops) = (quoted(key), count(*ops, "operation"));
            return writeln!(
                f,
                "undecided: the search gave up after {steps} steps on key {key} with {ops}, so whether that key is linearizable is unknown (a larger max_steps_per_key may decide it)"
            );
        }
    };
    let these = match window.len() {
        1 => "this operation".to_string(),
        n => format!("these {n} operations"),
    };
    writeln!(
        f,
        "not linearizable: key {}: no order explains {these}:",
        quoted(key)
    )?;
    let base = window.first().map_or(0, |o| o.call_ns);
    write_ops(f, window, base)?;
    if !in_flight.is_empty() {
        writeln!(
            f,
            "  even if these writes in flight took effect anywhere among them, or never:"
        )?;
        write_ops(f, in_flight, base)?;
    }
    match from_initial {
        true => writeln!(
            f,
            "  (given that the key is absent before the first of them)"
        ),
        false => writeln!(f, "  (whatever value the key held before them)"),
    }
}

/// Lists operations, at most [`SHOWN_OPS`] of them, times in ms from `base`.
fn write_ops(f: &mut fmt::Formatter<'_>, ops: &[Operation], base: u64) -> fmt::Result {
    for op in ops.iter().take(SHOWN_OPS) {
        writeln!(f, "  {}", op_line(op, base))?;
    }
    match ops.len().checked_sub(SHOWN_OPS) {
        Some(more @ 1..) => writeln!(f, "  … and {} more", count(more, "operation")),
        _ => Ok(()),
    }
}

/// "1 key", "2 keys".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A key or value in double quotes: UTF-8 as escaped text, other bytes as `\xNN`.
fn quoted(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        out.extend(chunk.valid().chars().flat_map(char::escape_debug));
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

/// One operation as a report line, times in ms from `base`.
fn op_line(op: &Operation, base: u64) -> String {
    let value = |v: &Option<Bytes>| v.as_deref().map_or_else(|| "not found".to_string(), quoted);
    let what = match op.kind {
        Kind::Set => format!("set {}", value(&op.value)),
        Kind::Get => format!("get → {}", value(&op.value)),
        Kind::Del => "del".to_string(),
        Kind::Expire => "expire".to_string(),
    };
    let ms = |ns: u64| {
        let delta = i128::from(ns) - i128::from(base);
        let (sign, ns) = (if delta < 0 { "-" } else { "" }, delta.unsigned_abs());
        format!("{sign}{}.{:06} ms", ns / 1_000_000, ns % 1_000_000)
    };
    let outcome = match op.outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Unknown => "unknown",
    };
    format!(
        "client {}  {what}  [{} → {}] {outcome}",
        op.client,
        ms(op.call_ns),
        ms(op.return_ns)
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A test history from `;`-separated operations written
    /// `[@key] client op [value] call return [fail|unknown]`: key "k" unless given, a value
    /// only for set and get (`-`: the get found nothing), outcome ok unless given.
    pub(crate) fn history(text: &str) -> Vec<Operation> {
        let op = |spec: &str| {
            let mut words: Vec<&str> = spec.split_whitespace().collect();
            let key = words[0]
                .strip_prefix('@')
                .map_or("k", |key| words.remove(0).get(1..).unwrap_or(key));
            let kind = match words[1] {
                "set" => Kind::Set,
                "get" => Kind::Get,
                "del" => Kind::Del,
                _ => Kind::Expire,
            };
            let value = matches!(kind, Kind::Set | Kind::Get).then(|| words.remove(2));
            let value = value
                .filter(|v| *v != "-")
                .map(|v| Bytes::copy_from_slice(v.as_bytes()));
            let outcome = match words.get(4) {
                Some(&"fail") => Outcome::Fail,
                Some(&"unknown") => Outcome::Unknown,
                _ => Outcome::Ok,
            };
            let n = |i: usize| words[i].parse::<u64>().expect("a number");
            let (client, call_ns, return_ns) = (n(0) as u32, n(2), n(3));
            let key = Bytes::copy_from_slice(key.as_bytes());
            Operation {
                client,
                kind,
                key,
                value,
                ttl_ms: None,
                call_ns,
                return_ns,
                outcome,
            }
        };
        text.split(';').map(op).collect()
    }

    pub(crate) fn run(ops: &[Operation]) -> Report {
        check(ops, &Limits::default())
    }

    pub(crate) fn the_window(report: &Report) -> &[Operation] {
        match report.verdicts.as_slice() {
            [KeyVerdict::Violation { window, .. }] => window,
            other => panic!("expected one violation, got {other:?}"),
        }
    }

    fn linearizable(text: &str) -> bool {
        run(&history(text)).is_linearizable()
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let report = run(&history(
            "1 set a 0 10; 2 get a 20 30; 1 set b 40 50; 2 get b 60 70",
        ));
        assert_eq!(report.to_string(), "linearizable: 4 operations on 1 key");
    }

    #[test]
    fn concurrent_read_may_see_either_value_but_nothing_else() {
        for (seen, ok) in [("-", true), ("a", true), ("b", true), ("c", false)] {
            let text = format!("1 set a 0 10; 2 set b 5 20; 3 get {seen} 6 15");
            assert_eq!(linearizable(&text), ok, "{text}");
        }
    }

    #[test]
    fn operations_sharing_an_instant_overlap() {
        assert!(linearizable("1 set a 0 10; 2 get - 10 20"));
        assert!(!linearizable("1 set a 0 10; 2 get - 11 20"));
    }

    #[test]
    fn stale_read_gives_the_small_window() {
        let ops = history(
            "5 set x 0 3; 6 get x 4 6; 1 set a 7 10; 4 get a 11 12; 1 set b 20 30; 2 get a 40 50; 3 get b 60 70",
        );
        let report = run(&ops);
        assert_eq!(the_window(&report), &ops[4..6]);
        let expected = [
            "not linearizable: key \"k\": no order explains these 2 operations:",
            "  client 1  set \"b\"  [0.000000 ms → 0.000010 ms] ok",
            "  client 2  get → \"a\"  [0.000020 ms → 0.000030 ms] ok",
            "  (whatever value the key held before them)",
            "checked 7 operations on 1 key: 1 key not linearizable, 0 keys undecided",
        ];
        assert_eq!(report.to_string(), expected.join("\n"));
    }

    #[test]
    fn lost_write_is_a_violation() {
        let ops = history(
            "1 set old 0 1000000; 2 set new 2000000 3000000; 3 get new 2000000 4000000; 1 get old 9000000 10000000",
        );
        let report = run(&ops);
        assert_eq!(the_window(&report), &ops[2..], "{report}");
        let text = report.to_string();
        let in_flight = "even if these writes in flight took effect anywhere among them, or never:\n  client 2  set \"new\"  [0.000000 ms → 1.000000 ms] ok\n";
        assert!(text.contains(in_flight), "{text}");
    }

    #[test]
    fn unknown_write_that_is_read_later_is_fine() {
        // It may take effect after the client gave up, and after a read that missed it.
        let text = "1 set a 0 10 unknown; 2 get - 20 30; 2 get a 40 50; 3 get a 60 70";
        assert!(linearizable(text));
        // But once: it cannot come back after being overwritten.
        assert!(!linearizable(&format!(
            "{text}; 4 set b 80 90; 2 get a 100 110"
        )));
    }

    #[test]
    fn unknown_write_never_read_is_fine() {
        let report = run(&history(
            "1 set a 0 10; 2 set b 20 30 unknown; 2 del 35 36 unknown; 3 get a 40 50",
        ));
        assert!(report.is_linearizable());
        assert_eq!(report.operations, 4);
    }

    #[test]
    fn failed_write_that_is_read_is_a_violation() {
        let ops = history("1 set a 0 10 fail; 2 get a 20 30");
        let report = run(&ops);
        assert_eq!((the_window(&report), report.operations), (&ops[1..], 1));
        // Reads without an answer are not checked.
        assert!(linearizable(
            "1 set a 0 10; 2 get zz 20 30 unknown; 2 get zz 40 50 fail"
        ));
    }

    #[test]
    fn delete_then_read_absent() {
        assert!(linearizable("1 set a 0 10; 1 del 20 30; 2 get - 40 50"));
        assert!(!linearizable("1 set a 0 10; 1 del 20 30; 2 get a 40 50"));
        // A key may be absent before a window, so the read of absent alone is no proof.
        let ops = history("1 set a 0 10; 2 get a 20 30; 3 get - 40 50; 4 get a 60 70");
        assert_eq!(the_window(&run(&ops)), &ops[1..3]);
    }

    #[test]
    fn a_window_relies_on_the_absent_start_only_when_it_must() {
        let report = run(&history("1 get a 0 10; 2 set a 20 30"));
        assert!(matches!(
            report.verdicts[..],
            [KeyVerdict::Violation {
                from_initial: false,
                ..
            }]
        ));
        // From "a" the order would be: get, set b, set a, get. From absent, set a must come
        // before the first get, so before set b, and the second get would see "b".
        let ops = history("1 get a 0 10; 2 set a 5 30; 3 set b 12 14; 1 get a 16 18");
        let report = run(&ops);
        assert_eq!(the_window(&report), &ops[..]);
        assert!(matches!(
            report.verdicts[..],
            [KeyVerdict::Violation {
                from_initial: true,
                ..
            }]
        ));
        assert!(
            report
                .to_string()
                .contains("(given that the key is absent before the first of them)")
        );
    }

    #[test]
    fn expiring_keys_are_skipped() {
        let mut ops = history(
            "1 set a 0 10; 2 get - 20 30; @e 3 expire 0 10; @e 3 set b 0 5; @e 2 get - 20 30; @f 4 set z 0 1; @g 1 expire 0 1 fail",
        );
        ops[0].ttl_ms = Some(5);
        let report = run(&ops);
        assert_eq!(
            (report.keys, report.keys_skipped_expiry, report.operations),
            (1, 2, 1)
        );
        let expected = "linearizable: 1 operation on 1 key; 2 keys with expiries not checked";
        assert_eq!(report.to_string(), expected);
    }

    #[test]
    fn many_keys_report_only_the_bad_ones_in_key_order() {
        let read = |k: u32| if k % 7 == 3 { "b" } else { "a" };
        let text: Vec<String> = (0..50u32)
            .map(|k| format!("@key{k} 1 set a 0 10; @key{k} 2 get {} 20 30", read(k)))
            .collect();
        let report = run(&history(&text.join(";")));
        let keys: Vec<&[u8]> = report
            .verdicts
            .iter()
            .map(|v| &verdict_key(v)[..])
            .collect();
        assert_eq!(
            keys,
            ["key10", "key17", "key24", "key3", "key31", "key38", "key45"].map(str::as_bytes)
        );
        let text = report.to_string();
        assert_eq!(text.matches("not linearizable: key").count(), 5, "{text}");
        let end = "and 2 more keys not linearizable\nchecked 100 operations on 50 keys: 7 keys not linearizable, 0 keys undecided";
        assert!(text.ends_with(end), "{text}");
    }

    use crate::lab::rng::Rng;

    /// Clients run against a simulated atomic register: each operation takes effect at one
    /// instant inside its interval (or, when unknown, maybe never, maybe after the client gave up).
    pub(crate) fn simulate(
        seed: u64,
        clients: u32,
        per_client: usize,
        keys: u64,
    ) -> Vec<Operation> {
        let mut rng = Rng::new(seed);
        let mut planned = Vec::new();
        let mut written = 0;
        for client in 0..clients {
            let mut t = rng.below(1000);
            for _ in 0..per_client {
                let call = t + rng.below(500);
                let effect = call + 1 + rng.below(3000);
                let mut ret = effect + rng.below(3000);
                let key = Bytes::from(format!("k{}", rng.below(keys)));
                let (kind, value) = match rng.below(100) {
                    0..40 => {
                        written += 1;
                        (Kind::Set, Some(Bytes::from(format!("v{written}"))))
                    }
                    40..50 => (Kind::Del, None),
                    _ => (Kind::Get, None),
                };
                let (mut outcome, mut happens) = (Outcome::Ok, true);
                if rng.below(100) < 5 {
                    (outcome, happens) = (Outcome::Unknown, rng.below(2) == 0);
                    ret = call + rng.below(4000);
                }
                let (ttl_ms, call_ns, return_ns) = (None, call, ret);
                let op = Operation {
                    client,
                    kind,
                    key,
                    value,
                    ttl_ms,
                    call_ns,
                    return_ns,
                    outcome,
                };
                planned.push((effect, happens, op));
                t = ret;
            }
        }
        planned.sort_by_key(|p| p.0);
        let mut registers: HashMap<Bytes, Bytes> = HashMap::new();
        for (_, happens, op) in &mut planned {
            match op.kind {
                Kind::Get => op.value = registers.get(&op.key).filter(|_| *happens).cloned(),
                _ if !*happens => {}
                Kind::Set => {
                    _ = registers.insert(op.key.clone(), op.value.clone().unwrap_or_default())
                }
                _ => _ = registers.remove(&op.key),
            }
        }
        planned.into_iter().map(|p| p.2).collect()
    }

    #[test]
    fn simulated_atomic_registers_are_linearizable() {
        for seed in 0..20 {
            let ops = simulate(seed, 8, 60, 3);
            let report = run(&ops);
            assert!(report.is_linearizable(), "seed {seed}: {report}");
            assert_eq!(report.keys, 3);
        }
        let report = run(&simulate(99, 16, 400, 20));
        assert!(report.is_linearizable(), "{report}");
    }

    #[test]
    fn a_read_of_a_value_never_written_is_caught() {
        for seed in 0..20 {
            let mut ops = simulate(seed, 8, 60, 3);
            let reads: Vec<usize> = (0..ops.len())
                .filter(|&i| ops[i].kind == Kind::Get && ops[i].outcome == Outcome::Ok)
                .collect();
            let target = reads[Rng::new(seed).below(reads.len() as u64) as usize];
            ops[target].value = Some(Bytes::from_static(b"never written"));
            let report = run(&ops);
            assert_eq!(report.verdicts.len(), 1, "seed {seed}: {report}");
            let window = the_window(&report);
            assert!(window.contains(&ops[target]), "seed {seed}: {report}");
            let others = window.iter().filter(|o| o.kind == Kind::Get).count();
            assert_eq!(
                others, 1,
                "only the bad read should be needed, seed {seed}: {report}"
            );
        }
    }
}
