//! The follower side: truncating by leader epoch when the leader changes, and appending fetched
//! records verbatim.

use super::{FetchReply, Replica, ReplicaError, Role, rules};
use crate::events::EventKind;
use crate::storage::checkpoint::EpochEntry;
use crate::storage::{FsyncPolicy, record};

/// A leader's answer to OffsetForLeaderEpoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochAnswer {
    /// The leader knows no epoch at or below the one asked about.
    Undefined,
    /// `epoch` is the largest the leader knows at or below the one asked about; it ended at
    /// `end_offset` in the leader's log.
    At {
        /// That epoch.
        epoch: u32,
        /// Where it ended.
        end_offset: u64,
    },
}

/// What a fetch reply said about the leader, beside its records.
#[derive(Debug, Clone, Copy)]
pub struct LeaderView<'a> {
    /// Its high watermark.
    pub high_watermark: u64,
    /// Its log end.
    pub log_end_offset: u64,
    /// Its tombstone horizon.
    pub tombstone_horizon: u64,
    /// Its horizon generation, as of the fetch's check.
    pub horizon_generation: u64,
    /// Where its epochs from the fetch offset on started.
    pub epochs: &'a [EpochEntry],
}

impl FetchReply {
    /// What this reply says about the leader.
    pub fn leader(&self) -> LeaderView<'_> {
        LeaderView {
            high_watermark: self.high_watermark,
            log_end_offset: self.log_end_offset,
            tombstone_horizon: self.tombstone_horizon,
            horizon_generation: self.horizon_generation,
            epochs: &self.epochs,
        }
    }
}

/// What a fetcher needs to know to fetch for this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowTarget {
    /// The leader to fetch from.
    pub leader: u32,
    /// The leader epoch to send.
    pub epoch: u32,
    /// The role generation; the fetcher stops when it moves.
    pub generation: u64,
}

impl Replica {
    /// Whom to fetch from, while this replica is a follower.
    pub fn follow_target(&self) -> Option<FollowTarget> {
        let st = self.lock();
        match st.role {
            Role::Follower { leader } => Some(FollowTarget {
                leader,
                epoch: st.epoch,
                generation: st.generation,
            }),
            _ => None,
        }
    }

    /// A watch of the role generation.
    pub fn generation_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation_tx.subscribe()
    }

    /// The newest epoch in this replica's checkpoint (what to ask the leader about).
    pub fn latest_epoch(&self) -> Option<u32> {
        self.lock_epochs().latest().map(|e| e.epoch)
    }

    /// Truncates after asking the leader about epoch `requested` (KIP-101/279; `None` when this
    /// replica's epoch cache is empty): see [`rules::truncation_point`]. Returns how many records
    /// were removed. Does nothing if the role moved on since `generation`.
    pub fn truncate_to_leader(
        &self,
        requested: Option<u32>,
        answer: EpochAnswer,
        generation: u64,
    ) -> Result<u64, ReplicaError> {
        let mut st = self.lock();
        if st.generation != generation {
            return Ok(0);
        }
        let leo = self.log.log_end_offset();
        let mine = match answer {
            EpochAnswer::At { epoch, .. } => self
                .lock_epochs()
                .end_offset_for(epoch, leo)
                .map(|(_, end)| end),
            EpochAnswer::Undefined => None,
        };
        let to = rules::truncation_point(requested, answer, mine, st.hw, leo);
        let requested = requested.map_or("none".to_string(), |e| e.to_string());
        if to < st.hw {
            // The new leader lacks records this replica had committed: a lossy election (unclean,
            // or logs cut by a power loss). Merge may have removed older versions of keys below
            // the cut that a plain truncation would need to bring back: copy the leader whole.
            let hw = st.hw;
            let removed = self.empty_log(&mut st)?;
            self.events.emit(
                EventKind::Truncation,
                Some(self.cfg.partition),
                format!(
                    "emptied the log ({removed} record(s)): the new leader's log ends at {to}, below \
                     this replica's high watermark {hw}, so it copies the leader's log whole"
                ),
            );
            return Ok(removed);
        }
        let removed = self.log.truncate(to)?;
        self.lock_epochs().truncate_from_end(to)?;
        // The cut part may have held deletes the new leader's merges dropped: what is left is
        // no longer known to reflect any merge at or above the cut.
        if to <= self.log.tombstone_horizon() {
            self.adopt_horizon_generation(&mut st, 0)?;
        }
        if st.hw > to {
            st.hw = to;
            self.hw_tx.send_replace(to);
        }
        self.leo_tx.send_replace(self.log.log_end_offset());
        if removed > 0 {
            let leader = match st.role {
                Role::Follower { leader } => leader.to_string(),
                _ => "?".into(),
            };
            self.events.emit(
                EventKind::Truncation,
                Some(self.cfg.partition),
                format!(
                    "truncated {removed} record(s): log cut to offset {to} to match leader {leader} \
                     (divergent since epoch {requested})"
                ),
            );
        }
        Ok(removed)
    }

    /// Truncates the log to nothing: no records, no epochs, no horizon generation, HW 0.
    fn empty_log(&self, st: &mut super::State) -> Result<u64, ReplicaError> {
        // Until it has copied the leader back, it must not win an election of restarted
        // replicas (it would lead with whatever part it has).
        self.mark_incomplete()?;
        let removed = self.log.truncate(0)?;
        self.lock_epochs().clear()?;
        self.adopt_horizon_generation(st, 0)?;
        st.hw = 0;
        self.hw_tx.send_replace(0);
        self.leo_tx.send_replace(self.log.log_end_offset());
        Ok(removed)
    }

    /// Empties the log (the leader's tombstone horizon `horizon` is above this follower's log
    /// end and its merges are newer than this log) and adopts the horizon and its generation
    /// `horizon_generation`, so the copy it now fetches from the start is not emptied again
    /// unless the leader drops more.
    pub fn truncate_to_empty(
        &self,
        generation: u64,
        horizon: u64,
        horizon_generation: u64,
    ) -> Result<u64, ReplicaError> {
        let mut st = self.lock();
        if st.generation != generation {
            return Ok(0);
        }
        let removed = self.empty_log(&mut st)?;
        self.log.set_tombstone_horizon(horizon)?;
        self.adopt_horizon_generation(&mut st, horizon_generation)?;
        self.events.emit(
            EventKind::Truncation,
            Some(self.cfg.partition),
            format!(
                "emptied the log ({removed} record(s)): it ended below the leader's tombstone horizon"
            ),
        );
        Ok(removed)
    }

    /// Appends `records` fetched from the leader (verbatim; their epochs are recorded in the
    /// checkpoint first, as Kafka does, so a crash never leaves records of an unrecorded epoch),
    /// waits until they are durable per the fsync policy, takes the leader's HW as far as this log
    /// reaches and adopts its tombstone horizon. Returns the new log end. Fails with `NotLeader`
    /// if the role moved on.
    pub async fn append_fetched(
        &self,
        generation: u64,
        records: &[u8],
        leader: &LeaderView<'_>,
    ) -> Result<u64, ReplicaError> {
        let (leader_hw, leader_horizon, leader_horizon_generation, leader_epochs) = (
            leader.high_watermark,
            leader.tombstone_horizon,
            leader.horizon_generation,
            leader.epochs,
        );
        let leo = {
            let mut st = self.lock();
            if st.generation != generation || !matches!(st.role, Role::Follower { .. }) {
                return Err(ReplicaError::NotLeader {
                    broker: self.cfg.broker_id,
                    partition: self.cfg.partition,
                    leader: None,
                });
            }
            // The leader answered a fetch from our log end without asking us to empty it, so
            // this log is consistent with its merges: its horizon is ours.
            if leader_horizon > self.log.tombstone_horizon() {
                self.log.set_tombstone_horizon(leader_horizon)?;
            }
            self.adopt_horizon_generation(&mut st, leader_horizon_generation)?;
            if records.is_empty() {
                self.log.log_end_offset()
            } else {
                let max = self.log.config().max_record_bytes();
                {
                    let mut epochs = self.lock_epochs();
                    let mut p = 0;
                    while p < records.len() {
                        let Ok(h) = record::decode_header(&records[p..], max) else {
                            break;
                        };
                        if epochs.latest().is_none_or(|e| h.leader_epoch > e.epoch) {
                            // Where the leader says the epoch began: merge may have dropped its
                            // first records, and a later start would mislead truncation.
                            let start = leader_epochs
                                .iter()
                                .find(|e| e.epoch == h.leader_epoch)
                                .map(|e| e.start_offset)
                                .filter(|&s| s <= h.offset);
                            let recorded = match start {
                                Some(s) => epochs.assign(h.leader_epoch, s)?,
                                None => false,
                            };
                            if !recorded {
                                epochs.assign(h.leader_epoch, h.offset)?;
                            }
                        }
                        p += h.record_len();
                    }
                }
                self.log.append_raw(records)?
            }
        };
        self.leo_tx.send_replace(leo);
        if self.log.fsync_policy() == FsyncPolicy::Always && leo > 0 {
            let mut durable = self.log.durable_watch();
            if durable.wait_for(|&d| d >= leo).await.is_err() {
                return Err(ReplicaError::Storage(crate::storage::StorageError::Failed(
                    "the log was closed".into(),
                )));
            }
        }
        let mut st = self.lock();
        if st.generation == generation {
            self.note_caught_up(leo, leader.log_end_offset)?;
            let hw = leader_hw.min(leo);
            if hw > st.hw {
                st.hw = hw;
                self.hw_tx.send_replace(hw);
            }
        }
        Ok(leo)
    }
}
