//! A broker's machine: one OS thread driving a current-thread runtime that runs every task of the
//! broker (its gRPC servers, ZooKeeper session, fetchers, timers). One thread is what makes a real
//! pause possible (DESIGN §13): blocking it freezes the broker whole — tasks, timers and I/O stop
//! mid-flight and resume exactly where they stopped, as under SIGSTOP or a long GC pause — while
//! the rest of the lab runs on. Stopping the runtime drops every task and socket at once: a crash.

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;

/// How long a stopping runtime waits for blocking work (a merge, a replica opening) to end.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Whether the machine is frozen, and by which pause. The lock is held only to read or change
/// the state, never across an `.await` (the frozen thread waits on the condvar, which releases
/// it).
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    wake: Condvar,
}

#[derive(Default)]
struct GateState {
    paused: bool,
    /// Pauses so far: a blocker holds the thread only for its own pause, so a resume followed at
    /// once by a pause (before the first blocker woke) cannot leave the old blocker holding the
    /// thread while the new one, queued behind it, never runs to report the freeze.
    pause: u64,
}

impl Gate {
    fn lock(&self) -> parking_lot::MutexGuard<'_, GateState> {
        self.state.lock()
    }

    /// Sets the gate for a new pause and returns its number.
    fn close(&self) -> u64 {
        let mut st = self.lock();
        st.paused = true;
        st.pause += 1;
        let n = st.pause;
        drop(st);
        self.wake.notify_all();
        n
    }

    fn open(&self) {
        self.lock().paused = false;
        self.wake.notify_all();
    }

    fn is_set(&self) -> bool {
        self.lock().paused
    }

    /// Blocks the calling thread while pause `n` is in force.
    fn hold(&self, n: u64) {
        let mut st = self.lock();
        while st.paused && st.pause == n {
            self.wake.wait(&mut st);
        }
    }
}

/// One broker's thread and runtime.
pub(super) struct Host {
    handle: Handle,
    gate: Arc<Gate>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Host {
    /// Starts the thread `name` and its runtime.
    pub(super) fn start(name: String) -> std::io::Result<Self> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(runtime.handle().clone()));
            runtime.block_on(async {
                let _ = stop_rx.await;
            });
            runtime.shutdown_timeout(STOP_GRACE);
        })?;
        let handle = ready_rx.recv().map_err(|_| {
            std::io::Error::other("the broker thread ended before its runtime started")
        })??;
        Ok(Self {
            handle,
            gate: Arc::new(Gate::default()),
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Where the broker's tasks run.
    pub(super) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Freezes the machine. The receiver completes once its thread is blocked (every task it had
    /// is suspended at its last `.await`, none runs until [`Host::resume`]). `None` when it was
    /// paused already.
    pub(super) fn freeze(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        if self.gate.is_set() {
            return None;
        }
        let n = self.gate.close();
        let (frozen_tx, frozen_rx) = tokio::sync::oneshot::channel::<()>();
        let gate = Arc::clone(&self.gate);
        self.handle.spawn(async move {
            let _ = frozen_tx.send(());
            gate.hold(n);
        });
        Some(frozen_rx)
    }

    /// Lets a paused machine run on from where it stopped.
    pub(super) fn resume(&self) {
        self.gate.open();
    }

    /// Whether the machine is paused.
    pub(super) fn is_paused(&self) -> bool {
        self.gate.is_set()
    }

    /// Stops the runtime, dropping every task and socket. A paused machine is let go first, so its
    /// thread can end: it may run the tasks already queued before the stop is seen, so the caller
    /// resets its links before (nothing it sends then reaches anyone). Its fsync thread and any
    /// blocking work (a merge) are not frozen by a pause either; they wind down with the runtime.
    /// Returns the thread to join.
    pub(super) fn stop(mut self) -> Option<std::thread::JoinHandle<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.gate.open();
        self.thread.take()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.gate.open();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    async fn stop_and_join(host: Host) {
        let thread = host.stop().expect("thread");
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("joined")
            .expect("no panic");
    }

    #[tokio::test]
    async fn a_paused_host_runs_nothing_until_resumed_and_its_timers_wait_too() {
        let host = Host::start("test-host".into()).expect("host");
        let ticks = Arc::new(AtomicU64::new(0));
        let t = Arc::clone(&ticks);
        host.handle().spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                t.fetch_add(1, Ordering::SeqCst);
            }
        });
        while ticks.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        host.freeze()
            .expect("not paused yet")
            .await
            .expect("frozen");
        assert!(host.is_paused());
        assert!(host.freeze().is_none());
        let frozen = ticks.load(Ordering::SeqCst);
        // Showing that nothing happens takes a wait: there is no event to await.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            frozen,
            "a task ran while paused"
        );
        host.resume();
        while ticks.load(Ordering::SeqCst) <= frozen {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop_and_join(host).await;
    }

    #[tokio::test]
    async fn a_resume_followed_at_once_by_a_pause_freezes_again() {
        let host = Host::start("test-host".into()).expect("host");
        for _ in 0..200 {
            host.freeze().expect("not paused").await.expect("frozen");
            host.resume();
            // No yield between: the first blocker may not have woken yet.
            let frozen = host.freeze().expect("not paused");
            tokio::time::timeout(Duration::from_secs(10), frozen)
                .await
                .expect("the second pause reported its freeze")
                .expect("frozen");
            host.resume();
        }
        stop_and_join(host).await;
    }

    #[tokio::test]
    async fn a_paused_host_can_be_stopped() {
        let host = Host::start("test-host".into()).expect("host");
        host.freeze()
            .expect("not paused yet")
            .await
            .expect("frozen");
        stop_and_join(host).await;
    }
}
