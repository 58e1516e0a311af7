//! Why a command failed. Every variant prints as the one line the shell, `cli` and scenarios
//! show after `error:`; the variant says what kind of failure it was, so a caller can tell a
//! mistyped command from a cluster that said no, a wait that ran out, or a check that failed.

use crate::client::ClientError;
use std::time::Duration;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The line is not a command the language knows, or its arguments are wrong (DESIGN §3).
    #[error("{0}")]
    Usage(String),
    /// The command needs the lab's brokers, and this session (`cli`) has none.
    #[error("'{0}' works only in the lab (simplekv-lab, or simplekv-lab run SCENARIO)")]
    LabOnly(&'static str),
    /// A key-value command failed; the client's error says whether it may have taken effect.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// What the command names does not exist, or the lab's state refuses it now (a broker
    /// already down, no leader to kill, a load already running).
    #[error("{0}")]
    Refused(String),
    /// A `wait` (or `wait load`) ran out of time. A command that gives up waiting in its own
    /// words (`rebalance` with no controller to take it) is `Failed`.
    #[error("timed out after {waited:?} waiting for {what}")]
    TimedOut {
        /// How long it waited.
        waited: Duration,
        /// What it waited for.
        what: String,
    },
    /// A `check` found what it checks broken: the line says what.
    #[error("{0}")]
    CheckFailed(String),
    /// A broker or ZooKeeper server could not be stopped, started or changed (the lab's own
    /// error, kept whole; this module does not depend on the lab).
    #[error(transparent)]
    Cluster(Box<dyn std::error::Error + Send + Sync>),
    /// Anything else the lab could not carry out (a file it could not write, a checker or load
    /// that failed, ZooKeeper it could not ask).
    #[error("{0}")]
    Failed(String),
}

impl CommandError {
    /// A wait for `what` that gave up after `waited`.
    pub fn timed_out(waited: Duration, what: impl Into<String>) -> Self {
        Self::TimedOut {
            waited,
            what: what.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_prints_as_its_one_line() {
        assert_eq!(
            CommandError::LabOnly("kill").to_string(),
            "'kill' works only in the lab (simplekv-lab, or simplekv-lab run SCENARIO)"
        );
        assert_eq!(
            CommandError::timed_out(Duration::from_secs(5), "a leader change").to_string(),
            "timed out after 5s waiting for a leader change"
        );
        assert_eq!(
            CommandError::Client(ClientError::InvalidArgument("key too long".into())).to_string(),
            ClientError::InvalidArgument("key too long".into()).to_string()
        );
        assert!(!CommandError::Usage("x".into()).to_string().contains('\n'));
    }
}
