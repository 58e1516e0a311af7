//! The controller: one broker at a time, elected through `/controller` with an epoch bumped in
//! `/controller_epoch`. It watches the live brokers and, whenever a partition's leader is gone,
//! elects a new one among the live ISR members by comparing (last leader epoch, log end offset),
//! ties broken by preferred order. With no live ISR member the partition goes offline, unless
//! unclean leader election is enabled. Every write is fenced by the controller epoch.

use super::Inner;
use super::peers::peer_addr;
use crate::coord::{BrokerInfo, ControllerLease, Coord, CoordError, PartitionState};
use crate::events::EventKind;
use crate::rpc::ReplicaStatusRequest;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Competes for the controller role for as long as the session lives.
pub(super) async fn run(inner: Arc<Inner>, coord: Coord, token: CancellationToken) {
    loop {
        if token.is_cancelled() {
            return;
        }
        match coord.try_elect_controller(inner.id()).await {
            Ok(Some(lease)) => {
                *inner.controller.lock().unwrap_or_else(|p| p.into_inner()) = Some(lease);
                inner.events.emit(
                    EventKind::ControllerElected,
                    None,
                    format!("became controller (controller epoch {})", lease.epoch),
                );
                let outcome = control(&inner, &coord, lease, &token).await;
                *inner.controller.lock().unwrap_or_else(|p| p.into_inner()) = None;
                match outcome {
                    Err(CoordError::Fenced) => inner.events.emit(
                        EventKind::ControllerElected,
                        None,
                        format!("stopped controlling: fenced, a newer controller epoch exists (ours was {})", lease.epoch),
                    ),
                    Err(CoordError::SessionExpired) => return,
                    Err(e) => {
                        tracing::warn!(broker = inner.id(), error = %e, "controller error; resigning");
                        let _ = coord.resign_controller().await;
                    }
                    Ok(()) => return,
                }
            }
            Ok(None) => {
                tokio::select! {
                    r = coord.watch_controller(Duration::from_secs(5)) => {
                        if let Err(CoordError::SessionExpired) = r { return; }
                        if r.is_err() { tokio::time::sleep(Duration::from_millis(200)).await; }
                    }
                    _ = token.cancelled() => return,
                }
            }
            Err(CoordError::SessionExpired) => return,
            Err(e) => {
                tracing::debug!(broker = inner.id(), error = %e, "controller election");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The controller's work: reconcile every partition whenever the set of live brokers changes (and
/// every couple of seconds, in case a candidate did not answer).
async fn control(
    inner: &Arc<Inner>,
    coord: &Coord,
    lease: ControllerLease,
    token: &CancellationToken,
) -> Result<(), CoordError> {
    for p in 0..inner.spec.partitions {
        coord.ensure_replicas(p, &inner.spec.replicas_of(p)).await?;
    }
    let mut first_seen = HashMap::new();
    loop {
        let (live, watcher) = coord.watch_brokers().await?;
        for p in 0..inner.spec.partitions {
            reconcile(inner, coord, lease, p, &live, &mut first_seen).await?;
        }
        tokio::select! {
            _ = watcher.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = token.cancelled() => return Ok(()),
        }
    }
}

/// Elects a leader for `p` if it has none alive.
async fn reconcile(
    inner: &Arc<Inner>,
    coord: &Coord,
    lease: ControllerLease,
    p: u32,
    live: &BTreeMap<u32, BrokerInfo>,
    first_seen: &mut HashMap<u32, Instant>,
) -> Result<(), CoordError> {
    let replicas = coord
        .replicas(p)
        .await?
        .unwrap_or_else(|| inner.spec.replicas_of(p));
    let Some((state, version)) = coord.partition_state(p).await? else {
        // A new partition: the first live replica in preferred order leads, all live ones in sync.
        let isr: Vec<u32> = replicas
            .iter()
            .copied()
            .filter(|r| live.contains_key(r))
            .collect();
        let Some(&leader) = isr.first() else {
            return Ok(());
        };
        // Wait a little for every replica to register, so that the preferred replica leads when
        // the cluster starts together.
        let since = *first_seen.entry(p).or_insert_with(Instant::now);
        if isr.len() < replicas.len() && since.elapsed() < inner.cfg.session_timeout() * 2 {
            return Ok(());
        }
        let state = PartitionState {
            leader: leader as i32,
            leader_epoch: 0,
            isr: isr.clone(),
            controller_epoch: lease.epoch,
        };
        match coord.write_state_fenced(p, &state, None, lease).await {
            Ok(_) => inner.events.emit(
                EventKind::LeaderElected,
                Some(p),
                format!(
                    "partition {p}: broker {leader} leads from the start (epoch 0, ISR {isr:?})"
                ),
            ),
            Err(CoordError::BadVersion(_)) => {}
            Err(e) => return Err(e),
        }
        return Ok(());
    };
    if state.leader().is_some_and(|l| live.contains_key(&l)) {
        return Ok(());
    }
    let in_order = |pred: &dyn Fn(u32) -> bool| -> Vec<u32> {
        replicas.iter().copied().filter(|&r| pred(r)).collect()
    };
    let live_isr = in_order(&|r| state.isr.contains(&r) && live.contains_key(&r));
    let (candidates, unclean) = if !live_isr.is_empty() {
        (live_isr, false)
    } else if inner.spec.unclean_leader_election {
        (in_order(&|r| live.contains_key(&r)), true)
    } else {
        if state.leader != -1 {
            let offline = PartitionState {
                leader: -1,
                controller_epoch: lease.epoch,
                ..state.clone()
            };
            match coord.write_state_fenced(p, &offline, Some(version), lease).await {
                Ok(_) => inner.events.emit(
                    EventKind::LeaderElected,
                    Some(p),
                    format!(
                        "partition {p} is offline: no ISR member ({:?}) is alive and unclean leader election is disabled",
                        state.isr
                    ),
                ),
                Err(CoordError::BadVersion(_)) => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(());
    };
    if candidates.is_empty() {
        return Ok(());
    }
    let Some((leader, last_epoch, leo)) = choose_by_offsets(inner, p, &candidates).await else {
        return Ok(());
    };
    let isr = if unclean {
        vec![leader]
    } else {
        candidates.clone()
    };
    let new = PartitionState {
        leader: leader as i32,
        leader_epoch: state.leader_epoch + 1,
        isr: isr.clone(),
        controller_epoch: lease.epoch,
    };
    match coord
        .write_state_fenced(p, &new, Some(version), lease)
        .await
    {
        Ok(_) => {
            let how = if unclean {
                "UNCLEAN election: no ISR member alive, acknowledged writes may be lost;"
                    .to_string()
            } else {
                format!("chosen among live ISR {candidates:?} by (last epoch, LEO);")
            };
            inner.events.emit(
                EventKind::LeaderElected,
                Some(p),
                format!(
                    "partition {p}: broker {leader} elected leader in epoch {} ({how} it had epoch {last_epoch}, LEO {leo}); ISR {isr:?}",
                    new.leader_epoch
                ),
            );
            Ok(())
        }
        Err(CoordError::BadVersion(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Asks each candidate for its (last epoch, LEO) of `p` and returns the best, ties by the
/// candidates' order (preferred order). Candidates that do not answer are passed over.
async fn choose_by_offsets(inner: &Inner, p: u32, candidates: &[u32]) -> Option<(u32, u32, u64)> {
    let mut best: Option<(u32, u32, u64)> = None;
    for &c in candidates {
        let Some(mut client) = peer_addr(inner, c).await.and_then(|a| inner.peers.get(&a)) else {
            continue;
        };
        let answer = tokio::time::timeout(
            Duration::from_secs(2),
            client.replica_status(ReplicaStatusRequest {}),
        )
        .await;
        let Ok(Ok(resp)) = answer else {
            tracing::debug!(
                candidate = c,
                partition = p,
                "candidate did not answer ReplicaStatus"
            );
            continue;
        };
        let Some(r) = resp
            .into_inner()
            .replicas
            .into_iter()
            .find(|r| r.partition == p)
        else {
            continue;
        };
        let epoch = if r.has_epoch { r.last_epoch } else { 0 };
        let better = best.is_none_or(|(_, e, l)| (epoch, r.log_end_offset) > (e, l));
        if better {
            best = Some((c, epoch, r.log_end_offset));
        }
    }
    best
}
