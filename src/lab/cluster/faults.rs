//! Faults of a broker's machine beyond a clean crash: a pause (the machine frozen whole, see
//! [`super::super::host`]), a power loss (unsynced bytes gone, see [`DiskModel`]) and a replaced
//! disk.

use super::{Cluster, ClusterError};
use crate::coord::ZkMode;
use crate::events::EventKind;
use crate::storage::PowerLossReport;

impl Cluster {
    /// Freezes broker `id`'s machine. Its ZooKeeper session expires while it is frozen, and it
    /// comes back believing what it believed (a zombie). Returns the pause's number, for
    /// [`Cluster::resume_pause`].
    pub async fn pause(&self, id: u32) -> Result<u64, ClusterError> {
        let slot = self.slot(id)?;
        let _busy = slot.busy.lock().await;
        let frozen = match slot.running().as_ref() {
            None => return Err(ClusterError::Config(format!("broker {id} is down"))),
            Some(r) => r.host.freeze(),
        };
        let Some(frozen) = frozen else {
            return Err(ClusterError::Config(format!(
                "broker {id} is already paused"
            )));
        };
        let _ = frozen.await;
        let number = slot
            .pauses
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        self.events.for_broker(id).emit(
            EventKind::Fault,
            None,
            format!(
                "paused: its timers, tasks and I/O are frozen mid-flight; its ZooKeeper session \
                 expires in {} ms while it still believes what it believed",
                self.options.session_timeout_ms
            ),
        );
        Ok(number)
    }

    /// Resumes broker `id` if pause `number` is still the one in force (a timed pause must not
    /// end a later one).
    pub async fn resume_pause(&self, id: u32, number: u64) -> Result<(), ClusterError> {
        let slot = self.slot(id)?;
        if slot.pauses.load(std::sync::atomic::Ordering::SeqCst) != number || !self.is_paused(id) {
            return Ok(());
        }
        self.resume(id).await
    }

    /// Whether broker `id`'s disk was replaced and it has not been restored since.
    pub fn is_wiped(&self, id: u32) -> bool {
        self.slot(id)
            .is_ok_and(|s| s.wiped.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Lets paused broker `id` run on, a zombie until it learns what changed.
    pub async fn resume(&self, id: u32) -> Result<(), ClusterError> {
        let slot = self.slot(id)?;
        let _busy = slot.busy.lock().await;
        let running = slot.running();
        match running.as_ref() {
            Some(r) if r.host.is_paused() => r.host.resume(),
            Some(_) => return Err(ClusterError::Config(format!("broker {id} is not paused"))),
            None => return Err(ClusterError::Config(format!("broker {id} is down"))),
        }
        drop(running);
        self.events.for_broker(id).emit(
            EventKind::Fault,
            None,
            "resumed: it runs on from where it froze, still believing what it believed until it hears otherwise",
        );
        Ok(())
    }

    /// Whether broker `id` is paused.
    pub fn is_paused(&self, id: u32) -> bool {
        self.slot(id)
            .ok()
            .and_then(|s| s.running().as_ref().map(|r| r.host.is_paused()))
            .unwrap_or(false)
    }

    /// Cuts broker `id`'s power: it crashes (if up), and its files keep only what was fsynced.
    pub async fn power_loss(&self, id: u32) -> Result<PowerLossReport, ClusterError> {
        let slot = self.slot(id)?;
        let _busy = slot.busy.lock().await;
        self.network.broker_down(id);
        let running = slot.running().take();
        if let Some(running) = running {
            running.crash().await;
        }
        let dir = slot.cfg().data_dir;
        let report = slot
            .disk
            .power_loss(&dir)
            .map_err(|e| ClusterError::Other(format!("power loss of broker {id}: {e}")))?;
        let fsync = self.options.storage.fsync;
        self.events.for_broker(id).emit(
            EventKind::Kill,
            None,
            format!(
                "power lost (fsync: {fsync}): {} bytes never fsynced are gone ({} files cut back, {} files vanished); restore reboots it",
                report.bytes_lost(),
                report.cut.len(),
                report.vanished.len()
            ),
        );
        Ok(report)
    }
}

impl Cluster {
    /// Changes the link faults (`what` says how, for the event) and applies them to every link.
    pub fn change_links(
        &self,
        what: &str,
        f: impl FnOnce(&mut crate::lab::network::Faults, &[u32]),
    ) -> Result<crate::lab::network::Faults, ClusterError> {
        let now = self.network.change(f).map_err(ClusterError::Config)?;
        let state = match now.describe() {
            d if d.is_empty() => "every link is whole".to_string(),
            d => format!("in force: {}", d.join(", ")),
        };
        self.events
            .emit(EventKind::Fault, None, format!("network: {what}; {state}"));
        Ok(now)
    }
}

/// How long the console waits for one ZooKeeper server's `srvr` answer.
const SRVR_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1000);

impl Cluster {
    /// How many private ZooKeeper servers the lab runs (0: it uses an external ZooKeeper).
    pub fn zk_server_count(&self) -> usize {
        self.ensemble.as_ref().map_or(0, |e| e.size())
    }

    /// Each private ZooKeeper server's mode, in id order (empty with an external ZooKeeper);
    /// one too slow to answer counts as not serving.
    pub async fn zk_modes(&self) -> Vec<ZkMode> {
        self.zk_answers()
            .await
            .into_iter()
            .map(|m| m.unwrap_or(ZkMode::NotServing))
            .collect()
    }

    /// Each private ZooKeeper server's answer to `srvr`, in id order: `None` for one too slow
    /// to answer.
    pub async fn zk_answers(&self) -> Vec<Option<ZkMode>> {
        // Stopped with the lab: its servers are down on purpose, which is no news.
        let Some(ensemble) = self.ensemble.as_ref().filter(|e| !e.is_stopped()) else {
            return Vec::new();
        };
        let asks = ensemble
            .addrs()
            .into_iter()
            .map(|a| crate::coord::server::mode_of_async(a, SRVR_TIMEOUT));
        futures_util::future::join_all(asks).await
    }

    /// Whether private ZooKeeper server `n`'s process runs.
    pub fn zk_server_up(&self, n: u32) -> bool {
        self.ensemble.as_ref().is_some_and(|e| e.is_up(n))
    }

    /// Runs `op` on the private ensemble off the runtime (it may wait for a server); returns
    /// how many of how many servers run afterwards.
    async fn on_ensemble(
        &self,
        op: impl FnOnce(&crate::coord::Ensemble) -> Result<(), String> + Send + 'static,
    ) -> Result<(usize, usize), ClusterError> {
        let ensemble = self.ensemble.clone().ok_or_else(|| {
            ClusterError::Config(
                "this lab uses an external ZooKeeper (--zk): it cannot kill or restore its servers"
                    .into(),
            )
        })?;
        tokio::task::spawn_blocking(move || {
            op(&ensemble).map(|()| (ensemble.up_count(), ensemble.size()))
        })
        .await
        .map_err(|e| ClusterError::Other(e.to_string()))?
        .map_err(ClusterError::Config)
    }

    /// Crashes private ZooKeeper server `n` (SIGKILL): its clients move to another server;
    /// with a majority gone the ensemble stops serving.
    pub async fn kill_zk(&self, n: u32) -> Result<(), ClusterError> {
        let (up, size) = self.on_ensemble(move |e| e.kill(n)).await?;
        let quorum = crate::coord::ensemble::quorum_of(size);
        let what = if up >= quorum {
            format!(
                "{up} of {size} servers still run, enough for a quorum of {quorum}: its clients' sessions move to another server"
            )
        } else {
            format!(
                "{up} of {size} servers still run, fewer than a quorum of {quorum}: ZooKeeper stops \
                 serving; leaders serve on only while their leases last, and nothing that needs \
                 ZooKeeper (an election, an ISR change, a registration) can happen until it returns"
            )
        };
        self.events.emit(
            EventKind::Zk,
            None,
            format!("zk:{n} killed (crashed): {what}"),
        );
        Ok(())
    }

    /// Starts private ZooKeeper server `n` again on its data; returns once it serves (when a
    /// quorum can form).
    pub async fn restore_zk(&self, n: u32) -> Result<(), ClusterError> {
        let (up, size) = self.on_ensemble(move |e| e.restore(n)).await?;
        self.events.emit(
            EventKind::Zk,
            None,
            format!("zk:{n} restored on its data ({up} of {size} servers up)"),
        );
        Ok(())
    }
}
