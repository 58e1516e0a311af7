//! The lab's own view of ZooKeeper (a session of its own, not through any broker's proxy): which
//! brokers are registered, who controls, and each partition's state. The console shows it beside
//! what each broker believes, so the windows in which they disagree are visible.

use crate::coord::{
    BrokerInfo, ControllerInfo, Coord, CoordError, PartitionState, SessionState, follow_brokers,
    follow_controller, follow_partition_state,
};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The first wait before the lab's view opens a new session; it doubles up to
/// [`RECONNECT_MAX`].
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
/// The longest wait between tries.
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// What ZooKeeper says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZkView {
    /// Registered brokers (a crashed broker stays until its session expires).
    pub registered: BTreeMap<u32, BrokerInfo>,
    /// The controller.
    pub controller: Option<ControllerInfo>,
    /// Partition states.
    pub states: BTreeMap<u32, PartitionState>,
}

/// Follows ZooKeeper until dropped, opening a new session whenever its session expires (a lost
/// quorum outlasting it), so the console never freezes on an old view.
pub struct ZkObserver {
    coord: Arc<Mutex<Coord>>,
    view: Arc<Mutex<ZkView>>,
    token: CancellationToken,
}

/// The observer's session timeout: long, so a short outage of ZooKeeper keeps the same session.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

impl ZkObserver {
    /// Opens a session to `connect` and starts following the layout of `partitions` partitions.
    pub async fn start(connect: &str, partitions: u32) -> Result<Self, CoordError> {
        let coord = Coord::connect(connect, SESSION_TIMEOUT).await?;
        let view = Arc::new(Mutex::new(ZkView::default()));
        let token = CancellationToken::new();
        let shared = Arc::new(Mutex::new(coord.clone()));
        let (connect, v, t, s) = (
            connect.to_string(),
            Arc::clone(&view),
            token.clone(),
            Arc::clone(&shared),
        );
        tokio::spawn(async move {
            let mut coord = coord;
            loop {
                follow_all(&coord, &v, &t, partitions).await;
                if t.is_cancelled() {
                    return;
                }
                // The session expired: a new one, retried until ZooKeeper serves again.
                let mut backoff = RECONNECT_FIRST;
                coord = loop {
                    tokio::select! {
                        c = Coord::connect(&connect, SESSION_TIMEOUT) => match c {
                            Ok(c) => break c,
                            Err(e) => tracing::debug!(error = %e, "the lab's ZooKeeper session: reconnecting"),
                        },
                        _ = t.cancelled() => return,
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = t.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(RECONNECT_MAX);
                };
                *s.lock() = coord.clone();
            }
        });
        Ok(Self {
            coord: shared,
            view,
            token,
        })
    }

    /// The lab's own ZooKeeper session (the lab's requests to the controller go through it).
    pub fn coord(&self) -> Coord {
        self.coord.lock().clone()
    }

    /// The current view.
    pub fn view(&self) -> ZkView {
        self.view.lock().clone()
    }
}

/// Follows brokers, the controller and every partition's state on `coord` until its session
/// expires or `token` is cancelled.
async fn follow_all(
    coord: &Coord,
    view: &Arc<Mutex<ZkView>>,
    token: &CancellationToken,
    partitions: u32,
) {
    let session = token.child_token();
    let set = |f: &dyn Fn(&mut ZkView)| f(&mut view.lock());
    let mut follows: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>> = vec![
        Box::pin(follow_brokers(coord, &session, |b| {
            set(&|v| v.registered = b.clone())
        })),
        Box::pin(follow_controller(coord, &session, |c| {
            set(&|v| v.controller = c)
        })),
    ];
    for p in 0..partitions {
        follows.push(Box::pin(follow_partition_state(
            coord,
            p,
            &session,
            move |s| {
                set(&|v| match &s {
                    Some((state, _)) => {
                        v.states.insert(p, state.clone());
                    }
                    None => {
                        v.states.remove(&p);
                    }
                })
            },
        )));
    }
    let mut states = coord.state_watcher();
    tokio::select! {
        _ = futures_util::future::join_all(follows) => {}
        _ = async {
            loop {
                if matches!(states.changed().await, SessionState::Expired | SessionState::Closed | SessionState::AuthFailed) {
                    return;
                }
            }
        } => {}
        _ = token.cancelled() => {}
    }
    session.cancel();
}

impl Drop for ZkObserver {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
