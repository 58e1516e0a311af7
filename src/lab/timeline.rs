//! The lab's timeline, for replay: every published snapshot that differs from the one before
//! (a *frame*), and every event, with their times. It is kept in memory, bounded, and — with
//! `--record FILE` — written as JSON Lines as it happens, so a teacher can record a failover once
//! and replay it anywhere (`simplekv-lab replay FILE`), no broker or ZooKeeper needed.
//!
//! The file: the first line is `{"info": LabInfo}` with `"version": 1`; then, in time order,
//! `{"frame": Frame}` and `{"event": Event}` lines. A frame holds what the console draws apart
//! from the events: brokers, partitions, controller, throughput, load and faults, and `at_ms`
//! (Unix ms). Replaying frame *i* shows it with the events up to its time.

use super::snapshot::{BrokerView, LabInfo, LabSnapshot, LoadProgress, ZkMode};
use crate::client::PartitionView;
use crate::coord::ControllerInfo;
use crate::events::Event;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

/// Frames kept in memory (the oldest go first); a file keeps every one.
pub const MAX_FRAMES: usize = 5_000;
/// Roughly how many bytes of frames are kept in memory: a lab of many partitions keeps fewer
/// frames than [`MAX_FRAMES`].
pub const MAX_FRAME_BYTES: usize = 64 << 20;
/// Events kept in memory.
pub const MAX_EVENTS: usize = 10_000;
/// Events a replayed snapshot carries (as many as the live console keeps).
const EVENTS_SHOWN: usize = 500;
/// The file format's version.
pub const VERSION: u32 = 1;

/// One published snapshot without its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// When it was published, Unix ms.
    pub at_ms: u64,
    /// Brokers.
    pub brokers: Vec<BrokerView>,
    /// Partitions as ZooKeeper says.
    pub partitions: Vec<PartitionView>,
    /// The controller.
    pub controller: Option<ControllerInfo>,
    /// Records appended per second.
    pub throughput: Vec<u64>,
    /// The background load.
    pub load: Option<LoadProgress>,
    /// Faults in force.
    pub faults: Vec<String>,
    /// Each private ZooKeeper server's mode (absent in recordings made before ensembles).
    #[serde(default)]
    pub zk_servers: Vec<ZkMode>,
}

impl Frame {
    fn of(snap: &LabSnapshot, at_ms: u64) -> Self {
        Self {
            at_ms,
            brokers: snap.brokers.clone(),
            partitions: snap.partitions.clone(),
            controller: snap.controller,
            throughput: snap.throughput.clone(),
            load: snap.load,
            faults: snap.faults.clone(),
            zk_servers: snap.zk_servers.clone(),
        }
    }

    /// Roughly the bytes it holds.
    pub fn weight(&self) -> usize {
        let replica = |r: &crate::replica::ReplicaSnapshot| {
            160 + 16 * r.epochs.len() + 4 * r.isr.len() + 16 * r.follower_leos.len()
        };
        let broker = |b: &BrokerView| {
            150 + b.faults.iter().map(|f| f.len() + 24).sum::<usize>()
                + b.snapshot
                    .as_ref()
                    .map_or(0, |s| s.replicas.iter().map(replica).sum())
        };
        200 + self.brokers.iter().map(broker).sum::<usize>()
            + self
                .partitions
                .iter()
                .map(|p| 100 + 4 * (p.isr.len() + p.eligible.len() + p.replicas.len()))
                .sum::<usize>()
            + 8 * self.throughput.len()
            + self.faults.iter().map(|f| f.len() + 24).sum::<usize>()
    }

    /// Whether it shows what `snap` shows (events aside): then `snap` is no new change.
    fn shows(&self, snap: &LabSnapshot) -> bool {
        self.brokers == snap.brokers
            && self.partitions == snap.partitions
            && self.controller == snap.controller
            && self.throughput == snap.throughput
            && self.load == snap.load
            && self.faults == snap.faults
            && self.zk_servers == snap.zk_servers
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    version: u32,
    info: LabInfo,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line {
    Frame(Frame),
    Event(Event),
}

/// The timeline of one lab run.
pub struct Timeline {
    info: Arc<LabInfo>,
    frames: VecDeque<Frame>,
    /// Sum of the frames' weights.
    frame_bytes: usize,
    events: VecDeque<Event>,
    file: Option<std::io::BufWriter<std::fs::File>>,
    /// Why writing the file stopped, if it did.
    file_error: Option<String>,
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeline")
            .field("frames", &self.frames.len())
            .field("events", &self.events.len())
            .finish()
    }
}

impl Timeline {
    /// An empty timeline of the lab `info` describes, written to `record` as it grows.
    pub fn new(info: Arc<LabInfo>, record: Option<&Path>) -> Result<Self, String> {
        let file = match record {
            None => None,
            Some(path) => {
                let f = std::fs::File::create(path)
                    .map_err(|e| format!("cannot record to {}: {e}", path.display()))?;
                let mut w = std::io::BufWriter::new(f);
                let header = Header {
                    version: VERSION,
                    info: (*info).clone(),
                };
                write_line(&mut w, &header)
                    .map_err(|e| format!("cannot record to {}: {e}", path.display()))?;
                Some(w)
            }
        };
        Ok(Self {
            info,
            frames: VecDeque::new(),
            frame_bytes: 0,
            events: VecDeque::new(),
            file,
            file_error: None,
        })
    }

    /// Reads a recording; the error names the line that is wrong.
    pub fn load(path: &Path) -> Result<Self, String> {
        let f = std::fs::File::open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut lines = std::io::BufReader::new(f).lines();
        let at = |n: usize| format!("{}:{n}", path.display());
        let first = lines
            .next()
            .ok_or_else(|| format!("{} is empty: not a recording", path.display()))?
            .map_err(|e| format!("{}: {e}", at(1)))?;
        let header: Header = serde_json::from_str(&first).map_err(|e| {
            format!(
                "{}: not a lab recording (its first line must be the lab's info): {e}",
                at(1)
            )
        })?;
        if header.version != VERSION {
            return Err(format!(
                "{}: recording version {} (this program reads version {VERSION})",
                at(1),
                header.version
            ));
        }
        let mut t = Self::new(Arc::new(header.info), None)?;
        for (i, line) in lines.enumerate() {
            let line = line.map_err(|e| format!("{}: {e}", at(i + 2)))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Line>(&line).map_err(|e| format!("{}: {e}", at(i + 2)))? {
                Line::Frame(f) => t.push_frame(f),
                Line::Event(e) => t.push_event(e),
            }
        }
        if t.frames.is_empty() {
            return Err(format!(
                "{} holds no snapshot of the lab: nothing to replay",
                path.display()
            ));
        }
        Ok(t)
    }

    /// The lab's fixed facts.
    pub fn info(&self) -> &Arc<LabInfo> {
        &self.info
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Events held.
    pub fn events(&self) -> usize {
        self.events.len()
    }

    /// Why the recording file stopped being written, if it did.
    pub fn file_error(&self) -> Option<&str> {
        self.file_error.as_deref()
    }

    /// Notes a published snapshot at `at_ms`: kept (and written) when it differs from the last.
    pub fn note_snapshot(&mut self, snap: &LabSnapshot, at_ms: u64) {
        if self.frames.back().is_some_and(|last| last.shows(snap)) {
            return;
        }
        let frame = Frame::of(snap, at_ms);
        self.write(&Line::Frame(frame.clone()));
        self.push_frame(frame);
    }

    /// Notes an event.
    pub fn note_event(&mut self, event: &Event) {
        self.write(&Line::Event(event.clone()));
        self.push_event(event.clone());
    }

    fn push_frame(&mut self, frame: Frame) {
        self.frame_bytes += frame.weight();
        self.frames.push_back(frame);
        while self.frames.len() > MAX_FRAMES
            || (self.frame_bytes > MAX_FRAME_BYTES && self.frames.len() > 1)
        {
            if let Some(old) = self.frames.pop_front() {
                self.frame_bytes = self.frame_bytes.saturating_sub(old.weight());
            }
        }
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    fn write(&mut self, line: &Line) {
        let Some(w) = &mut self.file else { return };
        if let Err(e) = write_line(w, line) {
            tracing::warn!(error = %e, "the recording stopped");
            self.file_error = Some(e.to_string());
            self.file = None;
        }
    }

    /// Frame `i`.
    pub fn frame(&self, i: usize) -> Option<&Frame> {
        self.frames.get(i)
    }

    /// When frame `i` was published, Unix ms.
    pub fn time_of(&self, i: usize) -> Option<u64> {
        self.frames.get(i).map(|f| f.at_ms)
    }

    /// The last frame published at or before `at_ms` (the first frame if none was).
    pub fn index_at(&self, at_ms: u64) -> usize {
        self.frames
            .partition_point(|f| f.at_ms <= at_ms)
            .saturating_sub(1)
    }

    /// Frame `i` as the console draws it: with the events up to its time.
    pub fn snapshot(&self, i: usize) -> Option<LabSnapshot> {
        let f = self.frames.get(i)?;
        let upto = self.events.partition_point(|e| e.at_ms <= f.at_ms);
        let from = upto.saturating_sub(EVENTS_SHOWN);
        Some(LabSnapshot {
            info: Arc::clone(&self.info),
            brokers: f.brokers.clone(),
            partitions: f.partitions.clone(),
            controller: f.controller,
            events: self.events.range(from..upto).cloned().collect(),
            throughput: f.throughput.clone(),
            load: f.load,
            faults: f.faults.clone(),
            zk_servers: f.zk_servers.clone(),
        })
    }
}

fn write_line<T: Serialize>(w: &mut impl Write, value: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, value)?;
    w.write_all(b"\n")?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    fn info() -> Arc<LabInfo> {
        Arc::new(LabInfo {
            started_at_ms: 1_000,
            ..LabInfo::default()
        })
    }

    fn snap(load_done: u64) -> LabSnapshot {
        LabSnapshot {
            load: Some(LoadProgress {
                done: load_done,
                ..LoadProgress::default()
            }),
            ..LabSnapshot::default()
        }
    }

    fn event(at_ms: u64, message: &str) -> Event {
        Event {
            at_ms,
            broker: Some(1),
            partition: None,
            kind: EventKind::Kill,
            message: message.into(),
        }
    }

    #[test]
    fn only_changes_become_frames_and_a_frame_shows_the_events_up_to_its_time() {
        let mut t = Timeline::new(info(), None).expect("timeline");
        t.note_snapshot(&snap(0), 1_000);
        t.note_snapshot(&snap(0), 1_200);
        t.note_event(&event(1_300, "killed"));
        t.note_snapshot(&snap(5), 1_400);
        t.note_event(&event(1_500, "restored"));
        assert_eq!(t.len(), 2, "an unchanged snapshot is not a frame");
        let first = t.snapshot(0).expect("frame 0");
        assert!(first.events.is_empty());
        let second = t.snapshot(1).expect("frame 1");
        assert_eq!(second.load.map(|l| l.done), Some(5));
        assert_eq!(second.events.len(), 1, "not the event after it");
        assert_eq!(t.index_at(1_399), 0);
        assert_eq!(t.index_at(1_400), 1);
        assert_eq!(t.index_at(0), 0);
    }

    #[test]
    fn memory_is_bounded() {
        let mut t = Timeline::new(info(), None).expect("timeline");
        for i in 0..(MAX_FRAMES as u64 + 10) {
            t.note_snapshot(&snap(i), i);
        }
        assert_eq!(t.len(), MAX_FRAMES);
        assert_eq!(t.time_of(0), Some(10));
    }

    #[test]
    fn a_lab_of_many_partitions_keeps_fewer_frames_within_the_byte_bound() {
        use crate::lab::snapshot::{BrokerState, BrokerView};
        let mut t = Timeline::new(info(), None).expect("timeline");
        let big = |n: u64| LabSnapshot {
            brokers: vec![BrokerView {
                id: 1,
                state: BrokerState::Down,
                registered: false,
                snapshot: None,
                faults: vec!["x".repeat(1 << 20)],
                resp_port: None,
            }],
            load: Some(LoadProgress {
                done: n,
                ..LoadProgress::default()
            }),
            ..LabSnapshot::default()
        };
        for i in 0..200u64 {
            t.note_snapshot(&big(i), i);
        }
        assert!(t.len() < 70, "{} frames of 1 MiB kept", t.len());
        assert!(t.frame_bytes <= MAX_FRAME_BYTES);
        assert_eq!(t.time_of(t.len() - 1), Some(199), "the newest stay");
    }

    #[test]
    fn a_recording_reads_back_as_it_was_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run.jsonl");
        let mut t = Timeline::new(info(), Some(&path)).expect("timeline");
        t.note_snapshot(&snap(1), 1_100);
        t.note_event(&event(1_150, "killed"));
        t.note_snapshot(&snap(2), 1_200);
        let back = Timeline::load(&path).expect("load");
        assert_eq!(back.len(), 2);
        assert_eq!(back.info().started_at_ms, 1_000);
        assert_eq!(
            back.snapshot(1).map(|s| s.events),
            t.snapshot(1).map(|s| s.events)
        );
        assert_eq!(back.frames, t.frames);
    }

    #[test]
    fn a_bad_recording_names_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.jsonl");
        let mut t = Timeline::new(info(), Some(&path)).expect("timeline");
        t.note_snapshot(&snap(1), 1_100);
        drop(t);
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str("{\"frame\": 12}\n");
        std::fs::write(&path, text).expect("write");
        let e = Timeline::load(&path).expect_err("bad line");
        assert!(e.contains("bad.jsonl:3"), "{e}");
        std::fs::write(&path, "hello\n").expect("write");
        let e = Timeline::load(&path).expect_err("not a recording");
        assert!(e.contains(":1: not a lab recording"), "{e}");
        std::fs::write(&path, "").expect("write");
        assert!(
            Timeline::load(&path)
                .expect_err("empty")
                .contains("is empty")
        );
    }
}
