//! The controller: one broker at a time, elected through `/controller` with an epoch bumped in
//! `/controller_epoch`. It watches the live brokers (with their broker epochs) and, whenever a
//! partition's leader is gone or came back as a new incarnation, elects a new one among the
//! current ISR members by comparing (last leader epoch, log end offset), ties broken by preferred
//! order; dead or restarted followers leave the ISR at once. With no ISR member alive the
//! partition goes offline, unless unclean leader election is enabled. The rules are pure
//! functions in `election`; every write here is fenced by the controller epoch.

use super::Inner;
use super::election::{self, Answer, Decision, Live, Tier};
use super::peers::peer;
use super::preferred;
use crate::coord::{BrokerInfo, ControllerLease, Coord, CoordError};
use crate::events::EventKind;
use crate::rpc::{PrepareHandoverRequest as ReplicaHandover, ReplicaStatusRequest};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a broker that is not controller waits on the controller znode before looking again.
const CONTROLLER_WATCH: Duration = Duration::from_secs(5);
/// Pause before trying the election again after a ZooKeeper error.
const RETRY: Duration = Duration::from_millis(200);
/// The controller reconciles every partition at least this often (a candidate may not have
/// answered the last time).
const RECONCILE_EVERY: Duration = Duration::from_secs(1);

/// Competes for the controller role for as long as the session lives.
pub(super) async fn run(inner: Arc<Inner>, coord: Coord, token: CancellationToken) {
    loop {
        if token.is_cancelled() {
            return;
        }
        match coord.try_elect_controller(inner.id()).await {
            Ok(Some(lease)) => {
                *inner.controller.lock() = Some(lease);
                inner.events.emit(
                    EventKind::ControllerElected,
                    None,
                    format!("became controller (controller epoch {})", lease.epoch),
                );
                let outcome = control(&inner, &coord, lease, &token).await;
                *inner.controller.lock() = None;
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
                    r = coord.watch_controller(CONTROLLER_WATCH) => {
                        if let Err(CoordError::SessionExpired) = r { return; }
                        if r.is_err() { tokio::time::sleep(RETRY).await; }
                    }
                    _ = token.cancelled() => return,
                }
            }
            Err(CoordError::SessionExpired) => return,
            Err(e) => {
                tracing::debug!(broker = inner.id(), error = %e, "controller election");
                tokio::time::sleep(RETRY).await;
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
    let interval = inner.cfg.rebalance_interval();
    let mut next_check = interval.map(|i| Instant::now() + i);
    loop {
        let (live, watcher) = coord.watch_brokers().await?;
        let (asked, rebalance_watch) = coord.watch_rebalance_request().await?;
        for p in 0..inner.spec.partitions {
            reconcile(inner, coord, lease, p, &live, &mut first_seen).await?;
        }
        let due = next_check.is_some_and(|t| Instant::now() >= t);
        if asked || due {
            let why = match interval {
                Some(i) if !asked => {
                    format!("automatic rebalance, checked every {} s", i.as_secs_f64())
                }
                _ => "asked by `rebalance`".to_string(),
            };
            // Each handover may wait for a follower to catch up: they go side by side.
            let passes =
                (0..inner.spec.partitions).map(|p| hand_back(inner, coord, lease, p, &live, &why));
            for r in futures_util::future::join_all(passes).await {
                r?;
            }
            if asked {
                coord.clear_rebalance_request().await?;
            }
            next_check = interval.map(|i| Instant::now() + i);
        }
        tokio::select! {
            _ = watcher.changed() => {}
            _ = rebalance_watch.changed() => {}
            _ = tokio::time::sleep(RECONCILE_EVERY) => {}
            _ = token.cancelled() => return Ok(()),
        }
    }
}

/// Kafka's preferred-replica election for partition `p`: when its first replica is a current
/// ISR member and another current broker leads, leadership goes back to the first replica in a
/// new leader epoch, the ISR unchanged (see [`preferred::preferred_blocked`]). The old leader
/// learns it from ZooKeeper and follows, cutting any uncommitted tail the new leader lacks.
async fn hand_back(
    inner: &Arc<Inner>,
    coord: &Coord,
    lease: ControllerLease,
    p: u32,
    brokers: &BTreeMap<u32, BrokerInfo>,
    why: &str,
) -> Result<(), CoordError> {
    let (replicas, live) = replicas_and_live(inner, coord, p, brokers).await?;
    let Some((old, version)) = coord.partition_state(p).await? else {
        return Ok(());
    };
    if let Some(blocked) = preferred::preferred_blocked(&old, &replicas, &live) {
        tracing::debug!(partition = p, %blocked, "leadership stays");
        return Ok(());
    }
    let (Some(&to), Some(from)) = (replicas.first(), old.leader()) else {
        return Ok(());
    };
    // First the old leader stops taking requests and waits until `to` holds its whole log; the
    // state is written only if it agrees, and only if nothing changed it meanwhile (the
    // compare-and-set on `version`, which the old leader's taking back would also move).
    let ready = async {
        let mut client = peer(inner, from).await?;
        let req = ReplicaHandover {
            partition: p,
            to,
            leader_epoch: old.leader_epoch,
            wait_ms: super::handover::MAX_WAIT.as_millis() as u32,
        };
        let wait = super::handover::MAX_WAIT + inner.cfg.request_timeout();
        match tokio::time::timeout(wait, client.prepare_handover(req)).await {
            Ok(Ok(r)) => Some(r.into_inner().log_end_offset),
            Ok(Err(e)) => {
                tracing::debug!(partition = p, from, to, error = %e.message(), "handover refused");
                None
            }
            Err(_) => None,
        }
    };
    let Some(leo) = ready.await else {
        return Ok(());
    };
    let new = preferred::handed_over(&old, to, lease.epoch);
    let what = format!(
        "partition {p}: leadership handed back to its preferred replica, broker {to}, in epoch {} ({why}); broker {from} stopped taking requests until broker {to} held its whole log (to offset {leo}), so nothing it acknowledged is cut; ISR {:?}",
        new.leader_epoch, new.isr
    );
    write(inner, coord, lease, p, &new, Some(version), what).await
}

/// Partition `p`'s replicas (preferred first) as ZooKeeper holds them, and the live brokers
/// with their broker epochs.
async fn replicas_and_live(
    inner: &Inner,
    coord: &Coord,
    p: u32,
    brokers: &BTreeMap<u32, BrokerInfo>,
) -> Result<(Vec<u32>, Live), CoordError> {
    let replicas = coord
        .replicas(p)
        .await?
        .unwrap_or_else(|| inner.spec.replicas_of(p));
    Ok((
        replicas,
        brokers.iter().map(|(id, b)| (*id, b.epoch)).collect(),
    ))
}

/// Brings partition `p` in line with the live brokers: see [`election::decide`].
async fn reconcile(
    inner: &Arc<Inner>,
    coord: &Coord,
    lease: ControllerLease,
    p: u32,
    brokers: &BTreeMap<u32, BrokerInfo>,
    first_seen: &mut HashMap<u32, Instant>,
) -> Result<(), CoordError> {
    let (replicas, live) = replicas_and_live(inner, coord, p, brokers).await?;
    let current = coord.partition_state(p).await?;
    // Wait a little for every replica to register, so that the preferred replica leads when
    // the cluster starts together.
    let since = *first_seen.entry(p).or_insert_with(Instant::now);
    let waited = since.elapsed() >= inner.cfg.session_timeout() * 2;
    let decision = election::decide(
        current.as_ref().map(|(s, _)| s),
        &replicas,
        &live,
        inner.spec.unclean_leader_election,
        waited,
    );
    let version = current.as_ref().map(|(_, v)| *v);
    let min_isr = inner.spec.min_insync_replicas;
    let (new, what) = match (decision, current) {
        (Decision::Nothing, _) => return Ok(()),
        (Decision::Create { isr }, _) => {
            let Some(state) = election::created(&isr, &live, lease.epoch) else {
                return Ok(());
            };
            let what = format!(
                "partition {p}: broker {} leads from the start (epoch 0, ISR {isr:?})",
                state.leader
            );
            (state, what)
        }
        (Decision::ShrinkIsr { isr }, Some((old, _))) => {
            let gone: Vec<u32> = old
                .isr
                .iter()
                .copied()
                .filter(|r| !isr.contains(r))
                .collect();
            let new = election::shrunk(&old, &isr, min_isr, lease.epoch);
            let eligible = if new.eligible.is_empty() {
                String::new()
            } else {
                format!(
                    "; {:?} stay eligible to lead (below min.insync no acks=all write commits without them)",
                    new.eligible
                )
            };
            let what = format!(
                "partition {p}: ISR {:?} -> {isr:?}: broker(s) {gone:?} died or came back as a new incarnation{eligible}",
                old.isr
            );
            (new, what)
        }
        (Decision::Offline, Some((old, _))) => {
            let what = format!(
                "partition {p} is offline: no ISR member ({:?}) is alive and unclean leader election is disabled",
                old.isr
            );
            (election::offline(&old, lease.epoch), what)
        }
        (Decision::Elect { candidates, tier }, Some((old, _))) => {
            let answers = offsets_of(inner, p, &candidates, &live).await;
            let Some(usable) = election::eligible_answers(tier, &candidates, &answers) else {
                tracing::debug!(
                    partition = p,
                    ?candidates,
                    "waiting for every restarted candidate to answer"
                );
                return Ok(());
            };
            let (tier, candidates, usable) = if usable.is_empty() && tier == Tier::Restarted {
                // No complete log among the members back. With unclean election on, any live
                // replica may lead; once every member is back (all incomplete), every replica is
                // asked and the longest log anywhere leads; else wait for the members away.
                let members = election::members(&old);
                let unclean = inner.spec.unclean_leader_election;
                if !unclean && !election::may_recover(&members, &answers) {
                    if old.leader == -1 {
                        return Ok(());
                    }
                    let what = format!(
                        "partition {p} is offline: the members back ({candidates:?}) know their logs incomplete (a replaced disk or a power loss); waiting for the others of {members:?}, who may hold every committed write"
                    );
                    let offline = election::offline(&old, lease.epoch);
                    return write(inner, coord, lease, p, &offline, version, what).await;
                }
                let tier = if unclean {
                    Tier::Unclean
                } else {
                    Tier::Recovery
                };
                let all: Vec<u32> = replicas.clone();
                let live_all: Vec<u32> = all
                    .iter()
                    .copied()
                    .filter(|r| live.contains_key(r))
                    .collect();
                let asked = if unclean { live_all } else { all };
                let answers = offsets_of(inner, p, &asked, &live).await;
                let Some(usable) = election::eligible_answers(tier, &asked, &answers) else {
                    tracing::debug!(partition = p, "recovery waits for every replica to answer");
                    return Ok(());
                };
                (tier, asked, usable)
            } else {
                (tier, candidates, usable)
            };
            let Some(winner) = election::best_by_offsets(&usable) else {
                return Ok(());
            };
            let chosen = election::chosen(tier, winner, &usable, &candidates);
            let new =
                election::elected(&old, winner.id, &chosen, tier, &live, min_isr, lease.epoch);
            let how = match tier {
                Tier::Unclean => {
                    "UNCLEAN election: no ISR member alive, acknowledged writes may be lost;"
                        .to_string()
                }
                Tier::Isr => format!("chosen among the ISR {candidates:?} by (last epoch, LEO);"),
                Tier::Eligible => format!(
                    "chosen among the eligible {candidates:?}, who left the ISR below min.insync, by (last epoch, LEO);"
                ),
                Tier::Recovery => format!(
                    "every ISR and eligible member came back with an incomplete log; the longest of all replicas {candidates:?} leads, and writes none of them kept are lost;"
                ),
                Tier::Restarted => format!(
                    "no ISR or eligible member survived in its incarnation; chosen among those back, {candidates:?}, whose logs are complete, by (last epoch, LEO);"
                ),
            };
            let last = winner
                .last_epoch
                .map_or("none".to_string(), |e| e.to_string());
            let what = format!(
                "partition {p}: broker {} elected leader in epoch {} ({how} it had epoch {last}, LEO {}); ISR {:?}, eligible {:?}",
                winner.id, new.leader_epoch, winner.leo, new.isr, new.eligible
            );
            (new, what)
        }
        (_, None) => return Ok(()),
    };
    write(inner, coord, lease, p, &new, version, what).await
}

/// Writes `new` (fenced, by compare-and-set on `version`) and tells the console `what` happened.
async fn write(
    inner: &Inner,
    coord: &Coord,
    lease: ControllerLease,
    p: u32,
    new: &crate::coord::PartitionState,
    version: Option<i32>,
    what: String,
) -> Result<(), CoordError> {
    match coord.write_state_fenced(p, new, version, lease).await {
        Ok(_) => {
            inner.events.emit(EventKind::LeaderElected, Some(p), what);
            Ok(())
        }
        Err(CoordError::BadVersion(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Asks each candidate for its (last epoch, LEO) of `p`, in the candidates' order. Candidates
/// that do not answer, or answer as another incarnation than the one registered, are left out.
async fn offsets_of(inner: &Inner, p: u32, candidates: &[u32], live: &Live) -> Vec<Answer> {
    let mut answers = Vec::new();
    for &c in candidates {
        let Some(mut client) = peer(inner, c).await else {
            continue;
        };
        let answer = tokio::time::timeout(
            inner.cfg.request_timeout(),
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
        let resp = resp.into_inner();
        if live.get(&c) != Some(&resp.broker_epoch) {
            continue;
        }
        if let Some(r) = resp.replicas.into_iter().find(|r| r.partition == p) {
            answers.push(Answer {
                id: c,
                last_epoch: r.has_epoch.then_some(r.last_epoch),
                leo: r.log_end_offset,
                incomplete: r.incomplete,
            });
        }
    }
    answers
}
