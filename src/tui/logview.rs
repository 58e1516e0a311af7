//! What the log strips show (`l`, `show log P`): which partition, and the records replicas lost
//! lately. A replica's log end seen lower than the last time it was seen is a cut: a truncation
//! to match a new leader, or — across a restart — a power loss or a wiped disk. The cut records
//! are drawn for [`CUT_SHOWN`] where they were. Times are Unix ms, passed in (a replay passes
//! the recorded times).

use crate::lab::{BrokerView, LabSnapshot, Timeline};
use std::collections::HashMap;
use std::time::Duration;

/// How long a truncation stays drawn.
pub const CUT_SHOWN: Duration = Duration::from_secs(4);

/// Records one replica just cut from its log: offsets `from..to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// The broker.
    pub broker: u32,
    /// The partition.
    pub partition: u32,
    /// First offset cut.
    pub from: u64,
    /// The log end before the cut.
    pub to: u64,
    /// Drawn until then, Unix ms.
    pub until_ms: u64,
}

/// The log strips' state.
#[derive(Debug, Clone, Default)]
pub struct LogView {
    /// The partition shown, if the strips are open.
    pub partition: Option<u32>,
    /// Partitions in the lab (from the last snapshot).
    pub partitions: u32,
    /// Truncations still drawn.
    pub cuts: Vec<Cut>,
    leos: HashMap<(u32, u32), u64>,
}

impl LogView {
    /// Opens the strips on the next partition, or closes them after the last.
    pub fn cycle(&mut self) {
        self.partition = match self.partition {
            None if self.partitions > 0 => Some(0),
            Some(p) if p + 1 < self.partitions => Some(p + 1),
            _ => None,
        };
    }

    /// `show log P | off`: the console's own command. `None` when `line` is not one.
    pub fn command(&mut self, line: &str) -> Option<Result<String, String>> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["show", "log", rest @ ..] = words.as_slice() else {
            return None;
        };
        Some(match rest {
            ["off"] => {
                self.partition = None;
                Ok("log strips closed".into())
            }
            [p] => match p.parse::<u32>() {
                Ok(p) if p < self.partitions.max(1) => {
                    self.partition = Some(p);
                    Ok(format!("showing the log of partition {p} (Esc closes it)"))
                }
                _ => Err(format!(
                    "no partition {p}; partitions are 0..{}",
                    self.partitions.saturating_sub(1)
                )),
            },
            _ => Err("usage: show log PARTITION | show log off".into()),
        })
    }

    /// The cuts to draw at change `i` of a timeline: those seen in the changes up to it, as
    /// the live console would have shown them then.
    pub fn replayed_cuts(t: &Timeline, i: usize) -> Vec<Cut> {
        let mut v = LogView::default();
        for j in i.saturating_sub(REPLAY_LOOKBACK)..=i {
            if let Some(f) = t.frame(j) {
                v.observe_brokers(&f.brokers, f.at_ms);
            }
        }
        v.cuts
    }

    /// Takes in a snapshot seen at `now_ms`: notes cuts, forgets old ones.
    pub fn observe(&mut self, snap: &LabSnapshot, now_ms: u64) {
        self.partitions = snap.partitions.len() as u32;
        self.observe_brokers(&snap.brokers, now_ms);
    }

    fn observe_brokers(&mut self, brokers: &[BrokerView], now_ms: u64) {
        self.cuts.retain(|c| c.until_ms > now_ms);
        for b in brokers {
            // A broker that is down keeps its last log end: what it comes back with is compared.
            let Some(s) = &b.snapshot else { continue };
            for r in &s.replicas {
                let key = (b.id, r.partition);
                let leo = r.log_end_offset;
                if let Some(&before) = self.leos.get(&key)
                    && leo < before
                {
                    self.cuts.push(Cut {
                        broker: b.id,
                        partition: r.partition,
                        from: leo,
                        to: before,
                        until_ms: now_ms + CUT_SHOWN.as_millis() as u64,
                    });
                }
                self.leos.insert(key, leo);
            }
        }
    }
}

/// How many changes back a replay looks for cuts still shown.
const REPLAY_LOOKBACK: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::snapshot::Role;
    use crate::tui::fixtures::{broker, replica};

    fn snap(leos: &[(u32, Option<u64>)]) -> LabSnapshot {
        let brokers = leos
            .iter()
            .map(|&(id, leo)| {
                let mut b = broker(id, Vec::new());
                match leo {
                    Some(leo) => {
                        if let Some(s) = &mut b.snapshot {
                            s.replicas = vec![replica(0, Role::Follower { leader: 9 }, 1, leo)];
                        }
                    }
                    None => b.snapshot = None,
                }
                b
            })
            .collect();
        LabSnapshot {
            brokers,
            partitions: vec![Default::default(); 2],
            ..Default::default()
        }
    }

    #[test]
    fn a_log_end_moving_back_is_a_cut_shown_for_a_while() {
        let mut v = LogView::default();
        let t0 = 1_000;
        v.observe(&snap(&[(1, Some(10)), (2, Some(7))]), t0);
        v.observe(&snap(&[(1, Some(12)), (2, Some(4))]), t0);
        assert_eq!(v.cuts.len(), 1);
        let c = v.cuts[0];
        assert_eq!((c.broker, c.partition, c.from, c.to), (2, 0, 4, 7));
        v.observe(
            &snap(&[(1, Some(12)), (2, Some(5))]),
            t0 + CUT_SHOWN.as_millis() as u64,
        );
        assert!(v.cuts.is_empty(), "gone after {CUT_SHOWN:?}");
    }

    #[test]
    fn a_broker_back_with_a_shorter_log_shows_what_it_lost() {
        let mut v = LogView::default();
        v.observe(&snap(&[(1, Some(10))]), 0);
        v.observe(&snap(&[(1, None)]), 100);
        assert!(v.cuts.is_empty(), "down is not a cut");
        v.observe(&snap(&[(1, Some(10))]), 200);
        assert!(v.cuts.is_empty(), "back whole");
        v.observe(&snap(&[(1, None)]), 300);
        v.observe(&snap(&[(1, Some(0))]), 400);
        assert_eq!(v.cuts.len(), 1, "back empty (a wiped disk)");
        assert_eq!((v.cuts[0].from, v.cuts[0].to), (0, 10));
    }

    #[test]
    fn l_cycles_through_the_partitions_and_show_log_names_one() {
        let mut v = LogView::default();
        v.observe(&snap(&[]), 0);
        v.cycle();
        assert_eq!(v.partition, Some(0));
        v.cycle();
        assert_eq!(v.partition, Some(1));
        v.cycle();
        assert_eq!(v.partition, None);
        assert!(v.command("show log 1").is_some_and(|r| r.is_ok()));
        assert_eq!(v.partition, Some(1));
        assert!(v.command("show log 7").is_some_and(|r| r.is_err()));
        assert!(v.command("show log off").is_some_and(|r| r.is_ok()));
        assert_eq!(v.partition, None);
        assert!(v.command("get k").is_none());
    }
}
