//! The shell and the scenario being played.

use super::block;
use super::theme;
use crate::tui::app::{App, Focus, LineKind};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// `text` cut into rows of at most `width` characters, at spaces where it can be (a word longer
/// than a row is split).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut rows = Vec::new();
    let mut row = String::new();
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        let used = row.chars().count();
        if used > 0 && used + 1 + word.len() <= width {
            row.push(' ');
        } else if used > 0 {
            rows.push(std::mem::take(&mut row));
        }
        while word.len() > width {
            let rest = word.split_off(width);
            rows.push(word.into_iter().collect());
            word = rest;
        }
        row.extend(word);
    }
    rows.push(row);
    rows
}

pub(super) fn draw_shell(frame: &mut Frame, area: Rect, app: &App) {
    let inner_h = area.height.saturating_sub(3) as usize;
    let width = area.width.saturating_sub(2) as usize;
    // The newest lines, each wrapped to the panel, as many rows as fit.
    let mut lines: Vec<Line> = Vec::new();
    for l in app.lines.iter().rev() {
        if lines.len() >= inner_h {
            break;
        }
        let style = match l.kind {
            LineKind::Input => Style::new().fg(theme::ACCENT),
            LineKind::Reply => Style::new(),
            LineKind::Error => Style::new().fg(theme::BAD),
            LineKind::Note => Style::new()
                .fg(theme::HIGHLIGHT)
                .add_modifier(Modifier::ITALIC),
            LineKind::Info => Style::new().fg(theme::MUTED),
        };
        for row in wrap(&l.text, width).into_iter().rev() {
            lines.push(Line::styled(row, style));
        }
    }
    lines.truncate(inner_h);
    lines.reverse();
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
    let width = area.width.saturating_sub(2) as usize;
    // Every step on one row, cut at the edge, but the next one whole: a note is read in full.
    let mut all: Vec<Line> = Vec::new();
    let mut current = 0;
    for (i, step) in s.steps.iter().enumerate() {
        let (mark, style) = mark_of(s, i);
        if i == s.next {
            current = all.len();
            for (k, row) in wrap(step, width.saturating_sub(2)).into_iter().enumerate() {
                let lead = if k == 0 { mark } else { "  " };
                all.push(Line::styled(format!("{lead}{row}"), style));
            }
        } else {
            all.push(Line::styled(format!("{mark}{step}"), style));
        }
    }
    let first = current
        .saturating_sub(rows / 2)
        .min(all.len().saturating_sub(rows));
    let lines: Vec<Line> = all.into_iter().skip(first).take(rows).collect();
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

/// A step's mark and style: failed, played, next, or to come.
fn mark_of(s: &crate::tui::app::ScriptView, i: usize) -> (&'static str, Style) {
    if s.failed.contains(&i) {
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
    }
}

#[cfg(test)]
mod tests {
    use super::wrap;
    use crate::tui::app::{App, ScriptView};
    use crate::tui::fixtures::{healthy, render, text};

    #[test]
    fn wrapping_breaks_at_spaces_and_splits_long_words() {
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), [""]);
    }

    #[test]
    fn the_next_note_shows_whole_and_long_shell_lines_wrap() {
        let note = "note: Broker 1 is back in every ISR, and leads nothing. Eight clients start writing; while they write, leadership of partition 0 goes back to broker 1.";
        let mut app = App::new();
        app.script = Some(ScriptView {
            name: "T".into(),
            steps: vec!["wait isr 3".into(), note.into(), "rebalance".into()],
            next: 1,
            ..Default::default()
        });
        app.push(
            crate::tui::app::LineKind::Reply,
            "partition 0: stays with broker 2: its preferred replica, broker 1, is not in the ISR yet (it moves once it has caught up) END",
        );
        let screen = text(&render(&app, &healthy(), 120, 36)).join("\n");
        assert!(screen.contains("goes back to broker 1."), "{screen}");
        assert!(screen.contains("END"), "{screen}");
    }
}
