//! Typed ZooKeeper operations on the layout: every call bounded by a timeout (the client queues
//! calls while disconnected), every znode value JSON, every controller write fenced.

use super::acl::{close_to_others, create_options};
use super::error::{CoordError, Result};
use super::layout::{
    self, BROKER_IDS, BrokerInfo, CLUSTER, CONTROLLER, CONTROLLER_EPOCH, ClusterSpec,
    ControllerInfo, PARTITIONS, PartitionState, REBALANCE,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;
use zookeeper_client as zk;

/// The shortest time a ZooKeeper operation may take before it counts as timed out (a session
/// timeout, when longer).
const MIN_OP_TIMEOUT: Duration = Duration::from_secs(2);
/// The first wait before an ensemble with no serving server is tried again; it doubles up to
/// [`CONNECT_RETRY_MAX`].
const CONNECT_RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between tries.
const CONNECT_RETRY_MAX: Duration = Duration::from_secs(1);

/// Proof of being controller: the epoch and the version of `/controller_epoch` it wrote, which
/// every fenced write checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerLease {
    /// The controller epoch won.
    pub epoch: u32,
    /// `/controller_epoch`'s znode version after the win.
    pub epoch_version: i32,
}

/// One ZooKeeper session with the layout's operations.
#[derive(Clone)]
pub struct Coord {
    client: zk::Client,
    op_timeout: Duration,
    connect: String,
    /// The session has credentials: the znodes it creates only such sessions may change.
    restricted: bool,
}

impl std::fmt::Debug for Coord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coord")
            .field("connect", &self.connect)
            .finish()
    }
}

fn decode<T: DeserializeOwned>(path: &str, data: &[u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| CoordError::BadData {
        path: path.to_string(),
        why: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// How a compare-and-set of a partition state whose answer was lost ended
/// ([`Coord::settle_state_cas`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasOutcome {
    /// It is in ZooKeeper at this version (the first send or the resend took effect).
    Taken(i32),
    /// Another state is: it changed under the write.
    Superseded(PartitionState, i32),
    /// The state znode is gone.
    Gone,
}

/// Splits `host:port[,host:port...][/chroot]` into servers and chroot.
pub fn split_connect(connect: &str) -> (&str, &str) {
    match connect.find('/') {
        Some(i) => (&connect[..i], &connect[i..]),
        None => (connect, ""),
    }
}

impl Coord {
    /// Opens a session to `connect` (`host:port[,...][/chroot]`), creating the chroot if needed.
    /// Fails at once when a single server refuses; an ensemble is tried again for up to
    /// `session_timeout` (it may be electing a leader). Fails when no session forms within about
    /// `2 × session_timeout` of the last try.
    pub async fn connect(connect: &str, session_timeout: Duration) -> Result<Self> {
        Self::connect_as(connect, session_timeout, None).await
    }

    /// [`Coord::connect`] with ZooKeeper digest credentials (`user:password`), when given: the
    /// znodes this session creates anyone may read, but only sessions with the same credentials
    /// (the cluster's brokers) may change or delete, or create under. A wrong password is not
    /// refused here (ZooKeeper accepts any digest); its writes are, as `NoAuth`.
    pub async fn connect_as(
        connect: &str,
        session_timeout: Duration,
        credentials: Option<&str>,
    ) -> Result<Self> {
        let restricted = credentials.is_some();
        let unreachable = |why: String| CoordError::Unreachable {
            addr: connect.to_string(),
            why,
        };
        let (servers, chroot) = split_connect(connect);
        if servers.is_empty() {
            return Err(unreachable("no server address given".into()));
        }
        let op_timeout = session_timeout.max(MIN_OP_TIMEOUT);
        // An ensemble may be electing its leader (no server serves for a moment): keep trying
        // every server for up to a session timeout. One server that refuses is an error at once.
        let ensemble = servers.contains(',');
        let give_up = tokio::time::Instant::now() + session_timeout;
        let mut backoff = CONNECT_RETRY_FIRST;
        let client = loop {
            let mut connector = zk::Client::connector()
                .with_session_timeout(session_timeout)
                .with_fail_eagerly();
            if let Some(c) = credentials {
                // Sent again by the client on every reconnection of the session.
                connector = connector.with_auth("digest", c.as_bytes());
            }
            let connecting = connector.connect(servers);
            match tokio::time::timeout(session_timeout * 2, connecting).await {
                Ok(Ok(c)) => break c,
                Ok(Err(e)) if ensemble && tokio::time::Instant::now() + backoff < give_up => {
                    tracing::debug!(error = %e, "no ZooKeeper server serves yet; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(CONNECT_RETRY_MAX);
                }
                Ok(Err(e)) => return Err(unreachable(e.to_string())),
                Err(_) => {
                    return Err(unreachable(format!(
                        "no session within {:?}",
                        session_timeout * 2
                    )));
                }
            }
        };
        let client = if chroot.is_empty() || chroot == "/" {
            client
        } else {
            // Made only if absent: ZooKeeper checks a create against the parent's ACL before it
            // says the node exists, so a session without credentials could not even "make" a
            // nested chroot the brokers made.
            let made = tokio::time::timeout(op_timeout, async {
                match client.check_stat(chroot).await? {
                    Some(_) => Ok(()),
                    None => {
                        client
                            .mkdir(
                                chroot,
                                create_options(zk::CreateMode::Persistent, restricted),
                            )
                            .await
                    }
                }
            })
            .await;
            match made {
                Ok(Ok(())) | Ok(Err(zk::Error::NodeExists)) => {}
                Ok(Err(e)) => return Err(CoordError::from_zk(chroot, e)),
                Err(_) => return Err(CoordError::Timeout(op_timeout)),
            }
            if restricted {
                // An anonymous client (a cli run before any broker) may have made the chroot open
                // to all: then anyone could create a /controller in it. Brokers close it.
                tokio::time::timeout(op_timeout, close_to_others(&client, chroot))
                    .await
                    .map_err(|_| CoordError::Timeout(op_timeout))??;
            }
            client
                .chroot(chroot.to_string())
                .map_err(|_| unreachable(format!("invalid chroot {chroot}")))?
        };
        Ok(Self {
            client,
            op_timeout,
            connect: connect.to_string(),
            restricted,
        })
    }

    fn acl(&self) -> &'static zk::CreateOptions<'static> {
        create_options(zk::CreateMode::Persistent, self.restricted)
    }

    fn ephemeral(&self) -> &'static zk::CreateOptions<'static> {
        create_options(zk::CreateMode::Ephemeral, self.restricted)
    }

    /// The connect string this session used.
    pub fn connect_string(&self) -> &str {
        &self.connect
    }

    /// The session's current state.
    pub fn state(&self) -> zk::SessionState {
        self.client.state()
    }

    /// A watcher of session state changes.
    pub fn state_watcher(&self) -> zk::StateWatcher {
        self.client.state_watcher()
    }

    /// The session's id and password: whoever holds them can take the session over (tests
    /// use this to make a session expire, see `testkit::expire_session`).
    pub fn session_info(&self) -> zk::SessionInfo {
        self.client.session().clone()
    }

    /// The session id, for logs.
    pub fn session_id(&self) -> i64 {
        self.client.session_id().0
    }

    /// The negotiated session timeout.
    pub fn session_timeout(&self) -> Duration {
        self.client.session_timeout()
    }

    async fn op<T>(
        &self,
        path: &str,
        fut: impl Future<Output = std::result::Result<T, zk::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.op_timeout, fut).await {
            Ok(r) => r.map_err(|e| CoordError::from_zk(path, e)),
            Err(_) => Err(CoordError::Timeout(self.op_timeout)),
        }
    }

    async fn read<T: DeserializeOwned>(&self, path: &str) -> Result<Option<(T, i32)>> {
        match self.op(path, self.client.get_data(path)).await {
            Ok((data, stat)) => Ok(Some((decode(path, &data)?, stat.version))),
            Err(CoordError::NoNode(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_if_absent<T: Serialize + DeserializeOwned>(
        &self,
        path: &str,
        value: &T,
    ) -> Result<T> {
        if let Some(parent) = path
            .rsplit_once('/')
            .map(|(p, _)| p)
            .filter(|p| !p.is_empty())
        {
            match self.op(parent, self.client.mkdir(parent, self.acl())).await {
                Ok(()) | Err(CoordError::NodeExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        match self
            .op(path, self.client.create(path, &encode(value), self.acl()))
            .await
        {
            Ok(_) | Err(CoordError::NodeExists(_)) => {}
            Err(e) => return Err(e),
        }
        self.read(path)
            .await?
            .map(|(v, _)| v)
            .ok_or_else(|| CoordError::NoNode(path.to_string()))
    }

    /// Creates `/brokers/ids` and `/partitions` if missing.
    pub async fn ensure_layout(&self) -> Result<()> {
        for dir in [BROKER_IDS, PARTITIONS] {
            match self.op(dir, self.client.mkdir(dir, self.acl())).await {
                Ok(()) | Err(CoordError::NodeExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `/cluster`, creating it from `spec` if absent; returns what ZooKeeper holds.
    pub async fn ensure_cluster(&self, spec: &ClusterSpec) -> Result<ClusterSpec> {
        self.create_if_absent(CLUSTER, spec).await
    }

    /// `/cluster`, if it exists.
    pub async fn cluster(&self) -> Result<Option<ClusterSpec>> {
        Ok(self.read(CLUSTER).await?.map(|(v, _)| v))
    }

    /// `/partitions/<p>/replicas`, creating it if absent; returns what ZooKeeper holds.
    pub async fn ensure_replicas(&self, p: u32, replicas: &[u32]) -> Result<Vec<u32>> {
        self.create_if_absent(&layout::replicas_path(p), &replicas.to_vec())
            .await
    }

    /// `/partitions/<p>/replicas`, if it exists.
    pub async fn replicas(&self, p: u32) -> Result<Option<Vec<u32>>> {
        Ok(self.read(&layout::replicas_path(p)).await?.map(|(v, _)| v))
    }

    /// Registers this session as broker `id` (ephemeral) and returns its broker epoch (the
    /// znode's creation zxid). `NodeExists` when an older session of the same broker still holds it.
    pub async fn register_broker(&self, id: u32, info: &BrokerInfo) -> Result<i64> {
        let path = layout::broker_path(id);
        self.op(
            &path,
            self.client.create(&path, &encode(info), self.ephemeral()),
        )
        .await
        .map(|(stat, _)| stat.czxid)
    }

    /// The broker epoch of `/brokers/ids/<id>` if this session holds it (a create that timed out
    /// may have succeeded).
    pub async fn own_registration(&self, id: u32) -> Result<Option<i64>> {
        let path = layout::broker_path(id);
        match self.op(&path, self.client.check_stat(&path)).await? {
            Some(stat) if stat.ephemeral_owner == self.session_id() => Ok(Some(stat.czxid)),
            _ => Ok(None),
        }
    }

    /// A cheap round trip that proves the session alive when it answers (the leader lease). A
    /// `sync`, not a read: in an ensemble a follower answers reads by itself, even one cut off
    /// from the leader that expires sessions, while a `sync` completes only through the leader.
    pub async fn ping(&self) -> Result<()> {
        self.op(BROKER_IDS, self.client.sync(BROKER_IDS)).await
    }

    /// Waits until `/brokers/ids/<id>` is gone, up to `timeout`; returns whether it is gone.
    pub async fn wait_absent(&self, path: &str, timeout: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (stat, watcher) = self
                .op(path, self.client.check_and_watch_stat(path))
                .await?;
            if stat.is_none() {
                return Ok(true);
            }
            if tokio::time::timeout_at(deadline, watcher.changed())
                .await
                .is_err()
            {
                return Ok(false);
            }
        }
    }

    /// Live brokers by id.
    pub async fn brokers(&self) -> Result<BTreeMap<u32, BrokerInfo>> {
        let ids = self
            .op(BROKER_IDS, self.client.list_children(BROKER_IDS))
            .await?;
        self.broker_infos(ids).await
    }

    async fn broker_infos(&self, ids: Vec<String>) -> Result<BTreeMap<u32, BrokerInfo>> {
        let mut out = BTreeMap::new();
        for name in ids {
            let Ok(id) = name.parse::<u32>() else {
                continue;
            };
            let path = layout::broker_path(id);
            match self.op(&path, self.client.get_data(&path)).await {
                Ok((data, stat)) => {
                    let mut info: BrokerInfo = decode(&path, &data)?;
                    info.epoch = stat.czxid;
                    out.insert(id, info);
                }
                Err(CoordError::NoNode(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Live brokers, and a watch that fires when the set changes.
    pub async fn watch_brokers(&self) -> Result<(BTreeMap<u32, BrokerInfo>, zk::OneshotWatcher)> {
        let (ids, _, watcher) = self
            .op(BROKER_IDS, self.client.get_and_watch_children(BROKER_IDS))
            .await?;
        Ok((self.broker_infos(ids).await?, watcher))
    }

    /// One broker's registration, with its broker epoch.
    pub async fn broker(&self, id: u32) -> Result<Option<BrokerInfo>> {
        Ok(self.broker_infos(vec![id.to_string()]).await?.remove(&id))
    }

    /// The current controller.
    pub async fn controller(&self) -> Result<Option<ControllerInfo>> {
        Ok(self.read(CONTROLLER).await?.map(|(v, _)| v))
    }

    /// The controller, and a watch that fires when `/controller` changes.
    pub async fn watch_controller_info(
        &self,
    ) -> Result<(Option<ControllerInfo>, zk::OneshotWatcher)> {
        loop {
            match self
                .op(CONTROLLER, self.client.get_and_watch_data(CONTROLLER))
                .await
            {
                Ok((data, _, watcher)) => return Ok((Some(decode(CONTROLLER, &data)?), watcher)),
                Err(CoordError::NoNode(_)) => {
                    let (stat, watcher) = self
                        .op(CONTROLLER, self.client.check_and_watch_stat(CONTROLLER))
                        .await?;
                    if stat.is_none() {
                        return Ok((None, watcher));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until `/controller` changes (or `timeout` passes).
    pub async fn watch_controller(&self, timeout: Duration) -> Result<()> {
        let (_, watcher) = self
            .op(CONTROLLER, self.client.check_and_watch_stat(CONTROLLER))
            .await?;
        let _ = tokio::time::timeout(timeout, watcher.changed()).await;
        Ok(())
    }

    /// Tries to become controller: creates `/controller` and bumps `/controller_epoch` in one
    /// multi-op. `None` when another broker is controller.
    pub async fn try_elect_controller(&self, id: u32) -> Result<Option<ControllerLease>> {
        let (epoch, version) = loop {
            match self
                .op(CONTROLLER_EPOCH, self.client.get_data(CONTROLLER_EPOCH))
                .await
            {
                Ok((data, stat)) => break (decode::<u32>(CONTROLLER_EPOCH, &data)?, stat.version),
                Err(CoordError::NoNode(_)) => {
                    match self
                        .op(
                            CONTROLLER_EPOCH,
                            self.client.create(CONTROLLER_EPOCH, b"0", self.acl()),
                        )
                        .await
                    {
                        Ok(_) | Err(CoordError::NodeExists(_)) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let next = epoch + 1;
        let info = ControllerInfo {
            broker_id: id,
            controller_epoch: next,
        };
        let mut multi = self.client.new_multi_writer();
        let prepared = multi
            .add_create(CONTROLLER, &encode(&info), self.ephemeral())
            .and_then(|()| multi.add_set_data(CONTROLLER_EPOCH, &encode(&next), Some(version)));
        prepared.map_err(|e| CoordError::from_zk(CONTROLLER, e))?;
        match tokio::time::timeout(self.op_timeout, multi.commit()).await {
            Err(_) => Err(CoordError::Timeout(self.op_timeout)),
            Ok(Ok(_)) => Ok(Some(ControllerLease {
                epoch: next,
                epoch_version: version + 1,
            })),
            Ok(Err(zk::MultiWriteError::OperationFailed {
                source: zk::Error::NodeExists | zk::Error::BadVersion,
                ..
            })) => self.own_controller_lease().await,
            Ok(Err(e)) => Err(CoordError::from_zk(CONTROLLER, e.into())),
        }
    }

    /// The lease of `/controller` if this very session holds it: an election whose commit timed
    /// out may have won, and its retry then finds the znode taken (by us). `None` otherwise.
    async fn own_controller_lease(&self) -> Result<Option<ControllerLease>> {
        let (info, owner) = match self.op(CONTROLLER, self.client.get_data(CONTROLLER)).await {
            Ok((data, stat)) => (
                decode::<ControllerInfo>(CONTROLLER, &data)?,
                stat.ephemeral_owner,
            ),
            Err(CoordError::NoNode(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        if owner != self.session_id() {
            return Ok(None);
        }
        let (data, stat) = self
            .op(CONTROLLER_EPOCH, self.client.get_data(CONTROLLER_EPOCH))
            .await?;
        // The create and the epoch bump commit together, so the epoch znode holds our epoch
        // unless a later controller has bumped it since (then we are fenced anyway).
        if decode::<u32>(CONTROLLER_EPOCH, &data)? != info.controller_epoch {
            return Ok(None);
        }
        Ok(Some(ControllerLease {
            epoch: info.controller_epoch,
            epoch_version: stat.version,
        }))
    }

    /// Gives up `/controller` if this session holds it.
    pub async fn resign_controller(&self) -> Result<()> {
        match self
            .op(CONTROLLER, self.client.check_stat(CONTROLLER))
            .await?
        {
            Some(stat) if stat.ephemeral_owner == self.session_id() => {
                match self
                    .op(
                        CONTROLLER,
                        self.client.delete(CONTROLLER, Some(stat.version)),
                    )
                    .await
                {
                    Ok(()) | Err(CoordError::NoNode(_)) | Err(CoordError::BadVersion(_)) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            _ => Ok(()),
        }
    }

    /// Asks the controller to hand every partition's leadership back to its preferred replica
    /// where it may (`/admin/rebalance`; asking again while a request waits is the same request).
    pub async fn request_rebalance(&self) -> Result<()> {
        self.create_if_absent(REBALANCE, &crate::storage::now_ms())
            .await
            .map(|_| ())
    }

    /// Whether a rebalance is asked for, and a watch that fires when that changes.
    pub async fn watch_rebalance_request(&self) -> Result<(bool, zk::OneshotWatcher)> {
        let (stat, watcher) = self
            .op(REBALANCE, self.client.check_and_watch_stat(REBALANCE))
            .await?;
        Ok((stat.is_some(), watcher))
    }

    /// Marks a rebalance request done (the controller, after acting on it).
    pub async fn clear_rebalance_request(&self) -> Result<()> {
        match self
            .op(REBALANCE, self.client.delete(REBALANCE, None))
            .await
        {
            Ok(()) | Err(CoordError::NoNode(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A partition's state and its znode version.
    pub async fn partition_state(&self, p: u32) -> Result<Option<(PartitionState, i32)>> {
        self.read(&layout::state_path(p)).await
    }

    /// A partition's state, and a watch that fires when it changes or is created.
    pub async fn watch_partition_state(
        &self,
        p: u32,
    ) -> Result<(Option<(PartitionState, i32)>, zk::OneshotWatcher)> {
        let path = layout::state_path(p);
        loop {
            match self.op(&path, self.client.get_and_watch_data(&path)).await {
                Ok((data, stat, watcher)) => {
                    return Ok((Some((decode(&path, &data)?, stat.version)), watcher));
                }
                Err(CoordError::NoNode(_)) => {
                    let (stat, watcher) = self
                        .op(&path, self.client.check_and_watch_stat(&path))
                        .await?;
                    if stat.is_none() {
                        return Ok((None, watcher));
                    }
                    // Created between the two calls: read it.
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A controller's write of a partition state, fenced by the controller epoch: fails with
    /// [`CoordError::Fenced`] if another controller has been elected since `lease` was won, and
    /// with `BadVersion` if the state changed since `expected_version` (`None` = create).
    pub async fn write_state_fenced(
        &self,
        p: u32,
        state: &PartitionState,
        expected_version: Option<i32>,
        lease: ControllerLease,
    ) -> Result<i32> {
        let path = layout::state_path(p);
        let data = encode(state);
        let mut multi = self.client.new_multi_writer();
        let prepared = multi
            .add_check_version(CONTROLLER_EPOCH, lease.epoch_version)
            .and_then(|()| match expected_version {
                Some(v) => multi.add_set_data(&path, &data, Some(v)),
                None => multi.add_create(&path, &data, self.acl()),
            });
        prepared.map_err(|e| CoordError::from_zk(&path, e))?;
        if expected_version.is_none() {
            let parent = format!("{PARTITIONS}/{p}");
            match self
                .op(&parent, self.client.mkdir(&parent, self.acl()))
                .await
            {
                Ok(()) | Err(CoordError::NodeExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        match tokio::time::timeout(self.op_timeout, multi.commit()).await {
            Err(_) => Err(CoordError::Timeout(self.op_timeout)),
            Ok(Ok(results)) => Ok(results
                .into_iter()
                .find_map(|r| match r {
                    zk::MultiWriteResult::SetData { stat } => Some(stat.version),
                    zk::MultiWriteResult::Create { stat, .. } => Some(stat.version.max(0)),
                    _ => None,
                })
                .unwrap_or(0)),
            Ok(Err(zk::MultiWriteError::OperationFailed { index: 0, source })) => match source {
                zk::Error::BadVersion | zk::Error::NoNode => Err(CoordError::Fenced),
                other => Err(CoordError::from_zk(CONTROLLER_EPOCH, other)),
            },
            Ok(Err(zk::MultiWriteError::OperationFailed { source, .. })) => match source {
                zk::Error::NodeExists | zk::Error::BadVersion => Err(CoordError::BadVersion(path)),
                other => Err(CoordError::from_zk(&path, other)),
            },
            Ok(Err(zk::MultiWriteError::RequestFailed { source })) => {
                Err(CoordError::from_zk(&path, source))
            }
        }
    }

    /// Settles a [`Coord::write_state_cas`] whose answer was lost by sending it again. The
    /// version check makes the resend safe: at most one of the two takes effect. A resend that
    /// is refused was ordered after whatever changed the version, so the read that follows on
    /// this session sees that change, even on another server than the lost write went to (a
    /// plain read could come from a server that has not applied the first write yet).
    pub async fn settle_state_cas(
        &self,
        p: u32,
        state: &PartitionState,
        expected_version: i32,
    ) -> Result<CasOutcome> {
        match self.write_state_cas(p, state, expected_version).await {
            Ok(version) => Ok(CasOutcome::Taken(version)),
            Err(CoordError::BadVersion(_)) => Ok(match self.partition_state(p).await? {
                Some((now, version)) if version == expected_version + 1 && now == *state => {
                    CasOutcome::Taken(version)
                }
                Some((now, version)) => CasOutcome::Superseded(now, version),
                None => CasOutcome::Gone,
            }),
            Err(CoordError::NoNode(_)) => Ok(CasOutcome::Gone),
            Err(e) => Err(e),
        }
    }

    /// The leader's compare-and-set of a partition state (an ISR change): succeeds only if the
    /// znode is still at `expected_version`; returns the new version.
    pub async fn write_state_cas(
        &self,
        p: u32,
        state: &PartitionState,
        expected_version: i32,
    ) -> Result<i32> {
        let path = layout::state_path(p);
        self.op(
            &path,
            self.client
                .set_data(&path, &encode(state), Some(expected_version)),
        )
        .await
        .map(|stat| stat.version)
    }
}
