//! What the log strips show (`l`, `show log P`): which partition, and the truncations seen
//! lately. A truncation is seen as a replica's log end moving back between two snapshots while
//! its broker stayed up; the cut records are drawn for [`CUT_SHOWN`] where they were.

use crate::lab::LabSnapshot;
use std::collections::HashMap;
use std::time::{Duration, Instant};

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
    /// Drawn until then.
    pub until: Instant,
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

    /// Takes in a snapshot seen at `now`: notes truncations, forgets old ones.
    pub fn observe(&mut self, snap: &LabSnapshot, now: Instant) {
        self.partitions = snap.partitions.len() as u32;
        self.cuts.retain(|c| c.until > now);
        let mut seen = HashMap::new();
        for b in &snap.brokers {
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
                        until: now + CUT_SHOWN,
                    });
                }
                seen.insert(key, leo);
            }
        }
        // A broker that went down is forgotten: what it has when it is back is a new log, not a cut.
        self.leos = seen;
    }
}

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
        let t0 = Instant::now();
        v.observe(&snap(&[(1, Some(10)), (2, Some(7))]), t0);
        v.observe(&snap(&[(1, Some(12)), (2, Some(4))]), t0);
        assert_eq!(v.cuts.len(), 1);
        let c = v.cuts[0];
        assert_eq!((c.broker, c.partition, c.from, c.to), (2, 0, 4, 7));
        v.observe(&snap(&[(1, Some(12)), (2, Some(5))]), t0 + CUT_SHOWN);
        assert!(v.cuts.is_empty(), "gone after {CUT_SHOWN:?}");
    }

    #[test]
    fn a_broker_back_from_the_dead_with_a_shorter_log_did_not_truncate() {
        let mut v = LogView::default();
        let t0 = Instant::now();
        v.observe(&snap(&[(1, Some(10))]), t0);
        v.observe(&snap(&[(1, None)]), t0);
        v.observe(&snap(&[(1, Some(0))]), t0);
        assert!(v.cuts.is_empty());
    }

    #[test]
    fn l_cycles_through_the_partitions_and_show_log_names_one() {
        let mut v = LogView::default();
        v.observe(&snap(&[]), Instant::now());
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
