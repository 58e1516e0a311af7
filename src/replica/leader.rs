//! The leader side: writes with acks, committed reads, fetches from followers, the high
//! watermark, and the one rule that decides ISR membership.

use super::{Acks, Progress, Replica, ReplicaError, Role, State};
use crate::events::EventKind;
use crate::storage::{FsyncPolicy, Lookup, Write};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// What a fetch returns to a follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReply {
    /// Whole records from the fetch offset on (possibly none).
    pub records: Bytes,
    /// The leader's high watermark.
    pub high_watermark: u64,
    /// The leader's log end offset.
    pub log_end_offset: u64,
    /// The leader's first offset.
    pub log_start_offset: u64,
}

/// An ISR change the leader wants ZooKeeper to accept (compare-and-set on the state znode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    /// The partition.
    pub partition: u32,
    /// The leader (this broker).
    pub leader: u32,
    /// Its epoch.
    pub leader_epoch: u32,
    /// The ISR it wants.
    pub isr: Vec<u32>,
    /// The ISR it has.
    pub current_isr: Vec<u32>,
    /// The state znode version the change must apply to.
    pub expected_version: i32,
}

impl Replica {
    pub(super) fn check_serving(&self, st: &State) -> Result<(), ReplicaError> {
        if st.role == Role::Leader && !st.fenced {
            return Ok(());
        }
        Err(ReplicaError::NotLeader {
            broker: self.cfg.broker_id,
            partition: self.cfg.partition,
            leader: match st.role {
                Role::Follower { leader } => Some(leader),
                _ => None,
            },
        })
    }

    /// The leader's own log end as it counts for the HW: only durable records under `always`.
    fn own_leo_for_hw(&self) -> u64 {
        if self.log.fsync_policy() == FsyncPolicy::Always {
            self.log.durable_offset()
        } else {
            self.log.log_end_offset()
        }
    }

    /// The one rule for the high watermark: min LEO over the ISR, never moving back.
    pub(super) fn maybe_advance_hw(&self, st: &mut State) {
        if st.role != Role::Leader {
            return;
        }
        let mut candidate = self.own_leo_for_hw();
        for r in st.isr.iter().filter(|&&r| r != self.cfg.broker_id) {
            match st.followers.get(r).and_then(|p| p.leo) {
                Some(leo) => candidate = candidate.min(leo),
                None => return,
            }
        }
        if candidate > st.hw {
            st.hw = candidate;
            self.hw_tx.send_replace(candidate);
        }
    }

    fn check_min_isr(&self, st: &State, acks: Acks) -> Result<(), ReplicaError> {
        if acks == Acks::All && st.isr.len() < self.cfg.min_insync_replicas as usize {
            return Err(ReplicaError::NotEnoughReplicas {
                partition: self.cfg.partition,
                isr: st.isr.len(),
                min: self.cfg.min_insync_replicas,
            });
        }
        Ok(())
    }

    /// Appends `write` as leader (stamped with the current epoch) and waits as `acks` asks.
    /// Returns the record's offset.
    pub async fn write(&self, write: Write, acks: Acks) -> Result<u64, ReplicaError> {
        let (offset, generation) = {
            let st = self.lock();
            self.check_serving(&st)?;
            self.check_min_isr(&st, acks)?;
            let offset = self.log.append(&write.with_epoch(st.epoch))?;
            (offset, st.generation)
        };
        self.leo_tx.send_replace(offset + 1);
        self.await_acks(offset, acks, generation).await?;
        Ok(offset)
    }

    /// Rewrites `key` with the absolute expiry `expire_at_ms`. `None` when the key has no live
    /// value.
    pub async fn expire(
        &self,
        key: &[u8],
        expire_at_ms: u64,
        acks: Acks,
    ) -> Result<Option<u64>, ReplicaError> {
        let (offset, generation) = {
            let st = self.lock();
            self.check_serving(&st)?;
            self.check_min_isr(&st, acks)?;
            let now = crate::storage::now_ms();
            match self.log.expire(key, expire_at_ms, st.epoch, now)? {
                Some(offset) => (offset, st.generation),
                None => return Ok(None),
            }
        };
        self.leo_tx.send_replace(offset + 1);
        self.await_acks(offset, acks, generation).await?;
        Ok(Some(offset))
    }

    async fn await_acks(
        &self,
        offset: u64,
        acks: Acks,
        generation: u64,
    ) -> Result<(), ReplicaError> {
        if acks == Acks::Zero {
            return Ok(());
        }
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.cfg.request_timeout;
        let timeout = || ReplicaError::Timeout {
            offset,
            waited: started.elapsed(),
        };
        let mut gen_rx = self.generation_tx.subscribe();
        if self.log.fsync_policy() == FsyncPolicy::Always {
            let mut durable = self.log.durable_watch();
            match tokio::time::timeout_at(deadline, durable.wait_for(|&d| d > offset)).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => return Err(timeout()),
            }
        }
        if acks == Acks::One {
            if *gen_rx.borrow_and_update() != generation {
                return Err(ReplicaError::LeadershipLost {
                    partition: self.cfg.partition,
                    offset,
                });
            }
            return Ok(());
        }
        let mut hw_rx = self.hw_tx.subscribe();
        {
            let mut st = self.lock();
            self.maybe_advance_hw(&mut st);
        }
        loop {
            if *hw_rx.borrow_and_update() > offset {
                let isr = self.lock().isr.len();
                if isr < self.cfg.min_insync_replicas as usize {
                    return Err(ReplicaError::NotEnoughReplicasAfterAppend {
                        offset,
                        isr,
                        min: self.cfg.min_insync_replicas,
                    });
                }
                return Ok(());
            }
            if *gen_rx.borrow_and_update() != generation {
                return Err(ReplicaError::LeadershipLost {
                    partition: self.cfg.partition,
                    offset,
                });
            }
            tokio::select! {
                _ = hw_rx.changed() => {}
                _ = gen_rx.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return Err(timeout()),
            }
        }
    }

    /// Reads `key` as leader, returning only committed data: if the key's latest record is above
    /// the HW, waits (up to the request timeout) for the HW to pass it.
    pub async fn read(&self, key: &[u8]) -> Result<Lookup, ReplicaError> {
        let deadline = tokio::time::Instant::now() + self.cfg.request_timeout;
        let mut hw_rx = self.hw_tx.subscribe();
        let mut gen_rx = self.generation_tx.subscribe();
        loop {
            let hw = {
                let st = self.lock();
                self.check_serving(&st)?;
                st.hw
            };
            hw_rx.borrow_and_update();
            gen_rx.borrow_and_update();
            let lookup = self.log.get(key)?;
            match lookup.offset() {
                None => return Ok(lookup),
                Some(o) if o < hw => return Ok(lookup),
                Some(o) => {
                    if *hw_rx.borrow() > o {
                        continue;
                    }
                    tokio::select! {
                        _ = hw_rx.changed() => {}
                        _ = gen_rx.changed() => {}
                        _ = tokio::time::sleep_until(deadline) => {
                            return Err(ReplicaError::NotCommitted { offset: o });
                        }
                    }
                }
            }
        }
    }

    /// Serves a follower's fetch: records its progress (which may advance the HW or qualify it
    /// for the ISR), then returns records from `offset`, waiting up to `max_wait` for some.
    pub async fn fetch(
        &self,
        follower: u32,
        offset: u64,
        epoch: u32,
        max_bytes: usize,
        max_wait: Duration,
    ) -> Result<FetchReply, ReplicaError> {
        let mut hw_rx = self.hw_tx.subscribe();
        let mut leo_rx = self.leo_tx.subscribe();
        let mut gen_rx = self.generation_tx.subscribe();
        {
            let mut st = self.lock();
            self.check_serving(&st)?;
            if epoch != st.epoch {
                return Err(ReplicaError::Fenced {
                    requested: epoch,
                    current: st.epoch,
                });
            }
            if follower == self.cfg.broker_id || !self.cfg.replicas.contains(&follower) {
                return Err(ReplicaError::UnknownReplica(follower));
            }
            let leo = self.log.log_end_offset();
            if offset > leo {
                return Err(ReplicaError::OffsetOutOfRange { offset, leo });
            }
            let horizon = self.log.tombstone_horizon();
            if offset > 0 && offset <= horizon {
                return Err(ReplicaError::TruncateToEmpty { offset, horizon });
            }
            let now = Instant::now();
            let p = st
                .followers
                .entry(follower)
                .or_insert_with(|| Progress::new(now));
            if offset >= leo {
                p.last_caught_up = now;
            } else if offset >= p.leader_leo_at_last_fetch {
                p.last_caught_up = p.last_caught_up.max(p.last_fetch);
            }
            p.leader_leo_at_last_fetch = leo;
            p.last_fetch = now;
            p.leo = Some(offset);
            self.maybe_advance_hw(&mut st);
            if !st.isr.contains(&follower) && offset >= st.hw {
                self.isr_wanted.notify_one();
            }
        }
        hw_rx.borrow_and_update();
        leo_rx.borrow_and_update();
        gen_rx.borrow_and_update();
        let deadline = tokio::time::Instant::now() + max_wait;
        let records = loop {
            if let Some(raw) = self.log.read_from(offset, max_bytes)? {
                break raw.bytes;
            }
            tokio::select! {
                _ = leo_rx.changed() => continue,
                _ = hw_rx.changed() => break Bytes::new(),
                _ = gen_rx.changed() => break Bytes::new(),
                _ = tokio::time::sleep_until(deadline) => break Bytes::new(),
            }
        };
        Ok(FetchReply {
            records,
            high_watermark: self.lock().hw,
            log_end_offset: self.log.log_end_offset(),
            log_start_offset: self.log.log_start_offset(),
        })
    }

    /// The one rule for ISR membership. A follower in the ISR stays while it has caught up with the
    /// leader's log end within `replica_lag_time_max`; one outside joins once it has so caught up
    /// and its log end reaches the HW and the start of the current epoch. Returns a proposal when the ISR should change
    /// (and none is already in flight).
    pub fn propose_isr_change(&self) -> Option<IsrProposal> {
        let mut st = self.lock();
        if st.role != Role::Leader || st.fenced || st.isr_change_in_flight {
            return None;
        }
        let now = Instant::now();
        let lag = self.cfg.replica_lag_time_max;
        let epoch_start = self
            .lock_epochs()
            .entries()
            .iter()
            .find(|e| e.epoch == st.epoch)
            .map_or(0, |e| e.start_offset);
        let me = self.cfg.broker_id;
        let desired: Vec<u32> = self
            .cfg
            .replicas
            .iter()
            .copied()
            .filter(|r| {
                if *r == me {
                    return true;
                }
                let p = st.followers.get(r);
                let recently_caught_up = |p: &Progress| now.duration_since(p.last_caught_up) <= lag;
                if st.isr.contains(r) {
                    p.is_none_or(recently_caught_up)
                } else {
                    // A follower's last known log end says nothing once it stops fetching (it may
                    // be dead): it joins only if it is caught up *now*.
                    p.is_some_and(|p| {
                        recently_caught_up(p)
                            && p.leo.is_some_and(|l| l >= st.hw && l >= epoch_start)
                    })
                }
            })
            .collect();
        let mut current = st.isr.clone();
        current.sort_unstable();
        let mut wanted = desired.clone();
        wanted.sort_unstable();
        if current == wanted {
            return None;
        }
        st.isr_change_in_flight = true;
        Some(IsrProposal {
            partition: self.cfg.partition,
            leader: me,
            leader_epoch: st.epoch,
            isr: desired,
            current_isr: st.isr.clone(),
            expected_version: st.state_version,
        })
    }

    /// ZooKeeper accepted `proposal` (the state znode is now at `new_version`): apply it.
    pub fn isr_change_committed(&self, proposal: &IsrProposal, new_version: i32) {
        let mut st = self.lock();
        st.isr_change_in_flight = false;
        if st.role != Role::Leader
            || st.epoch != proposal.leader_epoch
            || st.state_version != proposal.expected_version
        {
            return;
        }
        let old = std::mem::replace(&mut st.isr, proposal.isr.clone());
        st.state_version = new_version;
        let removed: Vec<u32> = old
            .iter()
            .filter(|r| !st.isr.contains(r))
            .copied()
            .collect();
        let added: Vec<u32> = st
            .isr
            .iter()
            .filter(|r| !old.contains(r))
            .copied()
            .collect();
        if !removed.is_empty() {
            self.events.emit(
                EventKind::IsrShrink,
                Some(self.cfg.partition),
                format!(
                    "ISR shrank {old:?} -> {:?}: {removed:?} fell behind",
                    st.isr
                ),
            );
        }
        if !added.is_empty() {
            self.events.emit(
                EventKind::IsrExpand,
                Some(self.cfg.partition),
                format!("ISR expanded {old:?} -> {:?}: {added:?} caught up", st.isr),
            );
        }
        self.maybe_advance_hw(&mut st);
    }

    /// ZooKeeper refused `proposal` (the state changed); the state watcher will bring the news.
    pub fn isr_change_failed(&self) {
        self.lock().isr_change_in_flight = false;
    }

    /// Resolves when a fetch suggests the ISR may grow (the ISR task also runs on a timer).
    pub async fn isr_change_wanted(&self) {
        self.isr_wanted.notified().await;
    }

    /// KIP-101/279, leader side: the largest epoch at or below `requested` and where it ended.
    pub fn offset_for_epoch(
        &self,
        requested: u32,
        current_epoch: u32,
    ) -> Result<super::EpochAnswer, ReplicaError> {
        let st = self.lock();
        self.check_serving(&st)?;
        if current_epoch != st.epoch {
            return Err(ReplicaError::Fenced {
                requested: current_epoch,
                current: st.epoch,
            });
        }
        let leo = self.log.log_end_offset();
        Ok(match self.lock_epochs().end_offset_for(requested, leo) {
            Some((epoch, end_offset)) => super::EpochAnswer::At { epoch, end_offset },
            None => super::EpochAnswer::Undefined,
        })
    }
}
