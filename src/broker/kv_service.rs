//! The client service: GET / SET / DEL / EXPIRE / TTL routed to this broker's replica of the key's
//! partition (which answers only as leader), and METADATA from this broker's view of ZooKeeper.

use super::Inner;
use crate::coord::partition_of;
use crate::replica::{Acks, Replica, ReplicaError};
use crate::rpc::{self, Reason, kv_server::Kv};
use crate::storage::{Lookup, StorageError, Write, now_ms};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tonic::{Request, Response, Status};

pub(super) struct KvService {
    inner: Arc<Inner>,
}

impl KvService {
    pub(super) fn new(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    fn replica_for(&self, key: &[u8]) -> Result<&Arc<Replica>, Status> {
        self.check_key(key)?;
        self.replica_of(partition_of(key, self.inner.spec.partitions))
    }

    /// Refuses an empty key or one longer than any write could have stored.
    fn check_key(&self, key: &[u8]) -> Result<(), Status> {
        if key.is_empty() {
            return Err(rpc::status(
                Reason::InvalidArgument,
                "the key is empty",
                None,
            ));
        }
        let max = self.inner.cfg.storage.max_key_bytes;
        if key.len() > max {
            // Every command refuses it the same way, reads too: a read of a key no write could
            // have stored is a mistake, not a miss.
            let e = StorageError::KeyTooLarge {
                len: key.len(),
                max,
            };
            return Err(rpc::status(Reason::InvalidArgument, e.to_string(), None));
        }
        Ok(())
    }

    /// Refuses a key of another partition than `p` in a batch for `p`.
    fn check_owner(&self, key: &[u8], p: u32) -> Result<(), Status> {
        let owner = partition_of(key, self.inner.spec.partitions);
        if owner == p {
            return Ok(());
        }
        Err(invalid(format!(
            "the key belongs to partition {owner}, not {p}"
        )))
    }

    /// This broker's replica of partition `p`, or `NotLeader` naming the leader if known.
    fn replica_of(&self, p: u32) -> Result<&Arc<Replica>, Status> {
        self.inner.replicas.get(&p).ok_or_else(|| {
            let leader = self.inner.leader_kv_addr(p);
            rpc::status(
                Reason::NotLeader,
                format!(
                    "broker {} holds no replica of partition {p}",
                    self.inner.id()
                ),
                leader.as_deref(),
            )
        })
    }

    fn check_accepting(&self, key: &[u8]) -> Result<(), Status> {
        self.check_accepting_partition(partition_of(key, self.inner.spec.partitions))
    }

    fn check_accepting_partition(&self, p: u32) -> Result<(), Status> {
        if self.inner.accepting.load(Ordering::SeqCst) {
            return Ok(());
        }
        Err(rpc::status(
            Reason::NotLeader,
            format!("broker {} is shutting down", self.inner.id()),
            self.inner.leader_kv_addr(p).as_deref(),
        ))
    }

    fn to_status(&self, e: ReplicaError) -> Status {
        let msg = e.to_string();
        match e {
            // A leader without a lease may have been deposed: the client looks again.
            ReplicaError::NotLeader { partition, .. }
            | ReplicaError::LeaseLapsed { partition, .. }
            | ReplicaError::HandingOver { partition, .. } => {
                let leader = self
                    .inner
                    .leader_kv_addr(partition)
                    .filter(|a| *a != self.inner.kv_addr.to_string());
                rpc::status(Reason::NotLeader, msg, leader.as_deref())
            }
            ReplicaError::NotEnoughReplicas { .. } => {
                rpc::status(Reason::NotEnoughReplicas, msg, None)
            }
            ReplicaError::Timeout { .. }
            | ReplicaError::LeadershipLost { .. }
            | ReplicaError::AppendInterrupted { .. }
            | ReplicaError::NotEnoughReplicasAfterAppend { .. } => {
                rpc::status(Reason::Timeout, msg, None)
            }
            ReplicaError::NotCommitted { .. } => rpc::status(Reason::NotCommitted, msg, None),
            ReplicaError::Storage(
                StorageError::EmptyKey
                | StorageError::KeyTooLarge { .. }
                | StorageError::ValueTooLarge { .. },
            ) => rpc::status(Reason::InvalidArgument, msg, None),
            ReplicaError::Fenced { .. } => rpc::status(Reason::Fenced, msg, None),
            ReplicaError::OffsetOutOfRange { .. } => {
                rpc::status(Reason::OffsetOutOfRange, msg, None)
            }
            ReplicaError::UnknownReplica(_) => rpc::status(Reason::InvalidArgument, msg, None),
            ReplicaError::Storage(_) => Status::internal(msg),
        }
    }
}

/// This broker's client service, called in-process (see `client::transport`): the same
/// handler and codec a gRPC request reaches, without the connection. Write batches and reads,
/// the calls on hot paths, skip the codec too ([`LocalKv::write_batch`], [`LocalKv::get`]).
#[derive(Clone)]
pub struct LocalKv {
    server: rpc::kv_server::KvServer<KvService>,
    service: Arc<KvService>,
    kv_addr: String,
    calls: Arc<std::sync::atomic::AtomicU64>,
}

impl LocalKv {
    pub(super) fn new(
        server: rpc::kv_server::KvServer<KvService>,
        service: Arc<KvService>,
        kv_addr: String,
    ) -> Self {
        Self {
            server,
            service,
            kv_addr,
            calls: Arc::default(),
        }
    }

    /// Runs a `WriteBatch` through the handler a gRPC request reaches, without encoding the
    /// request and the answer to protobuf and back: the writes are already in memory, and a
    /// batch of a thousand small writes spent as long in the codec as in the store.
    pub async fn write_batch(
        &self,
        req: rpc::WriteBatchRequest,
    ) -> Result<rpc::WriteBatchResponse, Status> {
        // The bound a connection's codec puts on a request holds here too: a batch is refused
        // whole, before anything is written, exactly as over the wire.
        let len = prost::Message::encoded_len(&req);
        if len > super::MAX_MESSAGE_BYTES {
            return Err(Status::out_of_range(format!(
                "the write batch is {len} bytes; the largest request a broker takes is {} bytes",
                super::MAX_MESSAGE_BYTES
            )));
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.service
            .write_batch(Request::new(req))
            .await
            .map(Response::into_inner)
    }

    /// Runs a `Get` through the handler a gRPC request reaches, without the codec (as
    /// [`LocalKv::write_batch`]; a value is bounded far below a message by the store's limits).
    pub async fn get(&self, req: rpc::GetRequest) -> Result<rpc::GetResponse, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.service
            .get(Request::new(req))
            .await
            .map(Response::into_inner)
    }

    /// Requests served this way so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The address this broker advertises for clients (`host:kv_port`), as routes name it.
    pub fn kv_addr(&self) -> &str {
        &self.kv_addr
    }

    /// Runs one request through the service.
    pub fn call(
        &mut self,
        req: tonic::codegen::http::Request<tonic::body::Body>,
    ) -> crate::client::transport::TransportFuture {
        use tonic::codegen::Service;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let call = self.server.call(req);
        Box::pin(async move { call.await.map_err(|never| match never {}) })
    }
}

impl std::fmt::Debug for LocalKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalKv({})", self.kv_addr)
    }
}

/// The longest expiry a write may ask for: 100 years. Longer ones are refused, not capped, so
/// that `ttl` never reports a number nobody asked for.
pub const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// The moment (ms since the epoch) a write made at `now` with `ttl_ms` expires: 0 (never) for a
/// ttl of 0, else `now + ttl_ms`; a ttl past [`MAX_TTL_MS`] is refused in one line.
pub fn expiry_at(now: u64, ttl_ms: u64) -> Result<u64, String> {
    match check_ttl(ttl_ms)? {
        0 => Ok(0),
        ttl => Ok(now.saturating_add(ttl)),
    }
}

/// `ttl_ms` if it is within [`MAX_TTL_MS`], else why not.
pub fn check_ttl(ttl_ms: u64) -> Result<u64, String> {
    if ttl_ms > MAX_TTL_MS {
        return Err(format!(
            "the expiry is {} s; the longest this store keeps is {} s (100 years)",
            ttl_ms / 1000,
            MAX_TTL_MS / 1000
        ));
    }
    Ok(ttl_ms)
}

fn invalid(message: String) -> Status {
    rpc::status(Reason::InvalidArgument, message, None)
}

/// Value bytes one `GetBatch` reply carries at most (half a message); the rest are
/// `retry_alone`.
const READ_BATCH_BYTES: usize = super::MAX_MESSAGE_BYTES / 2;
/// Keys one `GetBatch` may ask for (clients send at most `client::read_batch::MAX_BATCH_READS`);
/// a request of millions of tiny keys is refused rather than answered.
pub(super) const MAX_GET_BATCH_KEYS: usize = 4096;

fn retry_alone() -> rpc::GetResult {
    rpc::GetResult {
        retry_alone: true,
        ..Default::default()
    }
}

/// A failed item of a batch as its result carries it: the reason (or INTERNAL), the message.
fn reason_and_message(status: &Status) -> (String, String) {
    let reason = rpc::reason_of(status).map_or(rpc::INTERNAL_REASON, Reason::as_str);
    (reason.to_string(), status.message().to_string())
}

/// One key of a batch that failed as `status` says.
fn read_failed(status: &Status) -> rpc::GetResult {
    let (error_reason, error_message) = reason_and_message(status);
    rpc::GetResult {
        error_reason,
        error_message,
        ..Default::default()
    }
}

/// One write of a batch that failed as `status` says.
fn failed(status: &Status) -> rpc::WriteResult {
    let (error_reason, error_message) = reason_and_message(status);
    rpc::WriteResult {
        offset: 0,
        error_reason,
        error_message,
    }
}

/// The request's acks: unset means all; a value the protocol does not define is refused rather
/// than silently taken as a weaker guarantee.
fn acks_of(a: i32) -> Result<Acks, Status> {
    match rpc::Acks::try_from(a) {
        Ok(rpc::Acks::All) => Ok(Acks::All),
        Ok(rpc::Acks::One) => Ok(Acks::One),
        Ok(rpc::Acks::Zero) => Ok(Acks::Zero),
        Err(_) => Err(rpc::status(
            Reason::InvalidArgument,
            format!(
                "acks value {a} is not defined; use ACKS_ALL (0, the default), ACKS_ONE (1) or ACKS_ZERO (2)"
            ),
            None,
        )),
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn get(
        &self,
        req: Request<rpc::GetRequest>,
    ) -> Result<Response<rpc::GetResponse>, Status> {
        let key = req.into_inner().key;
        let replica = self.replica_for(&key)?;
        match replica.read(&key).await {
            Ok(Lookup::Found { value, .. }) => {
                Ok(Response::new(rpc::GetResponse { found: true, value }))
            }
            Ok(_) => Ok(Response::new(rpc::GetResponse {
                found: false,
                value: Bytes::new(),
            })),
            Err(e) => Err(self.to_status(e)),
        }
    }

    async fn get_batch(
        &self,
        req: Request<rpc::GetBatchRequest>,
    ) -> Result<Response<rpc::GetBatchResponse>, Status> {
        let r = req.into_inner();
        let p = r.partition;
        if r.keys.len() > MAX_GET_BATCH_KEYS {
            return Err(invalid(format!(
                "the read batch asks for {} keys; the most a broker answers at once is \
                 {MAX_GET_BATCH_KEYS}",
                r.keys.len()
            )));
        }
        let replica = self.replica_of(p)?;
        // Not the leader (or its lease lapsed): refuse the whole call, naming the leader, as a
        // Get would.
        replica.check_reads().map_err(|e| self.to_status(e))?;
        let mut room = READ_BATCH_BYTES;
        let results = r
            .keys
            .into_iter()
            .map(|key| {
                let checked = self
                    .check_key(&key)
                    .and_then(|()| self.check_owner(&key, p));
                if let Err(status) = checked {
                    return read_failed(&status);
                }
                match replica.read_now(&key) {
                    Ok(Some(Lookup::Found { value, .. })) => {
                        // The first value always fits: a Get could return it.
                        if value.len() > room && room < READ_BATCH_BYTES {
                            return retry_alone();
                        }
                        room = room.saturating_sub(value.len());
                        rpc::GetResult {
                            found: true,
                            value,
                            ..Default::default()
                        }
                    }
                    Ok(Some(_)) => rpc::GetResult::default(),
                    Ok(None) => retry_alone(),
                    Err(e) => read_failed(&self.to_status(e)),
                }
            })
            .collect();
        Ok(Response::new(rpc::GetBatchResponse { results }))
    }

    async fn set(
        &self,
        req: Request<rpc::SetRequest>,
    ) -> Result<Response<rpc::WriteResponse>, Status> {
        let r = req.into_inner();
        let replica = self.replica_for(&r.key)?;
        self.check_accepting(&r.key)?;
        let acks = acks_of(r.acks)?;
        let now = now_ms();
        let expire_at = expiry_at(now, r.ttl_ms).map_err(invalid)?;
        let write = Write::put(r.key, r.value)
            .with_expiry(expire_at)
            .with_timestamp(now);
        match replica.write(write, acks).await {
            Ok(offset) => Ok(Response::new(rpc::WriteResponse {
                partition: replica.partition(),
                offset,
            })),
            Err(e) => Err(self.to_status(e)),
        }
    }

    async fn write_batch(
        &self,
        req: Request<rpc::WriteBatchRequest>,
    ) -> Result<Response<rpc::WriteBatchResponse>, Status> {
        let r = req.into_inner();
        let p = r.partition;
        let replica = self.replica_of(p)?;
        self.check_accepting_partition(p)?;
        let acks = acks_of(r.acks)?;
        let now = now_ms();
        // Writes this broker refuses itself (a key of another partition) answer at once; the
        // rest go to the replica in order.
        let mut results = vec![None; r.writes.len()];
        let mut writes = Vec::with_capacity(r.writes.len());
        let mut slots = Vec::with_capacity(r.writes.len());
        for (i, w) in r.writes.into_iter().enumerate() {
            // An empty key goes on, for the store to refuse as it refuses any.
            let owned = if w.key.is_empty() {
                Ok(())
            } else {
                self.check_owner(&w.key, p)
            };
            if let Err(status) = owned {
                results[i] = Some(failed(&status));
                continue;
            }
            let write = if w.delete {
                Write::delete(w.key)
            } else {
                let expire_at = match expiry_at(now, w.ttl_ms) {
                    Ok(at) => at,
                    Err(e) => {
                        results[i] = Some(failed(&invalid(e)));
                        continue;
                    }
                };
                Write::put(w.key, w.value)
                    .with_expiry(expire_at)
                    .with_timestamp(now)
            };
            writes.push(write);
            slots.push(i);
        }
        let outcome = replica
            .write_batch(writes, acks)
            .await
            .map_err(|e| self.to_status(e))?;
        let unacked = outcome.acked.err().map(|e| failed(&self.to_status(e)));
        for (slot, appended) in slots.into_iter().zip(outcome.appended) {
            results[slot] = Some(match (appended, &unacked) {
                (Ok(offset), None) => rpc::WriteResult {
                    offset,
                    ..Default::default()
                },
                (Ok(_), Some(e)) => e.clone(),
                (Err(e), _) => failed(&self.to_status(e)),
            });
        }
        Ok(Response::new(rpc::WriteBatchResponse {
            partition: p,
            results: results.into_iter().map(Option::unwrap_or_default).collect(),
        }))
    }

    async fn del(
        &self,
        req: Request<rpc::DelRequest>,
    ) -> Result<Response<rpc::WriteResponse>, Status> {
        let r = req.into_inner();
        let replica = self.replica_for(&r.key)?;
        self.check_accepting(&r.key)?;
        let acks = acks_of(r.acks)?;
        match replica.write(Write::delete(r.key), acks).await {
            Ok(offset) => Ok(Response::new(rpc::WriteResponse {
                partition: replica.partition(),
                offset,
            })),
            Err(e) => Err(self.to_status(e)),
        }
    }

    async fn expire(
        &self,
        req: Request<rpc::ExpireRequest>,
    ) -> Result<Response<rpc::ExpireResponse>, Status> {
        let r = req.into_inner();
        let replica = self.replica_for(&r.key)?;
        self.check_accepting(&r.key)?;
        if r.seconds < 0 {
            return Err(rpc::status(
                Reason::InvalidArgument,
                format!("the expiry must be 0 or more seconds, not {}", r.seconds),
                None,
            ));
        }
        let acks = acks_of(r.acks)?;
        // 0 seconds expires the key now: a moment, not "no expiry" as a ttl of 0 is.
        let ttl_ms = check_ttl((r.seconds as u64).saturating_mul(1000)).map_err(invalid)?;
        let at = now_ms().saturating_add(ttl_ms);
        match replica.expire(&r.key, at, acks).await {
            Ok(Some(offset)) => Ok(Response::new(rpc::ExpireResponse {
                found: true,
                offset,
            })),
            Ok(None) => Ok(Response::new(rpc::ExpireResponse {
                found: false,
                offset: 0,
            })),
            Err(e) => Err(self.to_status(e)),
        }
    }

    async fn ttl(
        &self,
        req: Request<rpc::TtlRequest>,
    ) -> Result<Response<rpc::TtlResponse>, Status> {
        let key = req.into_inner().key;
        let replica = self.replica_for(&key)?;
        let ttl = match replica.read(&key).await {
            Ok(Lookup::Found {
                expire_at_ms: 0, ..
            }) => -1,
            Ok(Lookup::Found { expire_at_ms, .. }) => {
                let left = expire_at_ms.saturating_sub(now_ms());
                ((left + 500) / 1000) as i64
            }
            Ok(_) => -2,
            Err(e) => return Err(self.to_status(e)),
        };
        Ok(Response::new(rpc::TtlResponse { ttl }))
    }

    async fn metadata(
        &self,
        _req: Request<rpc::MetadataRequest>,
    ) -> Result<Response<rpc::MetadataResponse>, Status> {
        let md = self.inner.metadata();
        let spec = &self.inner.spec;
        Ok(Response::new(rpc::MetadataResponse {
            partitions: spec.partitions,
            brokers: md
                .brokers
                .iter()
                .map(|(id, b)| rpc::BrokerInfo {
                    id: *id,
                    host: b.host.clone(),
                    kv_port: u32::from(b.kv_port),
                    peer_port: u32::from(b.peer_port),
                })
                .collect(),
            partition_info: (0..spec.partitions)
                .map(|p| {
                    let state = md.states.get(&p).map(|(s, _)| s);
                    rpc::PartitionInfo {
                        partition: p,
                        leader: state.map_or(-1, |s| s.leader),
                        leader_epoch: state.map_or(0, |s| s.leader_epoch),
                        isr: state.map(|s| s.isr.clone()).unwrap_or_default(),
                        eligible: state.map(|s| s.eligible.clone()).unwrap_or_default(),
                        replicas: spec.replicas_of(p),
                    }
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_past_the_horizon_is_refused_and_one_within_it_is_kept() {
        assert_eq!(expiry_at(1_000, 0), Ok(0));
        assert_eq!(expiry_at(1_000, 5_000), Ok(6_000));
        assert_eq!(expiry_at(1_000, MAX_TTL_MS), Ok(1_000 + MAX_TTL_MS));
        let e = expiry_at(1_000, u64::MAX).unwrap_err();
        assert!(e.contains("100 years"), "{e}");
        assert!(check_ttl(MAX_TTL_MS + 1).is_err());
    }
}
