//! One broker: its replicas, its ZooKeeper session, its gRPC servers, and the tasks that keep them
//! in step — the session loop (registration, watches, stepping down on expiry), the controller
//! (when elected), follower fetchers, the ISR task and log maintenance.
//!
//! Nothing here assumes its peers share this process, clock or file system: they are reached over
//! gRPC at the addresses they registered in ZooKeeper.

mod config;
mod controller;
mod election;
mod fetcher;
mod handover;
mod isr;
mod kv_service;
pub use kv_service::LocalKv;
mod maintenance;
mod peer_service;
mod peers;
mod preferred;
mod session;

pub use config::{BrokerConfig, ReplicationConfig, ZkConfig};
pub use preferred::{PreferredBlocked, preferred_blocked};

use crate::coord::{BrokerInfo, ClusterSpec, ControllerLease, Coord, CoordError, PartitionState};
use crate::events::{EventKind, EventSink};
use crate::net::listen::{ConnectionLimits, incoming};
use crate::net::tls::Tls;
use crate::replica::{Lease, Replica, ReplicaConfig, ReplicaSnapshot, Role};
use crate::rpc::kv_server::KvServer;
use crate::rpc::replication_server::ReplicationServer;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long a broker shutting down gives its followers to catch up with what it leads.
const SHUTDOWN_CATCH_UP: Duration = Duration::from_secs(3);
/// How often it looks whether they have.
const SHUTDOWN_POLL: Duration = Duration::from_millis(20);

/// Largest gRPC message a broker sends or accepts (values are at most 16 MiB by default).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// The largest record a broker may be configured to hold: a fetch reply carries at least one
/// whole record, with room to spare for the reply's other fields.
pub const MAX_REPLICATED_RECORD_BYTES: usize = MAX_MESSAGE_BYTES - (1 << 20);

/// Why a broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// ZooKeeper failed.
    #[error(transparent)]
    Coord(#[from] CoordError),
    /// A replica's storage failed to open.
    #[error("partition {partition}: {source}")]
    Storage {
        /// The partition.
        partition: u32,
        /// The error.
        #[source]
        source: crate::storage::StorageError,
    },
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration does not fit the cluster.
    #[error("{0}")]
    Config(String),
}

/// State of the broker's ZooKeeper session, as the console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SessionStatus {
    /// Opening a session.
    Connecting,
    /// Registered and watching.
    Connected,
    /// The connection dropped; the session may still be alive on the server.
    Disconnected,
    /// The session expired; the broker stepped down and is opening a new one.
    Expired,
    /// Waiting for an older session of this broker id to expire before registering.
    WaitingForOldSession,
}

impl SessionStatus {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::Expired => "expired",
            Self::WaitingForOldSession => "waiting for old session",
        }
    }
}

/// What ZooKeeper says, as this broker last saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Registered brokers.
    pub brokers: BTreeMap<u32, BrokerInfo>,
    /// Partition states and their znode versions.
    pub states: BTreeMap<u32, (PartitionState, i32)>,
}

/// A broker's state for the console.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerSnapshot {
    /// Its id.
    pub id: u32,
    /// Client service address.
    pub kv_addr: SocketAddr,
    /// Replication service address.
    pub peer_addr: SocketAddr,
    /// ZooKeeper session state.
    pub session: SessionStatus,
    /// Controller epoch, if it is the controller.
    pub controller_epoch: Option<u32>,
    /// Its replicas.
    pub replicas: Vec<ReplicaSnapshot>,
}

/// The registration this broker's roles belong to: the ZooKeeper session that made it and the
/// broker epoch (czxid) it got. Roles are applied only for the current one, under its lock, so a
/// watch that read a state before the session died cannot re-arm a leader after `step_down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Incarnation {
    session_id: i64,
    broker_epoch: i64,
}

pub(crate) struct Inner {
    cfg: BrokerConfig,
    incarnation: Mutex<Option<Incarnation>>,
    lease: Arc<Lease>,
    spec: ClusterSpec,
    replicas: BTreeMap<u32, Arc<Replica>>,
    kv_addr: SocketAddr,
    peer_addr: SocketAddr,
    events: EventSink,
    session: watch::Sender<Option<Coord>>,
    session_status: Mutex<SessionStatus>,
    metadata: RwLock<Metadata>,
    controller: Mutex<Option<ControllerLease>>,
    fetchers: Mutex<HashMap<u32, tokio::task::JoinHandle<()>>>,
    peers: peers::PeerClients,
    /// Mutual TLS among brokers, when configured: then the peer port serves only brokers.
    tls: Option<Tls>,
    shutdown: CancellationToken,
    accepting: AtomicBool,
}

impl Inner {
    fn id(&self) -> u32 {
        self.cfg.id
    }

    fn info(&self) -> BrokerInfo {
        BrokerInfo {
            host: self.cfg.host.clone(),
            kv_port: self.kv_addr.port(),
            peer_port: self.peer_addr.port(),
            epoch: 0,
        }
    }

    fn metadata(&self) -> Metadata {
        self.metadata.read().clone()
    }

    fn update_metadata(&self, f: impl FnOnce(&mut Metadata)) {
        f(&mut self.metadata.write());
    }

    fn set_session_status(&self, s: SessionStatus) {
        *self.session_status.lock() = s;
    }

    fn current_session(&self) -> Option<Coord> {
        self.session.borrow().clone()
    }

    fn incarnation(&self) -> parking_lot::MutexGuard<'_, Option<Incarnation>> {
        self.incarnation.lock()
    }

    /// This broker's epoch in its current registration, if it is registered.
    fn broker_epoch(&self) -> Option<i64> {
        self.incarnation().map(|i| i.broker_epoch)
    }

    /// ZooKeeper answered session `session_id` for a request sent when the lease could last
    /// `until`: extend the lease, unless that session is no longer ours.
    fn renew_lease(&self, session_id: i64, until: Instant) {
        let current = self.incarnation();
        if current.is_some_and(|i| i.session_id == session_id) {
            self.lease.extend_to(until);
        }
    }

    /// Stops leading, following and controlling at once: the session that granted those roles is
    /// gone (`why` completes "stopped leading: ...").
    fn step_down(&self, why: &str) {
        // Held throughout, so no role can be applied for the old session while we fence.
        let mut incarnation = self.incarnation();
        *incarnation = None;
        self.lease.revoke();
        *self.controller.lock() = None;
        for (_, h) in self.fetchers.lock().drain() {
            h.abort();
        }
        for r in self.replicas.values() {
            r.fence(why);
        }
    }

    /// The kv address of a partition's leader, as this broker knows it.
    fn leader_kv_addr(&self, partition: u32) -> Option<String> {
        let md = self.metadata.read();
        let leader = md.states.get(&partition)?.0.leader()?;
        md.brokers.get(&leader).map(BrokerInfo::kv_addr)
    }
}

/// A running broker. Dropping it does not stop it: call [`Broker::shutdown`] (clean) or drop the
/// runtime it runs on (a crash).
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
    local_kv: kv_service::LocalKv,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("id", &self.inner.cfg.id)
            .finish()
    }
}

/// A gRPC server bounded as `limits` says, with TLS when `tls` is given.
fn server(
    limits: &ConnectionLimits,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> Result<tonic::transport::Server, BrokerError> {
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(limits.keepalive_interval()))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout()));
    match tls {
        None => Ok(server),
        Some(tls) => server
            .tls_config(tls)
            .map_err(|e| BrokerError::Config(format!("tls: {e}"))),
    }
}

async fn bind(host: &str, port: u16) -> Result<tokio::net::TcpListener, BrokerError> {
    let addr = format!("{host}:{port}");
    tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| BrokerError::Bind { addr, source })
}

impl Broker {
    /// Starts a broker: connects to ZooKeeper, creates the cluster layout if it is the first,
    /// opens its replicas, starts its gRPC servers and its tasks. Returns once it serves (its
    /// roles arrive moments later through ZooKeeper watches).
    pub async fn start(cfg: BrokerConfig, events: EventSink) -> Result<Self, BrokerError> {
        cfg.validate().map_err(BrokerError::Config)?;
        let events = events.for_broker(cfg.id);
        let coord = cfg.connect_zk().await?;
        coord.ensure_layout().await?;
        let spec = coord.ensure_cluster(&cfg.cluster).await?;
        if spec != cfg.cluster {
            events.emit(
                EventKind::Warning,
                None,
                format!("ZooKeeper's /cluster ({spec:?}) differs from this broker's configuration; following ZooKeeper"),
            );
        }
        if cfg.id > spec.brokers {
            return Err(BrokerError::Config(format!(
                "broker id {} is outside the cluster of {} brokers in ZooKeeper",
                cfg.id, spec.brokers
            )));
        }
        let lease = Arc::new(Lease::new());
        let mut replicas = BTreeMap::new();
        for p in spec.partitions_of(cfg.id) {
            let assigned = coord.ensure_replicas(p, &spec.replicas_of(p)).await?;
            let rcfg = ReplicaConfig {
                broker_id: cfg.id,
                partition: p,
                replicas: assigned,
                min_insync_replicas: spec.min_insync_replicas,
                replica_lag_time_max: Duration::from_millis(
                    cfg.replication.replica_lag_time_max_ms,
                ),
                request_timeout: Duration::from_millis(cfg.replication.request_timeout_ms),
            };
            let dir = cfg.partition_dir(p);
            let store_cfg = cfg.storage.clone();
            let ev = events.clone();
            let lease = Arc::clone(&lease);
            let replica = tokio::task::spawn_blocking(move || {
                Replica::open(&dir, store_cfg, rcfg, lease, ev)
            })
            .await
            .map_err(|e| BrokerError::Config(format!("opening partition {p} panicked: {e}")))?
            .map_err(|source| BrokerError::Storage {
                partition: p,
                source,
            })?;
            replicas.insert(p, replica);
        }
        let tls = cfg
            .tls
            .as_ref()
            .map(Tls::load)
            .transpose()
            .map_err(BrokerError::Config)?;
        let kv_listener = bind(&cfg.host, cfg.kv_port).await?;
        let peer_listener = bind(&cfg.host, cfg.peer_port).await?;
        let kv_addr = kv_listener
            .local_addr()
            .map_err(|source| BrokerError::Bind {
                addr: cfg.host.clone(),
                source,
            })?;
        let peer_addr = peer_listener
            .local_addr()
            .map_err(|source| BrokerError::Bind {
                addr: cfg.host.clone(),
                source,
            })?;

        let inner = Arc::new(Inner {
            incarnation: Mutex::new(None),
            lease,
            spec,
            replicas,
            kv_addr,
            peer_addr,
            events,
            session: watch::Sender::new(None),
            session_status: Mutex::new(SessionStatus::Connecting),
            metadata: RwLock::new(Metadata::default()),
            controller: Mutex::new(None),
            fetchers: Mutex::new(HashMap::new()),
            peers: peers::PeerClients::new(cfg.dialer.clone(), tls.clone()),
            tls,
            shutdown: CancellationToken::new(),
            accepting: AtomicBool::new(true),
            cfg,
        });

        let token = inner.shutdown.clone();
        let kv_service = Arc::new(kv_service::KvService::new(Arc::clone(&inner)));
        let kv = KvServer::from_arc(Arc::clone(&kv_service))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let local_kv = kv_service::LocalKv::new(kv.clone(), kv_service, inner.info().kv_addr());
        let limits = inner.cfg.connections;
        let handshake = limits.handshake_timeout();
        let kv_tls = inner
            .tls
            .as_ref()
            .filter(|t| t.client_port)
            .map(|t| t.client_server(handshake));
        let peer_tls = inner.tls.as_ref().map(|t| t.peer_server(handshake));
        // Both servers are built (their TLS checked) before either starts, so a failed start
        // leaves nothing serving.
        let (mut kv_server, mut peer_server) =
            (server(&limits, kv_tls)?, server(&limits, peer_tls)?);
        tokio::spawn(kv_server.add_service(kv).serve_with_incoming_shutdown(
            incoming(kv_listener, limits, "kv", inner.events.clone()),
            token.clone().cancelled_owned(),
        ));
        let peer = ReplicationServer::new(peer_service::PeerService::new(Arc::clone(&inner)))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        tokio::spawn(peer_server.add_service(peer).serve_with_incoming_shutdown(
            incoming(peer_listener, limits, "peer", inner.events.clone()),
            token.clone().cancelled_owned(),
        ));
        tokio::spawn(session::run(Arc::clone(&inner), Some(coord)));
        for replica in inner.replicas.values() {
            tokio::spawn(isr::run(Arc::clone(&inner), Arc::clone(replica)));
        }
        tokio::spawn(maintenance::run(Arc::clone(&inner)));
        inner.events.emit(
            EventKind::Info,
            None,
            format!("broker started: kv {kv_addr}, peer {peer_addr}"),
        );
        Ok(Self { inner, local_kv })
    }

    /// Its client service, to be called in-process by a client on the same host (the RESP
    /// listener's): see `client::transport`.
    pub fn local_kv(&self) -> LocalKv {
        self.local_kv.clone()
    }

    /// What a client of this broker's process needs to dial client ports: `None` unless they
    /// are TLS (`tls.client_port`).
    pub fn client_tls(&self) -> Option<crate::net::tls::ClientTls> {
        let tls = self.inner.tls.as_ref().filter(|t| t.client_port)?;
        Some(tls.client())
    }

    /// Its id.
    pub fn id(&self) -> u32 {
        self.inner.cfg.id
    }

    /// Client service address.
    pub fn kv_addr(&self) -> SocketAddr {
        self.inner.kv_addr
    }

    /// Replication service address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer_addr
    }

    /// The cluster settings it follows (from ZooKeeper).
    pub fn spec(&self) -> &ClusterSpec {
        &self.inner.spec
    }

    /// Its replica of `partition`, if it has one.
    pub fn replica(&self, partition: u32) -> Option<Arc<Replica>> {
        self.inner.replicas.get(&partition).cloned()
    }

    /// What ZooKeeper says, as this broker last saw it.
    pub fn metadata(&self) -> Metadata {
        self.inner.metadata()
    }

    /// The broker's state for the console.
    pub fn snapshot(&self) -> BrokerSnapshot {
        BrokerSnapshot {
            id: self.inner.cfg.id,
            kv_addr: self.inner.kv_addr,
            peer_addr: self.inner.peer_addr,
            session: *self.inner.session_status.lock(),
            controller_epoch: self.inner.controller.lock().map(|l| l.epoch),
            replicas: self.inner.replicas.values().map(|r| r.snapshot()).collect(),
        }
    }

    /// Stops cleanly: refuses new client writes, gives followers a moment to catch up with what
    /// it leads, resigns as controller, closes its ZooKeeper session (so the controller moves
    /// leadership at once instead of after a session timeout), syncs its logs.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.accepting.store(false, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_CATCH_UP;
        for r in inner.replicas.values() {
            while tokio::time::Instant::now() < deadline {
                let s = r.snapshot();
                let caught_up = s.role != Role::Leader
                    || s.follower_leos
                        .iter()
                        .filter(|(id, _)| s.isr.contains(id))
                        .all(|(_, leo)| leo.is_some_and(|l| l >= s.log_end_offset));
                if caught_up {
                    break;
                }
                tokio::time::sleep(SHUTDOWN_POLL).await;
            }
        }
        if let Some(coord) = inner.current_session() {
            let _ = coord.resign_controller().await;
        }
        inner.shutdown.cancel();
        inner.session.send_replace(None);
        inner.step_down("the broker is shutting down");
        for r in inner.replicas.values() {
            if let Err(e) = r.close() {
                inner.events.emit(
                    EventKind::Warning,
                    Some(r.partition()),
                    format!("closing the log: {e}"),
                );
            }
        }
        inner
            .events
            .emit(EventKind::Info, None, "broker stopped cleanly");
    }
}
