//! The lab: a [`Cluster`], the lab's own ZooKeeper observer, a client, the history of writes, and
//! the snapshot publisher. It implements the command language's fault, wait, load and check
//! commands ([`LabControl`]).

use super::cluster::{Cluster, ClusterError, ClusterOptions};
use super::history::History;
use super::load::{self, LoadPlan, LoadReport};
use super::observer::{ZkObserver, ZkView};
use super::snapshot::{BrokerState, LabInfo, LabSnapshot};
use super::timeline::Timeline;
use crate::client::{Client, ClientConfig};
use crate::command::{
    Check, CommandError, Fault, LabControl, LoadSpec, OpRecord, Target, WaitCondition,
};
use crate::events::{Event, EventKind, EventSink};
use crate::replica::{Acks, Role};
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

mod checks;
mod faults;
mod inject;
mod nemesis;
mod rebalance;

/// Events kept for the console.
const EVENT_RING: usize = 500;
/// Throughput samples kept (one per second).
const THROUGHPUT_SAMPLES: usize = 120;
/// How often a throughput sample is taken (one per snapshot at most).
const THROUGHPUT_PERIOD: Duration = Duration::from_secs(1);
/// How often a snapshot is published.
pub const SNAPSHOT_PERIOD: Duration = Duration::from_millis(200);
/// How long `wait` waits when no timeout is given.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// How to start a lab.
#[derive(Debug)]
pub struct LabOptions {
    /// The cluster.
    pub cluster: ClusterOptions,
    /// Keep the data directory after the lab exits.
    pub data_kept: bool,
    /// Where logs go (shown on screen).
    pub log_file: PathBuf,
    /// Where to record the timeline as JSON Lines (`--record`), for `simplekv-lab replay`.
    pub record: Option<PathBuf>,
}

/// Why a lab could not start.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The cluster failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The lab's own view of ZooKeeper could not start.
    #[error("the lab cannot follow ZooKeeper: {0}")]
    Observer(#[source] crate::coord::CoordError),
    /// The lab's client could not reach the cluster.
    #[error("the lab's client cannot reach the cluster: {0}")]
    Client(#[source] crate::client::ClientError),
    /// The recording (`--record`) could not be opened.
    #[error("{0}")]
    Recording(String),
}

/// How long a command from the shell or a scenario may take, retries included: long, since a
/// class watches failovers that take seconds.
const SHELL_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The lab client's ZooKeeper session: long, so a short outage keeps it.
const SHELL_ZK_SESSION: Duration = Duration::from_secs(10);

struct Throughput {
    last_total: u64,
    last_at: Instant,
    samples: VecDeque<u64>,
}

/// What `wait leader-change` and `wait controller-change` compare against.
#[derive(Default)]
struct Reference {
    /// Partition → (leader, leader epoch).
    leaders: BTreeMap<u32, (Option<u32>, u32)>,
    controller_epoch: Option<u32>,
}

struct LoadState {
    total: u64,
    counters: load::SharedCounters,
    task: Option<tokio::task::JoinHandle<LoadReport>>,
}

/// A running lab.
pub struct Lab {
    cluster: Cluster,
    observer: ZkObserver,
    client: Client,
    history: Arc<History>,
    /// The history's client number of the shell or scenario session.
    shell_client: u32,
    info: Arc<LabInfo>,
    events: Arc<Mutex<VecDeque<Event>>>,
    throughput: Mutex<Throughput>,
    /// Leaders and controller before the last command (what `wait ...-change` compares with).
    reference: Mutex<Reference>,
    load: Mutex<Option<LoadState>>,
    load_runs: std::sync::atomic::AtomicU64,
    nemesis: Mutex<Option<nemesis::NemesisRun>>,
    /// Faults the nemesis injected (and did not fail to), over the lab's life.
    faults_injected: std::sync::atomic::AtomicU64,
    snapshot_tx: watch::Sender<Arc<LabSnapshot>>,
    /// Every published change and event, for replay (always `Some` once started).
    timeline: Arc<Mutex<Option<Timeline>>>,
    /// Each private ZooKeeper server's mode at the last poll.
    zk_modes: Mutex<Vec<crate::coord::ZkMode>>,
    /// One poll at a time, so each change is told once.
    zk_poll: tokio::sync::Mutex<()>,
}

impl Lab {
    /// Starts the cluster, the observer and a client; publishes snapshots until dropped.
    pub async fn start(options: LabOptions) -> Result<Arc<Self>, LabError> {
        let events: Arc<Mutex<VecDeque<Event>>> = Arc::new(Mutex::new(VecDeque::new()));
        // Made once the lab's facts are known; events before that are handed to it then.
        let timeline: Arc<Mutex<Option<Timeline>>> = Arc::new(Mutex::new(None));
        let sink = {
            let (events, timeline) = (Arc::clone(&events), Arc::clone(&timeline));
            // Timeline, then ring (as at start-up): the recording's file is written without the
            // ring locked, and no event is noted twice or missed while the timeline is made.
            EventSink::new(move |e| {
                let mut t = timeline.lock();
                if let Some(t) = t.as_mut() {
                    t.note_event(&e);
                }
                let mut ring = events.lock();
                if ring.len() == EVENT_RING {
                    ring.pop_front();
                }
                ring.push_back(e);
            })
        };
        let spec = options.cluster.spec.clone();
        let data_dir = options.cluster.data_dir.clone();
        let cluster = Cluster::start(options.cluster, sink).await?;
        let zk = cluster.zk_connect().to_string();
        let observer = ZkObserver::start(&zk, spec.partitions)
            .await
            .map_err(LabError::Observer)?;
        let client = Client::connect_zk(
            &zk,
            ClientConfig {
                request_timeout: SHELL_REQUEST_TIMEOUT,
                zk_session_timeout: SHELL_ZK_SESSION,
                dialer: cluster.network().client_dialer(),
                ..ClientConfig::default()
            },
        )
        .await
        .map_err(LabError::Client)?;
        let info = Arc::new(LabInfo {
            spec,
            zk,
            data_dir,
            data_kept: options.data_kept,
            log_file: options.log_file,
            started_at_ms: crate::storage::now_ms(),
            peer_tls: cluster.peer_tls(),
        });
        {
            let mut t = Timeline::new(Arc::clone(&info), options.record.as_deref())
                .map_err(LabError::Recording)?;
            let mut slot = timeline.lock();
            let ring = events.lock();
            for e in ring.iter() {
                t.note_event(e);
            }
            *slot = Some(t);
        }
        let history = Arc::new(History::default());
        // The first poll before the first snapshot: a `status` at once shows the servers.
        let zk_modes = cluster.zk_modes().await;
        let lab = Arc::new(Self {
            cluster,
            observer,
            client,
            shell_client: history.new_client(),
            history,
            info,
            events,
            throughput: Mutex::new(Throughput {
                last_total: 0,
                last_at: Instant::now(),
                samples: VecDeque::new(),
            }),
            reference: Mutex::new(Reference::default()),
            load: Mutex::new(None),
            load_runs: std::sync::atomic::AtomicU64::new(0),
            nemesis: Mutex::new(None),
            faults_injected: std::sync::atomic::AtomicU64::new(0),
            snapshot_tx: watch::Sender::new(Arc::new(LabSnapshot::default())),
            timeline,
            zk_modes: Mutex::new(zk_modes),
            zk_poll: tokio::sync::Mutex::new(()),
        });
        if lab.cluster.zk_server_count() > 0 {
            tokio::spawn(watch_zookeeper(Arc::downgrade(&lab)));
        }
        lab.publish();
        let weak = Arc::downgrade(&lab);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SNAPSHOT_PERIOD).await;
                let Some(lab) = weak.upgrade() else { return };
                lab.publish();
            }
        });
        Ok(lab)
    }

    /// Every operation recorded so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The lab's client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Fixed facts.
    pub fn info(&self) -> &Arc<LabInfo> {
        &self.info
    }

    /// A receiver of published snapshots.
    pub fn subscribe(&self) -> watch::Receiver<Arc<LabSnapshot>> {
        self.snapshot_tx.subscribe()
    }

    /// Builds a snapshot now.
    pub fn snapshot(&self) -> LabSnapshot {
        let zk = self.observer.view();
        let brokers = self.cluster.snapshots();
        let total: u64 = (0..self.info.spec.partitions)
            .filter_map(|p| {
                brokers
                    .iter()
                    .filter_map(|(_, s)| s.as_ref())
                    .flat_map(|s| s.replicas.iter())
                    .filter(|r| r.partition == p)
                    .map(|r| r.log_end_offset)
                    .max()
            })
            .sum();
        let throughput = {
            let mut t = self.throughput.lock();
            let elapsed = t.last_at.elapsed();
            if elapsed >= THROUGHPUT_PERIOD {
                let rate = total.saturating_sub(t.last_total) as f64 / elapsed.as_secs_f64();
                t.samples.push_back(rate.round() as u64);
                if t.samples.len() > THROUGHPUT_SAMPLES {
                    t.samples.pop_front();
                }
                t.last_total = total;
                t.last_at = Instant::now();
            }
            t.samples.iter().copied().collect()
        };
        let events = self.events.lock().iter().cloned().collect();
        let load = self.load.lock().as_ref().map(|l| {
            load::progress(
                &l.counters,
                l.total,
                l.task.as_ref().is_some_and(|t| !t.is_finished()),
            )
        });
        let mut snap = LabSnapshot::build(
            Arc::clone(&self.info),
            brokers,
            &zk,
            events,
            throughput,
            load,
        );
        self.add_faults(&mut snap);
        for (b, port) in snap.brokers.iter_mut().zip(self.cluster.resp_ports()) {
            b.resp_port = port;
        }
        snap.zk_servers = self.zk_modes.lock().clone();
        snap
    }

    fn publish(&self) {
        let snap = Arc::new(self.snapshot());
        if let Some(t) = self.timeline.lock().as_mut() {
            t.note_snapshot(&snap, crate::storage::now_ms());
        }
        self.snapshot_tx.send_replace(snap);
    }

    /// Runs `f` on the timeline of this run (for the console's replay).
    pub fn with_timeline<R>(&self, f: impl FnOnce(&Timeline) -> R) -> Option<R> {
        self.timeline.lock().as_ref().map(f)
    }

    fn zk(&self) -> ZkView {
        self.observer.view()
    }

    /// Faults the nemesis has injected so far (one that failed to go in does not count).
    pub fn faults_injected(&self) -> u64 {
        self.faults_injected
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops the brokers cleanly and the private ZooKeeper.
    pub async fn shutdown(&self) {
        self.abort_nemesis();
        // Links whole and machines running, so the brokers can stop cleanly rather than wait
        // out timeouts across a cut.
        if !self.cluster.network().faults().is_empty() {
            let _ = self
                .cluster
                .change_links("the lab stops", |f, _| *f = Default::default());
        }
        for b in self.cluster.ids() {
            if self.cluster.is_paused(b) {
                let _ = self.cluster.resume(b).await;
            }
        }
        if let Some(l) = self.load.lock().take()
            && let Some(t) = l.task
        {
            t.abort();
        }
        self.cluster.shutdown().await;
    }

    fn leaders(&self) -> BTreeMap<u32, (Option<u32>, u32)> {
        self.zk()
            .states
            .iter()
            .map(|(p, s)| (*p, (s.leader(), s.leader_epoch)))
            .collect()
    }

    async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut cond: impl FnMut(&LabSnapshot) -> Option<String>,
    ) -> Result<String, CommandError> {
        // Judge each published snapshot as it arrives (every SNAPSHOT_PERIOD, and at once after
        // a kill or restore) rather than building snapshots of our own.
        let deadline = tokio::time::Instant::now() + timeout;
        let mut snapshots = self.snapshot_tx.subscribe();
        loop {
            let snap = Arc::clone(&snapshots.borrow_and_update());
            if let Some(reply) = cond(&snap) {
                return Ok(reply);
            }
            match tokio::time::timeout_at(deadline, snapshots.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(CommandError::timed_out(timeout, what)),
            }
        }
    }

    /// Runs a load in the foreground or background.
    async fn start_load(&self, spec: LoadSpec, acks: Acks) -> Result<String, CommandError> {
        {
            let load = self.load.lock();
            if load
                .as_ref()
                .and_then(|l| l.task.as_ref())
                .is_some_and(|t| !t.is_finished())
            {
                return Err(CommandError::Refused(
                    "a load is already running; 'wait load' for it first".into(),
                ));
            }
        }
        let run = self
            .load_runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let plan = LoadPlan {
            keys: spec.keys,
            read_ratio: f64::from(spec.reads) / 100.0,
            ..LoadPlan::writes(spec.ops, spec.clients, acks, format!("load{run}"))
        };
        self.start_plan(plan, spec.ops);
        if spec.background {
            return Ok(format!(
                "load started in the background: {} ops ({}% reads), {} clients, acks {acks}",
                spec.ops, spec.reads, spec.clients
            ));
        }
        self.finish_load().await
    }

    /// Starts `plan` in the background, every operation recorded (`total`: for progress).
    pub fn start_plan(&self, plan: LoadPlan, total: u64) {
        let counters = load::counters();
        let task = tokio::spawn(load::run(
            self.client.clone(),
            plan,
            Some(Arc::clone(&self.history)),
            Arc::clone(&counters),
        ));
        *self.load.lock() = Some(LoadState {
            total,
            counters,
            task: Some(task),
        });
    }

    /// Waits for the running load and reports it.
    pub async fn finish_load(&self) -> Result<String, CommandError> {
        let task = self.load.lock().as_mut().and_then(|l| l.task.take());
        let Some(task) = task else {
            return Err(CommandError::Refused("no load is running".into()));
        };
        let report = task
            .await
            .map_err(|e| CommandError::Failed(format!("the load failed: {e}")))?;
        Ok(format!("load: {}", report.summary()))
    }
}

impl LabControl for Arc<Lab> {
    async fn kill(&self, target: Target) -> Result<String, CommandError> {
        self.kill_brokers(target).await
    }

    async fn restore(&self, target: Target) -> Result<String, CommandError> {
        self.restore_brokers(target).await
    }

    async fn wipe(&self, target: Target) -> Result<String, CommandError> {
        self.wipe_brokers(target).await
    }

    async fn rebalance(&self) -> Result<String, CommandError> {
        self.rebalance_leaders().await
    }

    async fn status(&self) -> Result<String, CommandError> {
        let snap = self.snapshot();
        let mut leaders = Vec::new();
        for p in 0..self.info.spec.partitions {
            for b in &snap.brokers {
                if !b.replica(p).is_some_and(|r| r.role == Role::Leader) {
                    continue;
                }
                if let Some(r) = self.cluster.broker(b.id).and_then(|x| x.replica(p)) {
                    leaders.push((p, b.id, r.commit_path()));
                }
            }
        }
        Ok(super::status::render(&snap) + &super::status::render_commit_paths(&leaders))
    }

    async fn wait(
        &self,
        cond: WaitCondition,
        timeout: Option<Duration>,
    ) -> Result<String, CommandError> {
        let timeout = timeout.unwrap_or(DEFAULT_WAIT);
        match cond {
            WaitCondition::LeaderChange => {
                let before = self.reference.lock().leaders.clone();
                self.wait_until(timeout, "a leader change", |s| {
                    s.partitions
                        .iter()
                        .any(|p| before.get(&p.partition) != Some(&(p.leader, p.leader_epoch)))
                        .then(|| "OK".to_string())
                })
                .await
            }
            WaitCondition::ControllerChange => {
                let before = self.reference.lock().controller_epoch;
                self.wait_until(timeout, "a new controller", |s| {
                    s.controller
                        .is_some_and(|c| Some(c.controller_epoch) != before)
                        .then(|| "OK".to_string())
                })
                .await
            }
            WaitCondition::Isr(n) => {
                self.wait_until(
                    timeout,
                    &format!("every partition to have a leader and {n} in-sync replicas"),
                    |s| {
                        s.partitions
                            .iter()
                            .all(|p| p.leader.is_some() && p.isr.len() == n as usize)
                            .then(|| "OK".to_string())
                    },
                )
                .await
            }
            WaitCondition::Available => {
                self.wait_until(timeout, "every partition to have a live leader", |s| {
                    s.partitions
                        .iter()
                        .all(|p| {
                            p.leader.is_some_and(|l| {
                                s.brokers
                                    .iter()
                                    .any(|b| b.id == l && b.state == BrokerState::Up)
                            })
                        })
                        .then(|| "OK".to_string())
                })
                .await
            }
            WaitCondition::Unavailable => {
                self.wait_until(
                    timeout,
                    "no partition to have a leader serving clients",
                    |s| {
                        s.brokers
                            .iter()
                            .flat_map(|b| b.snapshot.iter().flat_map(|x| x.replicas.iter()))
                            .all(|r| r.role != Role::Leader || r.fenced || !r.lease_held)
                            .then(|| "OK: no partition has a leader serving clients".to_string())
                    },
                )
                .await
            }
            WaitCondition::CaughtUp => {
                self.wait_until(timeout, "every live replica to catch up", |s| {
                    s.partitions
                        .iter()
                        .all(|p| {
                            let Some(leo) = s.leader_leo(p.partition) else {
                                return false;
                            };
                            s.brokers
                                .iter()
                                .filter(|b| b.state == BrokerState::Up)
                                .filter_map(|b| b.replica(p.partition))
                                .all(|r| r.log_end_offset == leo && r.high_watermark == leo)
                        })
                        .then(|| "OK".to_string())
                })
                .await
            }
            WaitCondition::Load => match tokio::time::timeout(timeout, self.finish_load()).await {
                Ok(r) => r,
                Err(_) => Err(CommandError::timed_out(timeout, "the load")),
            },
        }
    }

    async fn load(&self, spec: LoadSpec, acks: Acks) -> Result<String, CommandError> {
        self.start_load(spec, acks).await
    }

    async fn check(&self, check: Check) -> Result<String, CommandError> {
        match check {
            Check::LostWrites => self.check_lost_writes().await,
            Check::ReplicasAgree => self.check_replicas_agree(),
            Check::Linearizable => self.check_linearizable().await,
        }
    }

    async fn fault(&self, fault: Fault) -> Result<String, CommandError> {
        self.inject(fault).await
    }

    async fn save_history(&self, path: std::path::PathBuf) -> Result<String, CommandError> {
        self.write_history(&path)
    }

    fn record(&self, op: OpRecord, started: Instant) {
        self.history
            .record_command(self.shell_client, op, started, Instant::now());
    }

    fn before_command(&self) {
        let controller = self.zk().controller.map(|c| c.controller_epoch);
        *self.reference.lock() = Reference {
            leaders: self.leaders(),
            controller_epoch: controller,
        };
    }

    fn after_command(&self) {
        self.publish();
    }
}

/// Polls the private ZooKeeper servers' modes for the console until the lab ends.
async fn watch_zookeeper(lab: std::sync::Weak<Lab>) {
    loop {
        let Some(l) = lab.upgrade() else { return };
        l.poll_zookeeper().await;
        drop(l);
        tokio::time::sleep(super::zk_watch::POLL).await;
    }
}

impl Lab {
    /// Asks each private ZooKeeper server its mode now, keeps the answers for snapshots, and
    /// tells the event log when the ensemble elected a leader or lost or regained its quorum
    /// (`zk_watch::changes`).
    pub(super) async fn poll_zookeeper(&self) {
        let _one = self.zk_poll.lock().await;
        let answers = self.cluster.zk_answers().await;
        let (before, modes) = {
            let mut kept = self.zk_modes.lock();
            // A server too slow to answer keeps the mode it last told (a busy machine is not
            // an election).
            let modes: Vec<crate::coord::ZkMode> = answers
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    a.or(kept.get(i).copied())
                        .unwrap_or(crate::coord::ZkMode::NotServing)
                })
                .collect();
            (std::mem::replace(&mut *kept, modes.clone()), modes)
        };
        for line in super::zk_watch::changes(&before, &modes) {
            self.cluster.events().emit(EventKind::Zk, None, line);
        }
    }
}
