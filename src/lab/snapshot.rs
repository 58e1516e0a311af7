//! What the lab publishes for the console, several times a second: the truth about every broker
//! (as it believes) and every partition (as ZooKeeper says), recent events and throughput. The
//! console only draws these; it never waits on the network.

use super::observer::ZkView;
pub use crate::broker::{BrokerSnapshot, SessionStatus};
pub use crate::client::PartitionView;
pub use crate::coord::ZkMode;
use crate::coord::{ClusterSpec, ControllerInfo};
use crate::events::Event;
/// The console draws replicas from these types: they come with the snapshot, so it needs no
/// import from the layers below the lab.
pub use crate::replica::{Acks, ReplicaSnapshot, Role};
use std::path::PathBuf;
use std::sync::Arc;

/// Fixed facts about the lab.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LabInfo {
    /// The cluster's settings (`brokers` is the number of brokers).
    pub spec: ClusterSpec,
    /// ZooKeeper connect string (with chroot).
    pub zk: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Whether it is kept after the lab exits.
    pub data_kept: bool,
    /// The log file.
    pub log_file: PathBuf,
    /// When the lab started, Unix ms (event times are shown relative to it).
    pub started_at_ms: u64,
    /// Brokers speak mutual TLS among themselves; the lab's default is plaintext (one process
    /// on loopback), and it says so.
    #[serde(default)]
    pub peer_tls: bool,
}

impl LabInfo {
    /// How brokers talk to each other, in two words (the title bar is crowded; `status` says
    /// more).
    pub fn peers_label(&self) -> &'static str {
        if self.peer_tls {
            "mTLS peers"
        } else {
            "plaintext peers"
        }
    }
}

/// Up, paused, or down (and whether ZooKeeper still holds its session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BrokerState {
    /// Running.
    Up,
    /// Frozen whole by `pause`: it will resume a zombie, believing what it believed.
    Paused,
    /// Killed; ZooKeeper still lists it until its session times out.
    DownSessionLingering,
    /// Killed, and ZooKeeper has noticed.
    Down,
}

/// One broker in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerView {
    /// Its id.
    pub id: u32,
    /// Up or down.
    pub state: BrokerState,
    /// Whether ZooKeeper lists it.
    pub registered: bool,
    /// What it believes (when up; a paused broker's is what it believed when it froze).
    pub snapshot: Option<BrokerSnapshot>,
    /// Link faults on it: `cut zk,2`, `slow +100ms` (empty when none).
    pub faults: Vec<String>,
    /// Its Redis-protocol port (`redis-cli -p PORT`), when up.
    pub resp_port: Option<u16>,
}

impl BrokerView {
    /// Its session state, when up.
    pub fn session(&self) -> Option<SessionStatus> {
        self.snapshot.as_ref().map(|s| s.session)
    }

    /// Its replica of `p`, when up.
    pub fn replica(&self, p: u32) -> Option<&ReplicaSnapshot> {
        self.snapshot
            .as_ref()?
            .replicas
            .iter()
            .find(|r| r.partition == p)
    }
}

/// Progress of a background load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct LoadProgress {
    /// Operations finished.
    pub done: u64,
    /// Operations in all.
    pub total: u64,
    /// Acknowledged.
    pub ok: u64,
    /// Failed.
    pub errors: u64,
    /// Outcome unknown.
    pub unknown: u64,
    /// Still running.
    pub running: bool,
}

/// Everything the console draws.
#[derive(Debug, Clone, Default)]
pub struct LabSnapshot {
    /// Fixed facts.
    pub info: Arc<LabInfo>,
    /// Brokers.
    pub brokers: Vec<BrokerView>,
    /// Partitions as ZooKeeper says.
    pub partitions: Vec<PartitionView>,
    /// The controller as ZooKeeper says.
    pub controller: Option<ControllerInfo>,
    /// Recent events, oldest first.
    pub events: Vec<Event>,
    /// Records appended per second, oldest sample first.
    pub throughput: Vec<u64>,
    /// The background load, if any.
    pub load: Option<LoadProgress>,
    /// Every fault in force, one short phrase each (cut links, slow links, paused brokers, the
    /// nemesis).
    pub faults: Vec<String>,
    /// Each private ZooKeeper server's mode, in id order (empty with an external ZooKeeper).
    pub zk_servers: Vec<ZkMode>,
}

/// Whether the private ZooKeeper's quorum stands, as the console and `status` tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumView {
    /// Servers serving clients.
    pub serving: usize,
    /// Servers in the ensemble.
    pub servers: usize,
    /// Servers a quorum needs.
    pub needed: usize,
    /// Whether a quorum serves.
    pub stands: bool,
}

impl LabSnapshot {
    /// The private ZooKeeper's quorum (`None` with an external ZooKeeper).
    pub fn zk_quorum(&self) -> Option<QuorumView> {
        let modes = &self.zk_servers;
        (!modes.is_empty()).then(|| QuorumView {
            serving: modes.iter().filter(|m| m.serves()).count(),
            servers: modes.len(),
            needed: crate::coord::ensemble::quorum_of(modes.len()),
            stands: crate::coord::ensemble::quorum_stands(modes),
        })
    }

    /// Builds a snapshot from the cluster's broker snapshots and ZooKeeper's view.
    pub fn build(
        info: Arc<LabInfo>,
        brokers: Vec<(u32, Option<BrokerSnapshot>)>,
        zk: &ZkView,
        events: Vec<Event>,
        throughput: Vec<u64>,
        load: Option<LoadProgress>,
    ) -> Self {
        let brokers = brokers
            .into_iter()
            .map(|(id, snapshot)| {
                let registered = zk.registered.contains_key(&id);
                let state = match (&snapshot, registered) {
                    (Some(_), _) => BrokerState::Up,
                    (None, true) => BrokerState::DownSessionLingering,
                    (None, false) => BrokerState::Down,
                };
                BrokerView {
                    id,
                    state,
                    registered,
                    snapshot,
                    faults: Vec::new(),
                    resp_port: None,
                }
            })
            .collect();
        let spec = &info.spec;
        let partitions = (0..spec.partitions)
            .map(|p| {
                let s = zk.states.get(&p);
                PartitionView {
                    partition: p,
                    leader: s.and_then(|s| s.leader()),
                    leader_epoch: s.map_or(0, |s| s.leader_epoch),
                    isr: s.map(|s| s.isr.clone()).unwrap_or_default(),
                    eligible: s.map(|s| s.eligible.clone()).unwrap_or_default(),
                    replicas: spec.replicas_of(p),
                }
            })
            .collect();
        Self {
            info,
            brokers,
            partitions,
            controller: zk.controller,
            events,
            throughput,
            load,
            faults: Vec::new(),
            zk_servers: Vec::new(),
        }
    }

    /// The log end of partition `p`'s leader (as the leader believes), if it is up.
    pub fn leader_leo(&self, p: u32) -> Option<u64> {
        self.brokers
            .iter()
            .filter_map(|b| b.replica(p))
            .find(|r| r.role == Role::Leader && !r.fenced)
            .map(|r| r.log_end_offset)
    }

    /// Where a broker's belief about partition `p` differs from ZooKeeper: a sentence, or `None`.
    pub fn disagreement(&self, broker: u32, p: u32) -> Option<String> {
        let b = self.brokers.iter().find(|b| b.id == broker)?;
        let r = b.replica(p)?;
        let zk = self.partitions.iter().find(|x| x.partition == p)?;
        match (r.role, zk.leader) {
            (Role::Leader, Some(l)) if l != broker => Some(format!(
                "believes it leads; ZooKeeper says broker {l} (epoch {})",
                zk.leader_epoch
            )),
            (Role::Leader, None) => Some("believes it leads; ZooKeeper says offline".into()),
            (Role::Follower { leader }, Some(l)) if l != leader => Some(format!(
                "follows broker {leader}; ZooKeeper says broker {l} leads"
            )),
            (Role::Follower { .. }, None) => {
                Some("follows a leader; ZooKeeper says offline".into())
            }
            (Role::Offline, Some(l)) if l == broker => {
                Some("ZooKeeper says it leads, but it has not taken up the role".into())
            }
            _ => None,
        }
    }
}
