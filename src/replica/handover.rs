//! A clean handover of leadership (the controller's preferred-replica election). Before the
//! controller names the new leader in ZooKeeper, the old one stops taking client requests and
//! waits until the new one holds its whole log. So no write it acknowledged — acks=1 included —
//! is above the new leader's log end (nothing is truncated), and no read it serves can miss a
//! write the new leader commits: it serves none from then on. If the controller never names the
//! new leader, the broker takes the partition back (`broker::handover`), fencing the controller
//! with a compare-and-set of the state znode first.
//!
//! Each attempt is numbered and owns the flag it set: only that attempt ends it, and a second
//! attempt is refused while one is under way, so a handover that timed out cannot let writes in
//! under another that then reports the log complete.

use super::{Membership, Replica, ReplicaError, Role};
use crate::events::EventKind;
use std::time::Duration;

/// One handover attempt: to whom, and its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// The broker taking over.
    pub to: u32,
    /// Its number on this replica.
    pub id: u64,
}

impl Replica {
    /// Stops taking client requests as leader of `epoch` and waits up to `wait` until follower
    /// `to`, an ISR member, has fetched this log to its end, in a fetch sent after the call
    /// (so a follower cut off since its last fetch does not qualify); returns that end and the
    /// attempt, which stays in force until [`Replica::end_handover`] or a new role. On failure
    /// the replica takes client requests again. Run it in a task of its own: dropped
    /// mid-wait, it would leave the replica refusing clients.
    pub async fn prepare_handover(
        &self,
        to: u32,
        epoch: u32,
        wait: Duration,
    ) -> Result<(u64, Attempt), ReplicaError> {
        let (generation, attempt) = {
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
            if let Some(a) = st.handing_over {
                return Err(ReplicaError::HandingOver {
                    broker: self.cfg.broker_id,
                    partition: self.cfg.partition,
                    to: a.to,
                });
            }
            st.handovers += 1;
            let attempt = Attempt {
                to,
                id: st.handovers,
            };
            // Under the lock every append takes: no client write lands after this.
            st.handing_over = Some(attempt);
            (st.generation, attempt)
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
                if st.generation != generation || st.handing_over != Some(attempt) {
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
                    return Ok((leo, attempt));
                }
            }
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                if self.end_handover(attempt) {
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

    /// Takes client requests again after handover `attempt` did not happen. Returns whether
    /// that attempt was still in force (another attempt, or a new role, is left alone).
    pub fn end_handover(&self, attempt: Attempt) -> bool {
        let mut st = self.lock();
        if st.role != Role::Leader || st.handing_over != Some(attempt) {
            return false;
        }
        st.handing_over = None;
        true
    }

    /// The broker took the partition back by rewriting its state as ZooKeeper held it (in
    /// `epoch`, now at `version`): applies that state as a watch would, then ends `attempt`.
    pub fn take_back(
        &self,
        attempt: Attempt,
        epoch: u32,
        members: Membership,
        version: i32,
    ) -> bool {
        self.become_leader(epoch, members, version);
        self.end_handover(attempt)
    }

    /// The handover under way, if any.
    pub fn handing_over(&self) -> Option<Attempt> {
        self.lock().handing_over
    }
}
