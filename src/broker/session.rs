//! The ZooKeeper session loop: connect, register, watch the brokers and every partition state,
//! run the controller election; on expiry step down at once and start over with a new session.

use super::{Incarnation, Inner, SessionStatus, controller, fetcher};
use crate::coord::{
    Coord, CoordError, PartitionState, SessionState, follow_brokers, follow_partition_state, layout,
};
use crate::events::EventKind;
use crate::replica::{Membership, lease_end, renew_period};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The first wait after ZooKeeper refused a session; it doubles up to [`CONNECT_BACKOFF_MAX`].
const CONNECT_BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between session attempts.
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// The wait before a new session after a failed registration.
const REGISTER_RETRY: Duration = Duration::from_millis(200);

/// Runs until the broker shuts down. `first` is the session opened at start-up.
pub(super) async fn run(inner: Arc<Inner>, mut first: Option<Coord>) {
    let mut backoff = CONNECT_BACKOFF_FIRST;
    loop {
        if inner.shutdown.is_cancelled() {
            return;
        }
        let coord = match first.take() {
            Some(c) => c,
            None => {
                inner.set_session_status(SessionStatus::Connecting);
                match inner.cfg.connect_zk().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(broker = inner.id(), error = %e, "ZooKeeper connect failed");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = inner.shutdown.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(CONNECT_BACKOFF_MAX);
                        continue;
                    }
                }
            }
        };
        backoff = CONNECT_BACKOFF_FIRST;
        let broker_epoch = match register(&inner, &coord).await {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(broker = inner.id(), error = %e, "registration failed; new session");
                tokio::time::sleep(REGISTER_RETRY).await;
                continue;
            }
        };
        let session_id = coord.session_id();
        *inner.incarnation() = Some(Incarnation {
            session_id,
            broker_epoch,
        });
        inner.session.send_replace(Some(coord.clone()));
        inner.set_session_status(SessionStatus::Connected);
        inner.events.emit(
            EventKind::Session,
            None,
            format!(
                "registered in ZooKeeper (session {session_id:#x}, broker epoch {broker_epoch})"
            ),
        );
        let token = inner.shutdown.child_token();
        tokio::spawn(renew_lease(
            Arc::clone(&inner),
            coord.clone(),
            token.clone(),
        ));
        tokio::spawn(watch_brokers(
            Arc::clone(&inner),
            coord.clone(),
            token.clone(),
        ));
        for p in 0..inner.spec.partitions {
            tokio::spawn(watch_state(
                Arc::clone(&inner),
                coord.clone(),
                p,
                token.clone(),
            ));
        }
        tokio::spawn(controller::run(
            Arc::clone(&inner),
            coord.clone(),
            token.clone(),
        ));

        let mut states = coord.state_watcher();
        let lost = loop {
            tokio::select! {
                state = states.changed() => match state {
                    SessionState::Disconnected => {
                        inner.set_session_status(SessionStatus::Disconnected);
                        inner.events.emit(EventKind::Session, None, "lost the ZooKeeper connection; the session may still be alive");
                    }
                    SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                        inner.set_session_status(SessionStatus::Connected);
                        inner.events.emit(EventKind::Session, None, "reconnected to ZooKeeper within the session");
                    }
                    SessionState::Expired | SessionState::AuthFailed | SessionState::Closed => break true,
                },
                _ = inner.shutdown.cancelled() => break false,
            }
        };
        token.cancel();
        inner.session.send_replace(None);
        drop(coord);
        inner.step_down("the ZooKeeper session expired");
        if !lost {
            return;
        }
        inner.set_session_status(SessionStatus::Expired);
        inner.events.emit(
            EventKind::Session,
            None,
            "ZooKeeper session expired: stopped leading and controlling; opening a new session",
        );
    }
}

/// Keeps the leader lease of this session: a cheap ZooKeeper round trip several times per lease,
/// each answer extending it (see `replica::lease`). Stops with the session.
async fn renew_lease(inner: Arc<Inner>, coord: Coord, token: CancellationToken) {
    let session_id = coord.session_id();
    let timeout = coord.session_timeout();
    loop {
        let sent = Instant::now();
        match coord.ping().await {
            Ok(()) => inner.renew_lease(session_id, lease_end(sent, timeout)),
            Err(CoordError::SessionExpired) => return,
            Err(e) => tracing::debug!(broker = inner.id(), error = %e, "lease renewal failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(renew_period(timeout)) => {}
            _ = token.cancelled() => return,
        }
    }
}

/// Creates `/brokers/ids/<id>`, waiting for an older session of the same broker to expire.
/// Returns the broker epoch.
async fn register(inner: &Inner, coord: &Coord) -> Result<i64, CoordError> {
    let info = inner.info();
    let mut announced = false;
    loop {
        match coord.register_broker(inner.id(), &info).await {
            Ok(epoch) => return Ok(epoch),
            Err(CoordError::NodeExists(_)) => {
                if let Some(epoch) = coord.own_registration(inner.id()).await? {
                    return Ok(epoch);
                }
                if !announced {
                    announced = true;
                    inner.set_session_status(SessionStatus::WaitingForOldSession);
                    inner.events.emit(
                        EventKind::Session,
                        None,
                        "waiting for this broker's previous ZooKeeper session to expire before registering",
                    );
                }
                let path = layout::broker_path(inner.id());
                let wait = coord.session_timeout() * 3;
                tokio::select! {
                    r = coord.wait_absent(&path, wait) => { r?; }
                    _ = inner.shutdown.cancelled() => return Err(CoordError::SessionExpired),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Keeps the broker list in the metadata current.
async fn watch_brokers(inner: Arc<Inner>, coord: Coord, token: CancellationToken) {
    follow_brokers(&coord, &token, |brokers| {
        inner.update_metadata(|m| m.brokers = brokers)
    })
    .await;
}

/// Keeps one partition's state current and applies it to the local replica.
async fn watch_state(inner: Arc<Inner>, coord: Coord, p: u32, token: CancellationToken) {
    let session_id = coord.session_id();
    follow_partition_state(&coord, p, &token, |state| {
        if let Some((state, version)) = state {
            inner.update_metadata(|m| {
                let newer = m.states.get(&p).is_none_or(|(_, v)| *v <= version);
                if newer {
                    m.states.insert(p, (state.clone(), version));
                }
            });
            apply_state(&inner, session_id, p, &state, version);
        }
    })
    .await;
}

/// Makes the local replica of `p` play the role the state gives it, if `session_id` is still the
/// session of this broker's current registration. A state naming this broker leader with a
/// broker epoch other than its current one was given to an earlier incarnation: this one takes
/// no role until the controller elects again.
fn apply_state(inner: &Arc<Inner>, session_id: i64, p: u32, state: &PartitionState, version: i32) {
    let Some(replica) = inner.replicas.get(&p) else {
        return;
    };
    let incarnation = inner.incarnation();
    let Some(me) = *incarnation else {
        return;
    };
    if me.session_id != session_id || inner.shutdown.is_cancelled() {
        return;
    }
    match state.leader() {
        Some(l) if l == inner.id() && state.is_current(l, me.broker_epoch) => {
            fetcher::stop(inner, p);
            let members = Membership {
                isr: state.isr.clone(),
                eligible: state.eligible.clone(),
                broker_epochs: state.broker_epochs.clone(),
            };
            replica.become_leader(state.leader_epoch, members, version);
        }
        Some(l) if l == inner.id() => {
            fetcher::stop(inner, p);
            replica.become_offline(
                state.leader_epoch,
                &format!(
                    "ZooKeeper names this broker leader in epoch {} but for an earlier incarnation; waiting for a new election",
                    state.leader_epoch
                ),
            );
        }
        Some(l) => {
            if replica.become_follower(l, state.leader_epoch) {
                fetcher::start(inner, Arc::clone(replica));
            }
        }
        None => {
            fetcher::stop(inner, p);
            replica.become_offline(state.leader_epoch, "the partition has no leader");
        }
    }
}
