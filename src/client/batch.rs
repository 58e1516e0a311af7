//! Write batching, as Kafka's producer does it: a client's sets and deletes to one broker for
//! one partition (and one acks setting) go through a queue. While fewer than
//! [`MAX_IN_FLIGHT`] batches are in flight, whatever is queued is sent at once as one
//! `WriteBatch`; while the queue waits for a slot, writes gather behind it. So a lone writer pays
//! no delay, and many concurrent writers (or one that keeps many writes in flight) share
//! requests instead of paying a gRPC round of headers, frames and wake-ups each.
//!
//! A queue to the broker in this process (a RESP listener's own partitions) calls its handler
//! directly, with no round to save, so it keeps up to [`LOCAL_IN_FLIGHT`] batches in flight: a
//! write that had to wait for one of four slots waited for an earlier batch to commit before it
//! was even appended, and so missed the followers' next fetch (at `redis-benchmark -P 1`, 5-23 %
//! fewer SETs a second).
//!
//! Every write keeps its own outcome: the broker answers per write, and a failure of the whole
//! request (a refusal, a broken connection) is handed to each write as the status a single `Set`
//! would have got, so the client's retry rules (DESIGN §6, client outcomes) apply unchanged.
//! A write whose caller has already given up is not sent (its outcome was reported unknown, and
//! "never applied" is one of the outcomes that allows).

use super::Transport;
use super::queue::{self, Limits, Queues};
use crate::replica::Acks;
use crate::rpc::{self, Reason, kv_client::KvClient};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;

/// Batches one queue to a broker over a connection may have in flight at once.
pub const MAX_IN_FLIGHT: usize = 4;
/// Batches one queue to the broker in this process may have in flight at once.
pub const LOCAL_IN_FLIGHT: usize = 32;
/// Most writes in one batch.
pub const MAX_BATCH_WRITES: usize = 1024;
/// Most key and value bytes in one batch (well under the message limit); a single larger write
/// still goes, alone.
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// What a batched write comes back with: exactly what a `Set` call would have returned.
pub type Reply = Result<rpc::WriteResponse, tonic::Status>;

struct Pending {
    write: rpc::BatchedWrite,
    reply: oneshot::Sender<Reply>,
}

impl Pending {
    fn bytes(p: &Self) -> usize {
        p.write.key.len() + p.write.value.len()
    }
}

/// Batches sent and the items they carried (all queues of one client, for writes or reads).
#[derive(Debug, Default)]
pub struct Counters {
    requests: AtomicU64,
    items: AtomicU64,
    alone: AtomicU64,
}

impl Counters {
    /// Counts one request carrying `items`.
    pub(super) fn add(&self, items: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(items as u64, Ordering::Relaxed);
    }

    /// Counts an item the batch did not answer, asked alone after it.
    pub(super) fn add_alone(&self) {
        self.alone.fetch_add(1, Ordering::Relaxed);
    }

    /// Items asked alone after their batch did not answer them.
    pub fn alone(&self) -> u64 {
        self.alone.load(Ordering::Relaxed)
    }

    /// (requests sent, items they carried).
    pub fn read(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.items.load(Ordering::Relaxed),
        )
    }
}

/// The queues of one broker connection, one per (partition, acks).
pub struct Batcher {
    kv: KvClient<Transport>,
    local: Option<crate::broker::LocalKv>,
    timeout: Duration,
    counters: Arc<Counters>,
    queues: Queues<(u32, Acks), Pending>,
}

impl Batcher {
    /// Queues for the broker behind `kv`; a batch with no answer within `timeout` fails as an
    /// unknown outcome.
    pub fn new(
        kv: KvClient<Transport>,
        local: Option<crate::broker::LocalKv>,
        timeout: Duration,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            kv,
            local,
            timeout,
            counters,
            queues: Queues::new(),
        }
    }

    /// Queues `write` for `partition`; the receiver gets its outcome. Must be called inside a
    /// Tokio runtime (a queue's task is spawned on first use).
    pub fn submit(
        &self,
        partition: u32,
        acks: Acks,
        write: rpc::BatchedWrite,
    ) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        let start = |requests| {
            let queue = Queue {
                kv: self.kv.clone(),
                local: self.local.clone(),
                partition,
                acks,
                timeout: self.timeout,
                counters: Arc::clone(&self.counters),
            };
            let limits = Limits {
                in_flight: if queue.local.is_some() {
                    LOCAL_IN_FLIGHT
                } else {
                    MAX_IN_FLIGHT
                },
                items: MAX_BATCH_WRITES,
                bytes: MAX_BATCH_BYTES,
            };
            tokio::spawn(queue::drive(
                requests,
                limits,
                Pending::bytes,
                move |batch| send(queue.clone(), batch),
            ));
        };
        let Err(pending) = self
            .queues
            .push((partition, acks), Pending { write, reply: tx }, start)
        else {
            return rx;
        };
        // Unreachable in practice (a new queue's task is alive); answer rather than hang.
        let _ = pending.reply.send(Err(rpc::status(
            Reason::NotLeader,
            "the client could not queue the write; it was not sent",
            None,
        )));
        rx
    }
}

/// Where a queue's batches go.
#[derive(Clone)]
struct Queue {
    kv: KvClient<Transport>,
    /// The broker in this process, when `kv` is it: batches go to its handler directly.
    local: Option<crate::broker::LocalKv>,
    partition: u32,
    acks: Acks,
    timeout: Duration,
    counters: Arc<Counters>,
}

/// Sends one batch and hands each write its outcome.
async fn send(queue: Queue, batch: Vec<Pending>) {
    let Queue {
        mut kv,
        local,
        partition,
        acks,
        timeout,
        counters,
    } = queue;
    let (writes, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .filter(|p| !p.reply.is_closed())
        .map(|p| (p.write, p.reply))
        .unzip();
    if writes.is_empty() {
        return;
    }
    counters.add(writes.len());
    let req = rpc::WriteBatchRequest {
        partition,
        acks: super::wire_acks(acks) as i32,
        writes,
    };
    let call = async {
        match &local {
            Some(l) => l.write_batch(req).await,
            None => kv.write_batch(req).await.map(tonic::Response::into_inner),
        }
    };
    let answer = match tokio::time::timeout(timeout, call).await {
        Ok(answer) => answer,
        Err(_) => Err(rpc::status(
            Reason::Timeout,
            format!("no answer from the broker within {timeout:?}; the outcome is unknown"),
            None,
        )),
    };
    match answer {
        Ok(r) => {
            if r.results.len() != replies.len() {
                let status = rpc::status(
                    Reason::Timeout,
                    format!(
                        "the broker answered {} results for {} writes; their outcome is unknown",
                        r.results.len(),
                        replies.len()
                    ),
                    None,
                );
                for reply in replies {
                    let _ = reply.send(Err(status.clone()));
                }
                return;
            }
            for (reply, result) in replies.into_iter().zip(r.results) {
                let _ = reply.send(outcome(r.partition, result));
            }
        }
        Err(status) => {
            for reply in replies {
                let _ = reply.send(Err(status.clone()));
            }
        }
    }
}

/// One write's result as a single `Set` would have returned it.
pub(super) fn outcome(partition: u32, r: rpc::WriteResult) -> Reply {
    if r.error_reason.is_empty() {
        return Ok(rpc::WriteResponse {
            partition,
            offset: r.offset,
        });
    }
    Err(status_of(&r.error_reason, r.error_message))
}

/// The status a single call would have failed with, from a batch result's reason and message.
pub(super) fn status_of(reason: &str, message: String) -> tonic::Status {
    match Reason::parse(reason) {
        Some(reason) => rpc::status(reason, message, None),
        None => tonic::Status::internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_becomes_the_reply_a_single_set_would_get() {
        let ok = outcome(
            2,
            rpc::WriteResult {
                offset: 7,
                ..Default::default()
            },
        );
        assert_eq!(
            ok.ok(),
            Some(rpc::WriteResponse {
                partition: 2,
                offset: 7
            })
        );
        let unknown = outcome(
            2,
            rpc::WriteResult {
                offset: 0,
                error_reason: "TIMEOUT".into(),
                error_message: "no quorum".into(),
            },
        );
        let status = unknown.expect_err("an error");
        assert_eq!(rpc::reason_of(&status), Some(Reason::Timeout));
        assert_eq!(status.message(), "no quorum");
        let internal = outcome(
            2,
            rpc::WriteResult {
                offset: 0,
                error_reason: rpc::INTERNAL_REASON.into(),
                error_message: "disk full".into(),
            },
        );
        let status = internal.expect_err("an error");
        assert_eq!(rpc::reason_of(&status), None);
        assert_eq!(status.code(), tonic::Code::Internal);
    }
}
