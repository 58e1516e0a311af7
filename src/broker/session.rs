//! The ZooKeeper session loop: connect, register, watch the brokers and every partition state,
//! run the controller election; on expiry step down at once and start over with a new session.

use super::{Inner, SessionStatus, controller, fetcher};
use crate::coord::{
    Coord, CoordError, PartitionState, SessionState, follow_brokers, follow_partition_state, layout,
};
use crate::events::EventKind;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs until the broker shuts down. `first` is the session opened at start-up.
pub(super) async fn run(inner: Arc<Inner>, mut first: Option<Coord>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if inner.shutdown.is_cancelled() {
            return;
        }
        let coord = match first.take() {
            Some(c) => c,
            None => {
                inner.set_session_status(SessionStatus::Connecting);
                match Coord::connect(&inner.cfg.zookeeper.connect, inner.cfg.session_timeout())
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(broker = inner.id(), error = %e, "ZooKeeper connect failed");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = inner.shutdown.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue;
                    }
                }
            }
        };
        backoff = Duration::from_millis(100);
        match register(&inner, &coord).await {
            Ok(()) => {}
            Err(e) => {
                tracing::debug!(broker = inner.id(), error = %e, "registration failed; new session");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        inner.session.send_replace(Some(coord.clone()));
        inner.set_session_status(SessionStatus::Connected);
        inner.events.emit(
            EventKind::Session,
            None,
            format!(
                "registered in ZooKeeper (session {:#x})",
                coord.session_id()
            ),
        );
        let token = inner.shutdown.child_token();
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

/// Creates `/brokers/ids/<id>`, waiting for an older session of the same broker to expire.
async fn register(inner: &Inner, coord: &Coord) -> Result<(), CoordError> {
    let info = inner.info();
    let mut announced = false;
    loop {
        match coord.register_broker(inner.id(), &info).await {
            Ok(()) => return Ok(()),
            Err(CoordError::NodeExists(_)) => {
                if coord.owns_registration(inner.id()).await? {
                    return Ok(());
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
    follow_partition_state(&coord, p, &token, |state| {
        if let Some((state, version)) = state {
            inner.update_metadata(|m| {
                m.states.insert(p, (state.clone(), version));
            });
            apply_state(&inner, p, &state, version);
        }
    })
    .await;
}

/// Makes the local replica of `p` play the role the state gives it.
pub(super) fn apply_state(inner: &Arc<Inner>, p: u32, state: &PartitionState, version: i32) {
    let Some(replica) = inner.replicas.get(&p) else {
        return;
    };
    if inner.shutdown.is_cancelled() {
        return;
    }
    match state.leader() {
        Some(l) if l == inner.id() => {
            fetcher::stop(inner, p);
            replica.become_leader(state.leader_epoch, state.isr.clone(), version);
        }
        Some(l) => {
            if replica.become_follower(l, state.leader_epoch) {
                fetcher::start(inner, Arc::clone(replica));
            }
        }
        None => {
            fetcher::stop(inner, p);
            replica.become_offline(state.leader_epoch);
        }
    }
}
