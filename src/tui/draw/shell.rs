//! The shell and the scenario being played.

use super::block;
use super::theme;
use crate::tui::app::{App, Focus, LineKind};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub(super) fn draw_shell(frame: &mut Frame, area: Rect, app: &App) {
    let inner_h = area.height.saturating_sub(3) as usize;
    let mut lines: Vec<Line> = app
        .lines
        .iter()
        .rev()
        .take(inner_h)
        .rev()
        .map(|l| {
            let style = match l.kind {
                LineKind::Input => Style::new().fg(theme::ACCENT),
                LineKind::Reply => Style::new(),
                LineKind::Error => Style::new().fg(theme::BAD),
                LineKind::Note => Style::new()
                    .fg(theme::HIGHLIGHT)
                    .add_modifier(Modifier::ITALIC),
                LineKind::Info => Style::new().fg(theme::MUTED),
            };
            Line::styled(l.text.clone(), style)
        })
        .collect();
    while lines.len() < inner_h {
        lines.insert(0, Line::from(""));
    }
    let prompt = match &app.busy {
        Some(cmd) => Line::styled(format!("… running: {cmd}"), Style::new().fg(theme::WARN)),
        None => Line::from(vec![
            Span::styled(
                "simplekv> ",
                Style::new().fg(theme::ACCENT).add_modifier(Modifier::BOLD),
            ),
            Span::raw(app.input.clone()),
        ]),
    };
    lines.push(prompt);
    let focused = app.focus == Focus::Shell;
    frame.render_widget(
        Paragraph::new(lines).block(block("Shell  (help for commands · ↑/↓ history)", focused)),
        area,
    );
    if focused && app.busy.is_none() && !app.show_help {
        let x = area.x + 1 + "simplekv> ".len() as u16 + app.cursor as u16;
        let y = area.y + area.height.saturating_sub(2);
        frame.set_cursor_position((x.min(area.right().saturating_sub(2)), y));
    }
}

pub(super) fn draw_script(frame: &mut Frame, area: Rect, app: &App, focused: bool) {
    let Some(s) = &app.script else { return };
    let rows = area.height.saturating_sub(2) as usize;
    let first = s
        .next
        .saturating_sub(rows / 2)
        .min(s.steps.len().saturating_sub(rows));
    let lines: Vec<Line> = s
        .steps
        .iter()
        .enumerate()
        .skip(first)
        .take(rows)
        .map(|(i, step)| {
            let (mark, style) = if s.failed.contains(&i) {
                ("✗ ", Style::new().fg(theme::BAD))
            } else if i < s.next {
                ("✓ ", Style::new().fg(theme::MUTED))
            } else if i == s.next {
                (
                    "▶ ",
                    Style::new().fg(theme::WARN).add_modifier(Modifier::BOLD),
                )
            } else {
                ("  ", Style::new())
            };
            Line::styled(format!("{mark}{step}"), style)
        })
        .collect();
    let state = if s.next >= s.steps.len() {
        "finished"
    } else if s.autoplay {
        "autoplay (a: pause)"
    } else {
        "space: step · a: autoplay"
    };
    frame.render_widget(
        Paragraph::new(lines).block(block(&format!("Scenario: {} — {state}", s.name), focused)),
        area,
    );
}
