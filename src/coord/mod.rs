//! ZooKeeper: the private server, the znode layout, and typed, time-bounded operations on it
//! (registration, controller election with epoch fencing, partition state reads, watches and
//! compare-and-set writes).
//!
//! Watches are one-shot and re-armed by their users after every event: the client crate loses
//! persistent watches on reconnect (see `shared/notes/zookeeper.md`).

mod acl;
pub mod ensemble;
mod error;
mod follow;
pub mod layout;
pub mod server;
mod zk;

pub use ensemble::Ensemble;
pub use error::CoordError;
pub use follow::{follow_brokers, follow_controller, follow_partition_state};
pub use layout::{BrokerInfo, ClusterSpec, ControllerInfo, PartitionState, partition_of};
pub use server::{ServerError, ServerOptions, ZkMode, ZkServer};
pub use zk::{CasOutcome, ControllerLease, Coord, split_connect};
pub use zookeeper_client::{OneshotWatcher, SessionInfo, SessionState};
