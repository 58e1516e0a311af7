//! What is happening: writes per second and the event log.

use super::block;
use super::theme;
use crate::events::{Event, EventKind};
use crate::lab::LabSnapshot;
use crate::tui::app::App;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline, Wrap};

pub(super) fn draw_throughput(frame: &mut Frame, area: Rect, snap: &LabSnapshot) {
    let now = snap.throughput.last().copied().unwrap_or(0);
    let mut title = format!("Writes/s: {now}");
    if let Some(l) = snap.load {
        title.push_str(&format!(
            " · load {}/{} ok {} err {} unknown {}{}",
            l.done,
            l.total,
            l.ok,
            l.errors,
            l.unknown,
            if l.running { "" } else { " (done)" }
        ));
    }
    let width = area.width.saturating_sub(2) as usize;
    let data: Vec<u64> = snap
        .throughput
        .iter()
        .rev()
        .take(width)
        .rev()
        .copied()
        .collect();
    let spark = Sparkline::default()
        .block(block(&title, false))
        .data(&data)
        .style(Style::new().fg(theme::GOOD));
    frame.render_widget(spark, area);
}

fn event_style(kind: EventKind) -> Style {
    match kind {
        EventKind::Kill | EventKind::Warning => Style::new().fg(theme::BAD),
        EventKind::Fault => Style::new().fg(theme::WARN).add_modifier(Modifier::BOLD),
        EventKind::Restore | EventKind::IsrExpand => Style::new().fg(theme::GOOD),
        EventKind::LeaderElected | EventKind::ControllerElected => {
            Style::new().fg(theme::ACCENT).add_modifier(Modifier::BOLD)
        }
        EventKind::IsrShrink => Style::new().fg(theme::WARN),
        EventKind::Truncation => Style::new()
            .fg(theme::HIGHLIGHT)
            .add_modifier(Modifier::BOLD),
        EventKind::Session => Style::new().fg(theme::SESSION),
        EventKind::Zk => Style::new().fg(theme::SESSION).add_modifier(Modifier::BOLD),
        EventKind::RoleChange => Style::new(),
        EventKind::Info => Style::new().fg(theme::MUTED),
    }
}

fn event_line(e: &Event, started_ms: u64) -> Line<'static> {
    let t = e.at_ms.saturating_sub(started_ms) / 100;
    let when = format!("+{:02}:{:02}.{} ", t / 600, (t / 10) % 60, t % 10);
    let who = match (e.broker, e.partition) {
        (Some(b), Some(p)) => format!("b{b} p{p} "),
        (Some(b), None) => format!("b{b} "),
        (None, Some(p)) => format!("p{p} "),
        (None, None) => String::new(),
    };
    Line::from(vec![
        Span::styled(when, Style::new().fg(theme::MUTED)),
        Span::styled(who, Style::new().add_modifier(Modifier::BOLD)),
        Span::styled(e.message.clone(), event_style(e.kind)),
    ])
}

pub(super) fn draw_events(frame: &mut Frame, area: Rect, app: &App, snap: &LabSnapshot) {
    let rows = area.height.saturating_sub(2) as usize;
    let width = area.width.saturating_sub(2).max(1) as usize;
    let filter = app.view.filter.as_ref();
    let shown: Vec<&Event> = snap
        .events
        .iter()
        .filter(|e| filter.is_none_or(|f| f.matches(e)))
        .collect();
    // PgUp scrolls back, never past the oldest event.
    let back = app.view.events_back.min(shown.len().saturating_sub(1));
    // Newest last; long events wrap, so pick from the end until the panel is full.
    let mut lines: Vec<Line> = Vec::new();
    let mut used = 0;
    for e in shown.iter().rev().skip(back) {
        let line = event_line(e, snap.info.started_at_ms);
        let height = line.width().div_ceil(width).max(1);
        if used + height > rows {
            break;
        }
        used += height;
        lines.push(line);
    }
    lines.reverse();
    let mut title = "Events".to_string();
    if let Some(f) = filter {
        title.push_str(&format!(" · only {} (/ shows all)", f.describe()));
    }
    if back > 0 {
        title.push_str(&format!(" · {back} newer below (PgDn)"));
    }
    title.push_str(&format!(" · log: {}", snap.info.log_file.display()));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(&title, false)),
        area,
    );
}
