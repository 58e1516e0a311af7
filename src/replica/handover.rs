//! A clean handover of leadership (the controller's preferred-replica election). Before the
//! controller names the new leader in ZooKeeper, the old one stops taking client requests and
//! waits until the new one holds its whole log. So no write it acknowledged — acks=1 included —
//! is above the new leader's log end (nothing is truncated), and no read it serves can miss a
//! write the new leader commits: it serves none from then on. If the controller never names the
//! new leader, the broker takes the partition back (`broker::handover`), fencing the controller
//! with a compare-and-set of the state znode first.

use super::{Replica, ReplicaError, Role};
use crate::events::EventKind;
use std::time::Duration;

impl Replica {
    /// Stops taking client requests as leader of `epoch` and waits up to `wait` until follower
    /// `to`, an ISR member, has fetched this log to its end, in a fetch sent after the call
    /// (so a follower cut off since its last fetch does not qualify); returns that end. On failure the
    /// replica takes client requests again.
    pub async fn prepare_handover(
        &self,
        to: u32,
        epoch: u32,
        wait: Duration,
    ) -> Result<u64, ReplicaError> {
        let generation = {
            let mut st = self.lock();
            self.check_serving(&st)?;
            if st.epoch != epoch {
                return Err(ReplicaError::Fenced {
                    requested: epoch,
                    current: st.epoch,
                });
            }
            if to == self.cfg.broker_id || !st.isr.contains(&to) {
                return Err(ReplicaError::UnknownReplica(to));
            }
            // Under the lock every append takes: no client write lands after this.
            st.handing_over = Some(to);
            st.generation
        };
        self.events.emit(
            EventKind::RoleChange,
            Some(self.cfg.partition),
            format!(
                "handing the leadership to broker {to}: no client request is taken until it holds this whole log and ZooKeeper names it"
            ),
        );
        // A fetch from `to` must arrive after this point: it proves `to` can reach this broker
        // now, not only that it was caught up when the link was last whole.
        let started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let progress = self.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            {
                let st = self.lock();
                if st.generation != generation {
                    return Err(ReplicaError::NotLeader {
                        broker: self.cfg.broker_id,
                        partition: self.cfg.partition,
                        leader: match st.role {
                            Role::Follower { leader } => Some(leader),
                            _ => None,
                        },
                    });
                }
                let leo = self.log.log_end_offset();
                let caught_up = st
                    .followers
                    .get(&to)
                    .is_some_and(|p| p.last_fetch >= started && p.leo >= Some(leo));
                if caught_up {
                    return Ok(leo);
                }
            }
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                let resumed = self.end_handover(epoch, None);
                if resumed {
                    self.events.emit(
                        EventKind::RoleChange,
                        Some(self.cfg.partition),
                        format!(
                            "handover to broker {to} abandoned: it did not catch up within {wait:?}; taking client requests again"
                        ),
                    );
                }
                return Err(ReplicaError::Timeout {
                    offset: self.log.log_end_offset(),
                    waited: wait,
                });
            }
        }
    }

    /// Takes client requests again as leader of `epoch` after a handover that did not happen;
    /// `version` is the state znode's version after the broker re-took it. Returns whether the
    /// replica was still handing over in that epoch.
    pub fn end_handover(&self, epoch: u32, version: Option<i32>) -> bool {
        let mut st = self.lock();
        if st.role != Role::Leader || st.epoch != epoch || st.handing_over.is_none() {
            return false;
        }
        st.handing_over = None;
        if let Some(v) = version {
            st.state_version = v;
        }
        true
    }

    /// The broker this leader is handing the partition to, if it is.
    pub fn handing_over(&self) -> Option<u32> {
        self.lock().handing_over
    }
}
