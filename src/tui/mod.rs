//! The ratatui console over a running [`Lab`]: state in [`app`], drawing in [`draw`], and this
//! loop, which feeds keys to the app, shell lines to a command executor task, and redraws from the
//! snapshots the lab publishes (at least four times a second; drawing never waits on the network).
//! It also replays: the lab's [`Timeline`] while it runs (`[`, `]`), or a recorded one with no
//! lab at all ([`replay`]).
//!
//! The terminal is restored on every exit path: normal quit, error, and panic (ratatui's hook).

pub mod app;
pub mod draw;
#[cfg(test)]
mod fixtures;
pub mod logview;
mod playback;
pub mod replay;
pub mod view;

use crate::command::{Reply, Session};
use crate::lab::snapshot::Acks;
use crate::lab::{Lab, LabSnapshot, Scenario, Timeline};
use app::{Action, App, LineKind};
use crossterm::event::{Event, KeyEventKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the console redraws even when nothing happens.
const FRAME: Duration = Duration::from_millis(200);
/// The pause between steps when a scenario plays automatically.
const AUTOPLAY_PAUSE: Duration = Duration::from_millis(800);

/// What the console shows: a running lab, or a recording of one.
enum Source {
    Live(Arc<Lab>),
    Recording { timeline: Timeline, name: String },
}

impl Source {
    fn with_timeline<R>(&self, f: impl FnOnce(&Timeline) -> R) -> Option<R> {
        match self {
            Source::Live(lab) => lab.with_timeline(f),
            Source::Recording { timeline, .. } => Some(f(timeline)),
        }
    }

    fn is_live(&self) -> bool {
        matches!(self, Source::Live(_))
    }
}

/// Runs the console until the user quits, playing `script` step by step if given. Returns an
/// error line if the terminal cannot be used.
pub async fn run(lab: Arc<Lab>, script: Option<Scenario>) -> Result<(), String> {
    let mut terminal = ratatui::try_init().map_err(|e| format!("cannot use this terminal: {e}"))?;
    let result = event_loop(&mut terminal, Source::Live(lab), script).await;
    ratatui::restore();
    result
}

/// Opens a recorded run (`name` is what the title bar calls it) in the console, from its first
/// change; no broker or ZooKeeper runs.
pub async fn replay(timeline: Timeline, name: String) -> Result<(), String> {
    let mut terminal = ratatui::try_init().map_err(|e| format!("cannot use this terminal: {e}"))?;
    let result = event_loop(&mut terminal, Source::Recording { timeline, name }, None).await;
    ratatui::restore();
    result
}

/// Frame `i` of the timeline, the truncations between it and the one before, and the title.
fn replayed(
    t: &Timeline,
    i: usize,
    name: Option<&str>,
) -> Option<(LabSnapshot, Vec<logview::Cut>, String)> {
    let snap = t.snapshot(i)?;
    let cuts = logview::LogView::replayed_cuts(t, i);
    Some((snap, cuts, replay::title(t, i, name)))
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    source: Source,
    script: Option<Scenario>,
) -> Result<(), String> {
    let (key_tx, mut keys) = mpsc::unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("console-input".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if crossterm::event::poll(Duration::from_millis(100)).unwrap_or(false) {
                        match crossterm::event::read() {
                            Ok(ev) => {
                                if key_tx.send(ev).is_err() {
                                    return;
                                }
                            }
                            Err(_) => return,
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot read the keyboard: {e}"))?;
    }
    let _stop_input = StopOnDrop(Arc::clone(&stop));

    let (line_tx, mut line_rx) = mpsc::unbounded_channel::<String>();
    let (reply_tx, mut replies) =
        mpsc::unbounded_channel::<(String, Result<Reply, crate::command::CommandError>)>();
    if let Source::Live(lab) = &source {
        let lab = Arc::clone(lab);
        tokio::spawn(async move {
            let mut session = Session::new(lab.client().clone(), Acks::All, lab);
            while let Some(line) = line_rx.recv().await {
                let reply = session
                    .run_line(&line)
                    .await
                    .unwrap_or(Ok(Reply::Text(String::new())));
                if reply_tx.send((line, reply)).is_err() {
                    return;
                }
            }
        });
    }

    let mut app = App::new();
    // A recording has no publisher: this one stays, unchanged, so `changed()` never fires.
    let (_still, mut snapshots) = tokio::sync::watch::channel(Arc::new(LabSnapshot::default()));
    match &source {
        Source::Live(lab) => {
            snapshots = lab.subscribe();
            app.push(
                LineKind::Info,
                &format!(
                    "{} brokers are up. Type 'help' for commands, or try: set hello 1 · get hello · kill leader",
                    lab.info().spec.brokers
                ),
            );
        }
        Source::Recording { timeline, name } => {
            app.replay = Some(0);
            app.push(
                LineKind::Info,
                &format!(
                    "Replaying {name}: {} changes and {} events; nothing runs. ] steps forward, [ back, Shift for 5 s, Home/End; quit leaves.",
                    timeline.len(),
                    timeline.events()
                ),
            );
        }
    }
    if let Some(s) = &script {
        app.script = Some(app::ScriptView {
            name: s.name.clone(),
            steps: s.step_lines(),
            ..Default::default()
        });
        app.focus = app::Focus::Script;
        app.push(
            LineKind::Note,
            &format!("Scenario: {}\n{}", s.name, s.description),
        );
        app.push(
            LineKind::Info,
            "space plays the next step, a autoplays (F5 anywhere); Tab moves to the shell",
        );
    }
    let name = match &source {
        Source::Recording { name, .. } => Some(name.clone()),
        Source::Live(_) => None,
    };
    let mut ticker = tokio::time::interval(FRAME);
    // When autoplay plays its next step: a fixed deadline, so redraws do not keep postponing it.
    let mut autoplay_at: Option<tokio::time::Instant> = None;
    loop {
        let live = Arc::clone(&snapshots.borrow_and_update());
        let past = app
            .replay
            .and_then(|i| source.with_timeline(|t| replayed(t, i, name.as_deref())))
            .flatten();
        let snap = match past {
            Some((snap, cuts, title)) => {
                app.log.cuts = cuts;
                app.log.partitions = snap.partitions.len() as u32;
                app.replay_title = Some(title);
                Arc::new(snap)
            }
            None => {
                app.replay = None;
                app.replay_title = None;
                app.log.observe(&live, crate::storage::now_ms());
                live
            }
        };
        app.frames.note(std::time::Instant::now());
        terminal
            .draw(|f| draw::draw(f, &app, &snap))
            .map_err(|e| format!("cannot draw: {e}"))?;
        if app.quit {
            return Ok(());
        }
        let autoplay_ready = app.autoplay_ready();
        if !autoplay_ready {
            autoplay_at = None;
        } else if autoplay_at.is_none() {
            autoplay_at = Some(tokio::time::Instant::now() + AUTOPLAY_PAUSE);
        }
        let autoplay_deadline = autoplay_at.unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            ev = keys.recv() => {
                let Some(ev) = ev else { return Ok(()) };
                let Event::Key(key) = ev else { continue };
                if key.kind != KeyEventKind::Press {
                    continue;
                }
                match app.on_key(key, snap.brokers.len()) {
                    Action::None => {}
                    Action::Quit => app.quit = true,
                    Action::Run(line) if !source.is_live() => {
                        app.push(LineKind::Input, &format!("simplekv> {line}"));
                        app.push(
                            LineKind::Error,
                            "error: this is a recording and no cluster runs; ] and [ step, Shift for 5 s, Home/End, quit leaves",
                        );
                    }
                    Action::Replay(mv) => {
                        let was_live = app.replay.is_none();
                        app.replay = source
                            .with_timeline(|t| replay::moved(t, app.replay, mv, source.is_live()))
                            .flatten();
                        if app.replay.is_none() && !was_live {
                            app.log.cuts.clear();
                        }
                    }
                    Action::Run(line) => {
                        if let Some(now) = app.submit(line) {
                            let _ = line_tx.send(now);
                        }
                    }
                    Action::Step => {
                        if app.busy.is_none()
                            && let Some(line) = app.play_step(script.as_ref())
                        {
                            let _ = line_tx.send(line);
                        }
                    }
                    Action::ToggleAutoplay => {
                        if let Some(s) = &mut app.script {
                            s.autoplay = !s.autoplay;
                        }
                    }
                }
            }
            reply = replies.recv() => {
                let Some((_line, reply)) = reply else { return Ok(()) };
                if let Some(next) = app.on_reply(&reply, script.as_ref()) {
                    let _ = line_tx.send(next);
                }
            }
            _ = tokio::time::sleep_until(autoplay_deadline), if autoplay_ready => {
                autoplay_at = None;
                if let Some(line) = app.play_step(script.as_ref()) {
                    let _ = line_tx.send(line);
                }
            }
            _ = snapshots.changed() => {}
            _ = ticker.tick() => {}
        }
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
