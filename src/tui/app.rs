//! The console's state and what keys do to it. Drawing only reads this (see `draw`).

use super::logview::LogView;
use super::replay::Move;
use super::view::View;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::VecDeque;

/// Lines kept in the shell panel.
const MAX_LINES: usize = 2000;
/// The window the footer's frame rate counts frames over.
const FRAME_RATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// Which panel takes keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The shell's input line.
    Shell,
    /// The brokers table (k kills, r restores the selected broker).
    Brokers,
    /// The scenario panel (space plays the next step, a autoplays).
    Script,
}

/// How a shell line is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// A command as typed.
    Input,
    /// A reply.
    Reply,
    /// An error reply.
    Error,
    /// A scenario's note or description.
    Note,
    /// Something the console itself says.
    Info,
}

/// One line of the shell panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellLine {
    /// Its kind.
    pub kind: LineKind,
    /// Its text.
    pub text: String,
}

/// What a key asks the console to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing beyond redrawing.
    None,
    /// Run a command line.
    Run(String),
    /// Play the next scenario step.
    Step,
    /// Start or stop playing the scenario automatically.
    ToggleAutoplay,
    /// Move through the timeline (replay).
    Replay(Move),
    /// Leave.
    Quit,
}

/// A scenario being played in the console.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScriptView {
    /// Its name.
    pub name: String,
    /// Steps as shown (`run: ...` or `note: ...`).
    pub steps: Vec<String>,
    /// Index of the next step.
    pub next: usize,
    /// Playing automatically.
    pub autoplay: bool,
    /// Steps that failed their expectation.
    pub failed: Vec<usize>,
}

/// The console's state.
#[derive(Debug, Clone)]
pub struct App {
    /// The input line.
    pub input: String,
    /// Cursor position in `input`, in chars.
    pub cursor: usize,
    /// Commands entered, oldest first.
    pub history: Vec<String>,
    history_pos: Option<usize>,
    draft: String,
    /// The shell panel's lines, oldest first.
    pub lines: VecDeque<ShellLine>,
    /// Which panel has focus.
    pub focus: Focus,
    /// Selected row of the brokers table.
    pub selected: usize,
    /// The help overlay is shown.
    pub show_help: bool,
    /// Lines the help overlay is scrolled down (a small terminal cannot show it whole).
    pub help_scroll: u16,
    /// The command running now.
    pub busy: Option<String>,
    /// Commands typed while another ran, run next in order.
    pub queued: VecDeque<String>,
    /// The console should close.
    pub quit: bool,
    /// The scenario being played.
    pub script: Option<ScriptView>,
    /// The scenario step whose command runs now (judged when its reply comes).
    pub(super) running_step: Option<usize>,
    /// When the last second's frames were drawn (the footer shows the rate).
    pub frames: FrameRate,
    /// The log strips.
    pub log: LogView,
    /// Zoom and the events panel's scroll and filter.
    pub view: View,
    /// The change of the timeline shown, when replaying (`None`: live).
    pub replay: Option<usize>,
    /// The title bar's replay warning, set by the loop while replaying.
    pub replay_title: Option<String>,
}

/// Frames drawn in the last second: the console promises at least four, whatever the load.
#[derive(Debug, Clone, Default)]
pub struct FrameRate {
    drawn: VecDeque<std::time::Instant>,
}

impl FrameRate {
    /// Notes a frame drawn at `now`.
    pub fn note(&mut self, now: std::time::Instant) {
        self.drawn.push_back(now);
        self.forget_before(now);
    }

    /// Frames drawn in the second up to the latest one.
    pub fn drawn_last_second(&self) -> usize {
        self.drawn.len()
    }

    fn forget_before(&mut self, now: std::time::Instant) {
        while self
            .drawn
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= FRAME_RATE_WINDOW)
        {
            self.drawn.pop_front();
        }
    }
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    /// A fresh console.
    pub fn new() -> Self {
        Self {
            input: String::new(),
            cursor: 0,
            history: Vec::new(),
            history_pos: None,
            draft: String::new(),
            lines: VecDeque::new(),
            focus: Focus::Shell,
            selected: 0,
            show_help: false,
            help_scroll: 0,
            busy: None,
            queued: VecDeque::new(),
            quit: false,
            script: None,
            running_step: None,
            frames: FrameRate::default(),
            log: LogView::default(),
            view: View::default(),
            replay: None,
            replay_title: None,
        }
    }

    /// Adds text (one or more lines) to the shell panel.
    pub fn push(&mut self, kind: LineKind, text: &str) {
        for line in text.lines() {
            if self.lines.len() == MAX_LINES {
                self.lines.pop_front();
            }
            self.lines.push_back(ShellLine {
                kind,
                text: line.to_string(),
            });
        }
    }

    /// A line the user entered: returned to run now, or queued behind the running command.
    pub fn submit(&mut self, line: String) -> Option<String> {
        match &self.busy {
            Some(b) => {
                self.push(
                    LineKind::Info,
                    &format!("queued: '{line}' runs after '{b}'"),
                );
                self.queued.push_back(line);
                None
            }
            None => Some(self.start(line)),
        }
    }

    /// The running command finished: the next queued one, to run now.
    pub fn finished(&mut self) -> Option<String> {
        self.busy = None;
        let next = self.queued.pop_front()?;
        Some(self.start(next))
    }

    fn start(&mut self, line: String) -> String {
        self.push(LineKind::Input, &format!("simplekv> {line}"));
        self.busy = Some(line.clone());
        line
    }

    fn byte_at(&self, char_pos: usize) -> usize {
        self.input
            .char_indices()
            .nth(char_pos)
            .map_or(self.input.len(), |(i, _)| i)
    }

    fn take_input(&mut self) -> String {
        self.cursor = 0;
        self.history_pos = None;
        std::mem::take(&mut self.input)
    }

    fn recall(&mut self, older: bool) {
        if self.history.is_empty() {
            return;
        }
        let pos = match (self.history_pos, older) {
            (None, true) => {
                self.draft = self.input.clone();
                Some(self.history.len() - 1)
            }
            (None, false) => None,
            (Some(0), true) => Some(0),
            (Some(i), true) => Some(i - 1),
            (Some(i), false) if i + 1 < self.history.len() => Some(i + 1),
            (Some(_), false) => None,
        };
        self.history_pos = pos;
        self.input = match pos {
            Some(i) => self.history[i].clone(),
            None => std::mem::take(&mut self.draft),
        };
        self.cursor = self.input.chars().count();
    }

    /// Handles a key press; `brokers` is the number of rows in the brokers table.
    pub fn on_key(&mut self, key: KeyEvent, brokers: usize) -> Action {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('d')) {
            return Action::Quit;
        }
        if self.show_help {
            // ↑/↓ and PgUp/PgDn scroll it; any other key closes it.
            match key.code {
                KeyCode::Down => self.help_scroll = self.help_scroll.saturating_add(1),
                KeyCode::PageDown => self.help_scroll = self.help_scroll.saturating_add(10),
                KeyCode::Up => self.help_scroll = self.help_scroll.saturating_sub(1),
                KeyCode::PageUp => self.help_scroll = self.help_scroll.saturating_sub(10),
                _ => {
                    self.show_help = false;
                    self.help_scroll = 0;
                }
            }
            return Action::None;
        }
        if key.code == KeyCode::F(1) {
            self.show_help = true;
            return Action::None;
        }
        if key.code == KeyCode::Tab || key.code == KeyCode::BackTab {
            let script = self.script.is_some();
            self.focus = match self.focus {
                Focus::Shell => Focus::Brokers,
                Focus::Brokers if script => Focus::Script,
                Focus::Brokers | Focus::Script => Focus::Shell,
            };
            return Action::None;
        }
        if self.script.is_some() && key.code == KeyCode::F(5) {
            return Action::ToggleAutoplay;
        }
        if key.code == KeyCode::Esc && self.log.partition.is_some() {
            self.log.partition = None;
            return Action::None;
        }
        if key.code == KeyCode::Char('l') && self.focus != Focus::Shell {
            self.log.cycle();
            return Action::None;
        }
        if key.code == KeyCode::Char('z') && self.focus != Focus::Shell {
            self.view.cycle_zoom();
            return Action::None;
        }
        if matches!(key.code, KeyCode::PageUp | KeyCode::PageDown) {
            self.view.scroll(key.code == KeyCode::PageUp);
            return Action::None;
        }
        // The timeline keys, wherever they would not be typed into a command.
        if self.focus != Focus::Shell || self.input.is_empty() {
            let mv = match key.code {
                KeyCode::Char('[') => Some(Move::Back),
                KeyCode::Char(']') => Some(Move::Forward),
                KeyCode::Char('{') => Some(Move::BackBig),
                KeyCode::Char('}') => Some(Move::ForwardBig),
                KeyCode::Home => Some(Move::Start),
                KeyCode::End => Some(Move::Live),
                _ => None,
            };
            if let Some(mv) = mv {
                return Action::Replay(mv);
            }
        }
        match self.focus {
            Focus::Shell => self.shell_key(key, ctrl),
            Focus::Brokers => self.brokers_key(key, brokers),
            Focus::Script => match key.code {
                KeyCode::Char(' ') | KeyCode::Enter => Action::Step,
                KeyCode::Char('a') => Action::ToggleAutoplay,
                KeyCode::Char('q') => Action::Quit,
                KeyCode::Char('?') => {
                    self.show_help = true;
                    Action::None
                }
                _ => Action::None,
            },
        }
    }

    fn shell_key(&mut self, key: KeyEvent, ctrl: bool) -> Action {
        match key.code {
            KeyCode::Enter => {
                let line = self.take_input();
                let trimmed = line.trim().to_string();
                if trimmed.is_empty() {
                    return Action::None;
                }
                if self.history.last() != Some(&trimmed) {
                    self.history.push(trimmed.clone());
                }
                if matches!(trimmed.as_str(), "quit" | "exit") {
                    return Action::Quit;
                }
                if trimmed == "live" {
                    return Action::Replay(Move::Live);
                }
                if let Some(answer) = self
                    .log
                    .command(&trimmed)
                    .or_else(|| self.view.command(&trimmed))
                {
                    self.push(LineKind::Input, &format!("simplekv> {trimmed}"));
                    match answer {
                        Ok(t) => self.push(LineKind::Info, &t),
                        Err(e) => self.push(LineKind::Error, &format!("error: {e}")),
                    }
                    return Action::None;
                }
                Action::Run(trimmed)
            }
            KeyCode::Char('u') if ctrl => {
                self.input.clear();
                self.cursor = 0;
                Action::None
            }
            KeyCode::Char(c) if !ctrl => {
                let at = self.byte_at(self.cursor);
                self.input.insert(at, c);
                self.cursor += 1;
                Action::None
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                let at = self.byte_at(self.cursor);
                self.input.remove(at);
                Action::None
            }
            KeyCode::Delete if self.cursor < self.input.chars().count() => {
                let at = self.byte_at(self.cursor);
                self.input.remove(at);
                Action::None
            }
            KeyCode::Left => {
                self.cursor = self.cursor.saturating_sub(1);
                Action::None
            }
            KeyCode::Right => {
                self.cursor = (self.cursor + 1).min(self.input.chars().count());
                Action::None
            }
            KeyCode::Home => {
                self.cursor = 0;
                Action::None
            }
            KeyCode::End => {
                self.cursor = self.input.chars().count();
                Action::None
            }
            KeyCode::Up => {
                self.recall(true);
                Action::None
            }
            KeyCode::Down => {
                self.recall(false);
                Action::None
            }
            _ => Action::None,
        }
    }

    fn brokers_key(&mut self, key: KeyEvent, brokers: usize) -> Action {
        let id = self.selected as u32 + 1;
        match key.code {
            KeyCode::Up => {
                self.selected = self.selected.saturating_sub(1);
                Action::None
            }
            KeyCode::Down => {
                if self.selected + 1 < brokers {
                    self.selected += 1;
                }
                Action::None
            }
            KeyCode::Char('k') => Action::Run(format!("kill {id}")),
            KeyCode::Char('r') => Action::Run(format!("restore {id}")),
            KeyCode::Char('p') => Action::Run(format!("pause {id}")),
            KeyCode::Char('u') => Action::Run(format!("resume {id}")),
            KeyCode::Char('x') => Action::Run(format!("power-loss {id}")),
            KeyCode::Char('w') => Action::Run(format!("wipe {id}")),
            KeyCode::Char('i') => Action::Run(format!("isolate {id}")),
            KeyCode::Char('h') => Action::Run("heal".into()),
            KeyCode::Char('?') => {
                self.show_help = true;
                Action::None
            }
            KeyCode::Char('q') => Action::Quit,
            _ => Action::None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_frame_rate_counts_only_the_last_second() {
        let mut r = FrameRate::default();
        let t0 = std::time::Instant::now();
        for i in 0..10 {
            r.note(t0 + std::time::Duration::from_millis(i * 200));
        }
        // The frames at 1.0 s .. 1.8 s are within a second of the last; 0 .. 0.8 s are not.
        assert_eq!(r.drawn_last_second(), 5);
        r.note(t0 + std::time::Duration::from_secs(5));
        assert_eq!(r.drawn_last_second(), 1);
    }

    use super::*;

    fn press(app: &mut App, code: KeyCode) -> Action {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE), 3)
    }

    fn type_line(app: &mut App, s: &str) -> Action {
        for c in s.chars() {
            press(app, KeyCode::Char(c));
        }
        press(app, KeyCode::Enter)
    }

    #[test]
    fn typing_and_enter_runs_the_line_and_history_recalls_it() {
        let mut app = App::new();
        assert_eq!(
            type_line(&mut app, "set a 1"),
            Action::Run("set a 1".into())
        );
        assert_eq!(type_line(&mut app, "get a"), Action::Run("get a".into()));
        press(&mut app, KeyCode::Up);
        assert_eq!(app.input, "get a");
        press(&mut app, KeyCode::Up);
        assert_eq!(app.input, "set a 1");
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Down);
        assert_eq!(app.input, "");
        assert_eq!(type_line(&mut app, "quit"), Action::Quit);
    }

    #[test]
    fn editing_moves_the_cursor() {
        let mut app = App::new();
        for c in "gt".chars() {
            press(&mut app, KeyCode::Char(c));
        }
        press(&mut app, KeyCode::Left);
        press(&mut app, KeyCode::Char('e'));
        assert_eq!(app.input, "get");
        press(&mut app, KeyCode::Home);
        press(&mut app, KeyCode::Delete);
        assert_eq!(app.input, "et");
    }

    #[test]
    fn the_brokers_table_kills_and_restores_the_selected_broker() {
        let mut app = App::new();
        press(&mut app, KeyCode::Tab);
        assert_eq!(app.focus, Focus::Brokers);
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Down);
        assert_eq!(app.selected, 2, "stays within the table");
        assert_eq!(
            press(&mut app, KeyCode::Char('k')),
            Action::Run("kill 3".into())
        );
        assert_eq!(
            press(&mut app, KeyCode::Char('r')),
            Action::Run("restore 3".into())
        );
        for (key, cmd) in [
            ('p', "pause 3"),
            ('u', "resume 3"),
            ('x', "power-loss 3"),
            ('w', "wipe 3"),
            ('i', "isolate 3"),
            ('h', "heal"),
        ] {
            assert_eq!(press(&mut app, KeyCode::Char(key)), Action::Run(cmd.into()));
        }
        assert_eq!(press(&mut app, KeyCode::Char('q')), Action::Quit);
    }

    #[test]
    fn a_loaded_scenario_takes_space_and_a_while_the_shell_takes_text() {
        let mut app = App::new();
        app.script = Some(ScriptView::default());
        app.focus = Focus::Script;
        assert_eq!(press(&mut app, KeyCode::Char(' ')), Action::Step);
        assert_eq!(press(&mut app, KeyCode::Char('a')), Action::ToggleAutoplay);
        press(&mut app, KeyCode::Tab);
        assert_eq!(app.focus, Focus::Shell);
        assert_eq!(
            type_line(&mut app, "acks all"),
            Action::Run("acks all".into())
        );
        press(&mut app, KeyCode::Tab);
        press(&mut app, KeyCode::Tab);
        assert_eq!(
            app.focus,
            Focus::Script,
            "Tab cycles through the script panel"
        );
    }

    #[test]
    fn l_opens_the_log_strips_and_esc_closes_them_while_the_shell_types_l() {
        let mut app = App::new();
        app.log.partitions = 2;
        press(&mut app, KeyCode::Char('l'));
        assert_eq!(app.input, "l", "the shell takes the letter");
        assert_eq!(app.log.partition, None);
        app.input.clear();
        app.cursor = 0;
        assert_eq!(type_line(&mut app, "show log 1"), Action::None);
        assert_eq!(app.log.partition, Some(1));
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.log.partition, None);
        press(&mut app, KeyCode::Tab);
        press(&mut app, KeyCode::Char('l'));
        assert_eq!(app.log.partition, Some(0));
        press(&mut app, KeyCode::Char('l'));
        assert_eq!(app.log.partition, Some(1));
    }

    #[test]
    fn brackets_move_through_the_timeline_unless_they_are_being_typed() {
        let mut app = App::new();
        assert_eq!(
            press(&mut app, KeyCode::Char('[')),
            Action::Replay(Move::Back)
        );
        assert_eq!(
            press(&mut app, KeyCode::Char('}')),
            Action::Replay(Move::ForwardBig)
        );
        assert_eq!(press(&mut app, KeyCode::Home), Action::Replay(Move::Start));
        assert_eq!(type_line(&mut app, "live"), Action::Replay(Move::Live));
        press(&mut app, KeyCode::Char('s'));
        assert_eq!(press(&mut app, KeyCode::Char('[')), Action::None);
        assert_eq!(app.input, "s[", "typed into the command");
        press(&mut app, KeyCode::Tab);
        assert_eq!(
            press(&mut app, KeyCode::Char(']')),
            Action::Replay(Move::Forward)
        );
    }

    #[test]
    fn a_command_typed_while_another_runs_waits_its_turn() {
        let mut app = App::new();
        assert_eq!(app.submit("load 100".into()).as_deref(), Some("load 100"));
        assert_eq!(app.submit("get a".into()), None);
        assert_eq!(app.submit("get b".into()), None);
        assert!(
            app.lines
                .iter()
                .any(|l| l.text == "queued: 'get a' runs after 'load 100'")
        );
        assert_eq!(app.finished().as_deref(), Some("get a"));
        assert_eq!(app.busy.as_deref(), Some("get a"));
        assert_eq!(app.finished().as_deref(), Some("get b"));
        assert_eq!(app.finished(), None);
        assert_eq!(app.busy, None);
    }

    #[test]
    fn ctrl_c_quits_anywhere_and_help_closes_on_any_key() {
        let mut app = App::new();
        press(&mut app, KeyCode::F(1));
        assert!(app.show_help);
        press(&mut app, KeyCode::Char('x'));
        assert!(!app.show_help);
        assert_eq!(app.input, "", "the key only closed the overlay");
        assert_eq!(
            app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL), 3),
            Action::Quit
        );
    }
}
