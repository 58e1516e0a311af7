//! The log strips (`l`, or `show log P`): one partition's log as replication lectures draw it.
//! One row per replica, one cell per record — or per run of records when the log is longer than
//! the panel is wide — coloured by the leader epoch that wrote it. Committed records (below the
//! row's high watermark) are solid, uncommitted ones shaded; each row ends with its HW and LEO.
//! A truncation shows for a moment as crossed-out cells where the cut records were.

use super::{block, theme};
use crate::lab::LabSnapshot;
use crate::lab::snapshot::{ReplicaSnapshot, Role};
use crate::tui::logview::Cut;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// What one cell of a strip shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// Records at or below the high watermark, written in this epoch.
    Committed(u32),
    /// Records above the high watermark (not yet on every in-sync replica).
    Uncommitted(u32),
    /// Records among which an epoch's first one lies: drawn as the epoch's last digit, so the
    /// boundaries read without colour too.
    Begins {
        /// The epoch.
        epoch: u32,
        /// Whether every record in the cell is committed.
        committed: bool,
    },
    /// Records this replica just cut away (a truncation).
    Cut,
    /// Past the log end.
    Empty,
}

/// Glyph of a committed cell.
pub const COMMITTED: char = '█';
/// Glyph of an uncommitted cell.
pub const UNCOMMITTED: char = '▒';
/// Glyph of a cut cell.
pub const CUT: char = '╳';
/// Glyph of a cell past the log end.
pub const EMPTY: char = '·';

/// Width of the label before a strip (`b1 leader ` ...).
const LABEL: usize = 14;
/// Width of the figures after a strip (` HW 123456 LEO 123456`).
const FIGURES: usize = 24;

/// Colour of leader epoch `e`: neighbouring epochs always differ.
pub fn epoch_colour(e: u32) -> Color {
    const PALETTE: [Color; 6] = [
        Color::Cyan,
        Color::Green,
        Color::Magenta,
        Color::Blue,
        Color::Yellow,
        Color::LightRed,
    ];
    PALETTE[e as usize % PALETTE.len()]
}

/// Records per cell so that a log of `longest` records fits in `width` cells.
pub fn records_per_cell(longest: u64, width: usize) -> u64 {
    let width = width.max(1) as u64;
    longest.div_ceil(width).max(1)
}

/// The epoch that wrote `offset`, from a leader-epoch cache (`(epoch, start offset)`, oldest
/// first); 0 when the cache names none.
fn epoch_of(epochs: &[(u32, u64)], offset: u64) -> u32 {
    epochs
        .iter()
        .take_while(|(_, start)| *start <= offset)
        .last()
        .map_or(0, |(e, _)| *e)
}

/// The cells of one replica's strip: `cells` cells of `per_cell` records each, from offset 0.
/// A cell counts as committed only when every record in it is; a cut covers a cell when any of
/// its records was cut.
pub fn strip(
    r: &ReplicaSnapshot,
    cuts: &[(u64, u64)],
    per_cell: u64,
    cells: usize,
) -> Vec<CellKind> {
    (0..cells as u64)
        .map(|i| {
            let start = i * per_cell;
            let end = start + per_cell; // exclusive
            if cuts.iter().any(|&(from, to)| start < to && from < end) && start >= r.log_end_offset
            {
                return CellKind::Cut;
            }
            if start >= r.log_end_offset {
                return CellKind::Empty;
            }
            let committed = end.min(r.log_end_offset) <= r.high_watermark;
            let begins = r
                .epochs
                .iter()
                .rev()
                .find(|(_, first)| (start..end).contains(first));
            match begins {
                Some(&(epoch, _)) => CellKind::Begins { epoch, committed },
                None if committed => CellKind::Committed(epoch_of(&r.epochs, start)),
                None => CellKind::Uncommitted(epoch_of(&r.epochs, start)),
            }
        })
        .collect()
}

fn cell_span(kind: CellKind) -> Span<'static> {
    match kind {
        CellKind::Committed(e) => {
            Span::styled(COMMITTED.to_string(), Style::new().fg(epoch_colour(e)))
        }
        CellKind::Uncommitted(e) => {
            Span::styled(UNCOMMITTED.to_string(), Style::new().fg(epoch_colour(e)))
        }
        CellKind::Begins { epoch, committed } => {
            let digit = char::from_digit(epoch % 10, 10).unwrap_or('?');
            let style = if committed {
                Style::new().fg(theme::ON_ACCENT).bg(epoch_colour(epoch))
            } else {
                Style::new()
                    .fg(epoch_colour(epoch))
                    .add_modifier(Modifier::REVERSED)
            };
            Span::styled(digit.to_string(), style.add_modifier(Modifier::BOLD))
        }
        CellKind::Cut => Span::styled(
            CUT.to_string(),
            Style::new().fg(theme::BAD).add_modifier(Modifier::BOLD),
        ),
        CellKind::Empty => Span::styled(EMPTY.to_string(), Style::new().fg(theme::MUTED)),
    }
}

/// Draws partition `p`'s log strips into `area`.
pub(super) fn draw_log(frame: &mut Frame, area: Rect, snap: &LabSnapshot, p: u32, cuts: &[Cut]) {
    let title = format!("Log of partition {p} (l next · Esc back)");
    let inner_w = area.width.saturating_sub(2) as usize;
    let cells = inner_w.saturating_sub(LABEL + FIGURES).max(1);
    let Some(part) = snap.partitions.iter().find(|x| x.partition == p) else {
        frame.render_widget(
            Paragraph::new(format!("there is no partition {p}")).block(block(&title, false)),
            area,
        );
        return;
    };
    let replicas: Vec<(u32, Option<&ReplicaSnapshot>)> = part
        .replicas
        .iter()
        .map(|&id| {
            let r = snap
                .brokers
                .iter()
                .find(|b| b.id == id)
                .and_then(|b| b.replica(p));
            (id, r)
        })
        .collect();
    let cut_ranges = |id: u32| -> Vec<(u64, u64)> {
        cuts.iter()
            .filter(|c| c.broker == id && c.partition == p)
            .map(|c| (c.from, c.to))
            .collect()
    };
    let longest = replicas
        .iter()
        .map(|(id, r)| {
            let cut_end = cut_ranges(*id).iter().map(|c| c.1).max().unwrap_or(0);
            r.map_or(0, |r| r.log_end_offset).max(cut_end)
        })
        .max()
        .unwrap_or(0);
    let per_cell = records_per_cell(longest, cells);
    let mut lines = vec![Line::styled(
        format!(
            "{:LABEL$}offsets 0..{longest} · {per_cell}/cell · {COMMITTED} committed {UNCOMMITTED} above HW {CUT} cut",
            ""
        ),
        Style::new().fg(theme::MUTED),
    )];
    for (id, r) in &replicas {
        let Some(r) = r else {
            lines.push(Line::styled(
                format!("{:LABEL$}down", format!("b{id}")),
                Style::new().fg(theme::MUTED),
            ));
            continue;
        };
        let (role, style) = match r.role {
            Role::Leader => (
                "leader",
                Style::new().fg(theme::GOOD).add_modifier(Modifier::BOLD),
            ),
            Role::Follower { .. } => ("follower", Style::new()),
            Role::Offline => ("offline", Style::new().fg(theme::BAD)),
        };
        let in_isr = if part.isr.contains(id) { "" } else { "*" };
        let mut spans = vec![Span::styled(
            format!("{:LABEL$}", format!("b{id} {role}{in_isr}")),
            style,
        )];
        spans.extend(
            strip(r, &cut_ranges(*id), per_cell, cells)
                .into_iter()
                .map(cell_span),
        );
        spans.push(Span::raw(format!(
            " HW {} LEO {}",
            r.high_watermark, r.log_end_offset
        )));
        lines.push(Line::from(spans));
    }
    let mut legend = vec![Span::styled(
        format!("{:LABEL$}", "epochs"),
        Style::new().fg(theme::MUTED),
    )];
    let mut seen: Vec<u32> = replicas
        .iter()
        .filter_map(|(_, r)| *r)
        .flat_map(|r| r.epochs.iter().map(|(e, _)| *e))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    for e in seen {
        legend.push(Span::styled(
            format!("{COMMITTED} {e}  "),
            Style::new().fg(epoch_colour(e)),
        ));
    }
    legend.push(Span::styled(
        "(colours)  * out of the ISR",
        Style::new().fg(theme::MUTED),
    ));
    lines.push(Line::from(legend));
    frame.render_widget(Paragraph::new(lines).block(block(&title, true)), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(epochs: &[(u32, u64)], leo: u64, hw: u64) -> ReplicaSnapshot {
        ReplicaSnapshot {
            partition: 0,
            role: Role::Leader,
            leader_epoch: epochs.last().map_or(0, |e| e.0),
            last_epoch: epochs.last().map(|e| e.0),
            epochs: epochs.to_vec(),
            log_end_offset: leo,
            high_watermark: hw,
            log_start_offset: 0,
            isr: Vec::new(),
            follower_leos: Vec::new(),
            fenced: false,
            lease_held: true,
        }
    }

    #[test]
    fn one_cell_per_record_coloured_by_epoch_shaded_above_the_hw() {
        let r = replica(&[(0, 0), (2, 3)], 6, 4);
        use CellKind::*;
        assert_eq!(
            strip(&r, &[], 1, 8),
            vec![
                Begins {
                    epoch: 0,
                    committed: true
                },
                Committed(0),
                Committed(0),
                Begins {
                    epoch: 2,
                    committed: true
                },
                Uncommitted(2),
                Uncommitted(2),
                Empty,
                Empty
            ]
        );
    }

    #[test]
    fn a_long_log_goes_in_runs_and_a_run_is_committed_only_whole() {
        assert_eq!(records_per_cell(1000, 100), 10);
        assert_eq!(records_per_cell(1001, 100), 11);
        assert_eq!(records_per_cell(0, 100), 1);
        let r = replica(&[(1, 0)], 25, 15);
        use CellKind::*;
        // Cells of 10: [0,10) committed, [10,20) straddles the HW, [20,25) above it.
        assert_eq!(
            strip(&r, &[], 10, 4),
            vec![
                Begins {
                    epoch: 1,
                    committed: true
                },
                Uncommitted(1),
                Uncommitted(1),
                Empty
            ]
        );
    }

    #[test]
    fn a_cut_shows_where_the_records_were() {
        let r = replica(&[(1, 0)], 3, 3);
        use CellKind::*;
        assert_eq!(
            strip(&r, &[(3, 5)], 1, 6),
            vec![
                Begins {
                    epoch: 1,
                    committed: true
                },
                Committed(1),
                Committed(1),
                Cut,
                Cut,
                Empty
            ]
        );
    }

    /// Partition 0: broker 1 leads (epochs 0 then 3 from offset 5, HW 7, LEO 10), broker 2
    /// lags (LEO 8, HW 7), broker 3 is down.
    fn three_rows() -> crate::lab::LabSnapshot {
        use crate::tui::fixtures::{broker, healthy};
        let mut snap = healthy();
        let mut leader = replica(&[(0, 0), (3, 5)], 10, 7);
        leader.role = Role::Leader;
        let mut lagging = replica(&[(0, 0), (3, 5)], 8, 7);
        lagging.role = Role::Follower { leader: 1 };
        snap.brokers[0] = broker(1, vec![leader]);
        snap.brokers[1] = broker(2, vec![lagging]);
        snap.brokers[2].snapshot = None;
        snap.partitions[0].isr = vec![1, 2];
        snap
    }

    fn row_of(buf: &ratatui::buffer::Buffer, label: &str) -> (u16, String) {
        let (_, y) = crate::tui::fixtures::find(buf, label).unwrap_or_else(|| panic!("{label}"));
        (y, crate::tui::fixtures::text(buf)[y as usize].clone())
    }

    #[test]
    fn the_console_draws_one_strip_per_replica_with_hw_leo_and_epochs() {
        use crate::tui::app::App;
        use crate::tui::fixtures::{find, render};
        let mut app = App::new();
        app.log.partition = Some(0);
        let buf = render(&app, &three_rows(), 120, 36);
        assert!(find(&buf, "Log of partition 0").is_some());
        assert!(find(&buf, "Replicas — as each broker believes").is_none());
        // Epoch 0 from offset 0, epoch 3 from offset 5; HW 7 of LEO 10.
        let (y1, leader) = row_of(&buf, "b1 leader");
        assert!(leader.contains("0████3█▒▒▒·"), "{leader}");
        assert!(leader.contains("HW 7 LEO 10"), "{leader}");
        let (_, lagging) = row_of(&buf, "b2 follower");
        assert!(
            lagging.contains("0████3█▒··"),
            "a lagging row is shorter: {lagging}"
        );
        let (_, down) = row_of(&buf, "b3");
        assert!(down.contains("down"), "{down}");
        // Colours: epoch 0's records, then epoch 3's first record on epoch 3's colour.
        let x0 = (0..buf.area.width)
            .find(|&x| buf[(x, y1)].symbol() == "0" && buf[(x + 1, y1)].symbol() == "█")
            .expect("the strip");
        assert_eq!(buf[(x0 + 4, y1)].fg, epoch_colour(0));
        assert_eq!(buf[(x0 + 5, y1)].bg, epoch_colour(3));
        assert_eq!(buf[(x0 + 6, y1)].fg, epoch_colour(3));
    }

    #[test]
    fn a_truncation_is_drawn_where_the_records_were() {
        use crate::tui::app::App;
        use crate::tui::fixtures::render;
        let mut app = App::new();
        app.log.partition = Some(0);
        let t0 = 1_000;
        let mut before = three_rows();
        app.log.observe(&before, t0);
        if let Some(s) = &mut before.brokers[1].snapshot {
            s.replicas[0].log_end_offset = 5;
        }
        app.log.observe(&before, t0);
        let buf = render(&app, &before, 120, 36);
        let (_, cut) = row_of(&buf, "b2 follower");
        assert_eq!(cut.matches(CUT).count(), 3, "{cut}");
    }

    #[test]
    fn neighbouring_epochs_differ_in_colour() {
        for e in 0..20 {
            assert_ne!(epoch_colour(e), epoch_colour(e + 1));
        }
    }
}
