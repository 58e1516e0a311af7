//! Benchmarks the linearizability checker on realistic simulated histories.
//!
//! Why: the checker runs at the end of every lab scenario, so it must stay fast
//! on a history the size a scenario records (100,000 operations), and the step
//! budget must leave room for a hot key. Histories come from a simulated
//! atomic register, so they are linearizable and the checker must say so.

// criterion's `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};

use simplekv::lab::{jsonl, linearizable};

use linearizable::{Kind, Limits, Operation, Outcome, check};

use simplekv::lab::rng::Rng;

/// A history of `total` operations by `clients` sequential clients against a
/// simulated atomic store: each operation takes effect at one instant inside
/// its interval; ~50 % reads, 45 % sets, 5 % dels, ~1 % unknown outcomes (half
/// of which take effect, possibly after the client gave up). Latencies are
/// 20 µs to 1 ms with a 2 % tail up to 20 ms, so operations on a busy key
/// overlap several others. With `hot` > 0, a fifth of the operations go to the
/// first `hot` keys.
fn simulate(seed: u64, total: usize, clients: u64, keys: u64, hot: u64) -> Vec<Operation> {
    let mut rng = Rng::new(seed);
    let mut planned = Vec::with_capacity(total);
    let mut clocks: Vec<u64> = (0..clients).map(|_| rng.below(100_000)).collect();
    for n in 0..total {
        let client = n as u64 % clients;
        let mut latency = || match rng.below(100) {
            0..2 => 1_000_000 + rng.below(19_000_000),
            _ => 20_000 + rng.below(980_000),
        };
        let call = clocks[client as usize] + latency() / 10;
        let effect = call + latency() / 2;
        let mut ret = effect + latency() / 2;
        let key = match (hot, rng.below(5)) {
            (1.., 0) => rng.below(hot),
            _ => rng.below(keys),
        };
        let (kind, value) = match rng.below(100) {
            0..45 => (Kind::Set, Some(Bytes::from(format!("v{n}")))),
            45..50 => (Kind::Del, None),
            _ => (Kind::Get, None),
        };
        let (mut outcome, mut happens) = (Outcome::Ok, true);
        if rng.below(100) == 0 {
            (outcome, happens) = (Outcome::Unknown, rng.below(2) == 0);
            ret = call + 2_000_000 + rng.below(2_000_000);
        }
        let key = Bytes::from(format!("key{key}"));
        let op = Operation {
            client: client as u32,
            kind,
            key,
            value,
            ttl_ms: None,
            call_ns: call,
            return_ns: ret,
            outcome,
        };
        planned.push((effect, happens, op));
        clocks[client as usize] = ret;
    }
    planned.sort_by_key(|p| p.0);
    let mut store: HashMap<Bytes, Bytes> = HashMap::new();
    for (_, happens, op) in &mut planned {
        match (op.kind, *happens) {
            (Kind::Get, _) => op.value = store.get(&op.key).filter(|_| *happens).cloned(),
            (_, false) => {}
            (Kind::Set, true) => {
                let value = op.value.clone().unwrap_or_default();
                store.insert(op.key.clone(), value);
            }
            (_, true) => _ = store.remove(&op.key),
        }
    }
    let mut ops: Vec<Operation> = planned.into_iter().map(|p| p.2).collect();
    ops.sort_by_key(|o| o.call_ns);
    ops
}

/// Prints the verdict, the time of one check, and the smallest step budget that decides it.
fn describe(name: &str, ops: &[Operation]) {
    let start = Instant::now();
    let report = check(ops, &Limits::default());
    let elapsed = start.elapsed();
    let first = report.to_string();
    let first = first.lines().next().unwrap_or_default();
    println!(
        "{name}: {first} (one check: {elapsed:.2?}, gave up: {})",
        report.gave_up()
    );
    let (mut lo, mut hi) = (0u64, Limits::default().max_steps_per_key);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match check(
            ops,
            &Limits {
                max_steps_per_key: mid,
            },
        )
        .gave_up()
        {
            true => lo = mid,
            false => hi = mid,
        }
    }
    println!("{name}: the most steps any key needs: {hi}");
}

fn bench(c: &mut Criterion) {
    let many = simulate(1, 100_000, 64, 1_000, 10);
    let hot = simulate(2, 10_000, 16, 1, 0);
    describe("100k ops, 1000 keys, 64 clients", &many);
    describe("10k ops, 1 hot key, 16 clients", &hot);
    let mut file = Vec::new();
    jsonl::write_all(&many, &mut file).unwrap_or_else(|e| panic!("writing to memory: {e}"));

    let mut group = c.benchmark_group("linearizable");
    group.sample_size(10);
    group.bench_function("check 100k ops, 1000 keys, 64 clients", |b| {
        b.iter(|| check(black_box(&many), &Limits::default()))
    });
    group.bench_function("check 10k ops, 1 hot key, 16 clients", |b| {
        b.iter(|| check(black_box(&hot), &Limits::default()))
    });
    group.bench_function("jsonl read_all 100k ops", |b| {
        b.iter(|| jsonl::read_all(black_box(&file[..])))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
