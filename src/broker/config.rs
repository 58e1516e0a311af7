//! A broker's configuration (`conf/node.yaml`).

use crate::config::{ConfigError, load_yaml};
use crate::coord::ClusterSpec;
use crate::storage::StoreConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to reach ZooKeeper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZkConfig {
    /// `host:port[,host:port...][/chroot]`.
    pub connect: String,
    /// Session timeout; a crashed broker's registration lingers this long.
    pub session_timeout_ms: u64,
    /// ZooKeeper digest credentials (`user:password`), the same for every broker of a cluster:
    /// then the cluster's znodes anyone may read but only the brokers may change. Give them when
    /// the cluster is first created; znodes made before stay open.
    pub credentials: Option<String>,
}

impl Default for ZkConfig {
    fn default() -> Self {
        Self {
            connect: "127.0.0.1:2181/simplekv".into(),
            session_timeout_ms: 6000,
            credentials: None,
        }
    }
}

/// Replication timing and sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicationConfig {
    /// A follower that has not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// Most bytes one fetch returns.
    pub fetch_max_bytes: u32,
    /// How long a fetch waits for new records.
    pub fetch_max_wait_ms: u32,
    /// How long acks=all writes and reads of uncommitted keys wait before answering with an error.
    pub request_timeout_ms: u64,
    /// How often committed sealed segments are merged (0 = never).
    pub merge_interval_ms: u64,
    /// The controller moves each partition's leadership back to its preferred replica (its
    /// first) once that replica is in the ISR again (Kafka's `auto.leader.rebalance.enable`).
    pub auto_leader_rebalance: bool,
    /// How often the controller looks for partitions led by another than their preferred
    /// replica, when `auto_leader_rebalance` is on.
    pub leader_imbalance_check_interval_ms: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            replica_lag_time_max_ms: 10_000,
            fetch_max_bytes: 1 << 20,
            fetch_max_wait_ms: 500,
            request_timeout_ms: 5_000,
            merge_interval_ms: 60_000,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 300_000,
        }
    }
}

/// Everything one broker needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// Broker id, 1..=cluster.brokers.
    pub id: u32,
    /// Address other brokers and clients use to reach it.
    #[serde(default = "default_host")]
    pub host: String,
    /// Client (kv) service port; 0 picks a free one.
    #[serde(default)]
    pub kv_port: u16,
    /// Replication (peer) service port; 0 picks a free one.
    #[serde(default)]
    pub peer_port: u16,
    /// Redis-protocol (RESP) port, for `redis-cli` and Redis clients; unset: no RESP listener;
    /// 0 picks a free one. Started by `node` mode and the lab beside the broker (it reaches the
    /// cluster through the client layer, which sits above brokers).
    #[serde(default)]
    pub resp_port: Option<u16>,
    /// Acks of writes that arrive over RESP: `all` (the default), `1` or `0`.
    #[serde(default = "default_resp_acks")]
    pub resp_acks: String,
    /// Its data: `<data_dir>/partition-<p>/`.
    pub data_dir: PathBuf,
    /// ZooKeeper.
    #[serde(default)]
    pub zookeeper: ZkConfig,
    /// Cluster settings, used to create `/cluster` when it does not exist yet.
    #[serde(default)]
    pub cluster: ClusterSpec,
    /// Replication settings.
    #[serde(default)]
    pub replication: ReplicationConfig,
    /// Storage settings of every replica.
    #[serde(default)]
    pub storage: StoreConfig,
    /// Mutual TLS between brokers (and optionally on the client port); unset: plaintext, as in
    /// the lab (one process on loopback).
    #[serde(default)]
    pub tls: Option<crate::net::tls::TlsConfig>,
    /// How its ports bound their connections.
    #[serde(default)]
    pub connections: crate::net::listen::ConnectionLimits,
    /// Where to dial other brokers' advertised addresses (the lab routes them through its proxies).
    #[serde(skip)]
    pub dialer: crate::rpc::Dialer,
}

fn default_resp_acks() -> String {
    "all".into()
}

fn default_host() -> String {
    "127.0.0.1".into()
}

impl BrokerConfig {
    /// Loads and checks `path`. Relative `data_dir`s are taken relative to the working directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let cfg: Self = load_yaml(path)?;
        cfg.validate()
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Ok(cfg)
    }

    /// Checks the settings fit together; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        self.cluster.validate()?;
        self.storage.validate()?;
        if self.id == 0 || self.id > self.cluster.brokers {
            return Err(format!(
                "id is {}; it must be between 1 and cluster.brokers ({})",
                self.id, self.cluster.brokers
            ));
        }
        if self.zookeeper.connect.trim().is_empty() {
            return Err("zookeeper.connect is empty; give host:port[/chroot]".into());
        }
        if let Some(c) = &self.zookeeper.credentials {
            if c.split_once(':')
                .is_none_or(|(u, p)| u.is_empty() || p.is_empty())
            {
                return Err("zookeeper.credentials must be user:password".into());
            }
            // ZooKeeper checks a create or delete against the parent's ACL: without a chroot of
            // the cluster's own, the parent of /controller is the root, open to all.
            let (_, chroot) = crate::coord::split_connect(&self.zookeeper.connect);
            if chroot.is_empty() || chroot == "/" {
                return Err(
                    "zookeeper.credentials need a chroot in zookeeper.connect (host:port/name): \
                     the root of ZooKeeper is open to all"
                        .into(),
                );
            }
        }
        if self.replication.fetch_max_bytes == 0
            || self.replication.fetch_max_bytes as usize > super::MAX_REPLICATED_RECORD_BYTES
        {
            return Err(format!(
                "replication.fetch_max_bytes must be between 1 and {} (a fetch reply is one \
                 message)",
                super::MAX_REPLICATED_RECORD_BYTES
            ));
        }
        // A fetch reply carries at least one whole record: the largest must fit one message.
        let largest = crate::storage::record::HEADER_LEN
            + self.storage.max_key_bytes
            + self.storage.max_value_bytes;
        if largest > super::MAX_REPLICATED_RECORD_BYTES {
            return Err(format!(
                "storage.max_key_bytes + storage.max_value_bytes allow a {largest}-byte record; \
                 a record must fit one replication message ({} bytes), or followers could \
                 never copy it",
                super::MAX_REPLICATED_RECORD_BYTES
            ));
        }
        self.resp_acks()?;
        self.connections.validate()?;
        let r = &self.replication;
        if r.auto_leader_rebalance && r.leader_imbalance_check_interval_ms == 0 {
            return Err(
                "replication.leader_imbalance_check_interval_ms is 0; give how often to check, in ms (or set auto_leader_rebalance: false)".into(),
            );
        }
        Ok(())
    }

    /// How often the controller hands leadership back to preferred replicas unasked; `None`
    /// when `auto_leader_rebalance` is off.
    pub fn rebalance_interval(&self) -> Option<Duration> {
        let r = &self.replication;
        (r.auto_leader_rebalance && r.leader_imbalance_check_interval_ms > 0)
            .then(|| Duration::from_millis(r.leader_imbalance_check_interval_ms))
    }

    /// The acks of writes over RESP (`resp_acks`).
    pub fn resp_acks(&self) -> Result<crate::replica::Acks, String> {
        self.resp_acks
            .parse()
            .map_err(|_| format!("resp_acks is '{}'; use all, 1 or 0", self.resp_acks))
    }

    /// Opens a ZooKeeper session as this broker (with its credentials, if any).
    pub async fn connect_zk(&self) -> Result<crate::coord::Coord, crate::coord::CoordError> {
        crate::coord::Coord::connect_as(
            &self.zookeeper.connect,
            self.session_timeout(),
            self.zookeeper.credentials.as_deref(),
        )
        .await
    }

    /// The ZooKeeper session timeout.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.zookeeper.session_timeout_ms.max(100))
    }

    /// How long a request to a peer or a client request may take.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.replication.request_timeout_ms.max(1))
    }

    /// Directory of partition `p`'s replica.
    pub fn partition_dir(&self, p: u32) -> PathBuf {
        self.data_dir.join(format!("partition-{p}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_file_gets_defaults_and_bad_keys_are_named() {
        let cfg: BrokerConfig =
            crate::config::parse_yaml("n.yaml", "id: 2\ndata_dir: d\n").expect("parses");
        assert_eq!(cfg.host, "127.0.0.1");
        assert_eq!(cfg.cluster, ClusterSpec::default());
        cfg.validate().expect("valid");
        let e = crate::config::parse_yaml::<BrokerConfig>(
            "n.yaml",
            "id: 2\ndata_dir: d\nreplication:\n  lag: 3\n",
        )
        .unwrap_err()
        .0;
        assert!(
            e.starts_with("n.yaml: line 4: replication: unknown field `lag`"),
            "{e}"
        );
        assert_eq!(cfg.resp_port, None, "no RESP listener unless asked");
        let bad_acks = BrokerConfig {
            resp_acks: "most".into(),
            ..cfg.clone()
        };
        assert!(
            bad_acks
                .validate()
                .unwrap_err()
                .contains("resp_acks is 'most'")
        );
        let mut no_fetch = cfg.clone();
        no_fetch.replication.fetch_max_bytes = 0;
        assert!(no_fetch.validate().unwrap_err().contains("fetch_max_bytes"));
        let mut creds = cfg.clone();
        creds.zookeeper.credentials = Some("simplekv".into());
        assert!(creds.validate().unwrap_err().contains("user:password"));
        creds.zookeeper.credentials = Some("simplekv:pw".into());
        creds.zookeeper.connect = "127.0.0.1:2181".into();
        assert!(
            creds.validate().unwrap_err().contains("need a chroot"),
            "the root of ZooKeeper is open to all"
        );
        creds.zookeeper.connect = "127.0.0.1:2181/kv".into();
        assert!(creds.validate().is_ok());
        let mut huge = cfg.clone();
        huge.storage.max_value_bytes = 200 << 20;
        assert!(
            huge.validate()
                .unwrap_err()
                .contains("must fit one replication message")
        );
        huge.storage.max_value_bytes = 62 << 20;
        assert!(huge.validate().is_ok());
        huge.replication.fetch_max_bytes = 100 << 20;
        assert!(huge.validate().unwrap_err().contains("fetch_max_bytes"));
        let bad = BrokerConfig { id: 9, ..cfg };
        assert!(bad.validate().unwrap_err().contains("cluster.brokers"));
    }

    #[test]
    fn the_shipped_node_configs_load() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
        for f in [
            "node.yaml",
            "cluster3/node-1.yaml",
            "cluster3/node-2.yaml",
            "cluster3/node-3.yaml",
            "cluster3-tls/node-1.yaml",
            "cluster3-tls/node-2.yaml",
            "cluster3-tls/node-3.yaml",
        ] {
            let cfg = BrokerConfig::load(&root.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert!(cfg.resp_port.is_some(), "{f} has a RESP port");
        }
    }
}
