//! Following znodes: call back with the current value now and after every change, re-arming the
//! one-shot watch each time, until cancelled or the session expires.

use super::error::{CoordError, Result};
use super::layout::{BrokerInfo, ControllerInfo, PartitionState};
use super::zk::Coord;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use zookeeper_client::OneshotWatcher;

/// The wait before re-arming a watch that failed for another reason than the session's end.
const REARM_RETRY: Duration = Duration::from_millis(200);

async fn follow<T, F, Fut>(token: &CancellationToken, mut read: F, mut on_change: impl FnMut(T))
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(T, OneshotWatcher)>>,
{
    loop {
        match read().await {
            Ok((value, watcher)) => {
                on_change(value);
                // The token first: once a client is dropped its session may end with the
                // process, and zookeeper-client panics when a watch whose session task is gone
                // is polled (an unwrap on the cancelled channel), printing a panic on a cli's
                // stderr as it exits.
                tokio::select! {
                    biased;
                    _ = token.cancelled() => return,
                    _ = watcher.changed() => {}
                }
            }
            Err(CoordError::SessionExpired) => return,
            Err(e) => {
                tracing::debug!(error = %e, "re-arming a ZooKeeper watch");
                tokio::select! {
                    _ = tokio::time::sleep(REARM_RETRY) => {}
                    _ = token.cancelled() => return,
                }
            }
        }
    }
}

/// Follows the registered brokers.
pub async fn follow_brokers(
    coord: &Coord,
    token: &CancellationToken,
    on_change: impl FnMut(BTreeMap<u32, BrokerInfo>),
) {
    follow(token, || coord.watch_brokers(), on_change).await;
}

/// Follows one partition's state (and its znode version).
pub async fn follow_partition_state(
    coord: &Coord,
    p: u32,
    token: &CancellationToken,
    on_change: impl FnMut(Option<(PartitionState, i32)>),
) {
    follow(token, || coord.watch_partition_state(p), on_change).await;
}

/// Follows `/controller`.
pub async fn follow_controller(
    coord: &Coord,
    token: &CancellationToken,
    on_change: impl FnMut(Option<ControllerInfo>),
) {
    follow(token, || coord.watch_controller_info(), on_change).await;
}
