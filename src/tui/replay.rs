//! Moving through the lab's timeline in the console: `[` / `]` a change at a time, `{` / `}`
//! (Shift) [`BIG_STEP`] at a time, Home to the start, End (or `live`) back to the present. The
//! position is a frame index of the [`Timeline`]; `None` is live.

use crate::lab::Timeline;
use std::time::Duration;

/// How far Shift+`[` / Shift+`]` move.
pub const BIG_STEP: Duration = Duration::from_secs(5);

/// A move through the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// One change back (`[`).
    Back,
    /// One change forward (`]`).
    Forward,
    /// [`BIG_STEP`] back (`{`).
    BackBig,
    /// [`BIG_STEP`] forward (`}`).
    ForwardBig,
    /// The first frame (Home).
    Start,
    /// The present (End, `live`); the last frame of a recording.
    Live,
}

/// Where `mv` goes from `at` (`None`: live). `live` says whether there is a present to return
/// to (not when replaying a file: then the last frame is as far as it goes).
pub fn moved(t: &Timeline, at: Option<usize>, mv: Move, live: bool) -> Option<usize> {
    let len = t.len();
    if len == 0 {
        return if live { None } else { at };
    }
    let last = len - 1;
    let end = if live { None } else { Some(last) };
    let big = BIG_STEP.as_millis() as u64;
    match (mv, at) {
        (Move::Live, _) => end,
        (Move::Start, _) => Some(0),
        // Live shows what the last frame shows: one back is the change before it.
        (Move::Back, None) => Some(last.saturating_sub(1)),
        (Move::Back, Some(i)) => Some(i.saturating_sub(1)),
        (Move::Forward, None) => None,
        (Move::Forward, Some(i)) if i >= last => end,
        (Move::Forward, Some(i)) => Some(i + 1),
        (Move::BackBig, at) => {
            let i = at.unwrap_or(last);
            let now = t.time_of(i).unwrap_or(0);
            Some(t.index_at(now.saturating_sub(big)).min(i.saturating_sub(1)))
        }
        (Move::ForwardBig, None) => None,
        (Move::ForwardBig, Some(i)) => {
            let target = t.time_of(i).unwrap_or(0) + big;
            if t.time_of(last).is_some_and(|l| l < target) {
                end
            } else {
                Some(t.index_at(target).max(i + 1).min(last))
            }
        }
    }
}

/// The title bar's warning while replaying frame `i`: how long after the lab started it was.
pub fn title(t: &Timeline, i: usize, recording: Option<&str>) -> String {
    let start = t.info().started_at_ms;
    let at = t.time_of(i).unwrap_or(start).saturating_sub(start);
    let of = recording.map_or(String::new(), |r| format!(" of {r}"));
    format!(
        " REPLAY{of} +{:.1} s · change {} of {} · [ ] step · {{ }} 5 s · Home/End ",
        at as f64 / 1000.0,
        i + 1,
        t.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{LabInfo, LabSnapshot, LoadProgress};
    use std::sync::Arc;

    /// Frames at 0, 1, 2, ... 20 s.
    fn timeline() -> Timeline {
        let mut t = Timeline::new(Arc::new(LabInfo::default()), None).expect("timeline");
        for s in 0..=20u64 {
            let snap = LabSnapshot {
                load: Some(LoadProgress {
                    done: s,
                    ..LoadProgress::default()
                }),
                ..LabSnapshot::default()
            };
            t.note_snapshot(&snap, s * 1000);
        }
        t
    }

    #[test]
    fn steps_go_a_change_at_a_time_and_end_at_the_present() {
        let t = timeline();
        assert_eq!(moved(&t, None, Move::Back, true), Some(19));
        assert_eq!(moved(&t, Some(19), Move::Forward, true), Some(20));
        assert_eq!(moved(&t, Some(20), Move::Forward, true), None);
        assert_eq!(moved(&t, Some(0), Move::Back, true), Some(0));
        assert_eq!(moved(&t, Some(7), Move::Start, true), Some(0));
        assert_eq!(moved(&t, Some(7), Move::Live, true), None);
    }

    #[test]
    fn shift_steps_go_five_seconds() {
        let t = timeline();
        assert_eq!(moved(&t, Some(12), Move::BackBig, true), Some(7));
        assert_eq!(moved(&t, None, Move::BackBig, true), Some(15));
        assert_eq!(moved(&t, Some(2), Move::BackBig, true), Some(0));
        assert_eq!(moved(&t, Some(12), Move::ForwardBig, true), Some(17));
        assert_eq!(moved(&t, Some(17), Move::ForwardBig, true), None);
    }

    #[test]
    fn a_recording_has_no_present_beyond_its_last_frame() {
        let t = timeline();
        assert_eq!(moved(&t, Some(20), Move::Forward, false), Some(20));
        assert_eq!(moved(&t, Some(3), Move::Live, false), Some(20));
        assert_eq!(moved(&t, Some(17), Move::ForwardBig, false), Some(20));
    }

    #[test]
    fn the_title_says_replay_and_how_far_in() {
        let t = timeline();
        let s = title(&t, 12, None);
        assert!(s.contains("REPLAY +12.0 s"), "{s}");
        assert!(s.contains("change 13 of 21"), "{s}");
        assert!(title(&t, 0, Some("run.jsonl")).contains("REPLAY of run.jsonl +0.0 s"));
    }
}
