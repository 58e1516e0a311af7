//! Read batching for reads sent to a broker over a connection: a client's `get`s of one
//! partition gather as its writes do ([`super::queue`]) and go as one `GetBatch`. A RESP listener
//! forwarding the keys its own broker does not lead sent one gRPC call per `GET` before, and a
//! call costs far more than a lookup.
//!
//! The broker answers each key at once or marks it `retry_alone`: its latest record is not yet
//! committed, or its value would overfill the reply. Such a key is then asked with `Get`, which
//! waits for the commit, so one key never holds up the rest of its batch. Each key is read as a
//! `Get` reads it (committed data only, from a leader whose lease holds), so batching changes no
//! answer. A failure of the whole request is every read's status, and reads are retried by the
//! client's usual rules. Reads of the broker in this process are direct calls, not batched.

use super::batch::{Counters, status_of};
use super::queue::{self, Limits, Queues};
use super::{Endpoint, Transport};
use crate::rpc::{self, Reason, kv_client::KvClient};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Batches one queue may have in flight at once.
pub const MAX_IN_FLIGHT: usize = 4;
/// Most keys in one batch.
pub const MAX_BATCH_READS: usize = 512;
/// Most key bytes in one batch.
pub const MAX_BATCH_KEY_BYTES: usize = 1 << 20;

/// One read of a batch, answered.
#[derive(Debug)]
pub enum Answer {
    /// What a `Get` would have returned.
    Value(rpc::GetResponse),
    /// Not answered in the batch: ask with `Get`.
    Alone,
}

/// What a batched read comes back with.
pub type Reply = Result<Answer, tonic::Status>;

struct Pending {
    key: Bytes,
    reply: oneshot::Sender<Reply>,
}

impl Pending {
    fn bytes(p: &Self) -> usize {
        p.key.len()
    }
}

/// The read queues of one broker connection, one per partition.
pub struct Reader {
    kv: KvClient<Transport>,
    timeout: Duration,
    counters: Arc<Counters>,
    queues: Queues<u32, Pending>,
}

impl Reader {
    /// Queues for the broker behind `kv`; a batch with no answer within `timeout` fails.
    pub fn new(kv: KvClient<Transport>, timeout: Duration, counters: Arc<Counters>) -> Self {
        Self {
            kv,
            timeout,
            counters,
            queues: Queues::new(),
        }
    }

    /// Queues a read of `key` (of `partition`); the receiver gets its answer. Must be called
    /// inside a Tokio runtime.
    pub fn submit(&self, partition: u32, key: Bytes) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        let start = |requests| {
            let (kv, timeout, counters) =
                (self.kv.clone(), self.timeout, Arc::clone(&self.counters));
            let limits = Limits {
                in_flight: MAX_IN_FLIGHT,
                items: MAX_BATCH_READS,
                bytes: MAX_BATCH_KEY_BYTES,
            };
            tokio::spawn(queue::drive(
                requests,
                limits,
                Pending::bytes,
                move |batch| send(kv.clone(), partition, timeout, Arc::clone(&counters), batch),
            ));
        };
        if let Err(pending) = self
            .queues
            .push(partition, Pending { key, reply: tx }, start)
        {
            // Unreachable in practice (a new queue's task is alive): ask alone rather than hang.
            let _ = pending.reply.send(Ok(Answer::Alone));
        }
        rx
    }
}

/// Reads `key` (of `partition`) from the broker behind `e`: from the broker in this process
/// directly; else through the read queue when `batch`, and alone if the batch did not answer
/// it (`counters` counts those); else alone.
pub(super) fn get(
    e: &Endpoint,
    partition: u32,
    key: Bytes,
    batch: bool,
    counters: &Arc<Counters>,
) -> impl Future<Output = Result<tonic::Response<rpc::GetResponse>, tonic::Status>> + use<> {
    let (local, mut kv, counters) = (e.local.clone(), e.kv.clone(), Arc::clone(counters));
    let queued = (local.is_none() && batch).then(|| e.reads.submit(partition, key.clone()));
    async move {
        if let Some(l) = local {
            return l
                .get(rpc::GetRequest { key })
                .await
                .map(tonic::Response::new);
        }
        if let Some(reply) = queued {
            match reply.await {
                Ok(Ok(Answer::Value(r))) => return Ok(tonic::Response::new(r)),
                Ok(Ok(Answer::Alone)) => counters.add_alone(),
                Ok(Err(status)) => return Err(status),
                Err(_) => {
                    return Err(tonic::Status::unavailable(
                        "the client lost the read's batch",
                    ));
                }
            }
        }
        kv.get(rpc::GetRequest { key }).await
    }
}

/// Sends one batch and hands each read its answer.
async fn send(
    mut kv: KvClient<Transport>,
    partition: u32,
    timeout: Duration,
    counters: Arc<Counters>,
    batch: Vec<Pending>,
) {
    let (keys, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .filter(|p| !p.reply.is_closed())
        .map(|p| (p.key, p.reply))
        .unzip();
    if keys.is_empty() {
        return;
    }
    counters.add(keys.len());
    let req = rpc::GetBatchRequest { partition, keys };
    let answer = match tokio::time::timeout(timeout, kv.get_batch(req)).await {
        // A broker without GetBatch (an older build): ask each key alone.
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
            for reply in replies {
                let _ = reply.send(Ok(Answer::Alone));
            }
            return;
        }
        Ok(answer) => answer.map(tonic::Response::into_inner),
        Err(_) => Err(rpc::status(
            Reason::Timeout,
            format!("no answer from the broker within {timeout:?}"),
            None,
        )),
    };
    match answer {
        Ok(r) if r.results.len() == replies.len() => {
            for (reply, result) in replies.into_iter().zip(r.results) {
                let _ = reply.send(answer_of(result));
            }
        }
        Ok(r) => {
            // A broker that answers the wrong number of keys: ask each alone.
            tracing::warn!(
                keys = replies.len(),
                results = r.results.len(),
                "a GetBatch reply did not match its request"
            );
            for reply in replies {
                let _ = reply.send(Ok(Answer::Alone));
            }
        }
        Err(status) => {
            for reply in replies {
                let _ = reply.send(Err(status.clone()));
            }
        }
    }
}

/// One key's result as a `Get` would have returned it.
fn answer_of(r: rpc::GetResult) -> Reply {
    if r.retry_alone {
        return Ok(Answer::Alone);
    }
    if !r.error_reason.is_empty() {
        return Err(status_of(&r.error_reason, r.error_message));
    }
    Ok(Answer::Value(rpc::GetResponse {
        found: r.found,
        value: r.value,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_becomes_the_answer_a_get_would_give() {
        let found = answer_of(rpc::GetResult {
            found: true,
            value: Bytes::from_static(b"v"),
            ..Default::default()
        });
        match found {
            Ok(Answer::Value(r)) => assert!(r.found && r.value == "v"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            answer_of(rpc::GetResult::default()),
            Ok(Answer::Value(rpc::GetResponse { found: false, .. }))
        ));
        assert!(matches!(
            answer_of(rpc::GetResult {
                retry_alone: true,
                ..Default::default()
            }),
            Ok(Answer::Alone)
        ));
        let refused = answer_of(rpc::GetResult {
            error_reason: "NOT_LEADER".into(),
            error_message: "broker 2 leads it".into(),
            ..Default::default()
        })
        .expect_err("a refusal");
        assert_eq!(rpc::reason_of(&refused), Some(Reason::NotLeader));
        assert_eq!(refused.message(), "broker 2 leads it");
    }
}
