//! `rebalance`: ask the controller, through ZooKeeper as Kafka's tools do, to hand each
//! partition's leadership back to its preferred replica; wait until it has; say what moved and
//! why the rest stayed. The lab's shell and `cli --zk` share it.

use super::CommandError;
use crate::broker::preferred_blocked;
use crate::coord::layout::REBALANCE;
use crate::coord::{ClusterSpec, Coord, CoordError, PartitionState};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long `rebalance` waits for a controller to take the request.
const CONTROLLER_WAIT: Duration = Duration::from_secs(30);

/// Asks for the preferred-replica elections of the cluster `spec` describes and reports them,
/// one line per partition.
pub async fn rebalance(coord: &Coord, spec: &ClusterSpec) -> Result<String, CommandError> {
    let failed = |e: CoordError| CommandError::Failed(e.to_string());
    let partitions = spec.partitions;
    let before = states(coord, partitions).await.map_err(failed)?;
    coord
        .request_rebalance()
        .await
        .map_err(|e| CommandError::Failed(format!("could not ask the controller: {e}")))?;
    let taken = coord
        .wait_absent(REBALANCE, CONTROLLER_WAIT)
        .await
        .map_err(failed)?;
    if !taken {
        return Err(CommandError::Failed(format!(
            "no controller took the request within {CONTROLLER_WAIT:?}; it waits in ZooKeeper ({REBALANCE}) for the next one"
        )));
    }
    let after = states(coord, partitions).await.map_err(failed)?;
    let live = coord
        .brokers()
        .await
        .map_err(failed)?
        .into_iter()
        .map(|(id, b)| (id, b.epoch))
        .collect();
    let mut lines = Vec::new();
    for p in 0..partitions {
        let (Some(old), Some(new)) = (before.get(&p), after.get(&p)) else {
            lines.push(format!("partition {p}: not created yet"));
            continue;
        };
        let replicas = coord
            .replicas(p)
            .await
            .map_err(failed)?
            .unwrap_or_else(|| spec.replicas_of(p));
        lines.push(
            if (old.leader, old.leader_epoch) != (new.leader, new.leader_epoch) {
                format!(
                    "partition {p}: broker {} -> broker {} (epoch {} -> {})",
                    old.leader, new.leader, old.leader_epoch, new.leader_epoch
                )
            } else {
                let why = preferred_blocked(new, &replicas, &live).map_or_else(
                    || {
                        "it did not hand over: its preferred replica did not catch up with its log in time, or the state changed meanwhile (the events say which)".to_string()
                    },
                    |b| b.to_string(),
                );
                let who = new
                    .leader()
                    .map_or("no leader".to_string(), |l| format!("broker {l}"));
                format!("partition {p}: stays with {who}: {why}")
            },
        );
    }
    Ok(lines.join("\n"))
}

async fn states(
    coord: &Coord,
    partitions: u32,
) -> Result<BTreeMap<u32, PartitionState>, CoordError> {
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        if let Some((s, _)) = coord.partition_state(p).await? {
            out.insert(p, s);
        }
    }
    Ok(out)
}
