//! The gRPC client: finds partition leaders through ZooKeeper or a seed broker's Metadata, routes
//! each key to its partition's leader, and retries `NOT_LEADER` and unreachable brokers after
//! refreshing, until its request timeout. While a partition has no leader (a failover in progress)
//! it waits and retries, then answers `no leader available`.
//!
//! A write whose outcome is unknown (the leader timed out waiting for replication or lost its
//! leadership after appending, or the connection failed after the request may have reached it)
//! is reported as such and never retried: a retry could apply it twice (a, b, a for one key) and
//! would hide the uncertainty. Only attempts that certainly never arrived — the connection could
//! not be made, NOT_LEADER, a refusal before append — are retried (DESIGN §6, client outcomes).

mod batch;
mod error;
mod follow;
mod queue;
mod read_batch;
mod routes;
pub mod transport;

use crate::broker::MAX_MESSAGE_BYTES;
use crate::coord::{Coord, partition_of};
use crate::replica::Acks;
use crate::rpc::{self, Reason, kv_client::KvClient};
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use routes::{Routes, Source};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::Channel;

/// The first wait before a request is tried again (no leader known, or it did not answer); it
/// doubles up to [`RETRY_MAX`] within the request timeout.
const RETRY_FIRST: Duration = Duration::from_millis(20);
/// The longest wait between tries of one request.
const RETRY_MAX: Duration = Duration::from_millis(500);
pub use error::ClientError;
use error::{never_arrived, with_tls_hint, write_error};
pub use transport::Transport;

pub use routes::{ClusterView, PartitionView};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How long one command may take, retries included.
    pub request_timeout: Duration,
    /// ZooKeeper session timeout (ZooKeeper discovery only).
    pub zk_session_timeout: Duration,
    /// Where to dial brokers' advertised addresses (the lab routes them through its proxies).
    pub dialer: crate::rpc::Dialer,
    /// Send sets and deletes in batches (`WriteBatch`, see [`batch`]) rather than one request
    /// each: the same outcomes, far fewer requests when many writes are in flight.
    pub batch_writes: bool,
    /// Send reads to brokers over a connection in batches (`GetBatch`; see `client/read_batch.rs`).
    pub batch_reads: bool,
    /// A broker in this process to call directly when it is the one routed to (a RESP
    /// listener's own broker; see [`transport`]). Others are dialed as usual.
    pub local: Option<crate::broker::LocalKv>,
    /// Dial client ports over TLS, trusting this CA (brokers with `tls.client_port`).
    pub tls: Option<crate::net::tls::ClientTls>,
}

/// A client's request timeout unless told otherwise, retries included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A client's ZooKeeper session timeout unless told otherwise.
pub const DEFAULT_ZK_SESSION: Duration = Duration::from_secs(6);

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            zk_session_timeout: DEFAULT_ZK_SESSION,
            dialer: crate::rpc::Dialer::default(),
            batch_writes: true,
            batch_reads: true,
            local: None,
            tls: None,
        }
    }
}

/// Where an acknowledged write landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteAck {
    /// The partition.
    pub partition: u32,
    /// The record's offset in it.
    pub offset: u64,
}

impl From<rpc::WriteResponse> for WriteAck {
    fn from(r: rpc::WriteResponse) -> Self {
        Self {
            partition: r.partition,
            offset: r.offset,
        }
    }
}

/// One broker as dialed: its connection and its write queues.
struct Endpoint {
    kv: KvClient<Transport>,
    /// The broker in this process, when `kv` is it (write batches and reads skip the codec).
    local: Option<crate::broker::LocalKv>,
    batches: batch::Batcher,
    reads: read_batch::Reader,
}

/// A client of one cluster. Cloning is cheap and shares connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    routes: RwLock<Routes>,
    channels: Mutex<HashMap<String, Arc<Endpoint>>>,
    batches: Arc<batch::Counters>,
    read_batches: Arc<batch::Counters>,
    cfg: ClientConfig,
    refresh: tokio::sync::Mutex<()>,
    /// Ends the tasks that follow ZooKeeper for this client.
    following: tokio_util::sync::CancellationToken,
    /// Ends the tasks that follow the current ZooKeeper session (a child of `following`).
    session_tasks: Mutex<Option<tokio_util::sync::CancellationToken>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.following.cancel();
    }
}

/// The largest value the client sends (brokers enforce their own, smaller limit).
const MAX_VALUE_BYTES: usize = MAX_MESSAGE_BYTES - (1 << 20);

impl Client {
    /// Connects through ZooKeeper (`host:port[/chroot]`), reading brokers and leaders from it.
    pub async fn connect_zk(connect: &str, cfg: ClientConfig) -> Result<Self, ClientError> {
        let coord = Coord::connect(connect, cfg.zk_session_timeout)
            .await
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        let source = Source::Zk(routes::ZkSource::new(
            connect,
            cfg.zk_session_timeout,
            coord,
        ));
        Self::with_source(source, cfg).await
    }

    /// Connects through seed brokers' Metadata (`host:port` of their kv services).
    pub async fn connect_brokers(
        seeds: Vec<String>,
        cfg: ClientConfig,
    ) -> Result<Self, ClientError> {
        if seeds.is_empty() {
            return Err(ClientError::InvalidArgument(
                "no broker address given".into(),
            ));
        }
        Self::with_source(Source::Seeds(seeds), cfg).await
    }

    async fn with_source(source: Source, cfg: ClientConfig) -> Result<Self, ClientError> {
        let client = Self {
            inner: Arc::new(Inner {
                source,
                routes: RwLock::new(Routes::default()),
                channels: Mutex::new(HashMap::new()),
                batches: Arc::default(),
                read_batches: Arc::default(),
                cfg,
                refresh: tokio::sync::Mutex::new(()),
                following: tokio_util::sync::CancellationToken::new(),
                session_tasks: Mutex::new(None),
            }),
        };
        client.refresh().await?;
        client.follow();
        Ok(client)
    }

    /// Re-reads brokers and leaders (in a new ZooKeeper session if the last one expired).
    pub async fn refresh(&self) -> Result<(), ClientError> {
        let _one_at_a_time = self.inner.refresh.lock().await;
        let load = || {
            self.inner
                .source
                .load(|addr| self.channel(addr).map(|e| e.kv.clone()))
        };
        let routes = match load().await {
            Ok(r) => r,
            Err(e) => match &self.inner.source {
                Source::Zk(zk) => match zk.renew_if_expired().await? {
                    Some(coord) => {
                        // Watch the new session at once: a load failing now must not leave it
                        // unwatched (a later refresh would find nothing to renew).
                        self.follow_with(coord, self.partitions());
                        load().await?
                    }
                    None => return Err(e),
                },
                Source::Seeds(_) => return Err(e),
            },
        };
        *self.inner.routes.write() = routes;
        Ok(())
    }

    /// The cluster as last learned, without asking anyone (routes follow ZooKeeper's changes on
    /// their own when it is the source).
    pub fn cached_view(&self) -> ClusterView {
        self.routes().view()
    }

    /// The ZooKeeper session the client reads routes in (ZooKeeper discovery only): `cli`'s
    /// `rebalance` asks the controller through it.
    pub fn coord(&self) -> Option<crate::coord::Coord> {
        match &self.inner.source {
            Source::Zk(zk) => Some(zk.coord()),
            Source::Seeds(_) => None,
        }
    }

    /// The id and password of that session, for tests that make it expire.
    pub fn zk_session(&self) -> Option<crate::coord::SessionInfo> {
        match &self.inner.source {
            Source::Zk(zk) => Some(zk.coord().session_info()),
            Source::Seeds(_) => None,
        }
    }

    /// The cluster as last read: brokers and, per partition, leader, epoch and ISR.
    pub async fn cluster_view(&self) -> Result<ClusterView, ClientError> {
        self.refresh().await?;
        Ok(self.routes().view())
    }

    /// The leader address of partition `p`, read in place (this runs for every request).
    fn leader_addr(&self, p: u32) -> Option<String> {
        self.inner.routes.read().leader_addr(p)
    }

    fn routes(&self) -> Routes {
        self.inner.routes.read().clone()
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.inner.routes.read().partitions
    }

    /// How many `WriteBatch` requests this client has sent and how many writes they carried
    /// (both 0 with `batch_writes` off): writes per request is how much batching saved.
    pub fn batch_stats(&self) -> (u64, u64) {
        self.inner.batches.read()
    }

    /// How many `GetBatch` requests this client has sent, how many reads they carried, and how
    /// many of those the batch did not answer and were asked alone (all 0 with `batch_reads`
    /// off, or when every read went to the broker in this process).
    pub fn read_batch_stats(&self) -> (u64, u64, u64) {
        let (requests, reads) = self.inner.read_batches.read();
        (requests, reads, self.inner.read_batches.alone())
    }

    /// The partition of `key`.
    pub fn partition_of(&self, key: &[u8]) -> u32 {
        partition_of(key, self.partitions())
    }

    fn channel(&self, addr: &str) -> Result<Arc<Endpoint>, ClientError> {
        // Channels are kept per address dialed, asked anew for every request: in the lab a link
        // proxy stands for a broker only while it is up, and a channel held to the proxy of a
        // dead broker would turn its refused connections into failures mid-request.
        if let Some(local) = self
            .inner
            .cfg
            .local
            .as_ref()
            .filter(|l| l.kv_addr() == addr)
        {
            let name = format!("in-process {addr}");
            return Ok(self.endpoint(name, Transport::Local(local.clone())));
        }
        let dialed = self.inner.cfg.dialer.dial(addr);
        let map = self.inner.channels.lock();
        if let Some(c) = map.get(dialed.as_ref()) {
            return Ok(Arc::clone(c));
        }
        let scheme = if self.inner.cfg.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let bad = |e: &dyn std::fmt::Display| {
            ClientError::InvalidArgument(format!("bad broker address {addr}: {e}"))
        };
        let mut endpoint = Channel::from_shared(format!("{scheme}://{dialed}"))
            .map_err(|e| bad(&e))?
            .connect_timeout(crate::rpc::CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        if let Some(tls) = &self.inner.cfg.tls {
            endpoint = endpoint.tls_config(tls.config()).map_err(|e| bad(&e))?;
        }
        let channel = endpoint.connect_lazy();
        drop(map);
        Ok(self.endpoint(dialed.into_owned(), Transport::Remote(channel)))
    }

    /// The endpoint kept under `name`, made over `transport` if there is none yet.
    fn endpoint(&self, name: String, transport: Transport) -> Arc<Endpoint> {
        let mut map = self.inner.channels.lock();
        let endpoint = map.entry(name).or_insert_with(|| {
            let local = match &transport {
                Transport::Local(l) => Some(l.clone()),
                Transport::Remote(_) => None,
            };
            let kv = KvClient::new(transport)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            Arc::new(Endpoint {
                batches: batch::Batcher::new(
                    kv.clone(),
                    local.clone(),
                    self.inner.cfg.request_timeout,
                    Arc::clone(&self.inner.batches),
                ),
                reads: read_batch::Reader::new(
                    kv.clone(),
                    self.inner.cfg.request_timeout,
                    Arc::clone(&self.inner.read_batches),
                ),
                kv,
                local,
            })
        });
        Arc::clone(endpoint)
    }

    fn check_key(key: &[u8]) -> Result<(), ClientError> {
        if key.is_empty() {
            return Err(ClientError::InvalidArgument("the key is empty".into()));
        }
        if key.len() > 64 << 10 {
            return Err(ClientError::InvalidArgument(format!(
                "the key is {} bytes; the limit is 65536 bytes",
                key.len()
            )));
        }
        Ok(())
    }

    /// Sends `op` to the leader of `key`'s partition, retrying as the module describes. `write`
    /// says whether `op` changes data (then an attempt that may have arrived is never retried).
    async fn call<T, F, Fut>(&self, key: &[u8], write: bool, op: F) -> Result<T, ClientError>
    where
        F: Fn(&Endpoint) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        Self::check_key(key)?;
        let started = Instant::now();
        let deadline = started + self.inner.cfg.request_timeout;
        let p = self.partition_of(key);
        let mut backoff = RETRY_FIRST;
        let mut last_error: Option<String>;
        loop {
            let leader = self.leader_addr(p);
            let Some(addr) = leader else {
                if Instant::now() + backoff >= deadline {
                    return Err(ClientError::NoLeader {
                        partition: p,
                        waited: started.elapsed(),
                    });
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
                let _ = self.refresh().await;
                continue;
            };
            let client = self.channel(&addr)?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let status = match tokio::time::timeout(remaining, op(&client)).await {
                Ok(Ok(resp)) => return Ok(resp.into_inner()),
                Ok(Err(status)) => status,
                Err(_) => {
                    return Err(ClientError::OutcomeUnknown(format!(
                        "no answer from broker {addr} within {:?}; the outcome is unknown",
                        self.inner.cfg.request_timeout
                    )));
                }
            };
            let msg = with_tls_hint(status.message(), self.inner.cfg.tls.is_some());
            match rpc::reason_of(&status) {
                Some(Reason::NotLeader) => {
                    match rpc::leader_of(&status) {
                        Some(hint) if hint != addr => {
                            self.inner.routes.write().set_leader_addr(p, hint);
                        }
                        _ => {
                            self.inner.routes.write().forget_leader(p);
                        }
                    }
                    last_error = Some(msg);
                }
                Some(Reason::NotEnoughReplicas) => return Err(ClientError::NotEnoughReplicas(msg)),
                Some(Reason::Timeout) => return Err(ClientError::OutcomeUnknown(msg)),
                Some(Reason::NotCommitted) => return Err(ClientError::NotCommitted(msg)),
                Some(Reason::InvalidArgument) => return Err(ClientError::InvalidArgument(msg)),
                Some(_) => return Err(ClientError::Server(msg)),
                None => match status.code() {
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
                        if write && !never_arrived(&status) =>
                    {
                        return Err(ClientError::OutcomeUnknown(format!(
                            "the connection to broker {addr} failed during the request ({msg}); the outcome is unknown"
                        )));
                    }
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                        // The leader is unreachable (crashed?): look again.
                        self.inner.routes.write().forget_leader(p);
                        last_error = Some(format!("broker {addr} is unreachable: {msg}"));
                    }
                    tonic::Code::ResourceExhausted | tonic::Code::OutOfRange => {
                        return Err(ClientError::InvalidArgument(msg));
                    }
                    _ => return Err(ClientError::Server(msg)),
                },
            }
            if Instant::now() + backoff >= deadline {
                // Whether a leader is known decides which error it is: look once more, since an
                // unreachable leader was forgotten above.
                let _ = self.refresh().await;
                return Err(match last_error {
                    Some(e) if self.leader_addr(p).is_some() => ClientError::Unavailable(e),
                    _ => ClientError::NoLeader {
                        partition: p,
                        waited: started.elapsed(),
                    },
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_MAX);
            let _ = self.refresh().await;
        }
    }

    /// The committed value of `key`, or `None`.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Bytes>, ClientError> {
        let k = Bytes::copy_from_slice(key);
        let p = self.partition_of(key);
        let batch = self.inner.cfg.batch_reads;
        let counters = &self.inner.read_batches;
        let r = self
            .call(key, false, |e| {
                read_batch::get(e, p, k.clone(), batch, counters)
            })
            .await?;
        Ok(r.found.then_some(r.value))
    }

    /// Sets `key` to `value`, expiring after `ttl` if given.
    pub async fn set(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
        acks: Acks,
    ) -> Result<WriteAck, ClientError> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(ClientError::InvalidArgument(format!(
                "the value is {} bytes; the largest any broker accepts is {MAX_VALUE_BYTES} bytes",
                value.len()
            )));
        }
        let (k, v) = (Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
        let ttl_ms = ttl_ms(ttl);
        if self.inner.cfg.batch_writes {
            let write = rpc::BatchedWrite {
                key: k,
                value: v,
                ttl_ms,
                delete: false,
            };
            return self.batched(key, acks, write).await;
        }
        let r = self
            .call(key, true, |e| {
                let mut c = e.kv.clone();
                let req = rpc::SetRequest {
                    key: k.clone(),
                    value: v.clone(),
                    ttl_ms,
                    acks: wire_acks(acks) as i32,
                };
                async move { c.set(req).await }
            })
            .await?;
        Ok(WriteAck::from(r))
    }

    /// Sets `key` to each value in turn, as one request: the leader appends them in this order
    /// under one lock, and the request is retried only whole and only if it never arrived, so
    /// the log holds them in order and the last one stays. One result per write, as a `set` of
    /// each would have returned it (a refusal of the whole request is every write's result).
    pub async fn set_group(
        &self,
        key: &[u8],
        values: &[(Bytes, Option<Duration>)],
        acks: Acks,
    ) -> Vec<Result<WriteAck, ClientError>> {
        // A value no broker takes is refused alone, as its own `set` would be; the rest go.
        let too_big = |v: &Bytes| v.len() > MAX_VALUE_BYTES;
        let refusal = |v: &Bytes| {
            ClientError::InvalidArgument(format!(
                "the value is {} bytes; the largest any broker accepts is {MAX_VALUE_BYTES} bytes",
                v.len()
            ))
        };
        let p = self.partition_of(key);
        let k = Bytes::copy_from_slice(key);
        let writes: Vec<rpc::BatchedWrite> = values
            .iter()
            .filter(|(v, _)| !too_big(v))
            .map(|(value, ttl)| rpc::BatchedWrite {
                key: k.clone(),
                value: value.clone(),
                ttl_ms: ttl_ms(*ttl),
                delete: false,
            })
            .collect();
        let n = writes.len();
        let req = rpc::WriteBatchRequest {
            partition: p,
            acks: wire_acks(acks) as i32,
            writes,
        };
        let len = prost::Message::encoded_len(&req);
        let sent: Vec<Result<WriteAck, ClientError>> = if n == 0 {
            Vec::new()
        } else if len > MAX_MESSAGE_BYTES {
            // Refused here, whole: sent, the codec would end the stream with an HTTP/2 error
            // that says nothing about size.
            let e = ClientError::InvalidArgument(format!(
                "the {n} writes are {len} bytes together; the largest request a broker takes is \
                 {MAX_MESSAGE_BYTES} bytes"
            ));
            vec![Err(e); n]
        } else {
            let answer = self
                .call(key, true, |e| {
                    let (mut c, local) = (e.kv.clone(), e.local.clone());
                    let req = req.clone();
                    async move {
                        match local {
                            Some(l) => l.write_batch(req).await.map(tonic::Response::new),
                            None => c.write_batch(req).await,
                        }
                    }
                })
                .await;
            match answer {
                Err(e) => vec![Err(e); n],
                Ok(r) if r.results.len() != n => {
                    let e = ClientError::OutcomeUnknown(format!(
                        "the broker answered {} results for {n} writes; their outcome is unknown",
                        r.results.len()
                    ));
                    vec![Err(e); n]
                }
                Ok(r) => r
                    .results
                    .into_iter()
                    .map(|w| {
                        batch::outcome(r.partition, w)
                            .map(WriteAck::from)
                            .map_err(|s| write_error(&s))
                    })
                    .collect(),
            }
        };
        let mut sent = sent.into_iter();
        values
            .iter()
            .map(|(v, _)| {
                if too_big(v) {
                    Err(refusal(v))
                } else {
                    sent.next().unwrap_or_else(|| {
                        Err(ClientError::OutcomeUnknown(
                            "a write's result is missing".into(),
                        ))
                    })
                }
            })
            .collect()
    }

    /// Deletes `key` (deleting a missing key is fine).
    pub async fn del(&self, key: &[u8], acks: Acks) -> Result<WriteAck, ClientError> {
        let k = Bytes::copy_from_slice(key);
        if self.inner.cfg.batch_writes {
            let write = rpc::BatchedWrite {
                key: k,
                delete: true,
                ..Default::default()
            };
            return self.batched(key, acks, write).await;
        }
        let r = self
            .call(key, true, |e| {
                let mut c = e.kv.clone();
                let req = rpc::DelRequest {
                    key: k.clone(),
                    acks: wire_acks(acks) as i32,
                };
                async move { c.del(req).await }
            })
            .await?;
        Ok(WriteAck::from(r))
    }

    /// Sends `write` through the leader's write queue for its partition, with the same routing,
    /// retries and outcomes as a single request.
    async fn batched(
        &self,
        key: &[u8],
        acks: Acks,
        write: rpc::BatchedWrite,
    ) -> Result<WriteAck, ClientError> {
        let p = self.partition_of(key);
        let r = self
            .call(key, true, |e| {
                let reply = e.batches.submit(p, acks, write.clone());
                async move {
                    match reply.await {
                        Ok(r) => r.map(tonic::Response::new),
                        Err(_) => Err(rpc::status(
                            Reason::Timeout,
                            "the client lost the write's batch; the outcome is unknown",
                            None,
                        )),
                    }
                }
            })
            .await?;
        Ok(WriteAck::from(r))
    }

    /// Makes `key` expire `seconds` from now (fixed by the leader); `false` if it does not exist.
    pub async fn expire(&self, key: &[u8], seconds: i64, acks: Acks) -> Result<bool, ClientError> {
        if seconds < 0 {
            return Err(ClientError::InvalidArgument(format!(
                "the expiry must be 0 or more seconds, not {seconds}"
            )));
        }
        let k = Bytes::copy_from_slice(key);
        let r = self
            .call(key, true, |e| {
                let mut c = e.kv.clone();
                let req = rpc::ExpireRequest {
                    key: k.clone(),
                    seconds,
                    acks: wire_acks(acks) as i32,
                };
                async move { c.expire(req).await }
            })
            .await?;
        Ok(r.found)
    }

    /// Remaining whole seconds of `key`; -1 when it has no expiry, -2 when it does not exist.
    pub async fn ttl(&self, key: &[u8]) -> Result<i64, ClientError> {
        let k = Bytes::copy_from_slice(key);
        let r = self
            .call(key, false, |e| {
                let (mut c, key) = (e.kv.clone(), k.clone());
                async move { c.ttl(rpc::TtlRequest { key }).await }
            })
            .await?;
        Ok(r.ttl)
    }
}

/// A time to live on the wire: 0 for none, else at least 1 ms.
fn ttl_ms(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |t| {
        u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)
    })
}

fn wire_acks(a: Acks) -> rpc::Acks {
    match a {
        Acks::Zero => rpc::Acks::Zero,
        Acks::One => rpc::Acks::One,
        Acks::All => rpc::Acks::All,
    }
}
