//! Follower fetchers: one task per partition this broker follows. Each first truncates by leader
//! epoch (KIP-101/279), then long-polls its leader and appends what arrives. The fetches go one
//! after another on one `FetchStream` call, reopened after any failure. A new role or epoch ends
//! the task; the session loop starts a new one.

use super::Inner;
use super::peers::peer;
use crate::events::EventKind;
use crate::replica::{EpochAnswer, FollowTarget, LeaderView, Replica, ReplicaError};
use crate::rpc::{self, FetchRequest, OffsetForLeaderEpochRequest, Reason};
use crate::storage::checkpoint::EpochEntry;
use std::sync::Arc;
use std::time::Duration;

/// The first wait after a failed fetch; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(20);
/// The longest wait between failed fetches.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The wait after a fetch the leader refused for a reason waiting may cure.
const PAUSE: Duration = Duration::from_secs(1);

/// Starts (or restarts) the fetcher of `replica` for its current leader.
pub(super) fn start(inner: &Arc<Inner>, replica: Arc<Replica>) {
    let Some(target) = replica.follow_target() else {
        return;
    };
    let p = replica.partition();
    let handle = tokio::spawn(run(Arc::clone(inner), replica, target));
    if let Some(old) = inner.fetchers.lock().insert(p, handle) {
        old.abort();
    }
}

/// Stops the fetcher of partition `p`, if any.
pub(super) fn stop(inner: &Inner, p: u32) {
    if let Some(h) = inner.fetchers.lock().remove(&p) {
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
    let rpc_timeout = inner.cfg.request_timeout();
    let mut truncated = false;
    let mut backoff = BACKOFF_FIRST;
    let grow = |b: Duration| (b * 2).min(BACKOFF_MAX);
    let pause = PAUSE;
    let fetch_max_bytes = inner.cfg.replication.fetch_max_bytes as usize;
    let mut stream: Option<FetchStream> = None;
    loop {
        // Fetches carry this incarnation's broker epoch: without a registration, fetch nothing.
        let Some(broker_epoch) = inner.broker_epoch() else {
            tokio::time::sleep(backoff).await;
            backoff = grow(backoff);
            continue;
        };
        if !truncated {
            let Some(mut client) = peer(inner, target.leader).await else {
                tokio::time::sleep(backoff).await;
                backoff = grow(backoff);
                continue;
            };
            let requested = replica.latest_epoch();
            let answer = match requested {
                // Records but no epoch to ask about (the cache was lost): keep the committed
                // prefix only.
                None if replica.log().log_end_offset() > 0 => Ok(EpochAnswer::Undefined),
                None => {
                    truncated = true;
                    continue;
                }
                Some(epoch) => {
                    let req = OffsetForLeaderEpochRequest {
                        partition: p,
                        replica_id: me,
                        requested_epoch: epoch,
                        current_leader_epoch: target.epoch,
                    };
                    match tokio::time::timeout(rpc_timeout, client.offset_for_leader_epoch(req))
                        .await
                    {
                        Ok(Ok(resp)) => {
                            let r = resp.into_inner();
                            Ok(if r.undefined {
                                EpochAnswer::Undefined
                            } else {
                                EpochAnswer::At {
                                    epoch: r.leader_epoch,
                                    end_offset: r.end_offset,
                                }
                            })
                        }
                        // The leader may not have taken up its role yet, or be unreachable.
                        _ => Err(()),
                    }
                }
            };
            match answer {
                Ok(answer) => {
                    match replica.truncate_to_leader(requested, answer, target.generation) {
                        Ok(_) => truncated = true,
                        Err(e) => {
                            inner.events.emit(
                                EventKind::Warning,
                                Some(p),
                                format!("truncation failed: {e}"),
                            );
                            tokio::time::sleep(pause).await;
                        }
                    }
                }
                Err(()) => {
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
            broker_epoch,
            horizon_generation: replica.horizon_generation(),
        };
        let reply = tokio::time::timeout(
            max_wait + rpc_timeout,
            fetch(&mut stream, inner, target.leader, req),
        )
        .await;
        // A failed fetch ends its stream; the next fetch opens a new one. So does a record larger
        // than a fetch: the stream's receive buffer grew to hold it and would keep that size.
        if !matches!(&reply, Ok(Ok(r)) if r.records.len() <= fetch_max_bytes) {
            stream = None;
        }
        match reply {
            Ok(Ok(r)) => {
                backoff = BACKOFF_FIRST;
                let done = if r.truncate_to_empty {
                    replica
                        .truncate_to_empty(
                            target.generation,
                            r.tombstone_horizon,
                            r.horizon_generation,
                        )
                        .map(|_| ())
                } else {
                    let epochs = epochs_of(&r.epochs);
                    let leader = LeaderView {
                        high_watermark: r.high_watermark,
                        log_end_offset: r.log_end_offset,
                        tombstone_horizon: r.tombstone_horizon,
                        horizon_generation: r.horizon_generation,
                        epochs: &epochs,
                    };
                    replica
                        .append_fetched(target.generation, &r.records, &leader)
                        .await
                        .map(|_| ())
                };
                match done {
                    Ok(()) => {}
                    Err(ReplicaError::NotLeader { .. }) => return,
                    Err(e) => {
                        inner.events.emit(
                            EventKind::Warning,
                            Some(p),
                            format!("cannot apply records from leader {}: {e}", target.leader),
                        );
                        tokio::time::sleep(pause).await;
                    }
                }
            }
            Ok(Err(status)) => match rpc::reason_of(&status) {
                Some(Reason::OffsetOutOfRange) => truncated = false,
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

/// A follower's `FetchStream` to its leader: its fetches go in one at a time, and their replies
/// come back in order. One per fetcher task, so per partition and leader epoch.
struct FetchStream {
    requests: tokio::sync::mpsc::Sender<FetchRequest>,
    replies: tonic::Streaming<rpc::FetchResponse>,
}

/// Sends `req` to `leader` on the open fetch stream, opening one first if there is none, and
/// waits for its reply. After a failure the stream must not be used again.
async fn fetch(
    stream: &mut Option<FetchStream>,
    inner: &Inner,
    leader: u32,
    req: FetchRequest,
) -> Result<rpc::FetchResponse, tonic::Status> {
    let s = match stream {
        Some(s) => {
            s.requests
                .send(req)
                .await
                .map_err(|_| tonic::Status::unavailable("the fetch stream was closed"))?;
            s
        }
        None => {
            let mut client = peer(inner, leader).await.ok_or_else(|| {
                tonic::Status::unavailable(format!("no address known for broker {leader}"))
            })?;
            let (requests, rx) = tokio::sync::mpsc::channel(1);
            // The channel is new and has room for the first request.
            requests
                .try_send(req)
                .map_err(|_| tonic::Status::internal("a new fetch stream refused a request"))?;
            let replies = client
                .fetch_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await?
                .into_inner();
            stream.insert(FetchStream { requests, replies })
        }
    };
    s.replies
        .message()
        .await?
        .ok_or_else(|| tonic::Status::unavailable("the leader ended the fetch stream"))
}

fn epochs_of(wire: &[rpc::EpochStart]) -> Vec<EpochEntry> {
    wire.iter()
        .map(|e| EpochEntry {
            epoch: e.epoch,
            start_offset: e.start_offset,
        })
        .collect()
}
