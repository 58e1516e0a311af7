//! Durability: which offsets are on disk, and the thread that makes them so.
//!
//! With `fsync: always` one flusher thread runs group commit: appenders write their bytes, note the
//! new log end and wait; the flusher fsyncs once for everything written so far and wakes every
//! waiter the sync covered. Concurrent appends therefore share one fsync. With `interval` the same
//! thread syncs on a timer and nobody waits; with `never` there is no thread.
//!
//! The state sits behind a `std::sync::Mutex` (never held across an fsync or an `.await`).

use super::config::FsyncPolicy;
use super::error::{Result, StorageError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

struct State {
    /// Log end offset written to the OS.
    written: u64,
    /// Every offset below this is durable.
    durable: u64,
    /// Lowest truncation point since the running sync began (a sync must not claim offsets that
    /// were truncated and rewritten while it ran).
    floor: u64,
    stop: bool,
    failed: Option<String>,
    /// Fsyncs done by the flusher.
    syncs: u64,
}

/// Shared between the store, the flusher thread and waiters.
pub struct Durability {
    policy: FsyncPolicy,
    interval: Duration,
    state: Mutex<State>,
    work: Condvar,
    done: Condvar,
    watch: tokio::sync::watch::Sender<u64>,
}

impl Durability {
    /// Starts tracking a log whose end is `leo` (everything below it counts as durable).
    pub fn new(policy: FsyncPolicy, interval: Duration, leo: u64) -> Arc<Self> {
        Arc::new(Self {
            policy,
            interval,
            state: Mutex::new(State {
                written: leo,
                durable: leo,
                floor: u64::MAX,
                stop: false,
                failed: None,
                syncs: 0,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            watch: tokio::sync::watch::Sender::new(leo),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters inconsistent; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the flusher thread if the policy needs one. `sync` fsyncs the active segment and
    /// returns the log end offset it covered; it returns `None` once the store is gone.
    pub fn spawn(
        self: &Arc<Self>,
        name: String,
        sync: impl Fn() -> Option<Result<u64>> + Send + 'static,
    ) -> std::io::Result<()> {
        if self.policy == FsyncPolicy::Never {
            return Ok(());
        }
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || me.run(sync))
            .map(|_| ())
    }

    fn run(&self, sync: impl Fn() -> Option<Result<u64>>) {
        loop {
            {
                let mut st = self.lock();
                match self.policy {
                    FsyncPolicy::Always => {
                        while !st.stop && st.written <= st.durable {
                            st = self.work.wait(st).unwrap_or_else(|p| p.into_inner());
                        }
                    }
                    _ => {
                        st = self
                            .work
                            .wait_timeout(st, self.interval)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                }
                if st.stop {
                    return;
                }
                if st.written <= st.durable {
                    continue;
                }
                st.floor = u64::MAX;
            }
            match sync() {
                None => return,
                Some(Ok(covered)) => {
                    let mut st = self.lock();
                    st.syncs += 1;
                    let covered = covered.min(st.floor).min(st.written);
                    if covered > st.durable {
                        st.durable = covered;
                        self.watch.send_replace(covered);
                    }
                    self.done.notify_all();
                }
                Some(Err(e)) => {
                    tracing::error!(error = %e, "fsync failed; the store refuses further writes");
                    self.fail(e.to_string());
                    return;
                }
            }
        }
    }

    /// Records that the log now ends at `leo`.
    pub fn note_written(&self, leo: u64) {
        let mut st = self.lock();
        st.written = leo;
        if self.policy != FsyncPolicy::Always {
            // Nobody waits on these policies; the page cache holds the bytes.
            return;
        }
        drop(st);
        self.work.notify_one();
    }

    /// Records that the log was truncated to `leo`.
    pub fn note_truncated(&self, leo: u64) {
        let mut st = self.lock();
        st.written = leo;
        st.floor = st.floor.min(leo);
        if st.durable > leo {
            st.durable = leo;
            self.watch.send_replace(leo);
        }
    }

    /// Records that everything up to `leo` was synced by someone else (a clean close, a rotation).
    pub fn note_synced(&self, leo: u64) {
        let mut st = self.lock();
        if leo > st.durable && leo <= st.written {
            st.durable = leo;
            self.watch.send_replace(leo);
            self.done.notify_all();
        }
    }

    /// Marks the store failed: every waiter and every later write gets the error.
    pub fn fail(&self, why: String) {
        let mut st = self.lock();
        st.failed.get_or_insert(why);
        self.done.notify_all();
    }

    /// The failure, if any.
    pub fn failure(&self) -> Option<String> {
        self.lock().failed.clone()
    }

    /// Blocks until `offset` is durable (only `always` waits; the other policies promise less).
    pub fn wait(&self, offset: u64) -> Result<()> {
        if self.policy != FsyncPolicy::Always {
            return self
                .failure()
                .map_or(Ok(()), |f| Err(StorageError::Failed(f)));
        }
        let mut st = self.lock();
        loop {
            if let Some(f) = &st.failed {
                return Err(StorageError::Failed(f.clone()));
            }
            if st.durable > offset {
                return Ok(());
            }
            if st.stop {
                return Err(StorageError::Failed("the store was closed".into()));
            }
            st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The durable log end, as a watch for async waiters.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.watch.subscribe()
    }

    /// Every offset below this is durable.
    pub fn durable(&self) -> u64 {
        self.lock().durable
    }

    /// How many fsyncs the flusher has done.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Whether appends must wait for the flusher.
    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// Stops the flusher thread and fails pending waiters.
    pub fn stop(&self) {
        let mut st = self.lock();
        st.stop = true;
        drop(st);
        self.work.notify_all();
        self.done.notify_all();
    }
}
