//! Storage engine benchmarks (criterion): 16-byte keys, 100-byte values.
//!
//! Run with `cargo bench --bench storage`. Besides criterion's timings this prints the keydir's
//! memory per key, measured with a counting allocator.

// criterion's `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]
// The counting allocator implements `GlobalAlloc`, an unsafe trait, by delegating to `System`.
#![allow(unsafe_code)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use simplekv::storage::{FsyncPolicy, Store, StoreConfig, Write};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

/// Counts live heap bytes, to measure what the keydir costs.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const VALUE: [u8; 100] = [b'v'; 100];

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(b"key-0000");
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn config(fsync: FsyncPolicy) -> StoreConfig {
    StoreConfig {
        fsync,
        ..StoreConfig::default()
    }
}

fn write(i: u64) -> Write {
    Write::put(key(i).to_vec(), &VALUE[..])
}

fn puts(c: &mut Criterion) {
    let mut g = c.benchmark_group("put");
    g.throughput(Throughput::Elements(1));
    g.bench_function("fsync_never", |b| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), config(FsyncPolicy::Never)).expect("open");
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            store.append(&write(i)).expect("put")
        });
    });
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for writers in [1u64, 16] {
        g.throughput(Throughput::Elements(writers));
        g.bench_with_input(
            BenchmarkId::new("fsync_always", writers),
            &writers,
            |b, &writers| {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = Store::open(dir.path(), config(FsyncPolicy::Always)).expect("open");
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for w in 0..writers {
                            let store = store.clone();
                            s.spawn(move || {
                                for i in 0..iters {
                                    store.write_durable(&write(w << 40 | i)).expect("put");
                                }
                            });
                        }
                    });
                    start.elapsed()
                });
            },
        );
    }
    g.finish();
}

fn gets(c: &mut Criterion) {
    let mut g = c.benchmark_group("get");
    g.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 100_000u64;
    {
        let store = Store::open(dir.path(), config(FsyncPolicy::Never)).expect("open");
        for i in 0..n {
            store.append(&write(i)).expect("put");
        }
    }
    g.bench_function("cached", |b| {
        let store = Store::open(dir.path(), config(FsyncPolicy::Never)).expect("open");
        for i in 0..1000 {
            store.get(&key(i)).expect("get");
        }
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 1) % 1000;
            black_box(store.get(&key(i)).expect("get"))
        });
    });
    g.bench_function("disk", |b| {
        let cfg = StoreConfig {
            cache_bytes: 0,
            ..config(FsyncPolicy::Never)
        };
        let store = Store::open(dir.path(), cfg).expect("open");
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 7919) % n;
            black_box(store.get(&key(i)).expect("get"))
        });
    });
    g.finish();
}

fn reopen(c: &mut Criterion) {
    let n = 1_000_000u64;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = StoreConfig {
        segment_bytes: 32 << 20,
        ..config(FsyncPolicy::Never)
    };
    {
        let store = Store::open(dir.path(), cfg.clone()).expect("open");
        let batch: Vec<Write> = (0..1000).map(write).collect();
        for chunk in 0..n / 1000 {
            let ws: Vec<Write> = batch
                .iter()
                .enumerate()
                .map(|(j, w)| Write {
                    key: key(chunk * 1000 + j as u64).to_vec().into(),
                    ..w.clone()
                })
                .collect();
            store.append_batch(&ws).expect("append");
        }
    }
    // Keydir memory per key.
    let before = LIVE.load(Ordering::Relaxed);
    let store = Store::open(dir.path(), cfg.clone()).expect("open");
    let after = LIVE.load(Ordering::Relaxed);
    let stats = store.stats();
    drop(store);
    let per_key = (after - before) as f64 / stats.live_keys as f64 - 16.0;
    eprintln!(
        "keydir: {} keys; heap per key beyond the 16 key bytes: {per_key:.1} bytes \
         (structures alone: {:.1} bytes)",
        stats.live_keys,
        stats.keydir_overhead_bytes as f64 / stats.live_keys as f64
    );

    let mut g = c.benchmark_group("reopen_1m_keys");
    g.sample_size(10);
    g.bench_function("with_hints", |b| {
        b.iter(|| black_box(Store::open(dir.path(), cfg.clone()).expect("open")));
    });
    let scan_dir = tempfile::tempdir().expect("tempdir");
    for e in std::fs::read_dir(dir.path()).expect("dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "log") {
            std::fs::copy(&p, scan_dir.path().join(p.file_name().expect("name"))).expect("copy");
        }
    }
    g.bench_function("without_hints", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for e in std::fs::read_dir(scan_dir.path()).expect("dir") {
                    let p = e.expect("entry").path();
                    if p.extension().is_some_and(|x| x == "hint") {
                        std::fs::remove_file(p).expect("rm");
                    }
                }
                let start = Instant::now();
                black_box(Store::open(scan_dir.path(), cfg.clone()).expect("open"));
                total += start.elapsed();
            }
            total
        });
    });
    g.finish();
}

fn merge(c: &mut Criterion) {
    let mut g = c.benchmark_group("merge");
    g.sample_size(10);
    let records = 200_000u64;
    g.throughput(Throughput::Elements(records));
    g.bench_function("200k_records_10pct_live", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let cfg = StoreConfig {
                    segment_bytes: 4 << 20,
                    ..config(FsyncPolicy::Never)
                };
                let store = Store::open(dir.path(), cfg).expect("open");
                for i in 0..records {
                    store.append(&write(i % (records / 10))).expect("put");
                }
                let hw = store.log_end_offset();
                let start = Instant::now();
                store.merge(hw).expect("merge");
                total += start.elapsed();
            }
            total
        });
    });
    g.finish();
}

criterion_group!(benches, puts, gets, reopen, merge);
criterion_main!(benches);
