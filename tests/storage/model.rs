//! Random operation sequences against a model: puts, deletes, expiries, reads, rotation, reopen,
//! merge and truncation, compared with an in-memory history after every step.

use crate::support::{open, small_config, visible};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use simplekv::storage::{RecordKind, Write};
use std::collections::HashMap;

#[derive(Clone, Debug)]
struct ModelRecord {
    key: String,
    kind: RecordKind,
    value: String,
    expire_at: u64,
}

/// The log as a list indexed by offset; the visible state is derived from it.
#[derive(Default)]
struct Model {
    log: Vec<ModelRecord>,
}

impl Model {
    fn latest(&self, key: &str) -> Option<&ModelRecord> {
        self.log.iter().rev().find(|r| r.key == key)
    }

    fn visible(&self, key: &str, now: u64) -> Option<String> {
        let r = self.latest(key)?;
        let expired = r.expire_at != 0 && r.expire_at <= now;
        (r.kind != RecordKind::Delete && !expired).then(|| r.value.clone())
    }

    fn keys(&self) -> Vec<String> {
        let mut seen: HashMap<&str, ()> = HashMap::new();
        for r in &self.log {
            seen.insert(&r.key, ());
        }
        seen.keys().map(|k| k.to_string()).collect()
    }
}

fn run(seed: u64, ops: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config();
    let mut store = open(dir.path(), &config);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Model::default();
    let mut now: u64 = 1_000_000;
    // Merge only compacts below this; truncation never goes below it (committed data).
    let mut committed: u64 = 0;
    let ctx = |i: usize, what: &str| format!("seed {seed} op {i}: {what}");

    for i in 0..ops {
        now += rng.random_range(0..40);
        let key = format!("key-{}", rng.random_range(0..40));
        match rng.random_range(0..100) {
            0..=39 => {
                let len = rng.random_range(0..300);
                let value: String = (0..len).map(|_| rng.random_range('a'..='z')).collect();
                let expire_at = if rng.random_bool(0.2) {
                    now + rng.random_range(1..200)
                } else {
                    0
                };
                let w = Write::put(key.clone(), value.clone())
                    .with_expiry(expire_at)
                    .with_timestamp(now);
                let offset = store.append(&w).expect("put");
                assert_eq!(offset, model.log.len() as u64, "{}", ctx(i, "put offset"));
                model.log.push(ModelRecord {
                    key,
                    kind: RecordKind::Put,
                    value,
                    expire_at,
                });
            }
            40..=49 => {
                let offset = store
                    .append(&Write::delete(key.clone()).with_timestamp(now))
                    .expect("delete");
                assert_eq!(
                    offset,
                    model.log.len() as u64,
                    "{}",
                    ctx(i, "delete offset")
                );
                model.log.push(ModelRecord {
                    key,
                    kind: RecordKind::Delete,
                    value: String::new(),
                    expire_at: 0,
                });
            }
            50..=56 => {
                let at = now + rng.random_range(1..300);
                let got = store.expire(key.as_bytes(), at, 0, now).expect("expire");
                match model.visible(&key, now) {
                    Some(value) => {
                        assert_eq!(got, Some(model.log.len() as u64), "{}", ctx(i, "expire"));
                        model.log.push(ModelRecord {
                            key,
                            kind: RecordKind::Expire,
                            value,
                            expire_at: at,
                        });
                    }
                    None => assert_eq!(got, None, "{}", ctx(i, "expire of a missing key")),
                }
            }
            57..=84 => {
                assert_eq!(
                    visible(&store, key.as_bytes(), now)
                        .map(|v| String::from_utf8(v).expect("utf8")),
                    model.visible(&key, now),
                    "{}",
                    ctx(i, &format!("get {key}"))
                );
            }
            85..=88 => {
                drop(store);
                store = open(dir.path(), &config);
                assert_eq!(
                    store.recovery().torn_bytes_dropped,
                    0,
                    "{}",
                    ctx(i, "clean reopen")
                );
            }
            89..=93 => {
                committed = model.log.len() as u64;
                store.merge_at(committed, now).expect("merge");
            }
            _ => {
                let leo = model.log.len() as u64;
                if leo > committed {
                    let to = rng.random_range(committed..=leo);
                    let removed = store.truncate(to).expect("truncate");
                    assert_eq!(removed, leo - to, "{}", ctx(i, "records removed"));
                    model.log.truncate(to as usize);
                }
            }
        }
        assert_eq!(
            store.log_end_offset(),
            model.log.len() as u64,
            "{}",
            ctx(i, "log end offset")
        );
    }
    // Full comparison at the end, and once more after a reopen.
    for pass in 0..2 {
        for key in model.keys() {
            assert_eq!(
                visible(&store, key.as_bytes(), now).map(|v| String::from_utf8(v).expect("utf8")),
                model.visible(&key, now),
                "seed {seed} final pass {pass}: {key}"
            );
        }
        drop(store);
        store = open(dir.path(), &config);
    }
    let stats = store.stats();
    let live = model
        .keys()
        .iter()
        .filter(|k| model.visible(k, now).is_some())
        .count();
    let store_live = model
        .keys()
        .iter()
        .filter(|k| visible(&store, k.as_bytes(), now).is_some())
        .count();
    assert_eq!(store_live, live, "seed {seed}: live key count");
    assert!(stats.segments >= 1);
}

#[test]
fn random_operations_match_the_model() {
    for seed in 0..40 {
        run(seed, 1500);
    }
}
