//! The leader side: writes with acks, committed reads, fetches from followers, the high
//! watermark, and the one rule that decides ISR membership.

use super::rules::{self, IsrInputs};
use super::{Acks, Membership, Progress, Replica, ReplicaError, Role, State};
use crate::events::EventKind;
use crate::storage::checkpoint::EpochEntry;
use crate::storage::{FsyncPolicy, Lookup, StorageError, Write};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A follower's fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRequest {
    /// The follower's broker id.
    pub follower: u32,
    /// Its broker epoch (which incarnation of it is fetching).
    pub broker_epoch: i64,
    /// Its log end: where to read from.
    pub offset: u64,
    /// The leader epoch it follows.
    pub epoch: u32,
    /// The horizon generation its log already reflects.
    pub horizon_generation: u64,
    /// Most bytes to return.
    pub max_bytes: usize,
    /// How long to wait for records.
    pub max_wait: Duration,
}

/// What became of a batch of writes ([`Replica::write_batch`]).
#[derive(Debug)]
pub struct BatchOutcome {
    /// Per write, in order: its offset, or why the store refused it (then nothing was written
    /// for it).
    pub appended: Vec<Result<u64, ReplicaError>>,
    /// Whether the appended writes were acknowledged as the batch's acks asked: one wait covers
    /// them all, so its error (an unknown outcome) is every appended write's.
    pub acked: Result<(), ReplicaError>,
}

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
    /// The leader's tombstone horizon: the follower adopts it.
    pub tombstone_horizon: u64,
    /// The leader's horizon generation as of this fetch's check: the follower adopts it.
    pub horizon_generation: u64,
    /// Where each of the leader's epochs from the fetch offset on started.
    pub epochs: Vec<EpochEntry>,
    /// The follower's log ends at or below a tombstone horizon it has not seen: it may hold
    /// keys whose deletes were merged away, so it must empty itself and fetch from the start.
    pub truncate_to_empty: bool,
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
    /// The ISR it wants, the eligible members that follow from it, and their broker epochs
    /// (recorded with them in ZooKeeper).
    pub members: Membership,
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

    /// A leader takes client requests unless it is handing the partition over.
    fn check_taking_clients(&self, st: &State) -> Result<(), ReplicaError> {
        self.check_serving(st)?;
        match st.handing_over {
            None => Ok(()),
            Some(a) => Err(ReplicaError::HandingOver {
                broker: self.cfg.broker_id,
                partition: self.cfg.partition,
                to: a.to,
            }),
        }
    }

    /// The record at `offset` did not commit in time; says why when the HW stands still because
    /// the ISR is below min.insync (Kafka KIP-966: nothing commits without the eligible members).
    fn not_committed(&self, offset: u64) -> ReplicaError {
        let isr = self.lock().isr.len();
        let min = self.cfg.min_insync_replicas;
        let why = if isr < min as usize {
            format!(
                ": the ISR has {isr} member(s), below min_insync_replicas {min}, and nothing commits until another replica rejoins it"
            )
        } else {
            "; try again".to_string()
        };
        ReplicaError::NotCommitted { offset, why }
    }

    /// A leader answers clients only while its lease holds (checked on the request path, after
    /// the data was read or appended, so the answer was true at a moment it surely led).
    fn check_lease(&self) -> Result<(), ReplicaError> {
        if self.lease.holds(Instant::now()) {
            return Ok(());
        }
        Err(ReplicaError::LeaseLapsed {
            broker: self.cfg.broker_id,
            partition: self.cfg.partition,
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

    /// The one rule for the high watermark (`rules::high_watermark` over the maximal ISR), never
    /// moving back.
    pub(super) fn maybe_advance_hw(&self, st: &mut State) {
        if st.role != Role::Leader {
            return;
        }
        let Some(candidate) = rules::high_watermark(
            self.own_leo_for_hw(),
            self.cfg.broker_id,
            &st.isr,
            st.pending_isr.as_deref().unwrap_or_default(),
            &st.followers,
            self.cfg.min_insync_replicas,
        ) else {
            return;
        };
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
    /// Returns the record's offset. Refused before the append while the lease has lapsed.
    pub async fn write(&self, write: Write, acks: Acks) -> Result<u64, ReplicaError> {
        let (offset, generation) = {
            let st = self.lock();
            self.check_taking_clients(&st)?;
            self.check_lease()?;
            self.check_min_isr(&st, acks)?;
            let offset = self.log.append(&write.with_epoch(st.epoch))?;
            (offset, st.generation)
        };
        let appended = self.note_appended(offset..offset + 1);
        self.await_acks(offset, acks, generation, appended).await?;
        Ok(offset)
    }

    /// Appends `writes` in order as leader under one lock and one write to the log, then waits
    /// once, as `acks` asks, for the last of them (the HW passing it passes them all). A refusal
    /// of the whole batch before anything is written (not serving, lease lapsed, ISR too small,
    /// a store already failed) is the `Err`; a write the store refuses on its own (an empty or
    /// oversized key or value) is refused alone and the rest go on. When writing to the log fails
    /// part-way (a rotation or a write failing after some records went in), the records the log
    /// took are waited for as usual and every other write is `AppendInterrupted`: its bytes may be
    /// on disk, so its outcome is unknown, never "not written".
    pub async fn write_batch(
        &self,
        writes: Vec<Write>,
        acks: Acks,
    ) -> Result<BatchOutcome, ReplicaError> {
        let mut appended = Vec::with_capacity(writes.len());
        let mut interrupted = None;
        let (range, generation) = {
            let st = self.lock();
            self.check_taking_clients(&st)?;
            self.check_lease()?;
            self.check_min_isr(&st, acks)?;
            let mut valid = Vec::with_capacity(writes.len());
            for w in writes {
                match self.log.check_limits(&w.key, &w.value) {
                    Ok(()) => {
                        valid.push(w.with_epoch(st.epoch));
                        appended.push(Ok(0));
                    }
                    Err(e) => appended.push(Err(ReplicaError::Storage(e))),
                }
            }
            let before = self.log.log_end_offset();
            let range = match self.log.append_batch(&valid) {
                Ok(range) => range,
                Err(e @ StorageError::Failed(_)) if self.log.log_end_offset() == before => {
                    return Err(e.into());
                }
                Err(e) => {
                    interrupted = Some(e.to_string());
                    before..self.log.log_end_offset()
                }
            };
            (range, st.generation)
        };
        let mut offsets = range.clone();
        for r in appended.iter_mut().filter(|r| r.is_ok()) {
            *r = match (offsets.next(), &interrupted) {
                (Some(offset), _) => Ok(offset),
                (None, error) => Err(ReplicaError::AppendInterrupted {
                    partition: self.cfg.partition,
                    error: error.clone().unwrap_or_default(),
                }),
            };
        }
        if range.is_empty() {
            return Ok(BatchOutcome {
                appended,
                acked: Ok(()),
            });
        }
        let at = self.note_appended(range.clone());
        let acked = self.await_acks(range.end - 1, acks, generation, at).await;
        Ok(BatchOutcome { appended, acked })
    }

    /// Rewrites `key` with the absolute expiry `expire_at_ms`. `None` when the key has no live
    /// committed value. Like a read, it decides from committed data only: while the key's latest
    /// record is above the HW it waits (up to the request timeout) for it to commit.
    pub async fn expire(
        &self,
        key: &[u8],
        expire_at_ms: u64,
        acks: Acks,
    ) -> Result<Option<u64>, ReplicaError> {
        let deadline = tokio::time::Instant::now() + self.cfg.request_timeout;
        let mut hw_rx = self.hw_tx.subscribe();
        let mut gen_rx = self.generation_tx.subscribe();
        let (offset, generation) = loop {
            {
                let st = self.lock();
                self.check_taking_clients(&st)?;
                self.check_lease()?;
                hw_rx.borrow_and_update();
                gen_rx.borrow_and_update();
                // Appends happen under this lock, so the record found is still the latest when
                // the expire record is appended.
                let latest = self.log.get(key)?.offset();
                if latest.is_none_or(|o| o < st.hw) {
                    if latest.is_none() {
                        return Ok(None);
                    }
                    self.check_min_isr(&st, acks)?;
                    let now = crate::storage::now_ms();
                    match self.log.expire(key, expire_at_ms, st.epoch, now)? {
                        Some(offset) => break (offset, st.generation),
                        None => return Ok(None),
                    }
                }
            }
            self.await_hw_move(key, &mut hw_rx, &mut gen_rx, deadline)
                .await?;
        };
        let appended = self.note_appended(offset..offset + 1);
        self.await_acks(offset, acks, generation, appended).await?;
        Ok(Some(offset))
    }

    /// Tells the commit timing, then fetches waiting for records, that `offsets` were appended
    /// (in that order, so a woken fetch finds them noted), and returns when.
    fn note_appended(&self, offsets: std::ops::Range<u64>) -> Instant {
        let now = Instant::now();
        let end = offsets.end;
        self.timing.appended(offsets, now);
        self.leo_tx.send_replace(end);
        now
    }

    /// Waits as `acks` asks for the write at `offset`, appended at `started`.
    async fn await_acks(
        &self,
        offset: u64,
        acks: Acks,
        generation: u64,
        started: Instant,
    ) -> Result<(), ReplicaError> {
        if acks == Acks::Zero {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.cfg.request_timeout;
        let timeout = || ReplicaError::Timeout {
            offset,
            waited: started.elapsed(),
        };
        let mut gen_rx = self.generation_tx.subscribe();
        if self.log.fsync_policy() == FsyncPolicy::Always {
            let mut durable = self.log.durable_watch();
            match tokio::time::timeout_at(deadline, durable.wait_for(|&d| d > offset)).await {
                Ok(Ok(_)) if acks == Acks::All => self.timing.own_fsync(started, Instant::now()),
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => return Err(timeout()),
            }
        }
        if acks == Acks::One {
            // A zombie leader (paused, its session expired, another leader elected) must not
            // acknowledge: the new leader will truncate this record away.
            if *gen_rx.borrow_and_update() != generation || self.check_lease().is_err() {
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
                self.timing.committed(started, Instant::now());
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
            // Marked seen before the look: a HW or role that moves after it wakes the wait.
            hw_rx.borrow_and_update();
            gen_rx.borrow_and_update();
            if let Some(lookup) = self.read_now(key)? {
                return Ok(lookup);
            }
            self.await_hw_move(key, &mut hw_rx, &mut gen_rx, deadline)
                .await?;
        }
    }

    /// Waits until the HW or the role moves (a reader of `key` then looks again); at `deadline`
    /// fails as not committed, naming the offset of `key`'s latest record.
    async fn await_hw_move(
        &self,
        key: &[u8],
        hw_rx: &mut tokio::sync::watch::Receiver<u64>,
        gen_rx: &mut tokio::sync::watch::Receiver<u64>,
        deadline: tokio::time::Instant,
    ) -> Result<(), ReplicaError> {
        tokio::select! {
            _ = hw_rx.changed() => Ok(()),
            _ = gen_rx.changed() => Ok(()),
            _ = tokio::time::sleep_until(deadline) => {
                let offset = self.log.get(key)?.offset().unwrap_or(0);
                Err(self.not_committed(offset))
            }
        }
    }

    /// Whether this replica serves reads now (it leads, takes clients and holds its lease).
    pub fn check_reads(&self) -> Result<(), ReplicaError> {
        self.check_taking_clients(&self.lock())?;
        self.check_lease()
    }

    /// One look at `key` as leader: what it holds as of the HW, or `None` while its latest
    /// record is above the HW ([`Replica::read`] waits for that record to commit).
    pub fn read_now(&self, key: &[u8]) -> Result<Option<Lookup>, ReplicaError> {
        let hw = {
            let st = self.lock();
            self.check_taking_clients(&st)?;
            st.hw
        };
        let lookup = self.log.get(key)?;
        if lookup.offset().is_some_and(|o| o >= hw) {
            return Ok(None);
        }
        self.check_lease()?;
        Ok(Some(lookup))
    }

    /// Serves a follower's fetch: records its progress (which may advance the HW or qualify it
    /// for the ISR), then returns records from its offset, waiting up to `max_wait` for some.
    pub async fn fetch(&self, req: FetchRequest) -> Result<FetchReply, ReplicaError> {
        let mut hw_rx = self.hw_tx.subscribe();
        let mut leo_rx = self.leo_tx.subscribe();
        let mut gen_rx = self.generation_tx.subscribe();
        let offset = req.offset;
        let horizon;
        {
            let mut st = self.lock();
            self.check_serving(&st)?;
            if req.epoch != st.epoch {
                return Err(ReplicaError::Fenced {
                    requested: req.epoch,
                    current: st.epoch,
                });
            }
            if req.follower == self.cfg.broker_id || !self.cfg.replicas.contains(&req.follower) {
                return Err(ReplicaError::UnknownReplica(req.follower));
            }
            let leo = self.log.log_end_offset();
            if offset > leo {
                return Err(ReplicaError::OffsetOutOfRange { offset, leo });
            }
            // Taken before reading records: a merge that lands during the read shows up as a
            // newer generation at the next fetch.
            let (h, drops) = self.log.horizon_and_drops();
            horizon = (h, rules::horizon_generation(st.epoch, drops));
            if rules::must_empty(offset, horizon.0, req.horizon_generation, horizon.1) {
                return Ok(FetchReply {
                    records: Bytes::new(),
                    high_watermark: st.hw,
                    log_end_offset: leo,
                    log_start_offset: self.log.log_start_offset(),
                    tombstone_horizon: horizon.0,
                    horizon_generation: horizon.1,
                    epochs: Vec::new(),
                    truncate_to_empty: true,
                });
            }
            let now = Instant::now();
            let p = st
                .followers
                .entry(req.follower)
                .or_insert_with(|| Progress::new(now, Some(req.broker_epoch)));
            if p.broker_epoch != Some(req.broker_epoch) {
                // A new incarnation of the follower: what its old one had proves nothing.
                *p = Progress::new(now, Some(req.broker_epoch));
            }
            if offset >= leo {
                p.last_caught_up = now;
            } else if offset >= p.leader_leo_at_last_fetch {
                p.last_caught_up = p.last_caught_up.max(p.last_fetch);
            }
            p.leader_leo_at_last_fetch = leo;
            p.last_fetch = now;
            self.timing.fetch_arrived(req.follower, now);
            p.leo = Some(offset);
            self.progress.notify_waiters();
            self.maybe_advance_hw(&mut st);
            let in_isr = st.isr.contains(&req.follower);
            let restarted =
                in_isr && st.member_epochs.get(&req.follower) != Some(&req.broker_epoch);
            if (!in_isr && offset >= st.hw) || restarted {
                self.isr_wanted.notify_one();
            }
        }
        hw_rx.borrow_and_update();
        leo_rx.borrow_and_update();
        gen_rx.borrow_and_update();
        let deadline = tokio::time::Instant::now() + req.max_wait;
        let records = loop {
            if let Some(raw) = self.log.read_from(offset, req.max_bytes)? {
                let sent = raw.first_offset..=raw.last_offset;
                self.timing.records_sent(req.follower, sent, Instant::now());
                break raw.bytes;
            }
            tokio::select! {
                _ = leo_rx.changed() => continue,
                _ = hw_rx.changed() => break Bytes::new(),
                _ = gen_rx.changed() => break Bytes::new(),
                _ = tokio::time::sleep_until(deadline) => break Bytes::new(),
            }
        };
        let epochs = if records.is_empty() {
            Vec::new()
        } else {
            self.lock_epochs().from_offset(offset)
        };
        Ok(FetchReply {
            records,
            high_watermark: self.lock().hw,
            log_end_offset: self.log.log_end_offset(),
            log_start_offset: self.log.log_start_offset(),
            tombstone_horizon: horizon.0,
            horizon_generation: horizon.1,
            epochs,
            truncate_to_empty: false,
        })
    }

    /// The ISR change this leader wants now (`rules::desired_isr`), if any and none is already in
    /// flight. From here until [`Replica::isr_change_committed`] or
    /// [`Replica::isr_change_failed`], the proposed members count in the HW (maximal ISR).
    pub fn propose_isr_change(&self) -> Option<IsrProposal> {
        let mut st = self.lock();
        if st.role != Role::Leader || st.fenced || st.pending_isr.is_some() {
            return None;
        }
        let epoch_start = self
            .lock_epochs()
            .entries()
            .iter()
            .find(|e| e.epoch == st.epoch)
            .map_or(0, |e| e.start_offset);
        let me = self.cfg.broker_id;
        let desired = rules::desired_isr(
            &IsrInputs {
                me,
                replicas: &self.cfg.replicas,
                isr: &st.isr,
                member_epochs: &st.member_epochs,
                followers: &st.followers,
                hw: st.hw,
                epoch_start,
                lag: self.cfg.replica_lag_time_max,
            },
            Instant::now(),
        );
        let mut current = st.isr.clone();
        current.sort_unstable();
        let mut wanted = desired.clone();
        wanted.sort_unstable();
        if current == wanted {
            return None;
        }
        let eligible = rules::next_eligible(
            &st.isr,
            &st.eligible,
            &desired,
            self.cfg.min_insync_replicas,
        );
        // Members keep the epoch ZooKeeper recorded; joiners bring the one they fetch with.
        let broker_epochs: BTreeMap<u32, i64> = desired
            .iter()
            .chain(&eligible)
            .filter_map(|r| {
                let was_member = st.isr.contains(r) || st.eligible.contains(r);
                let recorded = st.member_epochs.get(r).copied().filter(|_| was_member);
                let joins = !st.isr.contains(r) && desired.contains(r);
                let epoch = if joins {
                    // The incarnation that fetched is the one that joins.
                    st.followers.get(r).and_then(|p| p.broker_epoch)
                } else {
                    recorded
                };
                epoch.map(|e| (*r, e))
            })
            .collect();
        st.pending_isr = Some(desired.clone());
        Some(IsrProposal {
            partition: self.cfg.partition,
            leader: me,
            leader_epoch: st.epoch,
            members: Membership {
                isr: desired,
                eligible,
                broker_epochs,
            },
            current_isr: st.isr.clone(),
            expected_version: st.state_version,
        })
    }

    /// ZooKeeper accepted `proposal` (the state znode is now at `new_version`): apply it.
    pub fn isr_change_committed(&self, proposal: &IsrProposal, new_version: i32) {
        let mut st = self.lock();
        st.pending_isr = None;
        if st.role != Role::Leader
            || st.epoch != proposal.leader_epoch
            || st.state_version != proposal.expected_version
        {
            return;
        }
        let old = st.isr.clone();
        self.set_membership(&mut st, proposal.members.clone(), new_version);
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
                    "ISR shrank {old:?} -> {:?}: {removed:?} fell behind or restarted",
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

    /// ZooKeeper refused `proposal` (the state watcher will bring the news). The pending members
    /// stop counting in the HW; the HW itself never moves back.
    pub fn isr_change_failed(&self) {
        self.lock().pending_isr = None;
    }

    /// An ISR change of unknown outcome was settled by reading the state back: ZooKeeper holds
    /// `members` at `version` for leader epoch `epoch`. Applied in the same step as the pending
    /// change ends, so no moment passes in which the HW counts neither (the change may have
    /// landed under a later write).
    pub fn isr_change_superseded(&self, epoch: u32, members: Membership, version: i32) {
        let mut st = self.lock();
        if epoch > st.epoch {
            // Deposed: stop at once rather than go on with an ISR that may lack a member
            // ZooKeeper lists (the watcher brings the new role).
            drop(st);
            self.fence(&format!(
                "ZooKeeper already names a leader in epoch {epoch}"
            ));
            return;
        }
        let applies = st.role == Role::Leader && !st.fenced && st.epoch == epoch;
        if applies && version > st.state_version {
            self.set_membership(&mut st, members, version);
        }
        st.pending_isr = None;
        self.maybe_advance_hw(&mut st);
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
