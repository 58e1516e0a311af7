//! N brokers in one process, each on a machine of its own (a thread driving its runtime, see
//! [`super::host`]) and behind a ZooKeeper proxy of its own, so that `kill` is a real crash: the
//! proxy cuts the session without a close, the runtime is dropped (every task and socket of the
//! broker gone at once, no flush beyond what its fsync policy did), and `restore` starts it again
//! on the same data and ports. `pause` freezes the machine without killing it.

mod faults;

use super::host::Host;
use super::network::{Network, Node};
use crate::broker::{Broker, BrokerConfig, BrokerSnapshot, ReplicationConfig, ZkConfig};
use crate::coord::{ClusterSpec, Ensemble, ServerOptions, split_connect};
use crate::events::{EventKind, EventSink};
use crate::net::{certs, listen::ConnectionLimits, tls::TlsConfig};
use crate::storage::{DiskModel, StoreConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The wait before a broker whose restart failed on a taken port is started again.
const RESTART_RETRY: Duration = Duration::from_millis(100);

/// Which ZooKeeper the cluster uses.
#[derive(Debug, Clone)]
pub enum ZkChoice {
    /// Start a private server (or ensemble of `servers`) under `<data_dir>/zookeeper`.
    Private {
        /// The servers' settings.
        options: ServerOptions,
        /// How many servers: 1 (standalone), 3 or 5.
        servers: u32,
    },
    /// Use an existing ensemble (`host:port[,...][/chroot]`).
    External(String),
}

/// Everything needed to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Cluster settings (`brokers` is the number of brokers started).
    pub spec: ClusterSpec,
    /// Root of the brokers' data (`<data_dir>/broker-<id>/`).
    pub data_dir: PathBuf,
    /// ZooKeeper.
    pub zk: ZkChoice,
    /// Chroot under the ensemble (private servers use it too).
    pub chroot: String,
    /// ZooKeeper session timeout of each broker.
    pub session_timeout_ms: u64,
    /// Replication settings of each broker.
    pub replication: ReplicationConfig,
    /// Storage settings of each replica.
    pub storage: StoreConfig,
    /// Route every link through a proxy of the lab's, so link faults can act on it. The bench
    /// turns it off, to measure the brokers rather than the proxies.
    pub proxied_links: bool,
    /// Brokers speak mutual TLS among themselves with the certificates in this directory (made
    /// by `simplekv-lab certs`); unset, as the lab runs by default: plaintext on loopback.
    pub peer_tls: Option<PathBuf>,
    /// How each broker's ports bound their connections.
    pub connections: ConnectionLimits,
    /// ZooKeeper digest credentials of the brokers (`user:password`): the cluster's znodes
    /// then only they may change. The lab's own view and clients stay anonymous readers.
    pub zk_credentials: Option<String>,
}

impl ClusterOptions {
    /// Lab defaults: short ZooKeeper tick and timeouts so a failover takes seconds.
    pub fn lab(data_dir: PathBuf, spec: ClusterSpec) -> Self {
        Self {
            spec,
            data_dir,
            zk: ZkChoice::Private {
                options: ServerOptions::default(),
                servers: 1,
            },
            chroot: "/simplekv".into(),
            session_timeout_ms: 3000,
            replication: ReplicationConfig {
                replica_lag_time_max_ms: 3000,
                request_timeout_ms: 5000,
                merge_interval_ms: 30_000,
                auto_leader_rebalance: true,
                leader_imbalance_check_interval_ms: 10_000,
                ..ReplicationConfig::default()
            },
            storage: StoreConfig::default(),
            proxied_links: true,
            peer_tls: None,
            connections: ConnectionLimits::default(),
            zk_credentials: None,
        }
    }
}

/// Why the cluster could not start or a broker could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The private ZooKeeper failed.
    #[error(transparent)]
    Zk(#[from] crate::coord::ServerError),
    /// A broker failed.
    #[error("broker {id}: {source}")]
    Broker {
        /// Which.
        id: u32,
        /// Why.
        #[source]
        source: crate::broker::BrokerError,
    },
    /// Settings that do not fit.
    #[error("{0}")]
    Config(String),
    /// No such broker.
    #[error("there is no broker {0}")]
    NoSuchBroker(u32),
    /// Other failures (threads, sockets).
    #[error("{0}")]
    Other(String),
}

impl From<ClusterError> for crate::command::CommandError {
    fn from(e: ClusterError) -> Self {
        Self::Cluster(Box::new(e))
    }
}

struct Running {
    host: Host,
    broker: Broker,
    /// Its Redis-protocol listener's port (the listener runs on the broker's machine: it stops
    /// and freezes with it).
    resp_port: Option<u16>,
}

impl Running {
    /// Stops the machine at once and waits for its thread to end.
    async fn crash(self) {
        drop(self.broker);
        if let Some(thread) = self.host.stop() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

struct Slot {
    cfg: parking_lot::Mutex<BrokerConfig>,
    /// Its machine's disk, as a power loss would leave it.
    disk: DiskModel,
    /// Its disk was replaced and it has not been restored since.
    wiped: std::sync::atomic::AtomicBool,
    /// Pauses so far: a timed resume ends only the pause it belongs to.
    pauses: std::sync::atomic::AtomicU64,
    running: parking_lot::Mutex<Option<Running>>,
    /// Serialises kill and restore of this broker (held across their awaits).
    busy: tokio::sync::Mutex<()>,
    /// The RESP port it had, kept across restarts (0: none yet).
    resp_port: std::sync::atomic::AtomicU16,
}

impl Slot {
    fn running(&self) -> parking_lot::MutexGuard<'_, Option<Running>> {
        self.running.lock()
    }

    fn cfg(&self) -> BrokerConfig {
        self.cfg.lock().clone()
    }
}

/// The brokers and their ZooKeeper.
pub struct Cluster {
    network: Network,
    options: ClusterOptions,
    /// The private ZooKeeper (none when external).
    ensemble: Option<Arc<Ensemble>>,
    zk_connect: String,
    slots: Vec<Slot>,
    events: EventSink,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("zk", &self.zk_connect)
            .field("brokers", &self.slots.len())
            .finish()
    }
}

impl Cluster {
    /// Starts ZooKeeper (unless external) and every broker, and returns once each broker serves.
    pub async fn start(options: ClusterOptions, events: EventSink) -> Result<Self, ClusterError> {
        options.spec.validate().map_err(ClusterError::Config)?;
        std::fs::create_dir_all(&options.data_dir).map_err(|e| {
            ClusterError::Config(format!("cannot create {}: {e}", options.data_dir.display()))
        })?;
        let (ensemble, servers, chroot) = match &options.zk {
            ZkChoice::Private {
                options: server_options,
                servers,
            } => {
                let dir = options.data_dir.join("zookeeper");
                let (so, n) = (server_options.clone(), *servers);
                let ensemble = tokio::task::spawn_blocking(move || Ensemble::start(&dir, n, &so))
                    .await
                    .map_err(|e| ClusterError::Other(e.to_string()))??;
                let servers = ensemble.servers();
                (Some(Arc::new(ensemble)), servers, options.chroot.clone())
            }
            ZkChoice::External(connect) => {
                let (servers, chroot) = split_connect(connect);
                let chroot = if chroot.is_empty() {
                    options.chroot.clone()
                } else {
                    chroot.to_string()
                };
                (None, servers.to_string(), chroot)
            }
        };
        let mut zk_addrs: Vec<SocketAddr> = Vec::new();
        for server in servers.split(',') {
            let addr = tokio::net::lookup_host(server)
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| {
                    ClusterError::Config(format!("cannot resolve ZooKeeper address '{server}'"))
                })?;
            zk_addrs.push(addr);
        }
        let zk_connect = format!("{servers}{chroot}");
        let ids: Vec<u32> = (1..=options.spec.brokers).collect();
        let network = Network::start(&ids, &zk_addrs, options.proxied_links)
            .await
            .map_err(|e| {
                ClusterError::Other(format!("cannot start the lab's link proxies: {e}"))
            })?;
        let mut slots = Vec::new();
        for id in 1..=options.spec.brokers {
            let zk_link = network
                .zk_servers(id)
                .ok_or_else(|| ClusterError::Other(format!("broker {id} has no ZooKeeper link")))?;
            let disk = DiskModel::tracking();
            let cfg = BrokerConfig {
                id,
                host: "127.0.0.1".into(),
                kv_port: 0,
                peer_port: 0,
                resp_port: None,
                resp_acks: "all".into(),
                data_dir: options.data_dir.join(format!("broker-{id}")),
                zookeeper: ZkConfig {
                    connect: format!("{zk_link}{chroot}"),
                    session_timeout_ms: options.session_timeout_ms,
                    credentials: options.zk_credentials.clone(),
                },
                cluster: options.spec.clone(),
                replication: options.replication.clone(),
                storage: StoreConfig {
                    disk: disk.clone(),
                    ..options.storage.clone()
                },
                tls: options.peer_tls.as_ref().map(|d| TlsConfig {
                    ca: d.join(certs::CA_CERT),
                    cert: d.join(certs::cert_file(id)),
                    key: d.join(certs::key_file(id)),
                    client_port: false,
                }),
                connections: options.connections,
                dialer: network.broker_dialer(id),
            };
            slots.push(Slot {
                cfg: parking_lot::Mutex::new(cfg),
                disk,
                wiped: std::sync::atomic::AtomicBool::new(false),
                pauses: std::sync::atomic::AtomicU64::new(0),
                running: parking_lot::Mutex::new(None),
                busy: tokio::sync::Mutex::new(()),
                resp_port: std::sync::atomic::AtomicU16::new(0),
            });
        }
        let cluster = Self {
            network,
            options,
            ensemble,
            zk_connect,
            slots,
            events,
        };
        for id in 1..=cluster.slots.len() as u32 {
            if let Err(e) = cluster.launch(id).await {
                cluster.stop_all().await;
                return Err(e);
            }
        }
        Ok(cluster)
    }

    fn slot(&self, id: u32) -> Result<&Slot, ClusterError> {
        id.checked_sub(1)
            .and_then(|i| self.slots.get(i as usize))
            .ok_or(ClusterError::NoSuchBroker(id))
    }

    /// Starts broker `id` on a new machine (the caller holds its `busy` lock).
    async fn launch(&self, id: u32) -> Result<(), ClusterError> {
        let slot = self.slot(id)?;
        slot.disk.power_on();
        slot.wiped.store(false, std::sync::atomic::Ordering::SeqCst);
        let host = Host::start(format!("broker-{id}"))
            .map_err(|e| ClusterError::Other(format!("cannot start broker {id}'s thread: {e}")))?;
        // A restored broker may find its old ports or data lock still held for a moment while the
        // killed runtime's last threads wind down: retry briefly.
        let mut attempt = 0;
        let broker = loop {
            let cfg = slot.cfg();
            let ev = self.events.clone();
            let started = host
                .handle()
                .spawn(async move { Broker::start(cfg, ev).await })
                .await;
            match started {
                Ok(Ok(b)) => break b,
                Ok(Err(e)) if attempt < 50 && retryable(&e) => {
                    attempt += 1;
                    // After 2 s, a port still taken belongs to someone else (an outgoing
                    // connection may have been given it): take new ones. Peers and clients find
                    // the broker through its registration in ZooKeeper.
                    if attempt == 20 && matches!(e, crate::broker::BrokerError::Bind { .. }) {
                        let mut cfg = slot.cfg.lock();
                        (cfg.kv_port, cfg.peer_port) = (0, 0);
                        self.events.for_broker(id).emit(
                            EventKind::Warning,
                            None,
                            format!("{e}: its old port is taken by another process; restoring it on new ports"),
                        );
                    }
                    tokio::time::sleep(RESTART_RETRY).await;
                }
                Ok(Err(source)) => {
                    drop(host);
                    return Err(ClusterError::Broker { id, source });
                }
                Err(e) => {
                    drop(host);
                    return Err(ClusterError::Other(format!(
                        "broker {id} start panicked: {e}"
                    )));
                }
            }
        };
        {
            let mut cfg = slot.cfg.lock();
            cfg.kv_port = broker.kv_addr().port();
            cfg.peer_port = broker.peer_addr().port();
        }
        self.network
            .broker_up(id, broker.kv_addr(), broker.peer_addr());
        let resp_port = self.start_resp(id, &host, &broker).await;
        *slot.running() = Some(Running {
            host,
            broker,
            resp_port,
        });
        Ok(())
    }

    /// Starts broker `id`'s Redis-protocol listener on its machine, on the port it had before
    /// when it can. It serves the partitions its broker leads in-process (the same host) and reaches
    /// the others as clients do (through the clients' links). A failure
    /// is an event, not a failed start: the broker itself is up.
    async fn start_resp(&self, id: u32, host: &Host, broker: &Broker) -> Option<u16> {
        let slot = self.slot(id).ok()?;
        let was = slot.resp_port.load(std::sync::atomic::Ordering::SeqCst);
        let zk = self.zk_connect.clone();
        let dialer = self.network.client_dialer();
        let broker = broker.clone();
        let started = host
            .handle()
            .spawn(async move {
                let listener = match tokio::net::TcpListener::bind(("127.0.0.1", was)).await {
                    Ok(l) => l,
                    Err(_) => tokio::net::TcpListener::bind(("127.0.0.1", 0))
                        .await
                        .map_err(|e| format!("cannot listen for RESP: {e}"))?,
                };
                let port = listener
                    .local_addr()
                    .map_err(|e| format!("cannot listen for RESP: {e}"))?
                    .port();
                // On its broker's host: keys the broker leads are served in-process.
                let cfg = crate::client::ClientConfig {
                    request_timeout: crate::resp::CLIENT_TIMEOUT,
                    dialer,
                    local: Some(broker.local_kv()),
                    ..crate::client::ClientConfig::default()
                };
                let client = crate::client::Client::connect_zk(&zk, cfg)
                    .await
                    .map_err(|e| format!("the RESP listener cannot reach the cluster: {e}"))?;
                let opts = crate::resp::ExecOptions::new(crate::replica::Acks::All, Some(broker));
                tokio::spawn(crate::resp::serve(
                    listener,
                    client,
                    opts,
                    tokio_util::sync::CancellationToken::new(),
                ));
                Ok::<u16, String>(port)
            })
            .await;
        match started {
            Ok(Ok(port)) => {
                slot.resp_port
                    .store(port, std::sync::atomic::Ordering::SeqCst);
                Some(port)
            }
            Ok(Err(e)) => {
                self.events.for_broker(id).emit(EventKind::Warning, None, e);
                None
            }
            Err(e) => {
                self.events.for_broker(id).emit(
                    EventKind::Warning,
                    None,
                    format!("the RESP listener did not start: {e}"),
                );
                None
            }
        }
    }

    /// Each broker's Redis-protocol port, while it is up (in id order).
    pub fn resp_ports(&self) -> Vec<Option<u16>> {
        self.slots
            .iter()
            .map(|s| s.running().as_ref().and_then(|r| r.resp_port))
            .collect()
    }

    /// Crashes broker `id`: its ZooKeeper connection is cut without a session close and every task
    /// and socket of it stops at once. ZooKeeper keeps its registration until the session expires.
    pub async fn kill(&self, id: u32) -> Result<(), ClusterError> {
        let slot = self.slot(id)?;
        let _busy = slot.busy.lock().await;
        if slot.running().is_none() {
            return Err(ClusterError::Config(format!("broker {id} is already down")));
        }
        self.network.broker_down(id);
        let Some(running) = slot.running().take() else {
            return Err(ClusterError::Config(format!("broker {id} is already down")));
        };
        running.crash().await;
        self.events.for_broker(id).emit(
            EventKind::Kill,
            None,
            "killed: crashed without a clean shutdown; its ZooKeeper session lingers until it times out",
        );
        Ok(())
    }

    /// Starts broker `id` again on its data directory and ports.
    pub async fn restore(&self, id: u32) -> Result<(), ClusterError> {
        let slot = self.slot(id)?;
        let _busy = slot.busy.lock().await;
        if slot.running().is_some() {
            return Err(ClusterError::Config(format!("broker {id} is already up")));
        }
        self.launch(id).await?;
        self.events.for_broker(id).emit(
            EventKind::Restore,
            None,
            "restored on its old data directory and ports",
        );
        Ok(())
    }

    /// Replaces broker `id`'s disk: deletes its data directory, so `restore` starts it empty. The
    /// broker must be down (a disk is replaced with the machine off).
    pub async fn wipe(&self, id: u32) -> Result<(), ClusterError> {
        let slot = self.slot(id)?;
        let _busy = slot.busy.lock().await;
        if slot.running().is_some() {
            return Err(ClusterError::Config(format!(
                "broker {id} is up: kill it before wiping its disk"
            )));
        }
        let dir = slot.cfg().data_dir;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ClusterError::Other(format!(
                    "cannot wipe {}: {e}",
                    dir.display()
                )));
            }
        }
        slot.wiped.store(true, std::sync::atomic::Ordering::SeqCst);
        self.events.for_broker(id).emit(
            EventKind::Kill,
            None,
            "disk replaced: its data directory is gone; restore starts it empty",
        );
        Ok(())
    }

    /// Cuts broker `id`'s ZooKeeper link and keeps it cut, without stopping the broker: its
    /// session expires and it must step down (a network partition from ZooKeeper).
    pub fn isolate_from_zk(&self, id: u32) -> Result<(), ClusterError> {
        self.slot(id)?;
        self.network
            .change(|f, all| f.isolate(id, all, true, false, false))
            .map_err(ClusterError::Config)?;
        Ok(())
    }

    /// Lets broker `id` reach ZooKeeper again.
    pub fn reconnect_to_zk(&self, id: u32) -> Result<(), ClusterError> {
        self.slot(id)?;
        self.network
            .change(|f, _| {
                f.cuts.remove(&(Node::Broker(id), Node::Zk));
            })
            .map_err(ClusterError::Config)?;
        Ok(())
    }

    /// Where the cluster's events go.
    pub fn events(&self) -> &EventSink {
        &self.events
    }

    /// The brokers' ZooKeeper session timeout.
    pub fn session_timeout_ms(&self) -> u64 {
        self.options.session_timeout_ms
    }

    /// The lab's links and the faults in force on them.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Whether its brokers speak mutual TLS among themselves.
    pub fn peer_tls(&self) -> bool {
        self.options.peer_tls.is_some()
    }

    /// Broker `id`, if it is up.
    pub fn broker(&self, id: u32) -> Option<Broker> {
        self.slot(id)
            .ok()?
            .running()
            .as_ref()
            .map(|r| r.broker.clone())
    }

    /// Ids of every broker, up or down.
    pub fn ids(&self) -> Vec<u32> {
        (1..=self.slots.len() as u32).collect()
    }

    /// Whether broker `id` is up.
    pub fn is_up(&self, id: u32) -> bool {
        self.broker(id).is_some()
    }

    /// Every broker's snapshot (`None` when down).
    pub fn snapshots(&self) -> Vec<(u32, Option<BrokerSnapshot>)> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let broker = s.running().as_ref().map(|r| r.broker.clone());
                (i as u32 + 1, broker.map(|b| b.snapshot()))
            })
            .collect()
    }

    /// A direct (not proxied) ZooKeeper connect string with the cluster's chroot, for clients.
    pub fn zk_connect(&self) -> &str {
        &self.zk_connect
    }

    /// The cluster settings.
    pub fn spec(&self) -> &crate::coord::ClusterSpec {
        &self.options.spec
    }

    /// Stops every broker cleanly, then the private ZooKeeper.
    pub async fn shutdown(&self) {
        self.stop_all().await;
    }

    async fn stop_all(&self) {
        for slot in &self.slots {
            let _busy = slot.busy.lock().await;
            let running = slot.running().take();
            if let Some(running) = running {
                let b = running.broker.clone();
                running.host.resume();
                let _ = running
                    .host
                    .handle()
                    .spawn(async move { b.shutdown().await })
                    .await;
                running.crash().await;
            }
        }
        if let Some(ensemble) = self.ensemble.clone() {
            let _ = tokio::task::spawn_blocking(move || ensemble.stop()).await;
        }
    }
}

fn retryable(e: &crate::broker::BrokerError) -> bool {
    use crate::broker::BrokerError;
    match e {
        BrokerError::Bind { source, .. } => source.kind() == std::io::ErrorKind::AddrInUse,
        BrokerError::Storage { source, .. } => {
            matches!(source, crate::storage::StorageError::Locked(_))
        }
        _ => false,
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for slot in &self.slots {
            drop(slot.running().take());
        }
    }
}
