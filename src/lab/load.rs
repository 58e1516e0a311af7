//! Load: concurrent clients issuing writes (and reads), every write recorded in the history when
//! asked, latencies in an HDR histogram. The `load` command and `simplekv-lab bench` share it.
//!
//! Only operations that completed count towards latency; failures are counted by kind, and an
//! operation is counted exactly once whatever its outcome.

use super::history::History;
use super::linearizable::{Kind, Operation};
use crate::client::{Client, ClientError};
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
    /// Operations each client keeps in flight at once (pipelining through the client's write
    /// batches); 1 is a closed loop: one operation, its answer, the next.
    pub in_flight: u32,
    /// Acks for writes.
    pub acks: Acks,
    /// Distinct keys (every write a new key when `None`).
    pub keys: Option<u64>,
    /// Value size in bytes (0: a short value naming the write).
    pub value_size: usize,
    /// Share of reads, 0.0..=1.0 (the rest are writes).
    pub read_ratio: f64,
    /// Operations per second across all clients (`None`: as fast as they complete).
    pub rate: Option<f64>,
    /// Prefix making this run's keys and values unique.
    pub tag: String,
}

impl LoadPlan {
    /// A plan of `ops` writes by `clients` clients.
    pub fn writes(ops: u64, clients: u32, acks: Acks, tag: impl Into<String>) -> Self {
        Self {
            ops: Some(ops),
            duration: None,
            clients,
            in_flight: 1,
            acks,
            keys: None,
            value_size: 0,
            read_ratio: 0.0,
            rate: None,
            tag: tag.into(),
        }
    }

    /// The key of operation `i`.
    pub fn key(&self, i: u64) -> Bytes {
        Bytes::from(format!("{}-{}", self.tag, self.keys.map_or(i, |k| i % k)))
    }

    /// Whether operation `i` is a read (reads are spread evenly through the run).
    pub fn is_read(&self, i: u64) -> bool {
        let r = self.read_ratio.clamp(0.0, 1.0);
        ((i + 1) as f64 * r).floor() > (i as f64 * r).floor()
    }
}

/// Live counters of a running load, for progress displays.
#[derive(Debug, Default)]
pub struct Counters {
    /// Operations finished.
    pub done: AtomicU64,
    /// Acknowledged (writes) or answered (reads).
    pub ok: AtomicU64,
    /// Failed.
    pub errors: AtomicU64,
    /// Outcome unknown.
    pub unknown: AtomicU64,
}

/// Shared handle to a running load's counters.
pub type SharedCounters = Arc<Counters>;

/// A fresh set of counters.
pub fn counters() -> SharedCounters {
    Arc::new(Counters::default())
}

/// Progress of a load for the console.
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

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
}

/// The accounting of a load: every operation counted once, by outcome; latencies of completed
/// operations only; failures by kind.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Operations finished, whatever their outcome.
    pub ops: u64,
    /// Completed: acknowledged writes and answered reads.
    pub ok: u64,
    /// Writes whose outcome is unknown.
    pub unknown: u64,
    /// Failed operations by kind.
    pub errors: BTreeMap<String, u64>,
    /// Latencies of completed operations, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            ops: 0,
            ok: 0,
            unknown: 0,
            errors: BTreeMap::new(),
            latency_us: new_histogram(),
        }
    }
}

impl Tally {
    /// Counts one operation that took `latency`.
    pub fn record<T>(&mut self, result: &Result<T, ClientError>, latency: Duration) -> Outcome {
        self.ops += 1;
        let outcome = Outcome::of(result);
        match (outcome, result) {
            (Outcome::Ok, _) => {
                self.ok += 1;
                let us = (latency.as_micros() as u64).max(1);
                let _ = self.latency_us.record(us);
            }
            (Outcome::Unknown, _) => self.unknown += 1,
            (Outcome::Error, Err(e)) => *self.errors.entry(e.kind().to_string()).or_default() += 1,
            (Outcome::Error, Ok(_)) => {}
        }
        outcome
    }

    /// Adds another tally's counts.
    pub fn merge(&mut self, other: &Tally) {
        self.ops += other.ops;
        self.ok += other.ok;
        self.unknown += other.unknown;
        for (k, n) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += n;
        }
        let _ = self.latency_us.add(&other.latency_us);
    }

    /// Failed operations in all.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Latency at quantile `q` (0..=1) of completed operations, in milliseconds.
    pub fn latency_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    /// Slowest completed operation, in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.latency_us.max() as f64 / 1000.0
    }
}

/// The result of a load.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The accounting.
    pub tally: Tally,
    /// Wall time.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Completed operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.tally.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// One line: counts, rate and latencies.
    pub fn summary(&self) -> String {
        let t = &self.tally;
        let mut s = format!(
            "{} ops in {:.2}s ({:.0} ops/s): ok {}, errors {}, unknown {}; latency p50 {:.2}ms p99 {:.2}ms max {:.2}ms",
            t.ops,
            self.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            t.ok,
            t.error_count(),
            t.unknown,
            t.latency_ms(0.5),
            t.latency_ms(0.99),
            t.max_ms(),
        );
        if !t.errors.is_empty() {
            let kinds: Vec<String> = t.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
            s.push_str(&format!(" (errors: {})", kinds.join(", ")));
        }
        s
    }
}

/// Writes every key of `plan` once (so reads find values); not counted, not recorded.
pub async fn preload(client: &Client, plan: &LoadPlan) -> Result<(), ClientError> {
    let Some(keys) = plan.keys else { return Ok(()) };
    let next = Arc::new(AtomicU64::new(0));
    let value = Bytes::from(vec![b'x'; plan.value_size.max(1)]);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.clients.clamp(1, 64) {
        let (client, plan, next, value) = (
            client.clone(),
            plan.clone(),
            Arc::clone(&next),
            value.clone(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= keys {
                    return Ok(());
                }
                client.set(&plan.key(i), &value, None, Acks::All).await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            return Err(e);
        }
    }
    Ok(())
}

/// Runs `plan` against `client`, recording writes in `history` (when given).
pub async fn run(
    client: Client,
    plan: LoadPlan,
    history: Option<Arc<History>>,
    counters: Arc<Counters>,
) -> LoadReport {
    let started = Instant::now();
    let t0 = tokio::time::Instant::now();
    let deadline = plan.duration.map(|d| started + d);
    let next = Arc::new(AtomicU64::new(0));
    let value_pad: Bytes = Bytes::from(vec![b'x'; plan.value_size]);
    let mut tasks = Vec::new();
    // Each operation in flight is its own closed loop (and its own process in the history).
    for _ in 0..plan.clients.max(1) * plan.in_flight.max(1) {
        let (client, plan, history, counters, next, pad) = (
            client.clone(),
            plan.clone(),
            history.clone(),
            Arc::clone(&counters),
            Arc::clone(&next),
            value_pad.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut recorded = Vec::new();
            let me = history.as_ref().map_or(0, |h| h.new_client());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if plan.ops.is_some_and(|n| i >= n) || deadline.is_some_and(|d| Instant::now() >= d)
                {
                    break;
                }
                if let Some(rate) = plan.rate {
                    // Operation i is due at i / rate seconds into the run.
                    tokio::time::sleep_until(t0 + Duration::from_secs_f64(i as f64 / rate)).await;
                }
                let key = plan.key(i);
                let sent = Instant::now();
                let outcome = if plan.is_read(i) {
                    let r = client.get(&key).await;
                    let outcome = tally.record(&r, sent.elapsed());
                    if let Some(h) = &history {
                        recorded.push(Operation {
                            client: me,
                            kind: Kind::Get,
                            key,
                            value: r.ok().flatten(),
                            ttl_ms: None,
                            call_ns: h.ns(sent),
                            return_ns: h.ns(Instant::now()),
                            outcome: super::history::outcome(outcome),
                        });
                    }
                    outcome
                } else {
                    let value = if plan.value_size == 0 {
                        Bytes::from(format!("{}-v{i}", plan.tag))
                    } else {
                        pad.clone()
                    };
                    let r = client.set(&key, &value, None, plan.acks).await;
                    let outcome = tally.record(&r, sent.elapsed());
                    if let Some(h) = &history {
                        recorded.push(Operation {
                            client: me,
                            kind: Kind::Set,
                            key,
                            value: Some(value),
                            ttl_ms: None,
                            call_ns: h.ns(sent),
                            return_ns: h.ns(Instant::now()),
                            outcome: super::history::outcome(outcome),
                        });
                    }
                    outcome
                };
                counters.done.fetch_add(1, Ordering::Relaxed);
                let counter = match outcome {
                    Outcome::Ok => &counters.ok,
                    Outcome::Unknown => &counters.unknown,
                    Outcome::Error => &counters.errors,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(h) = &history {
                h.record_all(recorded);
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for t in tasks {
        if let Ok(part) = t.await {
            tally.merge(&part);
        }
    }
    LoadReport {
        tally,
        elapsed: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_counted_once_and_errors_by_kind() {
        let mut t = Tally::default();
        let ms = Duration::from_millis;
        t.record(&Ok::<(), ClientError>(()), ms(2));
        t.record(&Ok::<(), ClientError>(()), ms(4));
        t.record(
            &Err::<(), _>(ClientError::NotEnoughReplicas("x".into())),
            ms(1),
        );
        t.record(
            &Err::<(), _>(ClientError::NotEnoughReplicas("y".into())),
            ms(1),
        );
        t.record(
            &Err::<(), _>(ClientError::NoLeader {
                partition: 0,
                waited: ms(9),
            }),
            ms(9),
        );
        t.record(
            &Err::<(), _>(ClientError::OutcomeUnknown("z".into())),
            ms(5000),
        );
        assert_eq!((t.ops, t.ok, t.unknown, t.error_count()), (6, 2, 1, 3));
        assert_eq!(t.errors["not_enough_replicas"], 2);
        assert_eq!(t.errors["no_leader"], 1);
        // Only completed operations have latencies: the 5 s unknown one is not among them.
        assert_eq!(t.latency_us.len(), 2);
        assert!(t.max_ms() < 5.0, "{}", t.max_ms());
    }

    #[test]
    fn the_histogram_reports_quantiles_of_what_it_saw() {
        let mut t = Tally::default();
        for ms in 1..=100 {
            t.record(&Ok::<(), ClientError>(()), Duration::from_millis(ms));
        }
        let within = |got: f64, want: f64| (got - want).abs() <= want * 0.01 + 0.01;
        assert!(within(t.latency_ms(0.5), 50.0), "{}", t.latency_ms(0.5));
        assert!(within(t.latency_ms(0.99), 99.0), "{}", t.latency_ms(0.99));
        assert!(within(t.max_ms(), 100.0), "{}", t.max_ms());
        let mut other = Tally::default();
        other.record(&Ok::<(), ClientError>(()), Duration::from_millis(500));
        t.merge(&other);
        assert_eq!((t.ops, t.ok), (101, 101));
        assert!(within(t.max_ms(), 500.0), "{}", t.max_ms());
    }

    #[test]
    fn reads_are_spread_evenly_and_keys_wrap_around_the_key_space() {
        let mut plan = LoadPlan::writes(100, 1, Acks::All, "t");
        plan.read_ratio = 0.25;
        assert_eq!((0..100).filter(|&i| plan.is_read(i)).count(), 25);
        assert!(!(0..3).any(|i| plan.is_read(i)) && plan.is_read(3));
        plan.keys = Some(10);
        assert_eq!(plan.key(13), Bytes::from_static(b"t-3"));
        plan.read_ratio = 0.0;
        assert!(!(0..100).any(|i| plan.is_read(i)));
    }
}
