//! Scenarios (`demo/*.yaml`): a name, a description for the class, cluster settings, and steps —
//! each a command line with an optional expected reply, or a note. `simplekv-lab run` plays them
//! headless through [`run_headless`]; the console (which takes a [`Scenario`]) plays them step by
//! step. Both judge replies with [`Scenario::verdict`]. Nothing here knows the console.
//!
//! ```yaml
//! name: Leader failover with acks=all
//! description: |
//!   What the learner should watch for, shown before the run.
//! cluster: {nodes: 3, partitions: 1, replication_factor: 3, min_insync_replicas: 2}
//! steps:
//!   - run: set hello 1
//!     expect: OK               # exact reply, or /regex/
//!   - note: Text shown to the class at this point.
//! ```

use super::config::LabConfig;
use super::control::Lab;
use crate::command::{CommandError, Reply, Session};
use crate::config::{ConfigError, load_yaml};
use crate::replica::Acks;
use serde::Deserialize;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// One step as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// A command line.
    #[serde(default)]
    pub run: Option<String>,
    /// The expected reply: exact text, or `/regex/`.
    #[serde(default)]
    pub expect: Option<String>,
    /// Text for the class.
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    cluster: LabConfig,
    steps: Vec<RawStep>,
}

/// What a step's reply must be.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Exactly this text.
    Exact(String),
    /// Text matching this regex.
    Matches(regex::Regex),
}

impl Expect {
    /// `/regex/` or `/regex/i` (case-insensitive); anything else is exact text.
    fn parse(s: &str) -> Result<Self, String> {
        let (body, fold) = match s.strip_suffix("/i") {
            Some(b) => (Some(b), true),
            None => (s.strip_suffix('/'), false),
        };
        match body.and_then(|b| b.strip_prefix('/')) {
            Some(re) => regex::RegexBuilder::new(re)
                .case_insensitive(fold)
                .build()
                .map(Self::Matches)
                .map_err(|e| format!("bad regex {s}: {}", e.to_string().replace('\n', " "))),
            None => Ok(Self::Exact(s.to_string())),
        }
    }

    fn accepts(&self, reply: &str) -> bool {
        match self {
            Self::Exact(want) => reply.trim_end() == want.trim_end(),
            Self::Matches(re) => re.is_match(reply.trim_end()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Exact(s) => format!("{s:?}"),
            Self::Matches(re) => format!("/{}/", re.as_str()),
        }
    }
}

/// A checked step.
#[derive(Debug, Clone)]
pub enum Step {
    /// Text for the class.
    Note(String),
    /// A command line and what its reply must be.
    Run {
        /// The line.
        line: String,
        /// Its expectation.
        expect: Option<Expect>,
    },
}

/// A loaded, checked scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// What to watch for.
    pub description: String,
    /// Cluster settings it asks for.
    pub cluster: LabConfig,
    /// Its steps.
    pub steps: Vec<Step>,
}

/// How a reply is printed and judged: the text, or `error: ...`.
pub fn reply_text(reply: &Result<Reply, CommandError>) -> String {
    match reply {
        Ok(Reply::Text(t)) => t.clone(),
        Ok(Reply::Quit) => "quit".into(),
        Err(e) => format!("error: {e}"),
    }
}

impl Scenario {
    /// Loads and checks a scenario file: unknown keys, steps with both or neither of `run` and
    /// `note`, unparsable commands and bad regexes are errors naming the step.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file: File = load_yaml(path)?;
        Self::from_file(file).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Parses scenario YAML text (for tests and tools).
    pub fn parse(origin: &str, text: &str) -> Result<Self, ConfigError> {
        let file: File = crate::config::parse_yaml(origin, text)?;
        Self::from_file(file).map_err(|e| ConfigError(format!("{origin}: {e}")))
    }

    fn from_file(f: File) -> Result<Self, String> {
        if f.name.trim().is_empty() {
            return Err("the scenario has no name".into());
        }
        f.cluster.spec().map_err(|e| format!("cluster: {e}"))?;
        let mut steps = Vec::with_capacity(f.steps.len());
        for (i, s) in f.steps.into_iter().enumerate() {
            let n = i + 1;
            let step = match (s.run, s.note, s.expect) {
                (Some(line), None, expect) => {
                    match crate::command::parse(&line) {
                        Ok(Some(_)) => {}
                        Ok(None) => return Err(format!("step {n}: 'run' is empty")),
                        Err(e) => return Err(format!("step {n}: {e}")),
                    }
                    let expect = expect
                        .map(|e| Expect::parse(&e))
                        .transpose()
                        .map_err(|e| format!("step {n}: {e}"))?;
                    Step::Run { line, expect }
                }
                (None, Some(note), None) => Step::Note(note.trim_end().to_string()),
                (None, Some(_), Some(_)) => {
                    return Err(format!("step {n}: a note has no 'expect'"));
                }
                (Some(_), Some(_), _) => {
                    return Err(format!("step {n}: has both 'run' and 'note'; split it"));
                }
                (None, None, _) => return Err(format!("step {n}: needs 'run' or 'note'")),
            };
            steps.push(step);
        }
        if steps.is_empty() {
            return Err("the scenario has no steps".into());
        }
        Ok(Self {
            name: f.name,
            description: f.description.trim_end().to_string(),
            cluster: f.cluster,
            steps,
        })
    }

    /// Whether `reply` to step `i` meets its expectation; without one, any reply but an error does.
    pub fn verdict(&self, i: usize, reply: &Result<Reply, CommandError>) -> Result<(), String> {
        let Some(Step::Run { expect, .. }) = self.steps.get(i) else {
            return Ok(());
        };
        let text = reply_text(reply);
        match expect {
            Some(e) if e.accepts(&text) => Ok(()),
            Some(e) => Err(format!("expected {}, got {:?}", e.describe(), text)),
            None if reply.is_err() => Err(format!("the command failed: {text}")),
            None => Ok(()),
        }
    }

    /// Steps as a list for display.
    pub fn step_lines(&self) -> Vec<String> {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Note(n) => format!(
                    "note: {}",
                    n.split_whitespace().collect::<Vec<_>>().join(" ")
                ),
                Step::Run { line, .. } => line.clone(),
            })
            .collect()
    }
}

/// The outcome of a headless run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// Steps with a command that met their expectation.
    pub passed: usize,
    /// Steps that did not.
    pub failed: usize,
}

/// Plays `scenario` on `lab`, printing each step, its reply, PASS/FAIL and timing to `out`. Stops
/// at the first failure unless `keep_going`.
pub async fn run_headless(
    scenario: &Scenario,
    lab: Arc<Lab>,
    out: &mut (dyn Write + Send),
    keep_going: bool,
) -> std::io::Result<RunSummary> {
    let mut session = Session::new(lab.client().clone(), Acks::All, lab);
    let mut summary = RunSummary {
        passed: 0,
        failed: 0,
    };
    let width = scenario.steps.len().to_string().len();
    for (i, step) in scenario.steps.iter().enumerate() {
        let n = i + 1;
        match step {
            Step::Note(text) => {
                for (j, line) in text.lines().enumerate() {
                    let lead = if j == 0 {
                        format!("{n:>width$}. note:")
                    } else {
                        " ".repeat(width + 7)
                    };
                    writeln!(out, "{lead} {line}")?;
                }
            }
            Step::Run { line, .. } => {
                writeln!(out, "{n:>width$}. {line}")?;
                out.flush()?;
                let started = Instant::now();
                let reply = session
                    .run_line(line)
                    .await
                    .unwrap_or(Ok(Reply::Text(String::new())));
                let took = started.elapsed();
                for l in reply_text(&reply).lines() {
                    writeln!(out, "{}   {l}", " ".repeat(width))?;
                }
                match scenario.verdict(i, &reply) {
                    Ok(()) => {
                        summary.passed += 1;
                        writeln!(out, "{}   PASS  {}", " ".repeat(width), fmt_took(took))?;
                    }
                    Err(why) => {
                        summary.failed += 1;
                        writeln!(
                            out,
                            "{}   FAIL  {}: {why}",
                            " ".repeat(width),
                            fmt_took(took)
                        )?;
                        if !keep_going {
                            return Ok(summary);
                        }
                    }
                }
            }
        }
        out.flush()?;
    }
    Ok(summary)
}

/// Starts a lab with `options`, plays `scenario` headless, and stops the lab on every path.
/// This is `simplekv-lab run`.
pub async fn play(
    scenario: &Scenario,
    options: super::control::LabOptions,
    out: &mut (dyn Write + Send),
    keep_going: bool,
) -> Result<RunSummary, String> {
    let started = Instant::now();
    let lab = Lab::start(options).await.map_err(|e| e.to_string())?;
    let result = run_headless(scenario, Arc::clone(&lab), out, keep_going).await;
    lab.shutdown().await;
    let summary = result.map_err(|e| format!("cannot write the report: {e}"))?;
    let _ = writeln!(
        out,
        "{}: {} passed, {} failed ({})",
        if summary.failed == 0 {
            "scenario passed"
        } else {
            "scenario FAILED"
        },
        summary.passed,
        summary.failed,
        fmt_took(started.elapsed())
    );
    Ok(summary)
}

fn fmt_took(d: std::time::Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_parses_with_exact_and_regex_expectations() {
        let s = Scenario::parse(
            "t.yaml",
            "name: T\ndescription: watch\ncluster: {nodes: 3, partitions: 1}\nsteps:\n  - run: set a 1\n    expect: OK\n  - run: ttl a\n    expect: /^-?\\d+$/\n  - note: look\n",
        )
        .expect("parses");
        assert_eq!(s.steps.len(), 3);
        assert_eq!(s.cluster.partitions, Some(1));
        let ok = |t: &str| Ok(Reply::Text(t.into()));
        assert!(s.verdict(0, &ok("OK")).is_ok());
        assert!(
            s.verdict(0, &ok("NOPE"))
                .unwrap_err()
                .contains("expected \"OK\"")
        );
        assert!(s.verdict(1, &ok("-1")).is_ok());
        assert!(s.verdict(1, &ok("x")).is_err());
        assert!(s.verdict(2, &ok("anything")).is_ok());
    }

    #[test]
    fn a_trailing_i_makes_a_regex_case_insensitive() {
        let s = Scenario::parse(
            "t.yaml",
            "name: T\nsteps:\n  - run: get a\n    expect: /^record NOT found$/i\n  - run: get a\n    expect: /^record NOT found$/\n  - run: get a\n    expect: /\n",
        )
        .expect("parses");
        let ok = |t: &str| Ok(Reply::Text(t.into()));
        assert!(s.verdict(0, &ok("record not found")).is_ok());
        assert!(s.verdict(1, &ok("record not found")).is_err());
        assert!(s.verdict(2, &ok("/")).is_ok(), "a lone slash is text");
    }

    #[test]
    fn errors_fail_a_step_without_expectation_and_can_be_expected() {
        let s = Scenario::parse(
            "t.yaml",
            "name: T\nsteps:\n  - run: get a\n  - run: set a 1\n    expect: /not enough replicas/\n",
        )
        .expect("parses");
        assert!(
            s.verdict(0, &Err(CommandError::Failed("no leader".into())))
                .is_err()
        );
        assert!(
            s.verdict(
                1,
                &Err(CommandError::Refused("not enough replicas: ...".into()))
            )
            .is_ok()
        );
    }

    #[test]
    fn bad_scenarios_are_named_precisely() {
        for (yaml, want) in [
            (
                "name: T\nsteps:\n  - run: frob\n",
                "step 1: unknown command 'frob'",
            ),
            ("name: T\nsteps:\n  - run: set a\n", "step 1: usage: set"),
            (
                "name: T\nsteps:\n  - note: x\n    expect: y\n",
                "step 1: a note has no 'expect'",
            ),
            (
                "name: T\nsteps:\n  - run: get a\n    note: x\n",
                "step 1: has both",
            ),
            (
                "name: T\nsteps:\n  - expect: OK\n",
                "step 1: needs 'run' or 'note'",
            ),
            (
                "name: T\nsteps:\n  - run: get a\n    expect: /(/\n",
                "step 1: bad regex",
            ),
            (
                "name: T\nsteps:\n  - run: get a\n    wait: 3\n",
                "unknown field `wait`",
            ),
            (
                "name: T\ncluster: {nodes: 3, brokers: 3}\nsteps: []\n",
                "unknown field `brokers`",
            ),
            (
                "name: T\ncluster: {nodes: 2, replication_factor: 3}\nsteps:\n  - run: get a\n",
                "cluster: replication_factor",
            ),
            ("name: T\nsteps: []\n", "no steps"),
            ("description: x\nsteps: []\n", "missing field `name`"),
        ] {
            let e = Scenario::parse("t.yaml", yaml).expect_err(yaml).0;
            assert!(e.contains(want), "{yaml}: {e}");
            assert!(e.starts_with("t.yaml"), "{e}");
        }
    }

    #[test]
    fn every_shipped_demo_loads() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).expect("demo/") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "yaml") {
                let s = Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
                assert!(
                    !s.description.is_empty(),
                    "{} needs a description",
                    p.display()
                );
                n += 1;
            }
        }
        assert!(n >= 7, "{n} demos");
    }
}
