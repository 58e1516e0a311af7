//! Where an acknowledged write's time goes on its partition leader, for `bench` and `status`:
//! from the append to the leader's own fsync, to each follower's fetch of it, the follower's
//! turnaround (copy, fsync, next fetch, which reports it), and to the high watermark passing it.
//! Only means are kept. The clock is passed in, so the bookkeeping is tested without a cluster.

use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::ops::{Range, RangeInclusive};
use std::time::{Duration, Instant};

/// How many recent batches are remembered for matching a fetch to the appends it carries.
const RECENT_BATCHES: usize = 4096;

/// A running mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mean {
    /// How many samples.
    pub count: u64,
    /// Their sum.
    pub total: Duration,
}

impl Mean {
    fn add(&mut self, d: Duration) {
        self.count += 1;
        self.total += d;
    }

    /// The mean, if there was a sample.
    pub fn get(&self) -> Option<Duration> {
        let nanos = self.total.as_nanos().checked_div(u128::from(self.count))?;
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }

    fn merge(&mut self, other: &Mean) {
        self.count += other.count;
        self.total += other.total;
    }
}

/// The stages of a write's commit on its leader, as means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitPath {
    /// Append → the leader's own fsync covered it (acks=all, `fsync: always` only).
    pub own_fsync: Mean,
    /// Append → sent to a follower (one sample per batch and fetch reply that carries it).
    pub fetch_wait: Mean,
    /// Records sent to a follower → that follower's next fetch, which reports them copied (and,
    /// under `fsync: always`, fsynced).
    pub turnaround: Mean,
    /// Append → the high watermark passed it (acks=all; its count is the appends that
    /// committed).
    pub committed: Mean,
}

impl CommitPath {
    /// Adds another leader's means to these.
    pub fn merge(&mut self, other: &CommitPath) {
        self.own_fsync.merge(&other.own_fsync);
        self.fetch_wait.merge(&other.fetch_wait);
        self.turnaround.merge(&other.turnaround);
        self.committed.merge(&other.committed);
    }

    /// One line for people, or `None` before any acks=all write committed.
    pub fn describe(&self) -> Option<String> {
        let committed = self.committed.get()?;
        let us = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6);
        let mut stages = Vec::new();
        if let Some(d) = self.own_fsync.get() {
            stages.push(format!("leader's fsync {}", us(d)));
        }
        if let Some(d) = self.fetch_wait.get() {
            stages.push(format!("sent to a follower {}", us(d)));
        }
        stages.push(format!("committed {}", us(committed)));
        let round = self.turnaround.get().map_or(String::new(), |d| {
            format!("; a follower's round (copy, fsync, fetch again) {}", us(d))
        });
        Some(format!(
            "after the append: {}{round} (means; {} acks=all appends committed)",
            stages.join(", "),
            self.committed.count
        ))
    }
}

/// A leader's record of its writes' commit stages.
#[derive(Default)]
pub struct CommitTiming {
    st: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Recent batches, in offset order.
    batches: VecDeque<(Range<u64>, Instant)>,
    /// When each follower was last sent records, until its next fetch.
    sent: BTreeMap<u32, Instant>,
    path: CommitPath,
}

impl CommitTiming {
    /// Records that `offsets` were appended at `now`. Batches may be noted out of order (two
    /// appends racing on a multi-threaded runtime); offsets that overlap remembered ones mean the
    /// log was truncated and is being rewritten, and the batches from there on are forgotten.
    pub fn appended(&self, offsets: Range<u64>, now: Instant) {
        if offsets.is_empty() {
            return;
        }
        let mut st = self.st.lock();
        let at = st.batches.partition_point(|(b, _)| b.end <= offsets.start);
        if st
            .batches
            .get(at)
            .is_some_and(|(b, _)| b.start < offsets.end)
        {
            st.batches.truncate(at);
        }
        if st.batches.len() == RECENT_BATCHES {
            st.batches.pop_front();
        }
        let at = st.batches.partition_point(|(b, _)| b.end <= offsets.start);
        st.batches.insert(at, (offsets, now));
    }

    /// A write appended at `appended` was covered by the leader's own fsync at `now`.
    pub fn own_fsync(&self, appended: Instant, now: Instant) {
        self.st
            .lock()
            .path
            .own_fsync
            .add(now.saturating_duration_since(appended));
    }

    /// A write appended at `appended` committed at `now`.
    pub fn committed(&self, appended: Instant, now: Instant) {
        self.st
            .lock()
            .path
            .committed
            .add(now.saturating_duration_since(appended));
    }

    /// `follower`'s fetch arrived at `now`: the end of its turnaround if it was last sent records.
    pub fn fetch_arrived(&self, follower: u32, now: Instant) {
        let mut st = self.st.lock();
        if let Some(sent) = st.sent.remove(&follower) {
            st.path.turnaround.add(now.saturating_duration_since(sent));
        }
    }

    /// `follower` was sent the records `offsets` at `now`: each remembered batch among them waited
    /// from its append until now.
    pub fn records_sent(&self, follower: u32, offsets: RangeInclusive<u64>, now: Instant) {
        let mut st = self.st.lock();
        let st = &mut *st;
        st.sent.insert(follower, now);
        let first = st
            .batches
            .partition_point(|(b, _)| b.end <= *offsets.start());
        for (b, at) in st.batches.range(first..) {
            if b.start > *offsets.end() {
                break;
            }
            st.path.fetch_wait.add(now.saturating_duration_since(*at));
        }
    }

    /// Forgets the batches and sends of an earlier term (a replica that leads again); the means
    /// stay.
    pub fn forget(&self) {
        let mut st = self.st.lock();
        st.batches.clear();
        st.sent.clear();
    }

    /// The means so far.
    pub fn snapshot(&self) -> CommitPath {
        self.st.lock().path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn one_write_through_every_stage() {
        let t = CommitTiming::default();
        let t0 = Instant::now();
        t.appended(0..5, t0);
        t.fetch_arrived(2, t0 + us(100)); // a fetch with nothing sent before: no turnaround
        t.records_sent(2, 0..=4, t0 + us(300));
        t.own_fsync(t0, t0 + us(400));
        t.fetch_arrived(2, t0 + us(850));
        t.committed(t0, t0 + us(1000));
        let p = t.snapshot();
        assert_eq!(p.fetch_wait.get(), Some(us(300)));
        assert_eq!(p.own_fsync.get(), Some(us(400)));
        assert_eq!(p.turnaround.get(), Some(us(550)));
        assert_eq!(p.turnaround.count, 1);
        assert_eq!(p.committed.get(), Some(us(1000)));
        let line = p.describe().expect("a line");
        assert_eq!(
            line,
            "after the append: leader's fsync 400 µs, sent to a follower 300 µs, committed \
             1000 µs; a follower's round (copy, fsync, fetch again) 550 µs (means; 1 acks=all \
             appends committed)"
        );
    }

    #[test]
    fn a_fetch_counts_the_batches_it_carries_and_no_other() {
        let t = CommitTiming::default();
        let t0 = Instant::now();
        t.appended(0..2, t0);
        t.appended(2..3, t0 + us(100));
        t.appended(3..6, t0 + us(200));
        // Offsets 1..=2 touch the first two batches, not the third.
        t.records_sent(2, 1..=2, t0 + us(500));
        let p = t.snapshot();
        assert_eq!(p.fetch_wait.count, 2);
        assert_eq!(p.fetch_wait.get(), Some(us(450)));
        // Another follower fetches all three.
        t.records_sent(3, 0..=5, t0 + us(600));
        assert_eq!(t.snapshot().fetch_wait.count, 5);
    }

    #[test]
    fn a_truncated_log_forgets_the_batches_it_lost() {
        let t = CommitTiming::default();
        let t0 = Instant::now();
        t.appended(0..10, t0);
        // Truncated to 4 and written again from there.
        t.appended(4..6, t0 + us(1000));
        t.records_sent(2, 0..=5, t0 + us(1100));
        let p = t.snapshot();
        assert_eq!(p.fetch_wait.count, 1, "only the batch still in the log");
        assert_eq!(p.fetch_wait.get(), Some(us(100)));
    }

    #[test]
    fn batches_noted_out_of_order_are_both_kept() {
        let t = CommitTiming::default();
        let t0 = Instant::now();
        t.appended(5..8, t0 + us(10));
        t.appended(0..5, t0);
        t.records_sent(2, 0..=7, t0 + us(100));
        let p = t.snapshot();
        assert_eq!(p.fetch_wait.count, 2);
        assert_eq!(p.fetch_wait.get(), Some(us(95)));
    }

    #[test]
    fn a_new_term_matches_nothing_of_the_last() {
        let t = CommitTiming::default();
        let t0 = Instant::now();
        t.appended(0..5, t0);
        t.records_sent(2, 0..=4, t0 + us(100));
        t.forget();
        t.fetch_arrived(2, t0 + us(900));
        t.records_sent(2, 0..=4, t0 + us(1000));
        let p = t.snapshot();
        assert_eq!(p.turnaround.count, 0, "no round spans two terms");
        assert_eq!(p.fetch_wait.count, 1, "the old batch is not matched again");
    }

    #[test]
    fn only_recent_batches_are_remembered() {
        let t = CommitTiming::default();
        let t0 = Instant::now();
        for i in 0..=RECENT_BATCHES as u64 {
            t.appended(i..i + 1, t0);
        }
        t.records_sent(2, 0..=0, t0 + us(10));
        assert_eq!(t.snapshot().fetch_wait.count, 0, "batch 0 was forgotten");
        t.records_sent(2, 1..=1, t0 + us(10));
        assert_eq!(t.snapshot().fetch_wait.count, 1);
    }

    #[test]
    fn leaders_merge_and_nothing_committed_says_nothing() {
        let mut a = CommitPath::default();
        assert_eq!(a.describe(), None);
        let t = CommitTiming::default();
        let t0 = Instant::now();
        t.committed(t0, t0 + us(200));
        a.merge(&t.snapshot());
        a.merge(&t.snapshot());
        assert_eq!(a.committed.count, 2);
        assert_eq!(a.committed.get(), Some(us(200)));
        assert!(a.describe().is_some());
    }
}
