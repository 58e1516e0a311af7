//! Our storage engine side by side with redb and fjall, on the same workloads and the same
//! durability: first without an fsync per operation, then with one. 16-byte keys, 100-byte
//! values. Run with `cargo bench --bench compare`; the table in BENCHMARKS.md comes from it.
//!
//! Durability notes. "No fsync per op": ours hands every write to the OS (a process crash loses
//! nothing; `fsync: never`); fjall, by default, flushes its journal to the OS on every write too;
//! redb's `Durability::None` keeps commits in memory until a later durable commit (a process
//! crash loses them), the closest setting it has. "fsync per op": ours `fsync: always` with one
//! writer; redb `Durability::Immediate`; fjall `persist(SyncAll)` after each write.

// criterion's `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use redb::{ReadableDatabase, TableDefinition};
use simplekv::storage::{FsyncPolicy, Store, StoreConfig, Write};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
const VALUE: [u8; 100] = [b'v'; 100];

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(b"key-0000");
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

/// A fixed pseudo-random permutation step (an odd multiplier mod 2^64).
fn scramble(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

trait Engine {
    fn name(&self) -> &'static str;
    fn put(&mut self, k: &[u8], v: &[u8]);
    fn get(&self, k: &[u8]) -> bool;
    /// Moves everything written out of in-memory buffers into the files reads will use.
    fn settle(&mut self) {}
}

struct Ours(Store);

impl Ours {
    fn open(dir: &Path, fsync: FsyncPolicy, cache_bytes: usize) -> Self {
        let cfg = StoreConfig {
            fsync,
            cache_bytes,
            ..StoreConfig::default()
        };
        Self(Store::open(dir, cfg).expect("open"))
    }
}

impl Engine for Ours {
    fn name(&self) -> &'static str {
        "simplekv"
    }
    fn put(&mut self, k: &[u8], v: &[u8]) {
        self.0
            .write_durable(&Write::put(k.to_vec(), v.to_vec()))
            .expect("put");
    }
    fn get(&self, k: &[u8]) -> bool {
        self.0.get(k).expect("get").value().is_some()
    }
}

struct Redb {
    db: redb::Database,
    durability: redb::Durability,
}

impl Redb {
    fn open(dir: &Path, sync: bool, cache_bytes: Option<usize>) -> Self {
        let mut b = redb::Database::builder();
        if let Some(c) = cache_bytes {
            b.set_cache_size(c);
        }
        let db = b.create(dir.join("redb")).expect("redb");
        let txn = db.begin_write().expect("txn");
        txn.open_table(TABLE).expect("table");
        txn.commit().expect("commit");
        let durability = if sync {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        };
        Self { db, durability }
    }
}

impl Engine for Redb {
    fn name(&self) -> &'static str {
        "redb"
    }
    fn put(&mut self, k: &[u8], v: &[u8]) {
        let mut txn = self.db.begin_write().expect("txn");
        txn.set_durability(self.durability).expect("durability");
        {
            let mut t = txn.open_table(TABLE).expect("table");
            t.insert(k, v).expect("insert");
        }
        txn.commit().expect("commit");
    }
    fn get(&self, k: &[u8]) -> bool {
        let txn = self.db.begin_read().expect("txn");
        let t = txn.open_table(TABLE).expect("table");
        t.get(k).expect("get").is_some()
    }
}

struct Fjall {
    ks: fjall::Keyspace,
    part: fjall::PartitionHandle,
    sync: bool,
}

impl Fjall {
    fn open(dir: &Path, sync: bool, cache_bytes: Option<u64>) -> Self {
        let mut cfg = fjall::Config::new(dir.join("fjall"));
        if let Some(c) = cache_bytes {
            cfg = cfg.cache_size(c);
        }
        let ks = cfg.open().expect("fjall");
        let part = ks
            .open_partition("kv", fjall::PartitionCreateOptions::default())
            .expect("partition");
        Self { ks, part, sync }
    }
}

impl Engine for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }
    fn put(&mut self, k: &[u8], v: &[u8]) {
        self.part.insert(k, v).expect("insert");
        if self.sync {
            self.ks
                .persist(fjall::PersistMode::SyncAll)
                .expect("persist");
        }
    }
    fn get(&self, k: &[u8]) -> bool {
        self.part.get(k).expect("get").is_some()
    }
    fn settle(&mut self) {
        self.part
            .rotate_memtable_and_wait()
            .expect("flush memtable");
    }
}

/// Opens each engine fresh in its own directory.
fn engines(dir: &Path, sync: bool) -> Vec<Box<dyn Engine>> {
    let fsync = if sync {
        FsyncPolicy::Always
    } else {
        FsyncPolicy::Never
    };
    let mk = |n: &str| {
        let d = dir.join(n);
        std::fs::create_dir_all(&d).expect("dir");
        d
    };
    vec![
        Box::new(Ours::open(&mk("ours"), fsync, 64 << 20)),
        Box::new(Redb::open(&mk("redb"), sync, None)),
        Box::new(Fjall::open(&mk("fjall"), sync, None)),
    ]
}

fn puts(c: &mut Criterion) {
    for (sync, label) in [(false, "no_fsync"), (true, "fsync_per_op")] {
        let mut g = c.benchmark_group(format!("put_{label}"));
        g.throughput(Throughput::Elements(1));
        if sync {
            g.sample_size(10);
            g.measurement_time(Duration::from_secs(4));
        } else {
            g.measurement_time(Duration::from_secs(3));
        }
        for (order, scr) in [("sequential", false), ("random", true)] {
            let dir = tempfile::tempdir().expect("tempdir");
            for mut e in engines(dir.path(), sync) {
                let mut i = 0u64;
                g.bench_function(BenchmarkId::new(order, e.name()), |b| {
                    b.iter(|| {
                        i += 1;
                        let k = key(if scr { scramble(i) } else { i });
                        e.put(&k, &VALUE);
                    })
                });
            }
        }
        g.finish();
    }
}

fn gets(c: &mut Criterion) {
    let n = 100_000u64;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("get");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(3));
    // Cached: a hot set of 1000 keys, each engine with its default cache.
    for mut e in engines(&dir.path().join("hot"), false) {
        for i in 0..n {
            e.put(&key(i), &VALUE);
        }
        for i in 0..1000 {
            e.get(&key(i));
        }
        let mut i = 0u64;
        g.bench_function(BenchmarkId::new("cached", e.name()), |b| {
            b.iter(|| {
                i = (i + 1) % 1000;
                black_box(e.get(&key(i)))
            })
        });
    }
    // Uncached: random keys over 100k, each engine's own cache made as small as it allows (the
    // OS page cache stays warm for all).
    let cold = dir.path().join("cold");
    let mk = |n: &str| {
        let d = cold.join(n);
        std::fs::create_dir_all(&d).expect("dir");
        d
    };
    let cold_engines: Vec<Box<dyn Engine>> = vec![
        Box::new(Ours::open(&mk("ours"), FsyncPolicy::Never, 0)),
        Box::new(Redb::open(&mk("redb"), false, Some(0))),
        Box::new(Fjall::open(&mk("fjall"), false, Some(0))),
    ];
    for mut e in cold_engines {
        for i in 0..n {
            e.put(&key(i), &VALUE);
        }
        e.settle();
        let mut i = 0u64;
        g.bench_function(BenchmarkId::new("uncached", e.name()), |b| {
            b.iter(|| {
                i = (i + 7919) % n;
                black_box(e.get(&key(i)))
            })
        });
    }
    g.finish();
}

fn reopen(c: &mut Criterion) {
    let n = 1_000_000u64;
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path();
    for e in ["ours", "redb", "fjall"] {
        std::fs::create_dir_all(base.join(e)).expect("dir");
    }
    // Fill each engine with 1M keys, close it cleanly.
    {
        let s = Ours::open(&base.join("ours"), FsyncPolicy::Never, 64 << 20);
        let mut batch = Vec::with_capacity(1000);
        for chunk in 0..n / 1000 {
            batch.clear();
            batch.extend(
                (0..1000).map(|j| Write::put(key(chunk * 1000 + j).to_vec(), VALUE.to_vec())),
            );
            s.0.append_batch(&batch).expect("append");
        }
        s.0.sync().expect("sync");
    }
    {
        let r = Redb::open(&base.join("redb"), true, None);
        let txn = r.db.begin_write().expect("txn");
        {
            let mut t = txn.open_table(TABLE).expect("table");
            for i in 0..n {
                t.insert(&key(i)[..], &VALUE[..]).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    {
        let f = Fjall::open(&base.join("fjall"), false, None);
        for i in 0..n {
            f.part.insert(key(i), VALUE).expect("insert");
        }
        f.ks.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let mut g = c.benchmark_group("reopen_1m_keys");
    g.sample_size(10);
    g.bench_function("simplekv", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                let s = Instant::now();
                let e = Ours::open(&base.join("ours"), FsyncPolicy::Never, 64 << 20);
                assert!(e.get(&key(n - 1)));
                t += s.elapsed();
            }
            t
        })
    });
    g.bench_function("redb", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                let s = Instant::now();
                let db = redb::Database::open(base.join("redb").join("redb")).expect("open");
                let e = Redb {
                    db,
                    durability: redb::Durability::None,
                };
                assert!(e.get(&key(n - 1)));
                t += s.elapsed();
            }
            t
        })
    });
    g.bench_function("fjall", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                let s = Instant::now();
                let e = Fjall::open(&base.join("fjall"), false, None);
                assert!(e.get(&key(n - 1)));
                t += s.elapsed();
            }
            t
        })
    });
    g.finish();
}

criterion_group!(benches, puts, gets, reopen);
criterion_main!(benches);
