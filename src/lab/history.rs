//! The history of client operations the lab issued (DESIGN §14), and the checker that says which
//! acknowledged writes are gone.
//!
//! A write is *lost* when it was acknowledged and the value read back afterwards cannot have come
//! from it or from any write that may legitimately have replaced it: a write (acknowledged or of
//! unknown outcome) that did not finish before it started. Keys that were given an expiry are not
//! checked (their value may vanish by design).

use super::linearizable::{Kind, Operation, Outcome};
use crate::command::{OpKind, OpRecord};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// The history's operation outcome for a command-layer outcome.
pub fn outcome(o: crate::command::Outcome) -> Outcome {
    match o {
        crate::command::Outcome::Ok => Outcome::Ok,
        crate::command::Outcome::Error => Outcome::Fail,
        crate::command::Outcome::Unknown => Outcome::Unknown,
    }
}

/// Every recorded operation (DESIGN §14), with times in nanoseconds since the history began.
#[derive(Debug)]
pub struct History {
    origin: Instant,
    ops: Mutex<Vec<Operation>>,
    clients: AtomicU32,
}

impl Default for History {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            ops: Mutex::new(Vec::new()),
            clients: AtomicU32::new(0),
        }
    }
}

impl History {
    /// A number for a new client (a shell session, one worker of a load, the checker).
    pub fn new_client(&self) -> u32 {
        self.clients.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Nanoseconds from the start of the history to `t`.
    pub fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin).as_nanos() as u64
    }

    /// Records an operation.
    pub fn record(&self, op: Operation) {
        self.ops.lock().push(op);
    }

    /// Records many operations at once.
    pub fn record_all(&self, ops: impl IntoIterator<Item = Operation>) {
        self.ops.lock().extend(ops);
    }

    /// Records a command-layer operation by `client`, sent at `started`, answered at `finished`.
    pub fn record_command(&self, client: u32, r: OpRecord, started: Instant, finished: Instant) {
        self.record(Operation {
            client,
            kind: match r.kind {
                OpKind::Set => Kind::Set,
                OpKind::Get => Kind::Get,
                OpKind::Del => Kind::Del,
                OpKind::Expire => Kind::Expire,
            },
            key: r.key,
            value: r.value,
            ttl_ms: r.ttl_ms,
            call_ns: self.ns(started),
            return_ns: self.ns(finished),
            outcome: outcome(r.outcome),
        });
    }

    /// All operations so far, in the order they were recorded.
    pub fn ops(&self) -> Vec<Operation> {
        self.ops.lock().clone()
    }

    /// How many operations are recorded.
    pub fn len(&self) -> usize {
        self.ops.lock().len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `op` may change its key: a write that did not certainly fail.
fn may_write(op: &Operation) -> bool {
    matches!(op.kind, Kind::Set | Kind::Del) && op.outcome != Outcome::Fail
}

/// Whether `op` may make its key's value vanish by design (an expiry that did not certainly
/// fail: an `expire` answered "record not found" is recorded as failed, it changed nothing).
fn expiring(op: &Operation) -> bool {
    (op.kind == Kind::Expire || op.ttl_ms.is_some()) && op.outcome != Outcome::Fail
}

/// The value a write leaves (`None` for a delete).
fn written(op: &Operation) -> Option<&Bytes> {
    match op.kind {
        Kind::Set => op.value.as_ref(),
        _ => None,
    }
}

/// The checker's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostWrites {
    /// Acknowledged writes checked.
    pub acknowledged: u64,
    /// Acknowledged writes whose effect is gone: key, what was acknowledged, what was read.
    pub lost: Vec<(Bytes, Option<Bytes>, Option<Bytes>)>,
    /// Keys not checked because they were given an expiry.
    pub unchecked_keys: u64,
}

impl LostWrites {
    /// `acknowledged N, lost M` and up to ten lost keys.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "acknowledged {}, lost {}",
            self.acknowledged,
            self.lost.len()
        );
        if !self.lost.is_empty() {
            let shown: Vec<String> = self
                .lost
                .iter()
                .take(10)
                .map(|(k, want, got)| {
                    let show = |v: &Option<Bytes>| match v {
                        Some(v) => format!("{:?}", String::from_utf8_lossy(v)),
                        None => "nothing".into(),
                    };
                    format!(
                        "{} (wrote {}, read {})",
                        String::from_utf8_lossy(k),
                        show(want),
                        show(got)
                    )
                })
                .collect();
            s.push_str(&format!("; lost: {}", shown.join(", ")));
            if self.lost.len() > 10 {
                s.push_str(&format!(" and {} more", self.lost.len() - 10));
            }
        }
        s
    }
}

/// Keys the checkers read back: every key written (or possibly written) without an expiry.
pub fn keys_to_read(ops: &[Operation]) -> Vec<Bytes> {
    let mut keys: BTreeMap<&Bytes, bool> = BTreeMap::new();
    for op in ops.iter().filter(|o| may_write(o) || expiring(o)) {
        *keys.entry(&op.key).or_insert(false) |= expiring(op);
    }
    keys.into_iter()
        .filter(|(_, expiring)| !expiring)
        .map(|(k, _)| k.clone())
        .collect()
}

/// Decides which acknowledged writes are lost, given what each key reads now.
pub fn check(ops: &[Operation], read: &BTreeMap<Bytes, Option<Bytes>>) -> LostWrites {
    let mut by_key: BTreeMap<&Bytes, Vec<&Operation>> = BTreeMap::new();
    for op in ops.iter().filter(|o| may_write(o) || expiring(o)) {
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut result = LostWrites {
        acknowledged: 0,
        lost: Vec::new(),
        unchecked_keys: 0,
    };
    for (key, ops) in by_key {
        if ops.iter().any(|o| expiring(o)) {
            result.unchecked_keys += 1;
            continue;
        }
        let Some(now) = read.get(key) else { continue };
        for a in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
            result.acknowledged += 1;
            // Writes that may stand in place of `a`: itself, any acknowledged write that did not
            // finish before it started, and any write of unknown outcome (it may land at any time
            // after its call, even after its client gave up: a held link delivers it late).
            let explained = ops.iter().any(|w| {
                (w.outcome == Outcome::Unknown || w.return_ns >= a.call_ns)
                    && written(w) == now.as_ref()
            });
            if !explained {
                result
                    .lost
                    .push((key.clone(), written(a).cloned(), now.clone()));
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Clock;
    impl Clock {
        fn now() -> Self {
            Self
        }
    }

    #[derive(Clone)]
    enum Effect {
        Set(&'static str),
        Delete,
        Expiring,
    }

    fn op(_: &Clock, key: &str, effect: Effect, outcome: Outcome, from: u64, to: u64) -> Operation {
        let (kind, value, ttl_ms) = match effect {
            Effect::Set(v) => (Kind::Set, Some(Bytes::copy_from_slice(v.as_bytes())), None),
            Effect::Delete => (Kind::Del, None, None),
            Effect::Expiring => (Kind::Set, Some(Bytes::from_static(b"t")), Some(1000)),
        };
        Operation {
            client: 1,
            kind,
            key: Bytes::copy_from_slice(key.as_bytes()),
            value,
            ttl_ms,
            call_ns: from * 1_000_000,
            return_ns: to * 1_000_000,
            outcome,
        }
    }

    fn set(v: &'static str) -> Effect {
        Effect::Set(v)
    }

    fn reads(pairs: &[(&str, Option<&str>)]) -> BTreeMap<Bytes, Option<Bytes>> {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    Bytes::copy_from_slice(k.as_bytes()),
                    v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                )
            })
            .collect()
    }

    #[test]
    fn a_lost_write_is_counted() {
        let c = Clock::now();
        let ops = vec![
            op(&c, "a", set("1"), Outcome::Ok, 0, 1),
            op(&c, "b", set("2"), Outcome::Ok, 0, 1),
        ];
        let r = check(&ops, &reads(&[("a", Some("1")), ("b", None)]));
        assert_eq!(r.acknowledged, 2);
        assert_eq!(r.lost.len(), 1);
        assert_eq!(
            r.summary(),
            "acknowledged 2, lost 1; lost: b (wrote \"2\", read nothing)"
        );
    }

    #[test]
    fn an_unknown_outcome_write_that_landed_explains_the_value() {
        let c = Clock::now();
        let ops = vec![
            op(&c, "k", set("1"), Outcome::Ok, 0, 1),
            op(&c, "k", set("2"), Outcome::Unknown, 2, 3),
        ];
        let r = check(&ops, &reads(&[("k", Some("2"))]));
        assert_eq!((r.acknowledged, r.lost.len()), (1, 0));
    }

    #[test]
    fn an_unknown_outcome_write_that_did_not_land_loses_nothing() {
        let c = Clock::now();
        let ops = vec![
            op(&c, "k", set("1"), Outcome::Ok, 0, 1),
            op(&c, "k", set("2"), Outcome::Unknown, 2, 3),
        ];
        let r = check(&ops, &reads(&[("k", Some("1"))]));
        assert_eq!((r.acknowledged, r.lost.len()), (1, 0));
        // ... and alone, it is not an acknowledged write at all.
        let only_unknown = vec![op(&c, "u", set("9"), Outcome::Unknown, 0, 1)];
        assert_eq!(check(&only_unknown, &reads(&[("u", None)])).acknowledged, 0);
    }

    #[test]
    fn a_key_overwritten_later_is_not_lost_but_its_last_write_must_stand() {
        let c = Clock::now();
        let ops = vec![
            op(&c, "k", set("1"), Outcome::Ok, 0, 1),
            op(&c, "k", set("2"), Outcome::Ok, 2, 3),
            op(&c, "d", set("x"), Outcome::Ok, 0, 1),
            op(&c, "d", Effect::Delete, Outcome::Ok, 2, 3),
        ];
        let r = check(&ops, &reads(&[("k", Some("2")), ("d", None)]));
        assert_eq!((r.acknowledged, r.lost.len()), (4, 0));
        // The later write vanished: the earlier value came back. Only the later one is lost.
        let r = check(&ops, &reads(&[("k", Some("1")), ("d", None)]));
        assert_eq!(r.lost.len(), 1);
        assert_eq!(r.lost[0].1.as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn concurrent_writes_may_land_in_either_order() {
        let c = Clock::now();
        let ops = vec![
            op(&c, "k", set("1"), Outcome::Ok, 0, 5),
            op(&c, "k", set("2"), Outcome::Ok, 1, 4),
        ];
        assert!(check(&ops, &reads(&[("k", Some("1"))])).lost.is_empty());
        assert!(check(&ops, &reads(&[("k", Some("2"))])).lost.is_empty());
    }

    #[test]
    fn refused_writes_explain_nothing_and_expiring_keys_are_skipped() {
        let c = Clock::now();
        let ops = vec![
            op(&c, "k", set("1"), Outcome::Ok, 0, 1),
            op(&c, "k", set("2"), Outcome::Fail, 2, 3),
            op(&c, "t", set("1"), Outcome::Ok, 0, 1),
            op(&c, "t", Effect::Expiring, Outcome::Ok, 2, 3),
        ];
        let r = check(&ops, &reads(&[("k", Some("2")), ("t", None)]));
        assert_eq!(r.lost.len(), 1, "a refused write cannot explain its value");
        assert_eq!(r.unchecked_keys, 1);
        assert_eq!(keys_to_read(&ops), vec![Bytes::from_static(b"k")]);
    }

    #[test]
    fn an_expiry_that_certainly_failed_does_not_hide_the_key() {
        let c = Clock::now();
        let ops = vec![
            op(&c, "h", Effect::Expiring, Outcome::Fail, 0, 1),
            op(&c, "h", set("1"), Outcome::Ok, 2, 3),
        ];
        let r = check(&ops, &reads(&[("h", None)]));
        assert_eq!((r.unchecked_keys, r.lost.len()), (0, 1));
        assert_eq!(keys_to_read(&ops), vec![Bytes::from_static(b"h")]);
    }
}
