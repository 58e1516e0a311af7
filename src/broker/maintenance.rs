//! Log maintenance: high-watermark checkpoints every second, and merges of committed sealed
//! segments every `merge_interval_ms`. Both run on blocking threads.

use super::Inner;
use crate::events::EventKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often maintenance looks whether a merge is due.
const TICK: Duration = Duration::from_secs(1);

pub(super) async fn run(inner: Arc<Inner>) {
    let merge_every = Duration::from_millis(inner.cfg.replication.merge_interval_ms);
    let mut last_merge = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = inner.shutdown.cancelled() => return,
        }
        let merge = !merge_every.is_zero() && last_merge.elapsed() >= merge_every;
        if merge {
            last_merge = Instant::now();
        }
        for replica in inner.replicas.values() {
            let r = Arc::clone(replica);
            let done = tokio::task::spawn_blocking(move || {
                r.checkpoint_hw()?;
                if merge { r.merge() } else { Ok(None) }
            })
            .await;
            match done {
                Ok(Ok(Some(report))) if report.records_kept < report.records_in => {
                    inner.events.emit(
                        EventKind::Info,
                        Some(replica.partition()),
                        format!(
                            "merged {} segment(s): kept {} of {} records",
                            report.segments_in, report.records_kept, report.records_in
                        ),
                    )
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => inner.events.emit(
                    EventKind::Warning,
                    Some(replica.partition()),
                    format!("log maintenance failed: {e}"),
                ),
                Err(e) => tracing::error!(error = %e, "log maintenance task panicked"),
            }
        }
    }
}
