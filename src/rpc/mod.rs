//! Generated gRPC code and the conversions around it: error reasons carried in status metadata.
//! No logic lives here.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("simplekv");

mod dial;
pub use dial::{CONNECT_TIMEOUT, Dialer};

use tonic::metadata::MetadataValue;

/// Metadata key holding the machine-readable reason of an error status.
pub const REASON_KEY: &str = "x-simplekv-reason";
/// Metadata key holding the current leader's kv address (with `NOT_LEADER`).
pub const LEADER_KEY: &str = "x-simplekv-leader";

/// The reason a failed write of a batch carries when the failure has no [`Reason`] (a storage
/// error on the broker).
pub const INTERNAL_REASON: &str = "INTERNAL";

/// Why a request failed, as carried on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// This broker does not lead the partition (the leader's address may be attached).
    NotLeader,
    /// acks=all and the ISR is smaller than `min_insync_replicas`; nothing was written.
    NotEnoughReplicas,
    /// The outcome is unknown: the write may or may not have been committed.
    Timeout,
    /// Bad request arguments.
    InvalidArgument,
    /// The key's latest record is not yet committed and did not become so in time.
    NotCommitted,
    /// A fetch or epoch request carried a stale or future leader epoch.
    Fenced,
    /// A fetch offset beyond the leader's log end.
    OffsetOutOfRange,
}

impl Reason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotLeader => "NOT_LEADER",
            Self::NotEnoughReplicas => "NOT_ENOUGH_REPLICAS",
            Self::Timeout => "TIMEOUT",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::NotCommitted => "NOT_COMMITTED",
            Self::Fenced => "FENCED",
            Self::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::NotLeader,
            Self::NotEnoughReplicas,
            Self::Timeout,
            Self::InvalidArgument,
            Self::NotCommitted,
            Self::Fenced,
            Self::OffsetOutOfRange,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    fn code(self) -> tonic::Code {
        match self {
            Self::NotLeader | Self::Fenced => tonic::Code::FailedPrecondition,
            Self::NotEnoughReplicas | Self::NotCommitted => tonic::Code::Unavailable,
            Self::Timeout => tonic::Code::DeadlineExceeded,
            Self::InvalidArgument => tonic::Code::InvalidArgument,
            Self::OffsetOutOfRange => tonic::Code::OutOfRange,
        }
    }
}

/// A status carrying `reason`, a message, and optionally the leader's address.
pub fn status(reason: Reason, message: impl Into<String>, leader: Option<&str>) -> tonic::Status {
    let mut s = tonic::Status::new(reason.code(), message);
    if let Ok(v) = MetadataValue::try_from(reason.as_str()) {
        s.metadata_mut().insert(REASON_KEY, v);
    }
    if let Some(addr) = leader
        && let Ok(v) = MetadataValue::try_from(addr)
    {
        s.metadata_mut().insert(LEADER_KEY, v);
    }
    s
}

/// The reason a status carries, if any.
pub fn reason_of(status: &tonic::Status) -> Option<Reason> {
    status
        .metadata()
        .get(REASON_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(Reason::parse)
}

/// The leader address a `NOT_LEADER` status carries, if any.
pub fn leader_of(status: &tonic::Status) -> Option<String> {
    status
        .metadata()
        .get(LEADER_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_survive_a_round_trip_through_a_status() {
        let s = status(Reason::NotLeader, "not the leader", Some("127.0.0.1:9"));
        assert_eq!(reason_of(&s), Some(Reason::NotLeader));
        assert_eq!(leader_of(&s).as_deref(), Some("127.0.0.1:9"));
        assert_eq!(reason_of(&tonic::Status::internal("x")), None);
    }
}
