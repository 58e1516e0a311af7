//! The console's decisions about a reply and a scenario being played: what the shell shows,
//! whether a step passed, when autoplay may play the next step. The event loop (`tui/mod.rs`)
//! only carries them out, so they are tested here without a terminal.

use super::app::{App, LineKind};
use crate::command::Reply;
use crate::lab::Scenario;
use crate::lab::scenario::Step;

impl App {
    /// A command's reply came: shows it, judges it when it was a scenario step (a failure stops
    /// autoplay), and returns the next queued command, to run now.
    pub fn on_reply(
        &mut self,
        reply: &Result<Reply, crate::command::CommandError>,
        script: Option<&Scenario>,
    ) -> Option<String> {
        match reply {
            Ok(Reply::Text(t)) if !t.is_empty() => self.push(LineKind::Reply, t),
            Ok(Reply::Text(_)) => {}
            Ok(Reply::Quit) => self.quit = true,
            Err(e) => self.push(LineKind::Error, &format!("error: {e}")),
        }
        if let (Some(i), Some(s)) = (self.running_step.take(), script) {
            match s.verdict(i, reply) {
                Ok(()) => self.push(LineKind::Info, "PASS"),
                Err(why) => {
                    self.push(LineKind::Error, &format!("FAIL: {why}"));
                    if let Some(v) = &mut self.script {
                        v.failed.push(i);
                        v.autoplay = false;
                    }
                }
            }
        }
        self.finished()
    }

    /// Autoplay may play the next step: it is on, nothing runs, and steps are left.
    pub fn autoplay_ready(&self) -> bool {
        self.busy.is_none()
            && self
                .script
                .as_ref()
                .is_some_and(|s| s.autoplay && s.next < s.steps.len())
    }

    /// Plays the next step: a note is shown; a command is returned, to run now (its reply is
    /// judged by [`App::on_reply`]).
    pub fn play_step(&mut self, script: Option<&Scenario>) -> Option<String> {
        let script = script?;
        let view = self.script.as_mut()?;
        let i = view.next;
        let step = script.steps.get(i)?;
        view.next += 1;
        match step {
            Step::Note(text) => {
                self.push(LineKind::Note, text);
                None
            }
            Step::Run { line, .. } => {
                let line = line.clone();
                self.push(LineKind::Input, &format!("simplekv> {line}"));
                self.busy = Some(line.clone());
                self.running_step = Some(i);
                Some(line)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::ScriptView;

    fn scenario() -> Scenario {
        Scenario::parse(
            "t.yaml",
            "name: t\nsteps:\n  - note: first a note\n  - run: get k\n    expect: v\n  - run: get k\n",
        )
        .expect("scenario")
    }

    fn playing(s: &Scenario) -> App {
        let mut app = App::new();
        app.script = Some(ScriptView {
            name: s.name.clone(),
            steps: vec![String::new(); s.steps.len()],
            autoplay: true,
            ..ScriptView::default()
        });
        app
    }

    #[test]
    fn a_step_that_fails_its_expectation_is_marked_and_stops_autoplay() {
        let s = scenario();
        let mut app = playing(&s);
        assert!(app.autoplay_ready());
        assert_eq!(app.play_step(Some(&s)), None, "a note runs nothing");
        assert_eq!(app.play_step(Some(&s)).as_deref(), Some("get k"));
        assert!(!app.autoplay_ready(), "not while a step runs");
        let next = app.on_reply(&Ok(Reply::Text("w".into())), Some(&s));
        assert_eq!(next, None);
        let view = app.script.as_ref().expect("script");
        assert_eq!(view.failed, vec![1]);
        assert!(!view.autoplay, "a failure stops autoplay");
        assert!(app.lines.iter().any(|l| l.text.starts_with("FAIL: ")));
        assert!(!app.autoplay_ready());
    }

    #[test]
    fn a_step_that_passes_says_so_and_a_queued_command_runs_next() {
        let s = scenario();
        let mut app = playing(&s);
        app.play_step(Some(&s));
        app.play_step(Some(&s));
        assert_eq!(app.submit("status".into()), None, "queued behind the step");
        let next = app.on_reply(&Ok(Reply::Text("v".into())), Some(&s));
        assert_eq!(next.as_deref(), Some("status"));
        assert!(app.lines.iter().any(|l| l.text == "PASS"));
        // The queued command's reply is not judged as a step.
        let before = app.lines.len();
        assert_eq!(
            app.on_reply(
                &Err(crate::command::CommandError::Failed("boom".into())),
                Some(&s)
            ),
            None
        );
        assert_eq!(app.lines.len(), before + 1, "just the error line");
        assert!(app.autoplay_ready(), "the last step is left to play");
    }
}
