//! The znodes under the chroot and their JSON values (DESIGN §7).
//!
//! ```text
//! /cluster                        persistent  ClusterSpec
//! /brokers/ids/<id>               ephemeral   BrokerInfo (its czxid is the broker epoch)
//! /controller                     ephemeral   ControllerInfo
//! /controller_epoch               persistent  integer
//! /partitions/<p>/replicas        persistent  [broker ids], preferred order
//! /partitions/<p>/state           persistent  PartitionState
//! /admin/rebalance                persistent  asks the controller for preferred-replica elections
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `/cluster`
pub const CLUSTER: &str = "/cluster";
/// `/brokers/ids`
pub const BROKER_IDS: &str = "/brokers/ids";
/// `/controller`
pub const CONTROLLER: &str = "/controller";
/// `/controller_epoch`
pub const CONTROLLER_EPOCH: &str = "/controller_epoch";
/// `/partitions`
pub const PARTITIONS: &str = "/partitions";

/// `/admin/rebalance`: present while a request to move every partition's leadership back to its
/// preferred replica (`rebalance`) waits for the controller, which deletes it when done.
pub const REBALANCE: &str = "/admin/rebalance";

/// `/brokers/ids/<id>`
pub fn broker_path(id: u32) -> String {
    format!("{BROKER_IDS}/{id}")
}

/// `/partitions/<p>/replicas`
pub fn replicas_path(p: u32) -> String {
    format!("{PARTITIONS}/{p}/replicas")
}

/// `/partitions/<p>/state`
pub fn state_path(p: u32) -> String {
    format!("{PARTITIONS}/{p}/state")
}

/// Cluster-wide settings, fixed when the cluster is first created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSpec {
    /// Number of brokers the partitions are assigned over (ids 1..=brokers).
    pub brokers: u32,
    /// Number of partitions.
    pub partitions: u32,
    /// Replicas per partition.
    pub replication_factor: u32,
    /// acks=all writes are refused while the ISR is smaller than this.
    pub min_insync_replicas: u32,
    /// Allow a replica outside the ISR to lead when no ISR member is alive (can lose data).
    pub unclean_leader_election: bool,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            brokers: 3,
            partitions: 3,
            replication_factor: 3,
            min_insync_replicas: 2,
            unclean_leader_election: false,
        }
    }
}

impl ClusterSpec {
    /// Checks the settings fit together; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers == 0 || self.brokers > 64 {
            return Err(format!("cluster.brokers is {}; use 1 to 64", self.brokers));
        }
        if self.partitions == 0 || self.partitions > 1024 {
            return Err(format!(
                "cluster.partitions is {}; use 1 to 1024",
                self.partitions
            ));
        }
        if self.replication_factor == 0 || self.replication_factor > self.brokers {
            return Err(format!(
                "cluster.replication_factor is {}; it must be between 1 and the number of brokers ({})",
                self.replication_factor, self.brokers
            ));
        }
        if self.min_insync_replicas == 0 || self.min_insync_replicas > self.replication_factor {
            return Err(format!(
                "cluster.min_insync_replicas is {}; it must be between 1 and the replication factor ({})",
                self.min_insync_replicas, self.replication_factor
            ));
        }
        Ok(())
    }

    /// Replicas of partition `p`, preferred leader first: brokers `(p + i) mod N` for i in 0..R,
    /// as 1-based ids.
    pub fn replicas_of(&self, p: u32) -> Vec<u32> {
        (0..self.replication_factor)
            .map(|i| (p + i) % self.brokers + 1)
            .collect()
    }

    /// The partitions broker `id` holds a replica of.
    pub fn partitions_of(&self, id: u32) -> Vec<u32> {
        (0..self.partitions)
            .filter(|&p| self.replicas_of(p).contains(&id))
            .collect()
    }

    /// The partition a key belongs to: `crc32(key) mod P`.
    pub fn partition_of(&self, key: &[u8]) -> u32 {
        partition_of(key, self.partitions)
    }
}

/// `crc32(key) mod partitions`.
pub fn partition_of(key: &[u8], partitions: u32) -> u32 {
    crc32fast::hash(key) % partitions.max(1)
}

/// `/brokers/ids/<id>`: where to reach a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Host name or address.
    pub host: String,
    /// Port of the client (kv) service.
    pub kv_port: u16,
    /// Port of the replication (peer) service.
    pub peer_port: u16,
    /// The broker epoch (Kafka KIP-380): the creation zxid of this registration znode, so every
    /// incarnation of a broker id has a larger one. Read from the znode's stat, not stored in it.
    #[serde(skip)]
    pub epoch: i64,
}

impl BrokerInfo {
    /// `host:kv_port`
    pub fn kv_addr(&self) -> String {
        format!("{}:{}", self.host, self.kv_port)
    }

    /// `host:peer_port`
    pub fn peer_addr(&self) -> String {
        format!("{}:{}", self.host, self.peer_port)
    }
}

/// `/controller`: who controls, in which epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerInfo {
    /// The controlling broker.
    pub broker_id: u32,
    /// Its controller epoch.
    pub controller_epoch: u32,
}

/// `/partitions/<p>/state`: leader, epoch and ISR, as last written by a controller or the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// The leader, or -1 when the partition has none (offline).
    pub leader: i32,
    /// Bumped for every new leader.
    pub leader_epoch: u32,
    /// In-sync replicas.
    pub isr: Vec<u32>,
    /// Epoch of the controller that last elected the leader.
    pub controller_epoch: u32,
    /// Eligible leader replicas (Kafka KIP-966): members that left the ISR while it was smaller
    /// than `min_insync_replicas`. No acks=all write can have committed without them since, so
    /// when no ISR member is left they may lead without losing one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eligible: Vec<u32>,
    /// The broker epoch of the leader and of each ISR and eligible member when it was elected or
    /// joined: a member registered now with another broker epoch is a new incarnation (it may
    /// have lost its disk) and holds neither its leadership nor its place. Missing entries count
    /// as stale.
    #[serde(default)]
    pub broker_epochs: BTreeMap<u32, i64>,
}

impl PartitionState {
    /// The leader, if there is one.
    pub fn leader(&self) -> Option<u32> {
        u32::try_from(self.leader).ok().filter(|&l| l > 0)
    }

    /// Whether broker `id`, registered now with broker epoch `live_epoch`, is the incarnation
    /// this state gave its role (leadership or ISR place) to.
    pub fn is_current(&self, id: u32, live_epoch: i64) -> bool {
        self.broker_epochs.get(&id) == Some(&live_epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_follows_the_design_rule() {
        let spec = ClusterSpec {
            brokers: 3,
            partitions: 4,
            replication_factor: 2,
            ..ClusterSpec::default()
        };
        assert_eq!(spec.replicas_of(0), vec![1, 2]);
        assert_eq!(spec.replicas_of(1), vec![2, 3]);
        assert_eq!(spec.replicas_of(2), vec![3, 1]);
        assert_eq!(spec.replicas_of(3), vec![1, 2]);
        assert_eq!(spec.partitions_of(3), vec![1, 2]);
    }

    #[test]
    fn validation_names_the_bad_setting() {
        let spec = ClusterSpec {
            replication_factor: 4,
            ..ClusterSpec::default()
        };
        assert!(spec.validate().unwrap_err().contains("replication_factor"));
        let spec = ClusterSpec {
            min_insync_replicas: 0,
            ..ClusterSpec::default()
        };
        assert!(spec.validate().unwrap_err().contains("min_insync_replicas"));
    }

    #[test]
    fn keys_spread_over_partitions_by_crc32() {
        assert_eq!(partition_of(b"hello", 1), 0);
        assert_eq!(partition_of(b"hello", 3), crc32fast::hash(b"hello") % 3);
    }
}
