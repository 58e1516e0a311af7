//! `rebalance` in the lab: through the lab's own ZooKeeper session (see `command::rebalance`).

use super::Lab;

impl Lab {
    /// `rebalance`
    pub(super) async fn rebalance_leaders(&self) -> Result<String, crate::command::CommandError> {
        let reply = crate::command::rebalance(&self.observer.coord(), &self.info.spec).await;
        self.publish();
        reply
    }
}
