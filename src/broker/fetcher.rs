//! Follower fetchers: one task per partition this broker follows. Each first truncates by leader
//! epoch (KIP-101/279), then long-polls its leader and appends what arrives. A new role or epoch
//! ends the task; the session loop starts a new one.

use super::Inner;
use super::peers::peer_addr;
use crate::events::EventKind;
use crate::replica::{EpochAnswer, FollowTarget, Replica, ReplicaError};
use crate::rpc::{self, FetchRequest, OffsetForLeaderEpochRequest, Reason};
use std::sync::Arc;
use std::time::Duration;

/// Starts (or restarts) the fetcher of `replica` for its current leader.
pub(super) fn start(inner: &Arc<Inner>, replica: Arc<Replica>) {
    let Some(target) = replica.follow_target() else {
        return;
    };
    let p = replica.partition();
    let handle = tokio::spawn(run(Arc::clone(inner), replica, target));
    if let Some(old) = inner
        .fetchers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(p, handle)
    {
        old.abort();
    }
}

/// Stops the fetcher of partition `p`, if any.
pub(super) fn stop(inner: &Inner, p: u32) {
    if let Some(h) = inner
        .fetchers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&p)
    {
        h.abort();
    }
}

async fn run(inner: Arc<Inner>, replica: Arc<Replica>, target: FollowTarget) {
    let mut generation = replica.generation_watch();
    tokio::select! {
        _ = generation.wait_for(|g| *g != target.generation) => {}
        _ = fetch_loop(&inner, &replica, target) => {}
        _ = inner.shutdown.cancelled() => {}
    }
}

async fn fetch_loop(inner: &Inner, replica: &Replica, target: FollowTarget) {
    let p = replica.partition();
    let me = inner.id();
    let max_wait = Duration::from_millis(u64::from(inner.cfg.replication.fetch_max_wait_ms));
    let mut truncated = false;
    let mut backoff = Duration::from_millis(20);
    let grow = |b: Duration| (b * 2).min(Duration::from_secs(1));
    loop {
        let Some(mut client) = peer_addr(inner, target.leader)
            .await
            .and_then(|addr| inner.peers.get(&addr))
        else {
            tokio::time::sleep(backoff).await;
            backoff = grow(backoff);
            continue;
        };
        if !truncated {
            let Some(epoch) = replica.latest_epoch() else {
                truncated = true;
                continue;
            };
            let req = OffsetForLeaderEpochRequest {
                partition: p,
                replica_id: me,
                requested_epoch: epoch,
                current_leader_epoch: target.epoch,
            };
            match tokio::time::timeout(Duration::from_secs(5), client.offset_for_leader_epoch(req))
                .await
            {
                Ok(Ok(resp)) => {
                    let r = resp.into_inner();
                    let answer = if r.undefined {
                        EpochAnswer::Undefined
                    } else {
                        EpochAnswer::At {
                            epoch: r.leader_epoch,
                            end_offset: r.end_offset,
                        }
                    };
                    match replica.truncate_to_leader(epoch, answer, target.generation) {
                        Ok(_) => truncated = true,
                        Err(e) => {
                            inner.events.emit(
                                EventKind::Warning,
                                Some(p),
                                format!("truncation failed: {e}"),
                            );
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
                // The leader may not have taken up its role yet, or be unreachable: try again.
                _ => {
                    tokio::time::sleep(backoff).await;
                    backoff = grow(backoff);
                }
            }
            continue;
        }
        let req = FetchRequest {
            partition: p,
            replica_id: me,
            fetch_offset: replica.log().log_end_offset(),
            leader_epoch: target.epoch,
            max_bytes: inner.cfg.replication.fetch_max_bytes,
            max_wait_ms: inner.cfg.replication.fetch_max_wait_ms,
        };
        match tokio::time::timeout(max_wait + Duration::from_secs(5), client.fetch(req)).await {
            Ok(Ok(resp)) => {
                backoff = Duration::from_millis(20);
                let r = resp.into_inner();
                match replica
                    .append_fetched(target.generation, &r.records, r.high_watermark)
                    .await
                {
                    Ok(_) => {}
                    Err(ReplicaError::NotLeader { .. }) => return,
                    Err(e) => {
                        inner.events.emit(
                            EventKind::Warning,
                            Some(p),
                            format!("cannot append records from leader {}: {e}", target.leader),
                        );
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            Ok(Err(status)) => match rpc::reason_of(&status) {
                Some(Reason::OffsetOutOfRange) => truncated = false,
                Some(Reason::TruncateToEmpty) => {
                    if let Err(e) = replica.truncate_to_empty(target.generation) {
                        inner.events.emit(
                            EventKind::Warning,
                            Some(p),
                            format!("cannot empty the log: {e}"),
                        );
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                _ => {
                    tokio::time::sleep(backoff).await;
                    backoff = grow(backoff);
                }
            },
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = grow(backoff);
            }
        }
    }
}
