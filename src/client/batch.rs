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
//! was even appended, and so missed the followers' next fetch (at `redis-benchmark -P 1`, 8-12 %
//! fewer SETs a second).
//!
//! Every write keeps its own outcome: the broker answers per write, and a failure of the whole
//! request (a refusal, a broken connection) is handed to each write as the status a single `Set`
//! would have got, so the client's retry rules (DESIGN §6, client outcomes) apply unchanged.
//! A write whose caller has already given up is not sent (its outcome was reported unknown, and
//! "never applied" is one of the outcomes that allows).

use super::Transport;
use crate::replica::Acks;
use crate::rpc::{self, Reason, kv_client::KvClient};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Batches one queue to a broker over a connection may have in flight at once.
pub const MAX_IN_FLIGHT: usize = 4;
/// Batches one queue to the broker in this process may have in flight at once.
pub const LOCAL_IN_FLIGHT: usize = 32;
/// Most writes in one batch.
pub const MAX_BATCH_WRITES: usize = 1024;
/// Most key and value bytes in one batch (well under the message limit); a single larger write
/// still goes, alone.
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// A queue nobody has written to for this long ends its task (the next write starts a new one).
const IDLE: Duration = Duration::from_secs(30);

/// What a batched write comes back with: exactly what a `Set` call would have returned.
pub type Reply = Result<rpc::WriteResponse, tonic::Status>;

struct Pending {
    write: rpc::BatchedWrite,
    reply: oneshot::Sender<Reply>,
}

impl Pending {
    fn bytes(&self) -> usize {
        self.write.key.len() + self.write.value.len()
    }
}

/// Batches sent and the writes they carried (all queues of one client add to it).
#[derive(Debug, Default)]
pub struct Counters {
    requests: AtomicU64,
    writes: AtomicU64,
}

impl Counters {
    /// (requests sent, writes they carried).
    pub fn read(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }
}

/// The queues of one broker connection, one per (partition, acks).
pub struct Batcher {
    kv: KvClient<Transport>,
    local: Option<crate::broker::LocalKv>,
    timeout: Duration,
    counters: Arc<Counters>,
    queues: Mutex<HashMap<(u32, Acks), mpsc::UnboundedSender<Pending>>>,
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
            queues: Mutex::new(HashMap::new()),
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
        let mut pending = Pending { write, reply: tx };
        let mut queues = self.queues.lock();
        // A queue whose task ended on idling refuses the send: start a new one.
        for _ in 0..2 {
            let queue = queues.entry((partition, acks)).or_insert_with(|| {
                let (qtx, qrx) = mpsc::unbounded_channel();
                let queue = Queue {
                    kv: self.kv.clone(),
                    local: self.local.clone(),
                    partition,
                    acks,
                    timeout: self.timeout,
                    counters: Arc::clone(&self.counters),
                };
                tokio::spawn(drive(qrx, queue));
                qtx
            });
            match queue.send(pending) {
                Ok(()) => return rx,
                Err(mpsc::error::SendError(back)) => {
                    queues.remove(&(partition, acks));
                    pending = back;
                }
            }
        }
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

/// A queue's task: takes what is queued whenever a slot is free and sends it as one batch.
async fn drive(mut rx: mpsc::UnboundedReceiver<Pending>, queue: Queue) {
    let in_flight = if queue.local.is_some() {
        LOCAL_IN_FLIGHT
    } else {
        MAX_IN_FLIGHT
    };
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut carry: Option<Pending> = None;
    loop {
        let first = match carry.take() {
            Some(p) => p,
            None => match tokio::time::timeout(IDLE, rx.recv()).await {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(_) => {
                    // Refuse new writes, then send what is still queued and end.
                    rx.close();
                    continue;
                }
            },
        };
        // Waiting for a slot is where writes gather.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut bytes = first.bytes();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_WRITES {
            match rx.try_recv() {
                Ok(p) if bytes + p.bytes() > MAX_BATCH_BYTES => {
                    carry = Some(p);
                    break;
                }
                Ok(p) => {
                    bytes += p.bytes();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let queue = queue.clone();
        tokio::spawn(async move {
            send(queue, batch).await;
            drop(slot);
        });
    }
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
    counters.requests.fetch_add(1, Ordering::Relaxed);
    counters
        .writes
        .fetch_add(writes.len() as u64, Ordering::Relaxed);
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
    Err(match Reason::parse(&r.error_reason) {
        Some(reason) => rpc::status(reason, r.error_message, None),
        None => tonic::Status::internal(r.error_message),
    })
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
