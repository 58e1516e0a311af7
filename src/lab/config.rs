//! Lab settings: `conf/lab.yaml`, a scenario's `cluster:` section and command-line flags, merged in
//! that order of increasing priority. Every key is optional; unknown keys are errors.

use super::cluster::{ClusterOptions, ZkChoice};
use crate::config::{ConfigError, load_yaml};
use crate::coord::{ClusterSpec, ServerOptions};
use crate::storage::FsyncPolicy;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Lab settings; `None` means the lab default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabConfig {
    /// Brokers (default 3).
    pub nodes: Option<u32>,
    /// Partitions (default 3).
    pub partitions: Option<u32>,
    /// Replicas per partition (default min(3, nodes)).
    pub replication_factor: Option<u32>,
    /// acks=all needs this many in-sync replicas (default min(2, replication_factor)).
    pub min_insync_replicas: Option<u32>,
    /// Let a replica outside the ISR lead when no ISR member is alive (default false).
    pub unclean_leader_election: Option<bool>,
    /// ZooKeeper tick of the private server, ms (default 200).
    pub zk_tick_ms: Option<u64>,
    /// Private ZooKeeper servers: 1 (standalone, the default), 3 or 5 (an ensemble).
    pub zk_servers: Option<u32>,
    /// Brokers' ZooKeeper session timeout, ms (default 3000).
    pub session_timeout_ms: Option<u64>,
    /// A follower this far behind leaves the ISR, ms (default 3000).
    pub replica_lag_time_max_ms: Option<u64>,
    /// acks=all and committed reads wait at most this long, ms (default 5000).
    pub request_timeout_ms: Option<u64>,
    /// Fetch long-poll wait, ms (default 500).
    pub fetch_max_wait_ms: Option<u32>,
    /// always | interval | never (default interval).
    pub fsync: Option<FsyncPolicy>,
    /// Segment size in bytes (default 64 MiB).
    pub segment_bytes: Option<u64>,
    /// How long merge keeps tombstones, ms (default one day).
    pub tombstone_retention_ms: Option<u64>,
    /// How often sealed segments are merged, ms; 0 = never (default 30000).
    pub merge_interval_ms: Option<u64>,
    /// The controller moves leadership back to each partition's preferred replica once it is in
    /// the ISR again (default true).
    pub auto_leader_rebalance: Option<bool>,
    /// How often it checks, ms (default 10000).
    pub leader_imbalance_check_interval_ms: Option<u64>,
}

macro_rules! overlay {
    ($a:expr, $b:expr, $($f:ident),*) => {
        LabConfig { $($f: $b.$f.or($a.$f)),* }
    };
}

impl LabConfig {
    /// Loads a lab settings file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load_yaml(path)
    }

    /// `self` with every setting `over` gives replaced.
    pub fn overlay(&self, over: &LabConfig) -> LabConfig {
        overlay!(
            self,
            over,
            nodes,
            partitions,
            replication_factor,
            min_insync_replicas,
            unclean_leader_election,
            zk_tick_ms,
            zk_servers,
            session_timeout_ms,
            replica_lag_time_max_ms,
            request_timeout_ms,
            fetch_max_wait_ms,
            fsync,
            segment_bytes,
            tombstone_retention_ms,
            merge_interval_ms,
            auto_leader_rebalance,
            leader_imbalance_check_interval_ms
        )
    }

    /// The cluster settings, defaults filled in and checked.
    pub fn spec(&self) -> Result<ClusterSpec, String> {
        let nodes = self.nodes.unwrap_or(3);
        let rf = self.replication_factor.unwrap_or(nodes.min(3));
        let spec = ClusterSpec {
            brokers: nodes,
            partitions: self.partitions.unwrap_or(3),
            replication_factor: rf,
            min_insync_replicas: self.min_insync_replicas.unwrap_or(rf.min(2)),
            unclean_leader_election: self.unclean_leader_election.unwrap_or(false),
        };
        spec.validate().map_err(|e| {
            e.replace("cluster.brokers", "nodes")
                .replace("cluster.", "")
        })?;
        Ok(spec)
    }

    /// Options for a cluster under `data_dir` using `zk` (private when `None`).
    pub fn cluster_options(
        &self,
        data_dir: PathBuf,
        zk: Option<String>,
    ) -> Result<ClusterOptions, String> {
        let mut o = ClusterOptions::lab(data_dir, self.spec()?);
        if let Some(n) = self.zk_servers {
            crate::coord::ensemble::check_size(n)?;
            if zk.is_some() && n > 1 {
                return Err(format!(
                    "zk_servers: {n} starts a private ensemble, but --zk names an existing one: \
                     give one or the other"
                ));
            }
        }
        o.zk = match zk {
            Some(connect) => ZkChoice::External(connect),
            None => ZkChoice::Private {
                options: ServerOptions {
                    tick_ms: self.zk_tick_ms.unwrap_or(200),
                    ..ServerOptions::default()
                },
                servers: self.zk_servers.unwrap_or(1),
            },
        };
        if let Some(v) = self.session_timeout_ms {
            o.session_timeout_ms = v;
        }
        let r = &mut o.replication;
        if let Some(v) = self.replica_lag_time_max_ms {
            r.replica_lag_time_max_ms = v;
        }
        if let Some(v) = self.request_timeout_ms {
            r.request_timeout_ms = v;
        }
        if let Some(v) = self.fetch_max_wait_ms {
            r.fetch_max_wait_ms = v;
        }
        if let Some(v) = self.merge_interval_ms {
            r.merge_interval_ms = v;
        }
        if let Some(v) = self.auto_leader_rebalance {
            r.auto_leader_rebalance = v;
        }
        if let Some(v) = self.leader_imbalance_check_interval_ms {
            if v == 0 {
                return Err(
                    "leader_imbalance_check_interval_ms is 0; give how often to check, in ms (or set auto_leader_rebalance: false)"
                        .into(),
                );
            }
            r.leader_imbalance_check_interval_ms = v;
        }
        let s = &mut o.storage;
        if let Some(v) = self.fsync {
            s.fsync = v;
        }
        if let Some(v) = self.segment_bytes {
            s.segment_bytes = v;
        }
        if let Some(v) = self.tombstone_retention_ms {
            s.tombstone_retention_ms = v;
        }
        s.validate()?;
        Ok(o)
    }
}

/// The file in a kept data directory naming the chroot its lab used on a shared ZooKeeper.
pub const CHROOT_FILE: &str = "zk-chroot";

/// The connect string of a lab on the shared ZooKeeper `zk` (`host:port[/chroot]`): a chroot of
/// its own under the given one. A lab whose data directory is kept (`kept`) records the chroot
/// there and reuses it when started again, because its replicas' leader epochs and broker roles
/// only make sense against the ZooKeeper state they came from (a fresh chroot would start at
/// epoch 0, below every replica's cached epoch, and each role would be ignored as stale).
pub fn lab_connect(zk: &str, data_dir: &Path, kept: bool) -> Result<String, String> {
    let (servers, base) = crate::coord::split_connect(zk);
    let file = data_dir.join(CHROOT_FILE);
    if kept {
        match std::fs::read_to_string(&file) {
            Ok(text) if text.trim().starts_with('/') => {
                return Ok(format!("{servers}{}", text.trim()));
            }
            Ok(_) => {
                return Err(format!(
                    "{} does not hold a ZooKeeper chroot; delete it to start this lab afresh",
                    file.display()
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        }
    }
    let chroot = format!(
        "{}/simplekv-lab-{}-{}",
        base.trim_end_matches('/'),
        std::process::id(),
        crate::storage::now_ms()
    );
    if kept {
        std::fs::write(&file, format!("{chroot}\n"))
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    Ok(format!("{servers}{chroot}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_lab_reuses_its_chroot_and_a_throwaway_one_gets_a_fresh_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = lab_connect("h:1/base", dir.path(), true).expect("first");
        assert!(first.starts_with("h:1/base/simplekv-lab-"), "{first}");
        let again = lab_connect("h:2/base", dir.path(), true).expect("again");
        assert_eq!(
            again.split_once('/').map(|(_, c)| c),
            first.split_once('/').map(|(_, c)| c),
            "same chroot, on the servers given now"
        );
        assert!(again.starts_with("h:2/"));
        let other = tempfile::tempdir().expect("tempdir");
        let fresh = lab_connect("h:1", other.path(), false).expect("fresh");
        assert!(fresh.starts_with("h:1/simplekv-lab-"), "{fresh}");
        assert!(!other.path().join(CHROOT_FILE).exists());
        std::fs::write(dir.path().join(CHROOT_FILE), "junk").expect("write");
        let err = lab_connect("h:1", dir.path(), true).expect_err("junk");
        assert!(err.contains("zk-chroot"), "{err}");
    }

    #[test]
    fn defaults_adapt_to_the_number_of_nodes() {
        let one = LabConfig {
            nodes: Some(1),
            ..LabConfig::default()
        }
        .spec()
        .expect("valid");
        assert_eq!((one.replication_factor, one.min_insync_replicas), (1, 1));
        let three = LabConfig::default().spec().expect("valid");
        assert_eq!(
            (
                three.brokers,
                three.partitions,
                three.replication_factor,
                three.min_insync_replicas
            ),
            (3, 3, 3, 2)
        );
        let bad = LabConfig {
            nodes: Some(2),
            replication_factor: Some(3),
            ..LabConfig::default()
        };
        assert!(bad.spec().unwrap_err().contains("replication_factor"));
    }

    #[test]
    fn later_settings_win_and_unknown_keys_are_named() {
        let file: LabConfig =
            crate::config::parse_yaml("lab.yaml", "nodes: 5\npartitions: 2\n").expect("parses");
        let merged = file.overlay(&LabConfig {
            nodes: Some(3),
            ..LabConfig::default()
        });
        assert_eq!((merged.nodes, merged.partitions), (Some(3), Some(2)));
        let e = crate::config::parse_yaml::<LabConfig>("lab.yaml", "nodes: 3\nbrokers: 3\n")
            .unwrap_err()
            .0;
        assert!(
            e.contains("line 2") && e.contains("unknown field `brokers`"),
            "{e}"
        );
    }

    #[test]
    fn the_shipped_lab_yaml_parses_and_matches_the_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/lab.yaml");
        let shipped = LabConfig::load(&path).expect("conf/lab.yaml parses");
        assert_eq!(shipped.spec(), LabConfig::default().spec());
        let dir = std::path::PathBuf::from("/tmp/x");
        let a = shipped.cluster_options(dir.clone(), None).expect("options");
        let b = LabConfig::default()
            .cluster_options(dir, None)
            .expect("options");
        assert_eq!(a.replication, b.replication);
        assert_eq!(a.storage, b.storage);
        assert_eq!(a.session_timeout_ms, b.session_timeout_ms);
    }
}
