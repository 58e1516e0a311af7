//! The lab's own view of ZooKeeper (a session of its own, not through any broker's proxy): which
//! brokers are registered, who controls, and each partition's state. The console shows it beside
//! what each broker believes, so the windows in which they disagree are visible.

use crate::coord::{
    BrokerInfo, ControllerInfo, Coord, CoordError, PartitionState, follow_brokers,
    follow_controller, follow_partition_state,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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

/// Follows ZooKeeper until dropped.
pub struct ZkObserver {
    coord: Coord,
    view: Arc<Mutex<ZkView>>,
    token: CancellationToken,
}

impl ZkObserver {
    /// Opens a session to `connect` and starts following the layout of `partitions` partitions.
    pub async fn start(connect: &str, partitions: u32) -> Result<Self, CoordError> {
        let coord = Coord::connect(connect, Duration::from_secs(10)).await?;
        let view = Arc::new(Mutex::new(ZkView::default()));
        let token = CancellationToken::new();
        let update = |view: &Arc<Mutex<ZkView>>| {
            let view = Arc::clone(view);
            move |f: &dyn Fn(&mut ZkView)| f(&mut view.lock().unwrap_or_else(|p| p.into_inner()))
        };
        {
            let (coord, token, set) = (coord.clone(), token.clone(), update(&view));
            tokio::spawn(async move {
                follow_brokers(&coord, &token, |b| set(&|v| v.registered = b.clone())).await;
            });
        }
        {
            let (coord, token, set) = (coord.clone(), token.clone(), update(&view));
            tokio::spawn(async move {
                follow_controller(&coord, &token, |c| set(&|v| v.controller = c)).await;
            });
        }
        for p in 0..partitions {
            let (coord, token, set) = (coord.clone(), token.clone(), update(&view));
            tokio::spawn(async move {
                follow_partition_state(&coord, p, &token, |s| {
                    set(&|v| match &s {
                        Some((state, _)) => {
                            v.states.insert(p, state.clone());
                        }
                        None => {
                            v.states.remove(&p);
                        }
                    })
                })
                .await;
            });
        }
        Ok(Self { coord, view, token })
    }

    /// The lab's own ZooKeeper session (the lab's requests to the controller go through it).
    pub fn coord(&self) -> &Coord {
        &self.coord
    }

    /// The current view.
    pub fn view(&self) -> ZkView {
        self.view.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for ZkObserver {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
