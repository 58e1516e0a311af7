//! The lab: N brokers and a private ZooKeeper in one process, fault control, the lab's view of
//! ZooKeeper, the snapshots the console draws, load, the history of writes and its checker.

mod agree;
pub mod cluster;
pub mod config;
mod control;
pub mod history;
mod host;
pub mod jsonl;
pub mod linearizable;
mod linearizable_window;
pub mod link;
pub mod load;
pub mod nemesis;
pub mod network;
pub mod observer;
pub mod rng;
pub mod scenario;
pub mod snapshot;
pub mod soak;
pub mod status;
pub mod timeline;
pub mod zk_watch;

pub use cluster::{Cluster, ClusterError, ClusterOptions, ZkChoice};
pub use config::LabConfig;
pub use control::{Lab, LabError, LabOptions, SNAPSHOT_PERIOD};
pub use scenario::{RunSummary, Scenario, play, run_headless};
pub use snapshot::{BrokerState, BrokerView, LabInfo, LabSnapshot, LoadProgress, PartitionView};
pub use timeline::Timeline;
