//! The leader lease: a leader may serve reads and acknowledge acks=1 writes only while it can
//! prove from its own monotonic clock that its ZooKeeper session is alive, so a leader that was
//! paused (or cut off) and wakes up a zombie refuses before it learns it was deposed.
//!
//! The proof: ZooKeeper answered a request *sent* at `t`, so the server heard the session at or
//! after `t` and cannot expire it before `t + session_timeout`; no other leader can be elected
//! before then. The lease runs to `t + LEASE_FRACTION × session_timeout`, leaving the rest of the
//! session timeout as margin for clock-rate differences and scheduling.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The share of the session timeout a lease lasts after the request that renewed it was sent.
pub const LEASE_FRACTION: (u32, u32) = (2, 3);

/// How long a lease renewed by a request sent at `sent` lasts: until `sent + 2/3 × session`.
pub fn lease_end(sent: Instant, session_timeout: Duration) -> Instant {
    sent + session_timeout * LEASE_FRACTION.0 / LEASE_FRACTION.1
}

/// The shortest renewal period, however short the session (a renewal is a ZooKeeper round trip).
const MIN_RENEW_PERIOD: Duration = Duration::from_millis(20);

/// How often to renew so that one late or lost answer does not lapse the lease.
pub fn renew_period(session_timeout: Duration) -> Duration {
    (session_timeout / 6).max(MIN_RENEW_PERIOD)
}

/// A broker's lease, shared by its replicas. Lock-free: it is read on every request.
#[derive(Debug)]
pub struct Lease {
    base: Instant,
    /// Nanoseconds after `base` at which the lease ends; 0 = no lease.
    until_ns: AtomicU64,
}

impl Default for Lease {
    fn default() -> Self {
        Self::new()
    }
}

impl Lease {
    /// A lease that holds nothing yet.
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            until_ns: AtomicU64::new(0),
        }
    }

    /// Extends the lease to `until` (never shortens it).
    pub fn extend_to(&self, until: Instant) {
        let ns = until.saturating_duration_since(self.base).as_nanos() as u64;
        self.until_ns.fetch_max(ns.max(1), Ordering::SeqCst);
    }

    /// Ends the lease at once (the session is gone).
    pub fn revoke(&self) {
        self.until_ns.store(0, Ordering::SeqCst);
    }

    /// Whether the lease holds at `now`.
    pub fn holds(&self, now: Instant) -> bool {
        let until = self.until_ns.load(Ordering::SeqCst);
        until != 0 && now.saturating_duration_since(self.base).as_nanos() < u128::from(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_holds_until_two_thirds_of_the_session_after_the_send() {
        let lease = Lease::new();
        let t = Instant::now();
        assert!(!lease.holds(t), "no lease before the first renewal");
        let session = Duration::from_secs(6);
        lease.extend_to(lease_end(t, session));
        assert!(lease.holds(t + Duration::from_millis(3999)));
        assert!(!lease.holds(t + Duration::from_secs(4)));
        assert!(
            !lease.holds(t + Duration::from_secs(12)),
            "a leader paused for two session timeouts wakes without a lease"
        );
    }

    #[test]
    fn a_late_answer_never_shortens_and_revoke_ends_at_once() {
        let lease = Lease::new();
        let t = Instant::now();
        let session = Duration::from_secs(3);
        lease.extend_to(lease_end(t + Duration::from_secs(1), session));
        lease.extend_to(lease_end(t, session));
        assert!(lease.holds(t + Duration::from_millis(2900)));
        lease.revoke();
        assert!(!lease.holds(t));
    }

    #[test]
    fn renewals_come_several_times_per_lease() {
        let session = Duration::from_secs(6);
        let lease = lease_end(Instant::now(), session) - Instant::now();
        assert!(renew_period(session) * 3 < lease);
    }
}
