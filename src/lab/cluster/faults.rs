//! Faults of a broker's machine beyond a clean crash: a pause (the machine frozen whole, see
//! [`super::super::host`]), a power loss (unsynced bytes gone, see [`DiskModel`]) and a replaced
//! disk.

use super::{Cluster, ClusterError};
use crate::events::EventKind;
use crate::storage::PowerLossReport;

impl Cluster {
    /// Freezes broker `id`'s machine. Its ZooKeeper session expires while it is frozen, and it
    /// comes back believing what it believed (a zombie).
    pub async fn pause(&self, id: u32) -> Result<(), ClusterError> {
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
        self.events.for_broker(id).emit(
            EventKind::Fault,
            None,
            format!(
                "paused: its timers, tasks and I/O are frozen mid-flight; its ZooKeeper session \
                 expires in {} ms while it still believes what it believed",
                self.options.session_timeout_ms
            ),
        );
        Ok(())
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
