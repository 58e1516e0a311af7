//! What can go wrong talking to ZooKeeper, as the coordinator reports it.

use std::time::Duration;
use zookeeper_client as zk;

/// What can go wrong talking to ZooKeeper.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// Connecting failed.
    #[error("cannot reach ZooKeeper at {addr}: {why}")]
    Unreachable {
        /// The connect string.
        addr: String,
        /// Why.
        why: String,
    },
    /// The session is gone; a new one is needed.
    #[error("the ZooKeeper session expired")]
    SessionExpired,
    /// No answer in time (the client may be disconnected).
    #[error("ZooKeeper did not answer within {0:?}")]
    Timeout(Duration),
    /// A compare-and-set lost: the znode changed since it was read.
    #[error("{0} changed since it was read")]
    BadVersion(String),
    /// The controller epoch moved: this controller is a zombie.
    #[error("fenced: another controller has taken over (the controller epoch moved)")]
    Fenced,
    /// The znode exists already.
    #[error("{0} already exists")]
    NodeExists(String),
    /// The znode does not exist.
    #[error("{0} does not exist")]
    NoNode(String),
    /// A znode holds something that is not what the layout says.
    #[error("{path} holds invalid data: {why}")]
    BadData {
        /// The znode.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The znode may be changed only by sessions with the brokers' credentials.
    #[error(
        "ZooKeeper refused the change of {0}: only the cluster's brokers may change it (sessions with their zookeeper.credentials; this one has none or others)"
    )]
    NotAuthorised(String),
    /// Any other ZooKeeper error.
    #[error("ZooKeeper error on {path}: {source}")]
    Zk {
        /// The znode.
        path: String,
        /// The error.
        #[source]
        source: zk::Error,
    },
}

impl CoordError {
    pub(super) fn from_zk(path: &str, e: zk::Error) -> Self {
        match e {
            zk::Error::SessionExpired => Self::SessionExpired,
            zk::Error::NoNode => Self::NoNode(path.to_string()),
            zk::Error::NodeExists => Self::NodeExists(path.to_string()),
            zk::Error::BadVersion => Self::BadVersion(path.to_string()),
            zk::Error::NoAuth => Self::NotAuthorised(path.to_string()),
            source => Self::Zk {
                path: path.to_string(),
                source,
            },
        }
    }
}

/// Result with [`CoordError`].
pub type Result<T> = std::result::Result<T, CoordError>;
