//! One partition replica: its log, high watermark, leader-epoch cache and role.
//!
//! As leader it takes writes with acks 0 / 1 / all, serves committed reads and followers' fetches,
//! advances the high watermark (HW = min LEO over the ISR) and decides ISR membership. As follower
//! it appends fetched records verbatim and truncates by leader epoch (KIP-101/279) when its leader
//! changes. It knows nothing of ZooKeeper or gRPC: the broker tells it its role, carries ISR
//! proposals to ZooKeeper and moves bytes over the network.
//!
//! Locking: one `parking_lot::Mutex` per replica around the role state; it is held across the
//! store's append (so a write can never land under an epoch the replica already left) but never
//! across an `.await`.

mod error;
mod follower;
mod handover;
mod leader;
mod lease;
pub mod rules;
#[cfg(test)]
mod tests;
pub mod timing;

use crate::events::{EventKind, EventSink};
use crate::storage::checkpoint::{self, HIGH_WATERMARK_FILE, LeaderEpochCache};
use crate::storage::{FsyncPolicy, StorageError, Store, StoreConfig};
use parking_lot::{Mutex, MutexGuard};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

pub use error::ReplicaError;
pub use follower::{EpochAnswer, FollowTarget, LeaderView};
pub use handover::Attempt;
pub use leader::{BatchOutcome, FetchReply, FetchRequest, IsrProposal};
pub use lease::{Lease, lease_end, renew_period};
pub use timing::CommitPath;

/// The file holding the leader horizon generation a follower's log reflects (`rules::must_empty`).
pub const HORIZON_GENERATION_FILE: &str = "horizon-generation";

/// The marker file of a replica whose log may lack committed records (`Replica::incomplete`).
pub const INCOMPLETE_FILE: &str = "incomplete";

/// Present while the replica is open: it holds the machine's boot id, and a clean close removes
/// it. Found at open with another boot id, the machine lost power (or rebooted) with the log
/// open, and under `fsync: interval | never` its unsynced tail may be gone.
pub const RUNNING_FILE: &str = "running";

/// This boot of the machine, if the system says (Linux). A lab machine that lost power (see
/// [`crate::storage::DiskModel`]) adds its power losses, as a reboot would change the id.
fn boot_id(disk: &crate::storage::DiskModel) -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(match disk.boots() {
        0 => id.trim().to_string(),
        n => format!("{}+power-loss-{n}", id.trim()),
    })
}

/// How many copies must hold a write before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Acks {
    /// Appended on the leader; nothing waited for.
    Zero,
    /// In the leader's log, durable per its fsync policy.
    #[default]
    One,
    /// Every ISR member has it (the high watermark passed it).
    All,
}

impl std::str::FromStr for Acks {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "0" => Ok(Self::Zero),
            "1" => Ok(Self::One),
            "all" | "-1" => Ok(Self::All),
            other => Err(format!("acks must be 0, 1 or all, not '{other}'")),
        }
    }
}

impl std::fmt::Display for Acks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Zero => "0",
            Self::One => "1",
            Self::All => "all",
        })
    }
}

/// Settings of one replica.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// The broker this replica lives on.
    pub broker_id: u32,
    /// The partition.
    pub partition: u32,
    /// All replicas of the partition, preferred leader first.
    pub replicas: Vec<u32>,
    /// acks=all writes are refused while the ISR is smaller.
    pub min_insync_replicas: u32,
    /// A follower that has not caught up for this long leaves the ISR.
    pub replica_lag_time_max: Duration,
    /// How long acks=all writes and reads of uncommitted keys wait.
    pub request_timeout: Duration,
}

/// Who may hold the partition's committed data, as ZooKeeper records it with the leader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// In-sync replicas.
    pub isr: Vec<u32>,
    /// Eligible leader replicas: members that left the ISR while it was below min.insync.
    pub eligible: Vec<u32>,
    /// The broker epoch of each ISR and eligible member (and the leader).
    pub broker_epochs: BTreeMap<u32, i64>,
}

/// The role a replica believes it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// Takes writes and serves reads and fetches.
    Leader,
    /// Copies from `leader`.
    Follower {
        /// The leader it copies from.
        leader: u32,
    },
    /// No leader known, or the session that told it its role is gone.
    Offline,
}

impl Role {
    /// `leader`, `follower` or `offline`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Leader => "leader",
            Self::Follower { .. } => "follower",
            Self::Offline => "offline",
        }
    }
}

/// Progress of one follower, as its leader sees it.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Its log end (the offset of its last fetch); `None` until it fetches in this epoch.
    pub leo: Option<u64>,
    /// When it last fetched.
    pub last_fetch: Instant,
    /// When it was last known to have reached the leader's log end.
    pub last_caught_up: Instant,
    /// The leader's log end at its previous fetch.
    pub leader_leo_at_last_fetch: u64,
    /// The broker epoch its fetches carry (which incarnation of the broker it is).
    pub broker_epoch: Option<i64>,
}

impl Progress {
    fn new(now: Instant, broker_epoch: Option<i64>) -> Self {
        Self {
            leo: None,
            last_fetch: now,
            last_caught_up: now,
            leader_leo_at_last_fetch: 0,
            broker_epoch,
        }
    }
}

pub(crate) struct State {
    role: Role,
    /// The leader epoch this replica acts in.
    epoch: u32,
    hw: u64,
    /// The session that set the role is gone: serve nothing until told again.
    fenced: bool,
    /// Leader side: the ISR as ZooKeeper accepted it, the eligible leader replicas, the broker
    /// epochs it recorded for their members, and that state znode's version.
    isr: Vec<u32>,
    eligible: Vec<u32>,
    member_epochs: BTreeMap<u32, i64>,
    state_version: i32,
    followers: BTreeMap<u32, Progress>,
    /// The ISR of a change being written to ZooKeeper (it counts in the HW meanwhile).
    pending_isr: Option<Vec<u32>>,
    /// Bumped on every change of role or epoch; waiters abort when it moves.
    generation: u64,
    checkpointed_hw: u64,
    /// The leader horizon generation this log reflects (persisted).
    horizon_generation: u64,
    /// Leader side: the handover under way, if any (see `handover.rs`): no client request is
    /// taken meanwhile. Cleared with every change of role or epoch, and only by its own attempt.
    handing_over: Option<handover::Attempt>,
    /// Numbers handover attempts, so one attempt never ends another.
    handovers: u64,
}

/// A replica's state for the console and for elections.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaSnapshot {
    /// The partition.
    pub partition: u32,
    /// Its role as it believes it.
    pub role: Role,
    /// The epoch it acts in.
    pub leader_epoch: u32,
    /// Newest epoch in its leader-epoch checkpoint.
    pub last_epoch: Option<u32>,
    /// Its leader-epoch cache: each epoch and the first offset written in it, oldest first (the
    /// console colours the log by it).
    pub epochs: Vec<(u32, u64)>,
    /// Log end offset.
    pub log_end_offset: u64,
    /// High watermark.
    pub high_watermark: u64,
    /// First offset in the log.
    pub log_start_offset: u64,
    /// ISR as this leader believes (empty for followers).
    pub isr: Vec<u32>,
    /// Followers' log ends as this leader last saw them.
    pub follower_leos: Vec<(u32, Option<u64>)>,
    /// It lost the session that set its role.
    pub fenced: bool,
    /// Its broker can prove its ZooKeeper session alive (a leader without it serves nothing).
    pub lease_held: bool,
}

/// One partition replica.
pub struct Replica {
    cfg: ReplicaConfig,
    log: Store,
    state: Mutex<State>,
    epochs: Mutex<LeaderEpochCache>,
    hw_tx: watch::Sender<u64>,
    leo_tx: watch::Sender<u64>,
    generation_tx: watch::Sender<u64>,
    isr_wanted: Notify,
    /// Where acknowledged writes' time goes while this replica leads (for `bench` and `status`).
    timing: timing::CommitTiming,
    /// Notified whenever a follower's fetch reports its log end (a handover waits on it).
    progress: Notify,
    lease: Arc<Lease>,
    /// Its log may lack committed records (see [`Replica::incomplete`]); mirrored by a marker file.
    incomplete: std::sync::atomic::AtomicBool,
    events: EventSink,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("broker", &self.cfg.broker_id)
            .field("partition", &self.cfg.partition)
            .finish()
    }
}

impl Replica {
    /// Opens the replica's log and checkpoints in `dir`. It starts offline. `lease` is its
    /// broker's leader lease.
    pub fn open(
        dir: &Path,
        store_config: StoreConfig,
        cfg: ReplicaConfig,
        lease: Arc<Lease>,
        events: EventSink,
    ) -> Result<Arc<Self>, StorageError> {
        let new_dir = !dir.exists();
        let log = Store::open(dir, store_config)?;
        let mut epochs = LeaderEpochCache::open(dir)?;
        let leo = log.log_end_offset();
        // The checkpoint is synced at every epoch change, the log only per its fsync policy: after
        // a power loss the cache can name epochs whose records are gone. Trim it to the log, or
        // elections would see an inflated last epoch and new epochs would be refused.
        let before = epochs.latest();
        epochs.truncate_from_end(leo)?;
        if epochs.latest() != before {
            events.emit(
                EventKind::Truncation,
                Some(cfg.partition),
                format!(
                    "leader-epoch cache trimmed to the recovered log end {leo} (newest epoch now {})",
                    epochs.latest().map_or("none".into(), |e| e.epoch.to_string())
                ),
            );
        }
        let checkpointed_hw = checkpoint::read_u64(&dir.join(HIGH_WATERMARK_FILE))?.unwrap_or(0);
        let hw = checkpointed_hw.min(leo);
        // A replica that opens on a missing directory (a replaced disk) or with its log below the
        // high watermark it had checkpointed (a power loss) may lack committed records: it must
        // not win an election of restarted replicas until it has copied back up to a leader's HW.
        // The marker outlives restarts until then.
        let marker = dir.join(INCOMPLETE_FILE);
        let lost = leo < checkpointed_hw;
        let running = dir.join(RUNNING_FILE);
        let boot = boot_id(&log.config().disk).unwrap_or_else(|| {
            events.emit(
                EventKind::Warning,
                Some(cfg.partition),
                "cannot read this machine's boot id: a power loss with the log open will go undetected",
            );
            String::new()
        });
        let power_lost = log.fsync_policy() != FsyncPolicy::Always
            && std::fs::read_to_string(&running).is_ok_and(|before| before.trim() != boot);
        if new_dir || lost || power_lost {
            checkpoint::write_u64(&marker, leo)?;
        }
        checkpoint::write_file_atomic(&running, format!("{boot}\n").as_bytes(), true)?;
        if power_lost && !lost {
            events.emit(
                EventKind::Truncation,
                Some(cfg.partition),
                "the machine restarted with this log open and fsync not `always`: its unsynced tail \
                 may be lost; it will not lead a restarted election until it has copied a leader's log",
            );
        }
        if lost {
            events.emit(
                EventKind::Truncation,
                Some(cfg.partition),
                format!(
                    "the log ends at {leo}, below the high watermark {checkpointed_hw} it had checkpointed: \
                     committed records were lost (a power loss?); it will not lead until it has copied them back"
                ),
            );
        }
        let incomplete = marker.exists();
        // The adopted generation says this log holds every delete up to the horizon that the
        // leader's merges dropped. If the log now ends at or below the horizon (a power loss cut
        // its unsynced tail), that is no longer proven: forget it, so the leader empties us.
        let gen_path = dir.join(HORIZON_GENERATION_FILE);
        let mut horizon_generation = checkpoint::read_u64(&gen_path)?.unwrap_or(0);
        if horizon_generation != 0 && leo > 0 && leo <= log.tombstone_horizon() {
            horizon_generation = 0;
            checkpoint::write_u64(&gen_path, 0)?;
        }
        let r = log.recovery();
        if r.torn_bytes_dropped > 0 {
            events.emit(
                EventKind::Truncation,
                Some(cfg.partition),
                format!(
                    "cut {} torn byte(s) off the log tail at start-up",
                    r.torn_bytes_dropped
                ),
            );
        }
        Ok(Arc::new(Self {
            log,
            state: Mutex::new(State {
                role: Role::Offline,
                epoch: epochs.latest().map_or(0, |e| e.epoch),
                hw,
                fenced: false,
                isr: Vec::new(),
                eligible: Vec::new(),
                member_epochs: BTreeMap::new(),
                state_version: -1,
                followers: BTreeMap::new(),
                pending_isr: None,
                generation: 0,
                checkpointed_hw: hw,
                horizon_generation,
                handing_over: None,
                handovers: 0,
            }),
            epochs: Mutex::new(epochs),
            hw_tx: watch::Sender::new(hw),
            leo_tx: watch::Sender::new(leo),
            generation_tx: watch::Sender::new(0),
            isr_wanted: Notify::new(),
            timing: timing::CommitTiming::default(),
            progress: Notify::new(),
            lease,
            incomplete: std::sync::atomic::AtomicBool::new(incomplete),
            events,
            cfg,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    fn lock_epochs(&self) -> MutexGuard<'_, LeaderEpochCache> {
        self.epochs.lock()
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.cfg.partition
    }

    /// The settings.
    pub fn config(&self) -> &ReplicaConfig {
        &self.cfg
    }

    /// Where this replica's acknowledged writes spent their time while it led, as means.
    pub fn commit_path(&self) -> CommitPath {
        self.timing.snapshot()
    }

    /// The log (read-only uses: stats, replica comparisons).
    pub fn log(&self) -> &Store {
        &self.log
    }

    /// A snapshot of the replica's state.
    pub fn snapshot(&self) -> ReplicaSnapshot {
        let st = self.lock();
        let (last_epoch, epochs) = {
            let cache = self.lock_epochs();
            let entries = cache.entries();
            (
                entries.last().map(|e| e.epoch),
                entries.iter().map(|e| (e.epoch, e.start_offset)).collect(),
            )
        };
        ReplicaSnapshot {
            partition: self.cfg.partition,
            role: st.role,
            leader_epoch: st.epoch,
            last_epoch,
            epochs,
            log_end_offset: self.log.log_end_offset(),
            high_watermark: st.hw,
            log_start_offset: self.log.log_start_offset(),
            isr: if st.role == Role::Leader {
                st.isr.clone()
            } else {
                Vec::new()
            },
            follower_leos: st.followers.iter().map(|(id, p)| (*id, p.leo)).collect(),
            fenced: st.fenced,
            lease_held: self.lease.holds(Instant::now()),
        }
    }

    /// The current high watermark.
    pub fn high_watermark(&self) -> u64 {
        self.lock().hw
    }

    /// Writes the high-watermark checkpoint if it moved since the last one.
    pub fn checkpoint_hw(&self) -> Result<(), StorageError> {
        let hw = {
            let st = self.lock();
            if st.hw == st.checkpointed_hw {
                return Ok(());
            }
            st.hw
        };
        checkpoint::write_u64(&self.log.dir().join(HIGH_WATERMARK_FILE), hw)?;
        let mut st = self.lock();
        st.checkpointed_hw = hw;
        Ok(())
    }

    /// Merges committed sealed segments of the log.
    pub fn merge(&self) -> Result<Option<crate::storage::MergeReport>, StorageError> {
        let hw = self.high_watermark();
        // One segment alone (often the output of the last merge) has little to gain: wait until
        // there are at least two to combine.
        if self.log.mergeable_segments(hw) < 2 {
            return Ok(None);
        }
        self.log.merge(hw)
    }

    /// Whether its log may lack committed records: it opened on a replaced disk or below its
    /// checkpointed high watermark, and has not yet copied back up to a leader's HW. Such a
    /// replica never wins an election of restarted replicas.
    pub fn incomplete(&self) -> bool {
        self.incomplete.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The log has reached `leader_leo`, a leader's log end: whatever it lacked is back.
    /// The caller holds the state lock (so a concurrent emptying cannot be undone by it).
    fn note_caught_up(&self, leo: u64, leader_leo: u64) -> Result<(), StorageError> {
        if leo >= leader_leo && self.incomplete() {
            // What it copied must be durable before it stops saying it may lack it.
            self.log.sync()?;
            match std::fs::remove_file(self.log.dir().join(INCOMPLETE_FILE)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StorageError::Io {
                        path: self.log.dir().join(INCOMPLETE_FILE),
                        source: e,
                    });
                }
            }
            checkpoint::sync_dir(self.log.dir())?;
            self.incomplete
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }

    /// Marks the log as possibly lacking committed records, durably, before it loses any.
    fn mark_incomplete(&self) -> Result<(), StorageError> {
        let leo = self.log.log_end_offset();
        checkpoint::write_u64(&self.log.dir().join(INCOMPLETE_FILE), leo)?;
        self.incomplete
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// The leader horizon generation this log reflects.
    pub fn horizon_generation(&self) -> u64 {
        self.lock().horizon_generation
    }

    fn adopt_horizon_generation(&self, st: &mut State, g: u64) -> Result<(), StorageError> {
        if st.horizon_generation != g {
            checkpoint::write_u64(&self.log.dir().join(HORIZON_GENERATION_FILE), g)?;
            st.horizon_generation = g;
        }
        Ok(())
    }

    fn bump_generation(&self, st: &mut State) {
        st.generation += 1;
        st.handing_over = None;
        // Long-polls, acks=all waiters and fetchers watch this and stop or re-check.
        self.generation_tx.send_replace(st.generation);
    }

    /// A role for an epoch older than the one this replica acts in is news from the past.
    fn is_stale(&self, st: &State, epoch: u32) -> bool {
        if epoch < st.epoch {
            tracing::warn!(
                partition = self.cfg.partition,
                epoch,
                current = st.epoch,
                "ignoring a role from an older leader epoch"
            );
        }
        epoch < st.epoch
    }

    /// Becomes leader in `epoch` with `members` (as read from ZooKeeper at `version`). Returns
    /// whether anything changed. Refuses, with a warning event, an epoch older than one its log
    /// already holds or one it cannot record.
    pub fn become_leader(&self, epoch: u32, members: Membership, version: i32) -> bool {
        let mut st = self.lock();
        if st.role == Role::Leader && st.epoch == epoch && !st.fenced {
            if version > st.state_version {
                self.set_membership(&mut st, members, version);
                // A newer state settles whatever change was pending (it landed or lost).
                st.pending_isr = None;
                self.maybe_advance_hw(&mut st);
            }
            return false;
        }
        if self.is_stale(&st, epoch) {
            return false;
        }
        let leo = self.log.log_end_offset();
        let refuse = |why: String| {
            self.events.emit(
                EventKind::Warning,
                Some(self.cfg.partition),
                format!("refused to lead in epoch {epoch}: {why}"),
            );
        };
        {
            let mut epochs = self.lock_epochs();
            if let Some(latest) = epochs.latest().filter(|l| l.epoch > epoch) {
                refuse(format!("its log already holds epoch {}", latest.epoch));
                return false;
            }
            match epochs.assign(epoch, leo) {
                Ok(true) => {}
                // Already recorded: leading again in the epoch it was given (same incarnation).
                Ok(false) if epochs.latest().is_some_and(|l| l.epoch == epoch) => {}
                Ok(false) => {
                    refuse(format!(
                        "its epoch cache ({:?}) does not admit epoch {epoch} at offset {leo}",
                        epochs.latest()
                    ));
                    return false;
                }
                Err(e) => {
                    refuse(format!("cannot record the epoch: {e}"));
                    return false;
                }
            }
        }
        // Its log now defines what is committed: whatever it lacked, it lacks for everyone.
        if let Err(e) = self.note_caught_up(leo, leo) {
            refuse(format!("cannot clear its incomplete mark: {e}"));
            return false;
        }
        let now = Instant::now();
        st.role = Role::Leader;
        // Batches and sends of an earlier term match nothing in this one.
        self.timing.forget();
        st.epoch = epoch;
        self.set_membership(&mut st, members, version);
        st.fenced = false;
        st.pending_isr = None;
        st.followers = self
            .cfg
            .replicas
            .iter()
            .filter(|&&r| r != self.cfg.broker_id)
            .map(|&r| (r, Progress::new(now, None)))
            .collect();
        self.bump_generation(&mut st);
        self.maybe_advance_hw(&mut st);
        self.events.emit(
            EventKind::RoleChange,
            Some(self.cfg.partition),
            format!(
                "became leader in epoch {epoch} at LEO {leo} (HW {}), ISR {:?}",
                st.hw, st.isr
            ),
        );
        true
    }

    fn set_membership(&self, st: &mut State, m: Membership, version: i32) {
        st.isr = m.isr;
        st.eligible = m.eligible;
        st.member_epochs = m.broker_epochs;
        st.state_version = version;
    }

    /// Becomes follower of `leader` in `epoch`. Returns whether anything changed (then the caller
    /// must truncate by epoch before fetching).
    pub fn become_follower(&self, leader: u32, epoch: u32) -> bool {
        let mut st = self.lock();
        if st.role == (Role::Follower { leader }) && st.epoch == epoch && !st.fenced {
            return false;
        }
        if self.is_stale(&st, epoch) {
            return false;
        }
        let was_leader = st.role == Role::Leader;
        st.role = Role::Follower { leader };
        st.epoch = epoch;
        st.fenced = false;
        st.isr.clear();
        st.eligible.clear();
        st.member_epochs.clear();
        st.pending_isr = None;
        st.followers.clear();
        self.bump_generation(&mut st);
        let what = if was_leader {
            "stepped down; now follows"
        } else {
            "follows"
        };
        self.events.emit(
            EventKind::RoleChange,
            Some(self.cfg.partition),
            format!("{what} broker {leader} in epoch {epoch}"),
        );
        true
    }

    /// The partition has no leader, or none this replica may act for (`why` says which).
    pub fn become_offline(&self, epoch: u32, why: &str) -> bool {
        let mut st = self.lock();
        if st.role == Role::Offline && !st.fenced {
            return false;
        }
        self.stop_acting(&mut st);
        st.fenced = false;
        st.epoch = st.epoch.max(epoch);
        self.events.emit(
            EventKind::RoleChange,
            Some(self.cfg.partition),
            format!("offline: {why}"),
        );
        true
    }

    /// Leaves whatever role the replica had: no leader duties, no followers, waiters woken.
    fn stop_acting(&self, st: &mut State) {
        st.role = Role::Offline;
        st.isr.clear();
        st.eligible.clear();
        st.member_epochs.clear();
        st.pending_isr = None;
        st.followers.clear();
        self.bump_generation(st);
    }

    /// The ZooKeeper session that set the role is gone (or the broker is stopping): stop leading
    /// and serving at once. `why` completes "stopped leading: ...".
    pub fn fence(&self, why: &str) {
        let mut st = self.lock();
        if st.fenced {
            return;
        }
        let was = st.role;
        self.stop_acting(&mut st);
        st.fenced = true;
        if was == Role::Leader {
            self.events.emit(
                EventKind::RoleChange,
                Some(self.cfg.partition),
                format!("stopped leading: {why}"),
            );
        }
    }

    /// Syncs the log and writes the HW checkpoint (clean shutdown).
    pub fn close(&self) -> Result<(), StorageError> {
        self.log.sync()?;
        self.checkpoint_hw()?;
        match std::fs::remove_file(self.log.dir().join(RUNNING_FILE)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StorageError::Io {
                path: self.log.dir().join(RUNNING_FILE),
                source,
            }),
        }
    }
}
