//! Load: concurrent clients issuing writes, each recorded in the history, with latencies in an HDR
//! histogram. The `load` command and the benchmark share it.

use super::history::{Effect, History, Op};
use crate::client::Client;
use crate::command::Outcome;
use crate::replica::Acks;
use bytes::Bytes;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Operations in all (`None`: until `duration` passes).
    pub ops: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Concurrent clients.
    pub clients: u32,
    /// Acks for writes.
    pub acks: Acks,
    /// Distinct keys (every write a new key when `None`).
    pub keys: Option<u64>,
    /// Value size in bytes (0: a short value naming the write).
    pub value_size: usize,
    /// Share of reads, 0.0..=1.0 (the rest are writes).
    pub read_ratio: f64,
    /// Prefix making this run's keys and values unique.
    pub tag: String,
}

/// Counters shared while a load runs.
#[derive(Debug, Default)]
pub struct Counters {
    /// Operations finished.
    pub done: AtomicU64,
    /// Acknowledged.
    pub ok: AtomicU64,
    /// Failed.
    pub errors: AtomicU64,
    /// Outcome unknown.
    pub unknown: AtomicU64,
}

/// The result of a load.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Operations finished.
    pub ops: u64,
    /// Acknowledged (writes) or answered (reads).
    pub ok: u64,
    /// Operations with an unknown outcome.
    pub unknown: u64,
    /// Failed operations by error kind.
    pub errors: BTreeMap<String, u64>,
    /// Wall time.
    pub elapsed: Duration,
    /// Latencies of operations that completed, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl LoadReport {
    /// Failed operations in all.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Completed operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at `q` (0..=1) in milliseconds.
    pub fn latency_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    /// One line: counts, rate and latencies.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} ops in {:.2}s ({:.0} ops/s): ok {}, errors {}, unknown {}; latency p50 {:.2}ms p99 {:.2}ms max {:.2}ms",
            self.ops,
            self.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            self.ok,
            self.error_count(),
            self.unknown,
            self.latency_ms(0.5),
            self.latency_ms(0.99),
            self.latency_us.max() as f64 / 1000.0,
        );
        if !self.errors.is_empty() {
            let kinds: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            s.push_str(&format!(" (errors: {})", kinds.join(", ")));
        }
        s
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
}

/// Runs `plan` against `client`, recording writes in `history` (when given).
pub async fn run(
    client: Client,
    plan: LoadPlan,
    history: Option<Arc<History>>,
    counters: Arc<Counters>,
) -> LoadReport {
    let started = Instant::now();
    let deadline = plan.duration.map(|d| started + d);
    let next = Arc::new(AtomicU64::new(0));
    let value_pad: Bytes = Bytes::from(vec![b'x'; plan.value_size]);
    let mut tasks = Vec::new();
    for _ in 0..plan.clients.max(1) {
        let (client, plan, history, counters, next, pad) = (
            client.clone(),
            plan.clone(),
            history.clone(),
            Arc::clone(&counters),
            Arc::clone(&next),
            value_pad.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut recorded = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if plan.ops.is_some_and(|n| i >= n) || deadline.is_some_and(|d| Instant::now() >= d)
                {
                    break;
                }
                let key_n = plan.keys.map_or(i, |k| i % k);
                let key = Bytes::from(format!("{}-{key_n}", plan.tag));
                // Spread reads evenly: op i reads when the running count of reads steps up.
                let r = plan.read_ratio.clamp(0.0, 1.0);
                let is_read = ((i + 1) as f64 * r).floor() > (i as f64 * r).floor();
                let t0 = Instant::now();
                let outcome = if is_read {
                    match client.get(&key).await {
                        Ok(_) => Outcome::Ok,
                        Err(e) => {
                            *errors.entry(e.kind().to_string()).or_default() += 1;
                            Outcome::Error
                        }
                    }
                } else {
                    let value = if plan.value_size == 0 {
                        Bytes::from(format!("{}-v{i}", plan.tag))
                    } else {
                        pad.clone()
                    };
                    let r = client.set(&key, &value, None, plan.acks).await;
                    let outcome = Outcome::of(&r);
                    if let (Outcome::Error, Err(e)) = (outcome, &r) {
                        *errors.entry(e.kind().to_string()).or_default() += 1;
                    }
                    if history.is_some() {
                        recorded.push(Op {
                            key,
                            effect: Effect::Set(value),
                            outcome,
                            started: t0,
                            finished: Instant::now(),
                        });
                    }
                    outcome
                };
                let us = t0.elapsed().as_micros() as u64;
                counters.done.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Outcome::Ok => {
                        let _ = hist.record(us.max(1));
                        counters.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::Unknown => {
                        counters.unknown.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::Error => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if let Some(h) = &history {
                for op in recorded {
                    h.record(op);
                }
            }
            (hist, errors)
        }));
    }
    let mut latency_us = new_histogram();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks {
        if let Ok((h, e)) = t.await {
            let _ = latency_us.add(&h);
            for (k, n) in e {
                *errors.entry(k).or_default() += n;
            }
        }
    }
    LoadReport {
        ops: counters.done.load(Ordering::Relaxed),
        ok: counters.ok.load(Ordering::Relaxed),
        unknown: counters.unknown.load(Ordering::Relaxed),
        errors,
        elapsed: started.elapsed(),
        latency_us,
    }
}

/// Shared handle to a running load's counters, for progress displays.
pub type SharedCounters = Arc<Counters>;

/// A fresh set of counters.
pub fn counters() -> SharedCounters {
    Arc::new(Counters::default())
}

/// Keeps `Mutex` out of callers that only need a snapshot.
pub fn progress(c: &Counters, total: u64, running: bool) -> super::snapshot::LoadProgress {
    super::snapshot::LoadProgress {
        done: c.done.load(Ordering::Relaxed),
        total,
        ok: c.ok.load(Ordering::Relaxed),
        errors: c.errors.load(Ordering::Relaxed),
        unknown: c.unknown.load(Ordering::Relaxed),
        running,
    }
}
