//! Following ZooKeeper: a client whose routes come from ZooKeeper watches every partition's
//! state and the registered brokers, and re-reads its routes when one changes; when its session
//! expires the watches end, and the refresh that follows opens a new session and watches it.

use super::{Client, Source};
use crate::coord::Coord;
use std::sync::Arc;
use std::time::Duration;

/// How soon a failed background refresh is tried again.
const REFRESH_RETRY: Duration = Duration::from_secs(1);

impl Client {
    /// With ZooKeeper as the source, re-reads the routes whenever a partition's state or the
    /// brokers change, so a request goes to the new leader at once instead of to a deposed one
    /// (which may be frozen, and answer nothing until the request times out).
    pub(super) fn follow(&self) {
        let Source::Zk(zk) = &self.inner.source else {
            return;
        };
        self.follow_with(zk.coord(), self.partitions());
    }

    /// Ends the tasks that follow ZooKeeper, before a process stops its runtime: a watch task
    /// still waiting when the runtime drops the ZooKeeper session's own task would be woken by
    /// it and panic inside zookeeper-client (seen as a stray panic on a cli's stderr).
    pub fn stop_following(&self) {
        self.inner.following.cancel();
    }

    /// Follows ZooKeeper in session `coord`, ending the tasks of the session before.
    pub(super) fn follow_with(&self, coord: Coord, partitions: u32) {
        let changed = Arc::new(tokio::sync::Notify::new());
        let token = self.inner.following.child_token();
        let before = self.inner.session_tasks.lock().replace(token.clone());
        if let Some(before) = before {
            before.cancel();
        }
        let coord = &coord;
        // A watch ends only when cancelled or when the session has expired; then it says so, and
        // the refresh it causes opens a new session (which starts new watches).
        for p in 0..partitions {
            let (coord, token, changed) = (coord.clone(), token.clone(), Arc::clone(&changed));
            tokio::spawn(async move {
                crate::coord::follow_partition_state(&coord, p, &token, |_| changed.notify_one())
                    .await;
                changed.notify_one();
            });
        }
        {
            let (coord, token, changed) = (coord.clone(), token.clone(), Arc::clone(&changed));
            tokio::spawn(async move {
                crate::coord::follow_brokers(&coord, &token, |_| changed.notify_one()).await;
                changed.notify_one();
            });
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut retry = false;
            loop {
                tokio::select! {
                    () = changed.notified() => {}
                    // A refresh that failed (ZooKeeper away, a new session refused) is tried
                    // again: no watch is left to say when.
                    () = tokio::time::sleep(REFRESH_RETRY), if retry => {}
                    () = token.cancelled() => return,
                }
                let Some(inner) = weak.upgrade() else { return };
                retry = Client { inner }.refresh().await.is_err();
            }
        });
    }
}
