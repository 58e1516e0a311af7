//! Where each partition's leader is, as the client last learned it, and how it learns.

use crate::coord::Coord;
use crate::rpc::{self, kv_client::KvClient};
use std::collections::BTreeMap;

use super::ClientError;

/// How long a seed broker has to answer Metadata before the next seed is asked.
const SEED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Where routes come from.
pub(super) enum Source {
    /// ZooKeeper, read directly.
    Zk(ZkSource),
    /// Seed brokers' Metadata.
    Seeds(Vec<String>),
}

/// A ZooKeeper session, renewed when it expires: a client outlives a pause or a partition
/// longer than its session (a RESP listener on a paused broker, a console left open).
pub(super) struct ZkSource {
    connect: String,
    session_timeout: std::time::Duration,
    coord: parking_lot::Mutex<Coord>,
}

impl ZkSource {
    pub(super) fn new(connect: &str, session_timeout: std::time::Duration, coord: Coord) -> Self {
        Self {
            connect: connect.to_string(),
            session_timeout,
            coord: parking_lot::Mutex::new(coord),
        }
    }

    /// The current session.
    pub(super) fn coord(&self) -> Coord {
        self.coord.lock().clone()
    }

    /// If the session has expired, a new one (returned); `None` while it lives.
    pub(super) async fn renew_if_expired(&self) -> Result<Option<Coord>, ClientError> {
        if self.coord().state() != zookeeper_client::SessionState::Expired {
            return Ok(None);
        }
        let fresh = Coord::connect(&self.connect, self.session_timeout)
            .await
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        *self.coord.lock() = fresh.clone();
        tracing::info!(zk = %self.connect, "the client's ZooKeeper session expired; a new one is open");
        Ok(Some(fresh))
    }
}

/// One partition as the client sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionView {
    /// The partition.
    pub partition: u32,
    /// Its leader, if any.
    pub leader: Option<u32>,
    /// The leader epoch.
    pub leader_epoch: u32,
    /// In-sync replicas.
    pub isr: Vec<u32>,
    /// Eligible leader replicas: they left the ISR while it was below min.insync, so they hold
    /// every committed write and may lead when no ISR member is left.
    pub eligible: Vec<u32>,
    /// All replicas, preferred first.
    pub replicas: Vec<u32>,
}

/// The cluster as the client sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Live brokers: id → kv address.
    pub brokers: BTreeMap<u32, String>,
    /// Partitions.
    pub partitions: Vec<PartitionView>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Routes {
    pub(super) partitions: u32,
    brokers: BTreeMap<u32, String>,
    parts: Vec<PartitionView>,
    /// Leader addresses learned from NOT_LEADER hints, ahead of a refresh.
    hinted: BTreeMap<u32, String>,
}

impl Routes {
    pub(super) fn leader_addr(&self, p: u32) -> Option<String> {
        if let Some(a) = self.hinted.get(&p) {
            return Some(a.clone());
        }
        let leader = self.parts.get(p as usize)?.leader?;
        self.brokers.get(&leader).cloned()
    }

    pub(super) fn set_leader_addr(&mut self, p: u32, addr: String) {
        self.hinted.insert(p, addr);
    }

    pub(super) fn forget_leader(&mut self, p: u32) {
        self.hinted.remove(&p);
        if let Some(part) = self.parts.get_mut(p as usize) {
            part.leader = None;
        }
    }

    pub(super) fn view(&self) -> ClusterView {
        ClusterView {
            brokers: self.brokers.clone(),
            partitions: self.parts.clone(),
        }
    }
}

impl Source {
    pub(super) async fn load(
        &self,
        channel: impl Fn(&str) -> Result<KvClient<super::Transport>, ClientError>,
    ) -> Result<Routes, ClientError> {
        match self {
            Self::Zk(zk) => {
                let coord = zk.coord();
                let unavailable =
                    |e: crate::coord::CoordError| ClientError::Unavailable(e.to_string());
                let spec = coord.cluster().await.map_err(unavailable)?.ok_or_else(|| {
                    ClientError::Unavailable(format!(
                        "no SimpleKV cluster in ZooKeeper at {} (no /cluster znode): start a broker with this address first",
                        coord.connect_string()
                    ))
                })?;
                let brokers = coord
                    .brokers()
                    .await
                    .map_err(unavailable)?
                    .into_iter()
                    .map(|(id, b)| (id, b.kv_addr()))
                    .collect();
                let mut parts = Vec::with_capacity(spec.partitions as usize);
                for p in 0..spec.partitions {
                    let state = coord.partition_state(p).await.map_err(unavailable)?;
                    parts.push(PartitionView {
                        partition: p,
                        leader: state.as_ref().and_then(|(s, _)| s.leader()),
                        leader_epoch: state.as_ref().map_or(0, |(s, _)| s.leader_epoch),
                        eligible: state
                            .as_ref()
                            .map(|(s, _)| s.eligible.clone())
                            .unwrap_or_default(),
                        isr: state.map(|(s, _)| s.isr).unwrap_or_default(),
                        replicas: spec.replicas_of(p),
                    });
                }
                Ok(Routes {
                    partitions: spec.partitions,
                    brokers,
                    parts,
                    hinted: BTreeMap::new(),
                })
            }
            Self::Seeds(seeds) => {
                let mut last = String::new();
                for seed in seeds {
                    let mut client = channel(seed)?;
                    let answer = tokio::time::timeout(
                        SEED_TIMEOUT,
                        client.metadata(rpc::MetadataRequest {}),
                    )
                    .await;
                    let md = match answer {
                        Ok(Ok(r)) => r.into_inner(),
                        Ok(Err(s)) => {
                            last = format!("broker {seed}: {}", seed_failure(&s));
                            continue;
                        }
                        Err(_) => {
                            last = format!("broker {seed} did not answer");
                            continue;
                        }
                    };
                    return Ok(Routes {
                        partitions: md.partitions,
                        brokers: md
                            .brokers
                            .iter()
                            .map(|b| (b.id, format!("{}:{}", b.host, b.kv_port)))
                            .collect(),
                        parts: md
                            .partition_info
                            .into_iter()
                            .map(|p| PartitionView {
                                partition: p.partition,
                                leader: u32::try_from(p.leader).ok().filter(|&l| l > 0),
                                leader_epoch: p.leader_epoch,
                                isr: p.isr,
                                eligible: p.eligible,
                                replicas: p.replicas,
                            })
                            .collect(),
                        hinted: BTreeMap::new(),
                    });
                }
                Err(ClientError::Unavailable(format!(
                    "cannot reach any seed broker ({}): {last}",
                    seeds.join(", ")
                )))
            }
        }
    }
}

/// Why a seed's Metadata call failed, never empty: a port that does not serve the client
/// service (a broker's peer port, say) answers UNIMPLEMENTED with no message.
fn seed_failure(s: &tonic::Status) -> String {
    match (s.code(), s.message()) {
        (tonic::Code::Unimplemented, _) => {
            "it does not serve the client service (is this a broker's peer port? use its kv port)"
                .to_string()
        }
        (code, "") => format!("{code}"),
        (_, m) => m.to_string(),
    }
}
