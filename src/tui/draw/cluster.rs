//! The cluster panels: brokers, replicas as each broker believes, partitions as ZooKeeper says.

use super::theme;
use super::{block, ids};
use crate::lab::snapshot::Role;
use crate::lab::snapshot::ZkMode;
use crate::lab::status::broker_state;
use crate::lab::{BrokerState, LabSnapshot};
use crate::tui::app::{App, Focus};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table};

pub(super) fn draw_brokers(frame: &mut Frame, area: Rect, app: &App, snap: &LabSnapshot) {
    let narrow = area.width < NARROW;
    let rows = snap.brokers.iter().enumerate().map(|(i, b)| {
        let state_style = match b.state {
            BrokerState::Up if b.faults.is_empty() => Style::new().fg(theme::GOOD),
            BrokerState::Up => Style::new().fg(theme::WARN),
            BrokerState::Paused => Style::new().fg(theme::WARN).add_modifier(Modifier::BOLD),
            BrokerState::DownSessionLingering => {
                Style::new().fg(theme::WARN).add_modifier(Modifier::BOLD)
            }
            BrokerState::Down => Style::new().fg(theme::BAD).add_modifier(Modifier::BOLD),
        };
        let ctrl = match (
            b.snapshot.as_ref().and_then(|s| s.controller_epoch),
            snap.controller,
        ) {
            (Some(e), _) if narrow => format!("★ {e}"),
            (Some(e), _) => format!("★ epoch {e}"),
            (None, Some(c)) if c.broker_id == b.id => format!("(ZK) epoch {}", c.controller_epoch),
            _ => String::new(),
        };
        let session = b.session().map_or("-", |s| s.name());
        let addr = b
            .snapshot
            .as_ref()
            .map_or(String::new(), |s| match b.resp_port {
                Some(p) => format!("{} · redis :{p}", s.kv_addr),
                None => s.kv_addr.to_string(),
            });
        let state = if b.faults.is_empty() {
            broker_state(b.state).to_string()
        } else {
            format!("{} · {}", broker_state(b.state), b.faults.join(" · "))
        };
        let mut row = Row::new(vec![
            Cell::from(b.id.to_string()),
            Cell::from(state).style(state_style),
            Cell::from(session),
            Cell::from(ctrl),
            Cell::from(addr),
        ]);
        if app.focus == Focus::Brokers && i == app.selected {
            row = row.style(Style::new().add_modifier(Modifier::REVERSED));
        }
        row
    });
    // Narrow: no addresses (the title bar names the Redis port), short controller column.
    let (widths, header, title): (Vec<Constraint>, &[&str], &str) = if narrow {
        (
            vec![
                Constraint::Length(2),
                Constraint::Length(16),
                Constraint::Length(12),
                Constraint::Min(5),
            ],
            &["id", "state", "session", "ctrl"],
            "Brokers (Tab, then k r p u x w i h)",
        )
    } else {
        (
            vec![
                Constraint::Length(3),
                Constraint::Length(34),
                Constraint::Length(24),
                Constraint::Length(12),
                Constraint::Min(10),
            ],
            &[
                "id",
                "state",
                "ZooKeeper session",
                "controller",
                "kv address · Redis port",
            ],
            "Brokers  (Tab: focus · k kill · r restore · p pause · x power-loss · i isolate · h heal)",
        )
    };
    let table = Table::new(rows, widths)
        .header(
            Row::new(header.iter().copied()).style(Style::new().add_modifier(Modifier::UNDERLINED)),
        )
        .block(block(title, app.focus == Focus::Brokers).title_bottom(zk_line(snap, narrow)));
    frame.render_widget(table, area);
}

/// The private ZooKeeper servers on the brokers panel's bottom border: each one's mode, and
/// whether a quorum stands (nothing with an external ZooKeeper).
pub(super) fn zk_line(snap: &LabSnapshot, narrow: bool) -> Line<'static> {
    let servers = &snap.zk_servers;
    if servers.is_empty() {
        return Line::default();
    }
    let mut spans = vec![Span::raw(if narrow { " ZK " } else { " ZooKeeper " })];
    for (i, m) in servers.iter().enumerate() {
        let style = match m {
            ZkMode::Leader => Style::new().fg(theme::ACCENT).add_modifier(Modifier::BOLD),
            ZkMode::Follower | ZkMode::Standalone => Style::new().fg(theme::GOOD),
            ZkMode::NotServing => Style::new().fg(theme::WARN),
            ZkMode::Down => Style::new().fg(theme::BAD).add_modifier(Modifier::BOLD),
        };
        let name = match (narrow, m) {
            (true, ZkMode::Leader) => "L",
            (true, ZkMode::Follower) => "F",
            (true, ZkMode::Standalone) => "up",
            (true, ZkMode::NotServing) => "?",
            (true, ZkMode::Down) => "✗",
            (false, m) => m.name(),
        };
        if i > 0 {
            spans.push(Span::raw(if narrow { " " } else { " · " }));
        }
        let label = if narrow {
            format!("{}{name}", i + 1)
        } else {
            format!("zk:{} {name}", i + 1)
        };
        spans.push(Span::styled(label, style));
    }
    if let Some(q) = snap.zk_quorum().filter(|q| q.servers > 1) {
        let (serving, n, need, stands) = (q.serving, q.servers, q.needed, q.stands);
        let text = match (stands, narrow) {
            (true, true) => " quorum ✓ ".to_string(),
            (true, false) => format!(" · quorum ✓ ({serving} of {n} serve) "),
            (false, true) => " NO QUORUM ".to_string(),
            (false, false) => format!(" · NO QUORUM: {serving} of {n} serve, {need} needed "),
        };
        let style = if stands {
            Style::new().fg(theme::GOOD)
        } else {
            Style::new().fg(theme::BAD).add_modifier(Modifier::BOLD)
        };
        spans.push(Span::styled(text, style));
    } else {
        spans.push(Span::raw(" "));
    }
    Line::from(spans)
}

/// Below this width a table drops its prose column and abbreviates (chosen, not cut).
const NARROW: u16 = 72;

pub(super) fn draw_replicas(frame: &mut Frame, area: Rect, snap: &LabSnapshot) {
    let narrow = area.width < NARROW;
    let mut rows = Vec::new();
    for p in &snap.partitions {
        let leader_leo = snap.leader_leo(p.partition);
        for b in &snap.brokers {
            if !p.replicas.contains(&b.id) {
                continue;
            }
            let Some(r) = b.replica(p.partition) else {
                let note = match b.state {
                    BrokerState::DownSessionLingering => "its session lingers in ZooKeeper",
                    _ => "",
                };
                let mut cells = vec![
                    Cell::from(p.partition.to_string()),
                    Cell::from(b.id.to_string()),
                    Cell::from("down"),
                ];
                cells.extend((0..5).map(|_| Cell::from("")));
                cells.push(Cell::from(note));
                rows.push(Row::new(cells).style(Style::new().fg(theme::MUTED)));
                continue;
            };
            let (role, role_style) = match r.role {
                // It believes it leads but cannot prove its session alive: it serves nothing.
                Role::Leader if !r.lease_held => (
                    "no lease".to_string(),
                    Style::new().fg(theme::BAD).add_modifier(Modifier::BOLD),
                ),
                Role::Leader => (
                    "leader".to_string(),
                    Style::new().fg(theme::GOOD).add_modifier(Modifier::BOLD),
                ),
                Role::Follower { leader } if narrow => (format!("fol {leader}"), Style::new()),
                Role::Follower { leader } => (format!("follow {leader}"), Style::new()),
                Role::Offline if r.fenced => ("fenced".to_string(), Style::new().fg(theme::BAD)),
                Role::Offline => ("offline".to_string(), Style::new().fg(theme::BAD)),
            };
            let lag = leader_leo.map_or("-".into(), |l| {
                l.saturating_sub(r.log_end_offset).to_string()
            });
            let in_isr = p.isr.contains(&b.id);
            let note = snap.disagreement(b.id, p.partition);
            let mut row = Row::new(vec![
                Cell::from(p.partition.to_string()),
                Cell::from(b.id.to_string()),
                Cell::from(role).style(role_style),
                Cell::from(r.leader_epoch.to_string()),
                Cell::from(r.log_end_offset.to_string()),
                Cell::from(r.high_watermark.to_string()),
                Cell::from(lag),
                Cell::from(if in_isr { "yes" } else { "no" }).style(if in_isr {
                    Style::new()
                } else {
                    Style::new().fg(theme::WARN)
                }),
                Cell::from(note.clone().unwrap_or_default()),
            ]);
            if note.is_some() {
                row = row.style(Style::new().fg(theme::ON_ACCENT).bg(theme::DISAGREE_BG));
            }
            rows.push(row);
        }
    }
    // Narrow: the prose column goes (a disagreeing row stays highlighted) and headers shorten.
    let widths: Vec<Constraint> = if narrow {
        [2, 2, 8, 3, 7, 7, 5, 3]
            .into_iter()
            .map(Constraint::Length)
            .collect()
    } else {
        let mut w: Vec<Constraint> = [3, 6, 9, 5, 7, 7, 5, 4]
            .into_iter()
            .map(Constraint::Length)
            .collect();
        w.push(Constraint::Min(10));
        w
    };
    let header: &[&str] = if narrow {
        &["p", "b", "role", "ep", "LEO", "HW", "lag", "ISR"]
    } else {
        &[
            "p",
            "broker",
            "role",
            "epoch",
            "LEO",
            "HW",
            "lag",
            "ISR",
            "vs ZooKeeper",
        ]
    };
    let table = Table::new(rows, widths)
        .header(
            Row::new(header.iter().copied()).style(Style::new().add_modifier(Modifier::UNDERLINED)),
        )
        .block(block("Replicas — as each broker believes", false));
    frame.render_widget(table, area);
}

pub(super) fn draw_partitions(frame: &mut Frame, area: Rect, snap: &LabSnapshot) {
    let narrow = area.width < 45;
    let i = &snap.info;
    let rows = snap.partitions.iter().map(|p| {
        let (leader, style) = match p.leader {
            Some(l) => (l.to_string(), Style::new().fg(theme::GOOD)),
            None => (
                "OFFLINE".to_string(),
                Style::new().fg(theme::BAD).add_modifier(Modifier::BOLD),
            ),
        };
        let isr_style = if p.isr.len() < i.spec.min_insync_replicas as usize {
            Style::new().fg(theme::BAD)
        } else if p.isr.len() < p.replicas.len() {
            Style::new().fg(theme::WARN)
        } else {
            Style::new()
        };
        let mut cells = vec![
            Cell::from(p.partition.to_string()),
            Cell::from(leader).style(style),
            Cell::from(p.leader_epoch.to_string()),
            Cell::from(ids(&p.isr)).style(isr_style),
        ];
        if !narrow {
            cells.push(Cell::from(ids(&p.replicas)));
        }
        // Eligible leaders: out of the ISR, but holding every committed write.
        cells.push(Cell::from(ids(&p.eligible)).style(Style::new().fg(theme::ACCENT)));
        Row::new(cells)
    });
    let (widths, header): (Vec<u16>, &[&str]) = if narrow {
        (vec![2, 7, 3, 7, 6], &["p", "leader", "ep", "ISR", "elig"])
    } else {
        (
            vec![2, 7, 5, 8, 8, 8],
            &["p", "leader", "epoch", "ISR", "replicas", "eligible"],
        )
    };
    let table = Table::new(rows, widths.into_iter().map(Constraint::Length))
        .header(
            Row::new(header.iter().copied()).style(Style::new().add_modifier(Modifier::UNDERLINED)),
        )
        .block(block("Partitions — as ZooKeeper says", false));
    frame.render_widget(table, area);
}
