//! Shared set-up for cluster tests: a cluster of in-process brokers on the test ZooKeeper (own
//! chroot), a client, and waiting for conditions.

use simplekv::broker::ReplicationConfig;
use simplekv::client::{Client, ClientConfig};
use simplekv::coord::ClusterSpec;
use simplekv::events::{Event, EventKind, EventSink};
use simplekv::lab::{Cluster, ClusterOptions, ZkChoice};
use simplekv::replica::Role;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct TestCluster {
    pub cluster: Cluster,
    pub events: Arc<Mutex<Vec<Event>>>,
    pub _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Events of `kind` seen so far.
    pub fn events_of(&self, kind: EventKind) -> Vec<Event> {
        self.events
            .lock()
            .expect("events")
            .iter()
            .filter(|e| e.kind == kind)
            .cloned()
            .collect()
    }
}

impl std::ops::Deref for TestCluster {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl std::ops::DerefMut for TestCluster {
    fn deref_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }
}

pub fn spec(brokers: u32, partitions: u32, rf: u32, min_isr: u32) -> ClusterSpec {
    ClusterSpec {
        brokers,
        partitions,
        replication_factor: rf,
        min_insync_replicas: min_isr,
        unclean_leader_election: false,
    }
}

pub fn options(name: &str, spec: ClusterSpec, dir: &std::path::Path) -> ClusterOptions {
    ClusterOptions {
        zk: ZkChoice::External(simplekv::testkit::zk_connect(name)),
        session_timeout_ms: 1500,
        replication: ReplicationConfig {
            replica_lag_time_max_ms: 1000,
            fetch_max_wait_ms: 200,
            request_timeout_ms: 5000,
            merge_interval_ms: 0,
            ..ReplicationConfig::default()
        },
        ..ClusterOptions::lab(dir.to_path_buf(), spec)
    }
}

pub async fn start_with(opts: impl FnOnce(&std::path::Path) -> ClusterOptions) -> TestCluster {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let events = Arc::clone(&events);
        EventSink::new(move |e| events.lock().expect("events").push(e))
    };
    let cluster = Cluster::start(opts(dir.path()), sink)
        .await
        .unwrap_or_else(|e| panic!("cluster start: {e}"));
    TestCluster {
        cluster,
        events,
        _dir: dir,
    }
}

pub async fn start(name: &str, spec: ClusterSpec) -> TestCluster {
    start_with(|d| options(name, spec, d)).await
}

pub async fn client(c: &Cluster) -> Client {
    Client::connect_zk(
        c.zk_connect(),
        ClientConfig {
            request_timeout: Duration::from_secs(15),
            zk_session_timeout: Duration::from_secs(3),
            ..ClientConfig::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("client: {e}"))
}

/// Polls `cond` until it holds or `timeout` passes (then panics with `what`).
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs one command line in a lab session and returns its text reply (panics on anything else).
pub async fn run(
    session: &mut simplekv::command::Session<Arc<simplekv::lab::Lab>>,
    line: &str,
) -> String {
    match session.run_line(line).await {
        Some(Ok(simplekv::command::Reply::Text(t))) => t,
        other => panic!("{line}: {other:?}"),
    }
}

/// The broker that believes it leads `p` (and is up).
pub fn leader_of(c: &Cluster, p: u32) -> Option<u32> {
    c.snapshots().into_iter().find_map(|(id, s)| {
        let s = s?;
        s.replicas
            .iter()
            .any(|r| r.partition == p && r.role == Role::Leader && !r.fenced)
            .then_some(id)
    })
}

/// A broker other than `leader` (the first, by id).
pub fn follower_of(c: &Cluster, leader: u32) -> u32 {
    c.ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("a broker other than the leader")
}

/// The ISR the leader of `p` believes in.
pub fn isr_of(c: &Cluster, p: u32) -> Vec<u32> {
    let Some(l) = leader_of(c, p) else {
        return Vec::new();
    };
    c.broker(l)
        .and_then(|b| b.replica(p).map(|r| r.snapshot().isr))
        .unwrap_or_default()
}

/// Waits until every partition has a leader whose ISR holds `isr` members.
pub async fn wait_for_isr(c: &Cluster, isr: usize) {
    let parts = c.spec().partitions;
    wait_for(
        &format!("an ISR of {isr} on every partition"),
        Duration::from_secs(20),
        || async { (0..parts).all(|p| isr_of(c, p).len() == isr) },
    )
    .await;
}

/// The leader epoch the leader of `p` acts in.
pub fn epoch_of(c: &Cluster, p: u32) -> Option<u32> {
    let l = leader_of(c, p)?;
    c.broker(l)?.replica(p).map(|r| r.snapshot().leader_epoch)
}

/// The log of broker `id`'s replica of partition `p` (the broker must be up).
pub fn log_of(c: &Cluster, id: u32, p: u32) -> simplekv::storage::Store {
    c.broker(id)
        .and_then(|b| b.replica(p))
        .unwrap_or_else(|| panic!("broker {id} is down or holds no replica of partition {p}"))
        .log()
        .clone()
}

/// The records below `upto` in a replica's log.
pub fn log_prefix(log: &simplekv::storage::Store, upto: u64) -> Vec<(u64, bytes::Bytes)> {
    log.records_below(upto).expect("read the log")
}

/// Waits until every live replica of `p` has the leader's log end and high watermark.
pub async fn wait_caught_up(c: &Cluster, p: u32) {
    wait_for(
        &format!("replicas of partition {p} to catch up"),
        Duration::from_secs(20),
        || async {
            let Some(l) = leader_of(c, p) else {
                return false;
            };
            let Some(leader) = c.broker(l).and_then(|b| b.replica(p)).map(|r| r.snapshot()) else {
                return false;
            };
            c.snapshots()
                .iter()
                .filter_map(|(_, s)| s.as_ref())
                .all(|s| {
                    s.replicas.iter().filter(|r| r.partition == p).all(|r| {
                        r.log_end_offset == leader.log_end_offset
                            && r.high_watermark == leader.high_watermark
                    })
                })
                && leader.high_watermark == leader.log_end_offset
        },
    )
    .await;
}

/// Plays `scenario` headless on the test ZooKeeper (chroot named `name`) — or on a private
/// ensemble of its own when the scenario asks for one (`zk_servers`) — in `dir`, recording to
/// `dir/run.jsonl` when `record`; returns the transcript. Panics unless every step passed.
pub async fn play_scenario(
    name: &str,
    scenario: &simplekv::lab::Scenario,
    dir: &std::path::Path,
    record: bool,
) -> String {
    let ensemble = scenario.cluster.zk_servers.is_some_and(|n| n > 1);
    let zk = (!ensemble).then(|| simplekv::testkit::zk_connect(name));
    let cluster = simplekv::lab::LabConfig::default()
        .overlay(&scenario.cluster)
        .cluster_options(dir.to_path_buf(), zk)
        .expect("options");
    let mut out = Vec::new();
    let summary = simplekv::lab::play(
        scenario,
        simplekv::lab::LabOptions {
            cluster,
            data_kept: true,
            log_file: dir.join("lab.log"),
            record: record.then(|| dir.join("run.jsonl")),
        },
        &mut out,
        false,
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let text = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(summary.failed, 0, "{name}:\n{text}");
    assert!(summary.passed > 0, "{name}: no step checked anything");
    text
}

/// The first reply to `req` sent alone on a new `FetchStream` (a refusal of the call itself
/// counts as the reply).
pub async fn first_streamed(
    peer: &mut simplekv::rpc::replication_client::ReplicationClient<tonic::transport::Channel>,
    req: simplekv::rpc::FetchRequest,
) -> Result<simplekv::rpc::FetchResponse, tonic::Status> {
    let mut replies = peer
        .fetch_stream(tokio_stream::iter([req]))
        .await?
        .into_inner();
    replies
        .message()
        .await?
        .ok_or_else(|| tonic::Status::unknown("the stream ended without a reply"))
}
