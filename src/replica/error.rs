//! Why a replica refuses or cannot finish a request: each error says whether the outcome of a
//! write is known, since clients must tell "nothing was written" from "it may have landed".

use crate::storage::StorageError;
use std::time::Duration;

/// Why a replica refused or could not finish a request.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// Not the leader (the known leader, if any).
    #[error("broker {broker} is not the leader of partition {partition}")]
    NotLeader {
        /// This broker.
        broker: u32,
        /// The partition.
        partition: u32,
        /// Who leads, if known.
        leader: Option<u32>,
    },
    /// The leader is handing the partition to another broker and takes no request meanwhile;
    /// nothing was written.
    #[error(
        "broker {broker} is handing partition {partition} to broker {to}; nothing was written, try again"
    )]
    HandingOver {
        /// This broker.
        broker: u32,
        /// The partition.
        partition: u32,
        /// The broker taking over.
        to: u32,
    },
    /// acks=all with the ISR below `min_insync_replicas`; nothing was written.
    #[error(
        "not enough replicas: partition {partition} has {isr} in-sync replica(s), acks=all needs {min}; nothing was written"
    )]
    NotEnoughReplicas {
        /// The partition.
        partition: u32,
        /// ISR size.
        isr: usize,
        /// The minimum.
        min: u32,
    },
    /// The write is in the leader's log but its replication was not confirmed in time.
    #[error(
        "timed out after {waited:?} waiting for the write at offset {offset} to be replicated; the outcome is unknown"
    )]
    Timeout {
        /// Its offset.
        offset: u64,
        /// How long we waited.
        waited: Duration,
    },
    /// This leader cannot prove its ZooKeeper session alive (it may have been paused or cut off
    /// and deposed without knowing): it serves nothing until its lease is renewed.
    #[error(
        "broker {broker} cannot prove it still leads partition {partition}: its ZooKeeper lease has lapsed"
    )]
    LeaseLapsed {
        /// This broker.
        broker: u32,
        /// The partition.
        partition: u32,
    },
    /// Leadership changed after the write was appended.
    #[error(
        "leadership of partition {partition} changed before the write at offset {offset} was committed; the outcome is unknown"
    )]
    LeadershipLost {
        /// The partition.
        partition: u32,
        /// Its offset.
        offset: u64,
    },
    /// Writing a batch to the log failed part-way: records of it may be on disk (a restart
    /// would find them), so this write's outcome is unknown.
    #[error(
        "writing the batch to partition {partition}'s log failed part-way ({error}); this write may be on disk: the outcome is unknown"
    )]
    AppendInterrupted {
        /// The partition.
        partition: u32,
        /// What the store said.
        error: String,
    },
    /// The write committed, but the ISR had shrunk below the minimum by then.
    #[error(
        "the write at offset {offset} reached only {isr} in-sync replica(s), fewer than min_insync_replicas {min}; the outcome is unknown"
    )]
    NotEnoughReplicasAfterAppend {
        /// Its offset.
        offset: u64,
        /// ISR size.
        isr: usize,
        /// The minimum.
        min: u32,
    },
    /// The key's latest record did not become committed in time.
    #[error("the latest write to this key (offset {offset}) is not committed yet{why}")]
    NotCommitted {
        /// Its offset.
        offset: u64,
        /// "; try again", or why nothing commits now.
        why: String,
    },
    /// A fetch or epoch request carried another leader epoch.
    #[error("leader epoch {requested} does not match the current epoch {current}")]
    Fenced {
        /// The requester's epoch.
        requested: u32,
        /// This leader's epoch.
        current: u32,
    },
    /// A fetch beyond the log end.
    #[error("fetch offset {offset} is beyond the log end offset {leo}")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: u64,
        /// The log end.
        leo: u64,
    },
    /// A fetch from a broker that is not a replica.
    #[error("broker {0} is not a replica of this partition")]
    UnknownReplica(u32),
    /// The storage engine failed or refused (oversized key or value, I/O).
    #[error(transparent)]
    Storage(#[from] StorageError),
}
