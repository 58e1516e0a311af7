//! The broker's side of a clean handover (see `replica::handover`): the `PrepareHandover`
//! request from the controller, and taking the partition back when the controller never names
//! the new leader. Taking it back is a compare-and-set of the state znode as ZooKeeper holds it,
//! unchanged: it fails if the controller's write landed, and once it succeeds the controller's
//! (a compare-and-set on the version it read before asking) can no longer land.

use super::Inner;
use crate::coord::CoordError;
use crate::replica::{Attempt, Membership, Replica, ReplicaError};
use std::sync::Arc;
use std::time::Duration;

/// How long a leader that handed a partition over waits for ZooKeeper to name the new leader
/// before it checks, and takes the partition back if ZooKeeper still names it.
pub const HOLD: Duration = Duration::from_secs(2);
/// Between checks while ZooKeeper does not answer.
const RETRY: Duration = Duration::from_millis(250);
/// The longest a leader waits for the new one to catch up.
pub const MAX_WAIT: Duration = Duration::from_secs(3);

/// Serves `PrepareHandover`: on success the replica takes no client request until it is told its
/// new role, or until it takes the partition back after [`HOLD`]. The attempt runs in a task of
/// its own, so a controller that dies mid-wait (dropping this request) cannot leave the replica
/// refusing clients: the attempt still ends, by its timeout or by the take-back.
pub(super) async fn prepare(
    inner: &Arc<Inner>,
    replica: &Arc<Replica>,
    to: u32,
    epoch: u32,
    wait: Duration,
) -> Result<u64, ReplicaError> {
    let (broker, partition) = (inner.id(), replica.config().partition);
    let (inner, replica) = (Arc::clone(inner), Arc::clone(replica));
    let attempt = tokio::spawn(async move {
        let (leo, attempt) = replica
            .prepare_handover(to, epoch, wait.min(MAX_WAIT))
            .await?;
        tokio::spawn(take_back_if_not_named(inner, replica, epoch, attempt));
        Ok(leo)
    });
    match attempt.await {
        Ok(r) => r,
        // The task panicked or the broker is stopping: no handover (the controller skips it).
        Err(_) => Err(ReplicaError::NotLeader {
            broker,
            partition,
            leader: None,
        }),
    }
}

/// After [`HOLD`], while `attempt` is still in force: if ZooKeeper still names this broker
/// leader in `epoch`, take the partition back.
async fn take_back_if_not_named(
    inner: Arc<Inner>,
    replica: Arc<Replica>,
    epoch: u32,
    attempt: Attempt,
) {
    let p = replica.config().partition;
    tokio::select! {
        _ = tokio::time::sleep(HOLD) => {}
        _ = inner.shutdown.cancelled() => return,
    }
    while replica.handing_over() == Some(attempt) {
        let Some(coord) = inner.current_session() else {
            return; // The session is gone: the replica is fenced anyway.
        };
        let outcome = match coord.partition_state(p).await {
            Ok(Some((state, version)))
                if state.leader() == Some(inner.id()) && state.leader_epoch == epoch =>
            {
                coord
                    .write_state_cas(p, &state, version)
                    .await
                    .map(|v| Some((state, v)))
            }
            // ZooKeeper names another leader or epoch: the state watch brings the new role.
            Ok(_) => return,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(Some((state, version))) => {
                let members = Membership {
                    isr: state.isr,
                    eligible: state.eligible,
                    broker_epochs: state.broker_epochs,
                };
                if replica.take_back(attempt, epoch, members, version) {
                    inner.events.emit(
                        crate::events::EventKind::RoleChange,
                        Some(p),
                        format!(
                            "the controller did not name the new leader within {HOLD:?}; took partition {p} back (state version {version}) and takes client requests again"
                        ),
                    );
                }
                return;
            }
            Ok(None) => return,
            // The controller's write landed between the read and this one: read again.
            Err(CoordError::BadVersion(_)) => continue,
            Err(e) => {
                tracing::debug!(partition = p, error = %e, "taking a handed-over partition back");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}
