//! Durability: which offsets are on disk, and the thread that makes them so.
//!
//! With `fsync: always` one flusher thread runs group commit: appenders write their bytes, note the
//! new log end and wait; the flusher fsyncs once for everything written so far and wakes every
//! waiter the sync covered. Concurrent appends therefore share one fsync. A thread that blocks in
//! [`Durability::wait`] while no fsync is running does that fsync itself instead of handing it to
//! the flusher and being woken back (two thread wake-ups a put for a lone writer); only one fsync
//! runs at a time either way. With `interval` the flusher syncs on a timer and nobody waits; with
//! `never` there is no thread.
//!
//! The state sits behind a `parking_lot::Mutex` (never held across an fsync or an `.await`).

use super::config::FsyncPolicy;
use super::error::{Result, StorageError};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::sync::Arc;
use std::time::Duration;

struct State {
    /// Log end offset written to the OS.
    written: u64,
    /// Every offset below this is durable.
    durable: u64,
    /// Lowest truncation point since the running sync began (a sync must not claim offsets that
    /// were truncated and rewritten while it ran).
    floor: u64,
    /// An fsync is running (the flusher's or a waiter's).
    syncing: bool,
    stop: bool,
    failed: Option<String>,
    /// Fsyncs done by the flusher.
    syncs: u64,
}

/// What fsyncs the active segment: the log end offset it covered, `None` once the store is gone.
type SyncFn = Arc<dyn Fn() -> Option<Result<u64>> + Send + Sync>;

/// Shared between the store, the flusher thread and waiters.
pub struct Durability {
    policy: FsyncPolicy,
    interval: Duration,
    sync: std::sync::OnceLock<SyncFn>,
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
            sync: std::sync::OnceLock::new(),
            state: Mutex::new(State {
                written: leo,
                durable: leo,
                floor: u64::MAX,
                syncing: false,
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
        self.state.lock()
    }

    /// Starts the flusher thread if the policy needs one. `sync` fsyncs the active segment and
    /// returns the log end offset it covered; it returns `None` once the store is gone.
    pub fn spawn(
        self: &Arc<Self>,
        name: String,
        sync: impl Fn() -> Option<Result<u64>> + Send + Sync + 'static,
    ) -> std::io::Result<()> {
        if self.policy == FsyncPolicy::Never {
            return Ok(());
        }
        let sync: SyncFn = Arc::new(sync);
        let _ = self.sync.set(Arc::clone(&sync));
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || me.run(sync))
            .map(|_| ())
    }

    fn run(&self, sync: SyncFn) {
        loop {
            {
                let mut st = self.lock();
                match self.policy {
                    FsyncPolicy::Always => {
                        while !st.stop && (st.written <= st.durable || st.syncing) {
                            self.work.wait(&mut st);
                        }
                    }
                    _ => {
                        self.work.wait_for(&mut st, self.interval);
                    }
                }
                if st.stop {
                    return;
                }
                if st.written <= st.durable || st.syncing {
                    continue;
                }
                st.syncing = true;
                st.floor = u64::MAX;
            }
            if !self.finish_sync(sync()) {
                return;
            }
        }
    }

    /// Records the end of the fsync this thread started (after setting `syncing` and resetting
    /// `floor` under the lock). Returns false when the store can take no more syncs.
    fn finish_sync(&self, synced: Option<Result<u64>>) -> bool {
        let mut st = self.lock();
        st.syncing = false;
        let go_on = match synced {
            None => {
                st.failed.get_or_insert("the store was closed".into());
                false
            }
            Some(Ok(covered)) => {
                st.syncs += 1;
                let covered = covered.min(st.floor).min(st.written);
                if covered > st.durable {
                    st.durable = covered;
                    self.watch.send_replace(covered);
                }
                true
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "fsync failed; the store refuses further writes");
                st.failed.get_or_insert(e.to_string());
                false
            }
        };
        let more = st.written > st.durable;
        drop(st);
        self.done.notify_all();
        if more {
            // Appends that came during this sync may be waiting for the flusher.
            self.work.notify_one();
        }
        go_on
    }

    /// Records that the log now ends at `leo`. `wake_flusher` is false when the writer will
    /// block in [`Durability::wait`] next (it then fsyncs itself if nobody else is). Callers
    /// report log ends in the order they were reached (the store does so under its lock): an
    /// end reported late would move `written` back and leave the later records unsynced.
    pub fn note_written(&self, leo: u64, wake_flusher: bool) {
        let mut st = self.lock();
        st.written = leo;
        if self.policy != FsyncPolicy::Always || !wake_flusher {
            // Nobody waits on the other policies; the page cache holds the bytes.
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

    /// Records that everything up to `leo` was synced by someone else ([`super::Store::sync`]).
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
            if !st.syncing
                && st.written > st.durable
                && let Some(sync) = self.sync.get().cloned()
            {
                st.syncing = true;
                st.floor = u64::MAX;
                drop(st);
                self.finish_sync(sync());
                st = self.lock();
                continue;
            }
            self.done.wait(&mut st);
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

    /// How many fsyncs were done (by the flusher or by waiters).
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A durability whose "fsync" records which thread ran it and covers `log_end`.
    fn recording(log_end: Arc<AtomicU64>) -> (Arc<Durability>, Arc<Mutex<Vec<String>>>) {
        let d = Durability::new(FsyncPolicy::Always, Duration::from_millis(5), 0);
        let who = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&who);
        d.spawn("fsync test".into(), move || {
            let me = std::thread::current().name().unwrap_or("?").to_string();
            seen.lock().push(me);
            Some(Ok(log_end.load(Ordering::SeqCst)))
        })
        .expect("spawn");
        (d, who)
    }

    #[test]
    fn a_lone_blocking_writer_fsyncs_on_its_own_thread() {
        // No flusher thread at all: a writer blocked with no fsync running must do the fsync
        // itself. (With a flusher thread, which of the two syncs first is a race: both are
        // correct, so the test leaves the flusher out rather than assert a winner.)
        let d = Durability::new(FsyncPolicy::Always, Duration::from_millis(5), 0);
        let log_end = Arc::new(AtomicU64::new(0));
        let who = Arc::new(Mutex::new(Vec::new()));
        let (seen, end) = (Arc::clone(&who), Arc::clone(&log_end));
        let sync: SyncFn = Arc::new(move || {
            let me = std::thread::current().name().unwrap_or("?").to_string();
            seen.lock().push(me);
            Some(Ok(end.load(Ordering::SeqCst)))
        });
        assert!(d.sync.set(sync).is_ok());
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || {
                for leo in 1..=3 {
                    log_end.store(leo, Ordering::SeqCst);
                    d.note_written(leo, false);
                    d.wait(leo - 1).expect("durable");
                    assert_eq!(d.durable(), leo);
                }
                d.stop();
                let _ = done_tx.send(());
            })
            .expect("writer");
        done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the writer made its writes durable without a flusher thread");
        let who = who.lock().clone();
        assert_eq!(who, vec!["writer"; 3]);
    }

    #[test]
    fn an_append_for_async_waiters_is_synced_by_the_flusher() {
        let log_end = Arc::new(AtomicU64::new(0));
        let (d, who) = recording(Arc::clone(&log_end));
        log_end.store(2, Ordering::SeqCst);
        d.note_written(2, true);
        let mut watch = d.subscribe();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), watch.wait_for(|&v| v >= 2))
                .await
                .expect("the flusher synced")
                .expect("watch");
        });
        d.stop();
        let who = who.lock().clone();
        assert_eq!(who, vec!["fsync test"]);
    }
}
