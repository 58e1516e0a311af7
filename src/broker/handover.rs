//! The broker's side of a clean handover (see `replica::handover`): the `PrepareHandover`
//! request from the controller, and taking the partition back when the controller never names
//! the new leader. Taking it back is a compare-and-set of the state znode as ZooKeeper holds it,
//! unchanged: it fails if the controller's write landed, and once it succeeds the controller's
//! (a compare-and-set on the version it read before asking) can no longer land.

use super::Inner;
use crate::coord::CoordError;
use crate::replica::{Replica, ReplicaError};
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
/// new role, or until it takes the partition back after [`HOLD`].
pub(super) async fn prepare(
    inner: &Arc<Inner>,
    replica: &Arc<Replica>,
    to: u32,
    epoch: u32,
    wait: Duration,
) -> Result<u64, ReplicaError> {
    let leo = replica
        .prepare_handover(to, epoch, wait.min(MAX_WAIT))
        .await?;
    let (inner, replica) = (Arc::clone(inner), Arc::clone(replica));
    tokio::spawn(async move { take_back_if_not_named(inner, replica, epoch).await });
    Ok(leo)
}

/// After [`HOLD`], while the replica still hands over in `epoch`: if ZooKeeper still names this
/// broker leader in `epoch`, take the partition back.
async fn take_back_if_not_named(inner: Arc<Inner>, replica: Arc<Replica>, epoch: u32) {
    let p = replica.config().partition;
    tokio::select! {
        _ = tokio::time::sleep(HOLD) => {}
        _ = inner.shutdown.cancelled() => return,
    }
    while replica.handing_over().is_some() {
        let Some(coord) = inner.current_session() else {
            return; // The session is gone: the replica is fenced anyway.
        };
        let outcome = match coord.partition_state(p).await {
            Ok(Some((state, version)))
                if state.leader() == Some(inner.id()) && state.leader_epoch == epoch =>
            {
                coord.write_state_cas(p, &state, version).await.map(Some)
            }
            // ZooKeeper names another leader or epoch: the state watch brings the new role.
            Ok(_) => return,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(Some(version)) => {
                if replica.end_handover(epoch, Some(version)) {
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
