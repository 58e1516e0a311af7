//! The lab: N brokers and a private ZooKeeper in one process, fault control, and (later) scenarios
//! and the history checker.

pub mod cluster;
pub mod proxy;

pub use cluster::{Cluster, ClusterError, ClusterOptions, ZkChoice};
