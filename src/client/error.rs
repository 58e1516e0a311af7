//! What a client call can end in, and how a failed attempt is read: whether it certainly never
//! reached the broker (so it may be retried), and what a refused write within a batch means.

use crate::rpc::{self, Reason};
use std::time::Duration;

/// Why a command failed. The text is what a person reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No broker leads the key's partition, even after waiting.
    #[error(
        "no leader available for partition {partition} (waited {waited:?}); the partition may be offline (start its brokers again), or ZooKeeper unreachable or without a quorum (no leader can be elected without it)"
    )]
    NoLeader {
        /// The partition.
        partition: u32,
        /// How long we waited.
        waited: Duration,
    },
    /// acks=all refused: too few in-sync replicas. Nothing was written.
    #[error("{0}")]
    NotEnoughReplicas(String),
    /// The write may or may not have been committed.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// The key's latest write is not committed yet.
    #[error("{0}")]
    NotCommitted(String),
    /// Bad arguments.
    #[error("{0}")]
    InvalidArgument(String),
    /// No broker or ZooKeeper could be reached.
    #[error("{0}")]
    Unavailable(String),
    /// Any other error a broker reported.
    #[error("{0}")]
    Server(String),
}

impl ClientError {
    /// True when a write may or may not have taken effect.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::OutcomeUnknown(_))
    }

    /// A short machine-readable kind, for benchmarks and histories.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoLeader { .. } => "no_leader",
            Self::NotEnoughReplicas(_) => "not_enough_replicas",
            Self::OutcomeUnknown(_) => "outcome_unknown",
            Self::NotCommitted(_) => "not_committed",
            Self::InvalidArgument(_) => "invalid_argument",
            Self::Unavailable(_) => "unavailable",
            Self::Server(_) => "server",
        }
    }
}

/// Whether a failed attempt certainly never reached the broker: the connection could not even
/// be made, or it closed while the request still waited to be sent (hyper cancels a request it
/// never took off its queue, and only such a one). Any other transport failure (reset, broken
/// pipe, a gRPC cancel) may have come after the broker received the request.
pub(super) fn never_arrived(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if e.downcast_ref::<tonic::ConnectError>().is_some()
            || e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_canceled)
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// `message` with a hint when it is what a TLS port says to a plaintext client (an HTTP/2
/// protocol error: the TLS alert is not HTTP/2) or a plaintext port to a TLS client.
pub(super) fn with_tls_hint(message: &str, tls: bool) -> String {
    if !tls && message.contains("h2 protocol error") {
        format!("{message} (is the broker's client port TLS? give the cluster's CA with --tls-ca)")
    } else if tls && message.contains("InvalidContentType") {
        format!("{message} (the broker's client port is not TLS: leave out --tls-ca)")
    } else {
        message.to_string()
    }
}

/// One write's failure within an answered batch, in the words `call` gives a whole request's:
/// TIMEOUT (appended, not acknowledged) is an unknown outcome; the rest were not written.
pub(super) fn write_error(status: &tonic::Status) -> ClientError {
    let msg = status.message().to_string();
    match rpc::reason_of(status) {
        Some(Reason::Timeout) => ClientError::OutcomeUnknown(msg),
        Some(Reason::NotEnoughReplicas) => ClientError::NotEnoughReplicas(msg),
        Some(Reason::NotCommitted) => ClientError::NotCommitted(msg),
        Some(Reason::InvalidArgument) => ClientError::InvalidArgument(msg),
        Some(Reason::NotLeader) => ClientError::Unavailable(msg),
        _ => ClientError::Server(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_connect_proves_a_request_never_arrived() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let connect = tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(refused))));
        assert_eq!(connect.code(), tonic::Code::Unavailable);
        assert!(never_arrived(&connect));
        let reset = tonic::Status::unavailable("connection reset by peer");
        assert!(!never_arrived(&reset));
        let cancelled = tonic::Status::cancelled("timeout expired");
        assert!(!never_arrived(&cancelled));
    }
}
