//! The history of client writes the lab issued, and the checker that says which acknowledged
//! writes are gone.
//!
//! A write is *lost* when it was acknowledged and the value read back afterwards cannot have come
//! from it or from any write that may legitimately have replaced it: a write (acknowledged or of
//! unknown outcome) that did not finish before it started. Keys that were given an expiry are not
//! checked (their value may vanish by design).

use crate::command::{Outcome, WriteRecord};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// What a write did to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Set the value.
    Set(Bytes),
    /// Deleted the key.
    Delete,
    /// Set an expiry (the key is not checked).
    Expiring,
}

/// One write with its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The key.
    pub key: Bytes,
    /// What it did.
    pub effect: Effect,
    /// How it ended.
    pub outcome: Outcome,
    /// When it was issued.
    pub started: Instant,
    /// When its answer came.
    pub finished: Instant,
}

impl Op {
    /// From a command-layer record issued at `started`.
    pub fn from_record(w: WriteRecord, started: Instant, finished: Instant) -> Self {
        Self {
            key: w.key,
            effect: match w.value {
                _ if w.expiring => Effect::Expiring,
                Some(v) => Effect::Set(v),
                None => Effect::Delete,
            },
            outcome: w.outcome,
            started,
            finished,
        }
    }

    fn value(&self) -> Option<&Bytes> {
        match &self.effect {
            Effect::Set(v) => Some(v),
            _ => None,
        }
    }
}

/// Every recorded write.
#[derive(Debug, Default)]
pub struct History {
    ops: Mutex<Vec<Op>>,
}

impl History {
    /// Records a write.
    pub fn record(&self, op: Op) {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).push(op);
    }

    /// All writes so far.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).clone()
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

/// Keys the checker needs read back (every key with an acknowledged write and no expiry).
pub fn keys_to_read(ops: &[Op]) -> Vec<Bytes> {
    let mut keys: BTreeMap<&Bytes, bool> = BTreeMap::new();
    for op in ops {
        let expiring = op.effect == Effect::Expiring;
        let e = keys.entry(&op.key).or_insert(false);
        *e |= expiring;
    }
    keys.into_iter()
        .filter(|(k, expiring)| {
            !expiring && ops.iter().any(|o| o.key == **k && o.outcome == Outcome::Ok)
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// Decides which acknowledged writes are lost, given what each key reads now.
pub fn check(ops: &[Op], read: &BTreeMap<Bytes, Option<Bytes>>) -> LostWrites {
    let mut by_key: BTreeMap<&Bytes, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut result = LostWrites {
        acknowledged: 0,
        lost: Vec::new(),
        unchecked_keys: 0,
    };
    for (key, ops) in by_key {
        if ops.iter().any(|o| o.effect == Effect::Expiring) {
            result.unchecked_keys += 1;
            continue;
        }
        let Some(now) = read.get(key) else { continue };
        for a in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
            result.acknowledged += 1;
            // Writes that may stand in place of `a`: itself, and any that did not finish before
            // it started, acknowledged or of unknown outcome.
            let explained = ops.iter().any(|w| {
                w.outcome != Outcome::Error && w.finished >= a.started && w.value() == now.as_ref()
            });
            if !explained {
                result
                    .lost
                    .push((key.clone(), a.value().cloned(), now.clone()));
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct Clock(Instant);
    impl Clock {
        fn at(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    fn op(c: &Clock, key: &str, effect: Effect, outcome: Outcome, from: u64, to: u64) -> Op {
        Op {
            key: Bytes::copy_from_slice(key.as_bytes()),
            effect,
            outcome,
            started: c.at(from),
            finished: c.at(to),
        }
    }

    fn set(v: &str) -> Effect {
        Effect::Set(Bytes::copy_from_slice(v.as_bytes()))
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
        let c = Clock(Instant::now());
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
        let c = Clock(Instant::now());
        let ops = vec![
            op(&c, "k", set("1"), Outcome::Ok, 0, 1),
            op(&c, "k", set("2"), Outcome::Unknown, 2, 3),
        ];
        let r = check(&ops, &reads(&[("k", Some("2"))]));
        assert_eq!((r.acknowledged, r.lost.len()), (1, 0));
    }

    #[test]
    fn an_unknown_outcome_write_that_did_not_land_loses_nothing() {
        let c = Clock(Instant::now());
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
        let c = Clock(Instant::now());
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
        let c = Clock(Instant::now());
        let ops = vec![
            op(&c, "k", set("1"), Outcome::Ok, 0, 5),
            op(&c, "k", set("2"), Outcome::Ok, 1, 4),
        ];
        assert!(check(&ops, &reads(&[("k", Some("1"))])).lost.is_empty());
        assert!(check(&ops, &reads(&[("k", Some("2"))])).lost.is_empty());
    }

    #[test]
    fn refused_writes_explain_nothing_and_expiring_keys_are_skipped() {
        let c = Clock(Instant::now());
        let ops = vec![
            op(&c, "k", set("1"), Outcome::Ok, 0, 1),
            op(&c, "k", set("2"), Outcome::Error, 2, 3),
            op(&c, "t", set("1"), Outcome::Ok, 0, 1),
            op(&c, "t", Effect::Expiring, Outcome::Ok, 2, 3),
        ];
        let r = check(&ops, &reads(&[("k", Some("2")), ("t", None)]));
        assert_eq!(r.lost.len(), 1, "a refused write cannot explain its value");
        assert_eq!(r.unchecked_keys, 1);
        assert_eq!(keys_to_read(&ops), vec![Bytes::from_static(b"k")]);
    }
}
