//! The replication service other brokers call: Fetch (one call per fetch, or a stream of them),
//! OffsetForLeaderEpoch, ReplicaStatus.

use super::Inner;
use crate::net::tls;
use crate::replica::{EpochAnswer, FetchRequest, ReplicaError, Role};
use crate::rpc::{self, Reason, replication_server::Replication};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status, Streaming};

/// The replies of one `FetchStream`, in the order of its requests.
pub(super) type FetchReplies =
    Pin<Box<dyn futures_util::Stream<Item = Result<rpc::FetchResponse, Status>> + Send + 'static>>;

#[derive(Clone)]
pub(super) struct PeerService {
    inner: Arc<Inner>,
}

impl PeerService {
    pub(super) fn new(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    /// The broker calling, as its certificate names it (`None` without TLS); anyone else is
    /// refused before the request does anything.
    fn caller<T>(&self, req: &Request<T>) -> Result<Option<u32>, Status> {
        tls::caller(req, self.inner.tls.is_some())
    }

    /// Serves one fetch for `caller` (as its certificate names it). A fetch moves the leader's
    /// view of a follower (and so the HW): only that follower may send it.
    async fn serve_fetch(
        &self,
        caller: Option<u32>,
        r: rpc::FetchRequest,
    ) -> Result<rpc::FetchResponse, Status> {
        tls::may_act_as(caller, r.replica_id).map_err(Status::permission_denied)?;
        let replica = self.replica(r.partition)?;
        let max_wait = Duration::from_millis(u64::from(r.max_wait_ms.min(10_000)));
        let reply = replica
            .fetch(FetchRequest {
                follower: r.replica_id,
                broker_epoch: r.broker_epoch,
                offset: r.fetch_offset,
                epoch: r.leader_epoch,
                horizon_generation: r.horizon_generation,
                // Never more than this broker's own fetch size (one whole record at least), so
                // a reply always fits what a gRPC client receives, whatever a peer asks for.
                max_bytes: r
                    .max_bytes
                    .min(self.inner.cfg.replication.fetch_max_bytes)
                    .max(1) as usize,
                max_wait,
            })
            .await
            .map_err(to_status)?;
        Ok(rpc::FetchResponse {
            records: reply.records,
            high_watermark: reply.high_watermark,
            log_end_offset: reply.log_end_offset,
            log_start_offset: reply.log_start_offset,
            tombstone_horizon: reply.tombstone_horizon,
            horizon_generation: reply.horizon_generation,
            epochs: reply
                .epochs
                .iter()
                .map(|e| rpc::EpochStart {
                    epoch: e.epoch,
                    start_offset: e.start_offset,
                })
                .collect(),
            truncate_to_empty: reply.truncate_to_empty,
        })
    }

    fn replica(&self, p: u32) -> Result<&Arc<crate::replica::Replica>, Status> {
        self.inner.replicas.get(&p).ok_or_else(|| {
            rpc::status(
                Reason::NotLeader,
                format!("no replica of partition {p}"),
                None,
            )
        })
    }
}

fn to_status(e: ReplicaError) -> Status {
    let msg = e.to_string();
    let reason = match e {
        ReplicaError::NotLeader { .. } => Reason::NotLeader,
        ReplicaError::Fenced { .. } => Reason::Fenced,
        ReplicaError::OffsetOutOfRange { .. } => Reason::OffsetOutOfRange,
        ReplicaError::UnknownReplica(_) => Reason::InvalidArgument,
        ReplicaError::Timeout { .. } => Reason::Timeout,
        _ => return Status::internal(msg),
    };
    rpc::status(reason, msg, None)
}

#[tonic::async_trait]
impl Replication for PeerService {
    async fn fetch(
        &self,
        req: Request<rpc::FetchRequest>,
    ) -> Result<Response<rpc::FetchResponse>, Status> {
        let caller = self.caller(&req)?;
        Ok(Response::new(
            self.serve_fetch(caller, req.into_inner()).await?,
        ))
    }

    type FetchStreamStream = FetchReplies;

    async fn fetch_stream(
        &self,
        req: Request<Streaming<rpc::FetchRequest>>,
    ) -> Result<Response<FetchReplies>, Status> {
        let caller = self.caller(&req)?;
        // Each request is read once the previous reply was handed to the connection, and served
        // as `fetch` serves it; a failure is the stream's last item. If the follower goes away,
        // the reply stream is dropped and a parked fetch with it. (A graceful shutdown of the
        // server waits for open streams: a stepped-down leader refuses their next request.)
        let state = (self.clone(), req.into_inner(), false);
        let replies =
            futures_util::stream::unfold(state, move |(me, mut incoming, failed)| async move {
                if failed {
                    return None;
                }
                let reply = match incoming.message().await {
                    Ok(Some(r)) => me.serve_fetch(caller, r).await,
                    Ok(None) => return None,
                    Err(status) => Err(status),
                };
                let failed = reply.is_err();
                Some((reply, (me, incoming, failed)))
            });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn offset_for_leader_epoch(
        &self,
        req: Request<rpc::OffsetForLeaderEpochRequest>,
    ) -> Result<Response<rpc::OffsetForLeaderEpochResponse>, Status> {
        self.caller(&req)?;
        let r = req.into_inner();
        let replica = self.replica(r.partition)?;
        let answer = replica
            .offset_for_epoch(r.requested_epoch, r.current_leader_epoch)
            .map_err(to_status)?;
        Ok(Response::new(match answer {
            EpochAnswer::Undefined => rpc::OffsetForLeaderEpochResponse {
                undefined: true,
                leader_epoch: 0,
                end_offset: 0,
            },
            EpochAnswer::At { epoch, end_offset } => rpc::OffsetForLeaderEpochResponse {
                undefined: false,
                leader_epoch: epoch,
                end_offset,
            },
        }))
    }

    async fn prepare_handover(
        &self,
        req: Request<rpc::PrepareHandoverRequest>,
    ) -> Result<Response<rpc::PrepareHandoverResponse>, Status> {
        self.caller(&req)?;
        let req = req.into_inner();
        let replica = self.replica(req.partition)?;
        let wait = Duration::from_millis(u64::from(req.wait_ms));
        let leo = super::handover::prepare(&self.inner, replica, req.to, req.leader_epoch, wait)
            .await
            .map_err(to_status)?;
        Ok(Response::new(rpc::PrepareHandoverResponse {
            log_end_offset: leo,
        }))
    }

    async fn replica_status(
        &self,
        req: Request<rpc::ReplicaStatusRequest>,
    ) -> Result<Response<rpc::ReplicaStatusResponse>, Status> {
        self.caller(&req)?;
        let replicas = self
            .inner
            .replicas
            .values()
            .map(|r| {
                let s = r.snapshot();
                rpc::ReplicaState {
                    partition: s.partition,
                    role: s.role.name().to_string(),
                    log_end_offset: s.log_end_offset,
                    high_watermark: s.high_watermark,
                    has_epoch: s.last_epoch.is_some(),
                    last_epoch: s.last_epoch.unwrap_or(0),
                    leader_epoch: s.leader_epoch,
                    leader: match s.role {
                        Role::Leader => self.inner.id() as i32,
                        Role::Follower { leader } => leader as i32,
                        Role::Offline => -1,
                    },
                    isr: s.isr,
                    log_start_offset: s.log_start_offset,
                    incomplete: r.incomplete(),
                }
            })
            .collect();
        Ok(Response::new(rpc::ReplicaStatusResponse {
            broker_id: self.inner.id(),
            replicas,
            broker_epoch: self.inner.broker_epoch().unwrap_or(0),
        }))
    }
}
