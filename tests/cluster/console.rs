//! The real binary under tmux, as a person would use it: start `simplekv-lab --nodes 3`, type the
//! seed transcript and `kill leader`, read the screen, quit, and check the terminal is restored and
//! nothing is left running.

use crate::procs::BIN;
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    session: String,
}

impl Tmux {
    fn start(width: u16, height: u16) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let session = format!("simplekv-test-{}-{n}", std::process::id());
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .args(["bash", "--norc", "--noprofile"])
            .env("PS1", "$ ")
            .status()
            .unwrap_or_else(|e| {
                panic!("tmux is needed for this test (make test installs it): {e}")
            });
        assert!(ok.success(), "tmux new-session failed");
        Self { session }
    }

    fn send(&self, keys: &[&str]) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.session])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(ok.success());
    }

    fn type_line(&self, line: &str) {
        self.send(&["-l", line]);
        self.send(&["Enter"]);
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen satisfies `cond`; returns it.
    fn wait(&self, what: &str, timeout: Duration, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if cond(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

/// The shell panel's lines (between its title and its bottom border, within its columns: a
/// scenario panel may stand to its left).
fn shell_lines(screen: &str) -> Vec<String> {
    let lines: Vec<Vec<char>> = screen.lines().map(|l| l.chars().collect()).collect();
    let Some((top, col)) = lines.iter().enumerate().find_map(|(y, l)| {
        let s: String = l.iter().collect();
        s.find("┌ Shell").map(|b| (y, s[..b].chars().count()))
    }) else {
        return Vec::new();
    };
    lines[top + 1..]
        .iter()
        .map(|l| l.iter().skip(col).collect::<String>())
        .take_while(|l| !l.starts_with('└'))
        .map(|l| l.trim_matches(|c| c == '│' || c == ' ').to_string())
        .collect()
}

/// The reply printed after the last occurrence of `simplekv> {cmd}`.
fn reply_to(screen: &str, cmd: &str) -> Option<String> {
    let lines = shell_lines(screen);
    let i = lines
        .iter()
        .rposition(|l| l == &format!("simplekv> {cmd}"))?;
    lines
        .get(i + 1)
        .filter(|l| !l.starts_with("simplekv>") && !l.starts_with("… running") && !l.is_empty())
        .cloned()
}

fn processes_mentioning(needle: &str) -> Vec<String> {
    let out = Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(needle) && !l.contains("ps -eo"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_person_runs_the_seed_transcript_kills_the_leader_and_quits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("lab-data");
    let tmux = Tmux::start(160, 48);
    tmux.type_line(&format!("{BIN} --nodes 3 --data-dir {}", data.display()));
    tmux.wait(
        "the console with three brokers up",
        Duration::from_secs(60),
        |s| {
            s.contains("simplekv>")
                && s.contains("3 brokers are up")
                && s.matches("connected").count() >= 3
        },
    );

    for (cmd, want) in [
        ("set hello 1", "OK"),
        ("get hello", "1"),
        ("expire hello 200", "OK"),
        ("ttl hello", "ttl"),
        ("del hello", "OK"),
        ("get hello", "record not found"),
    ] {
        tmux.type_line(cmd);
        let screen = tmux.wait(
            &format!("the reply to '{cmd}'"),
            Duration::from_secs(30),
            |s| reply_to(s, cmd).is_some() && !s.contains("… running"),
        );
        let got = reply_to(&screen, cmd).expect("reply");
        if want == "ttl" {
            let ttl: i64 = got
                .parse()
                .unwrap_or_else(|_| panic!("ttl replied {got:?}"));
            assert!((198..=200).contains(&ttl), "ttl {ttl}");
        } else {
            assert_eq!(got, want, "reply to {cmd}");
        }
    }

    tmux.type_line("kill leader");
    let screen = tmux.wait("the leader marked down", Duration::from_secs(30), |s| {
        reply_to(s, "kill leader").is_some() && s.contains("down")
    });
    assert_eq!(reply_to(&screen, "kill leader").as_deref(), Some("OK"));
    // Partition 0's new leader, elected in epoch 1, shows in ZooKeeper's partition table.
    tmux.wait("a new leader in epoch 1", Duration::from_secs(30), |s| {
        s.lines().any(|l| {
            let right: String = l.chars().skip(96).collect();
            let w: Vec<&str> = right.trim_start_matches('│').split_whitespace().collect();
            w.len() >= 3 && w[0] == "0" && w[2] == "1" && w[1].parse::<u32>().is_ok()
        }) && s.contains("elected leader")
    });

    tmux.type_line("quit");
    let screen = tmux.wait("the lab to stop", Duration::from_secs(60), |s| {
        s.contains("SimpleKV lab: stopped")
    });
    assert!(
        !screen.contains("simplekv>"),
        "the console is gone from the screen:\n{screen}"
    );
    // The terminal is back in its normal (cooked, echoing) mode.
    // The marker is quoted apart in the command, so only stty's output line holds it whole.
    tmux.type_line("stty -a > /dev/null && stty -a | grep -o -- '-\\?icanon\\|-\\?echo ' | tr '\\n' ' '; echo STTY''-DONE");
    let screen = tmux.wait("stty's answer", Duration::from_secs(10), |s| {
        s.contains("STTY-DONE")
    });
    let answer = screen
        .lines()
        .find(|l| l.contains("STTY-DONE"))
        .expect("stty line")
        .to_string();
    // Words, not substrings: tmux trims the trailing space of a line.
    let words: Vec<&str> = answer.split_whitespace().collect();
    assert!(
        words.contains(&"icanon") && !words.contains(&"-icanon"),
        "{answer}"
    );
    assert!(
        words.contains(&"echo") && !words.contains(&"-echo"),
        "{answer}"
    );
    // Nothing is left running: no lab, no ZooKeeper on its data directory.
    let left = processes_mentioning(&data.display().to_string());
    assert!(left.is_empty(), "still running: {left:?}");
}

#[test]
fn the_console_plays_a_scenario_step_by_step_and_then_automatically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("lab-data");
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/seed-transcript.yaml");
    let tmux = Tmux::start(160, 48);
    tmux.type_line(&format!(
        "{BIN} --script {} --data-dir {}",
        demo.display(),
        data.display()
    ));
    tmux.wait("the scenario panel", Duration::from_secs(60), |s| {
        s.contains("Scenario: The seed transcript")
            && s.contains("▶ set hello 1")
            && s.matches("connected").count() >= 3
    });
    // Space plays one step at a time.
    tmux.send(&["Space"]);
    let screen = tmux.wait("the first step's reply", Duration::from_secs(30), |s| {
        reply_to(s, "set hello 1").is_some() && s.contains("▶ get hello")
    });
    assert_eq!(reply_to(&screen, "set hello 1").as_deref(), Some("OK"));
    assert!(screen.contains("✓ set hello 1"), "{screen}");
    tmux.send(&["Space"]);
    tmux.wait("the second step", Duration::from_secs(30), |s| {
        s.contains("▶ expire hello 200")
    });
    // 'a' plays the rest.
    tmux.send(&["a"]);
    let screen = tmux.wait("the scenario to finish", Duration::from_secs(60), |s| {
        s.contains("— finished")
    });
    // Every step is ticked in the scenario panel, none crossed.
    for step in [
        "set hello 1",
        "get hello",
        "expire hello 200",
        "ttl hello",
        "del hello",
    ] {
        assert!(
            screen.contains(&format!("✓ {step}")),
            "{step} not played: {screen}"
        );
    }
    assert!(
        !screen.contains('✗') && !screen.contains("FAIL"),
        "{screen}"
    );
    let shell = shell_lines(&screen);
    assert!(shell.iter().any(|l| l == "record not found"), "{shell:?}");
    tmux.send(&["q"]);
    tmux.wait("the lab to stop", Duration::from_secs(60), |s| {
        s.contains("SimpleKV lab: stopped")
    });
    let left = processes_mentioning(&data.display().to_string());
    assert!(left.is_empty(), "still running: {left:?}");
}

#[test]
fn a_recorded_demo_replays_in_the_console_with_no_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = dir.path().join("run.jsonl");
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/seed-transcript.yaml");
    let out = Command::new(BIN)
        .arg("run")
        .arg(&demo)
        .args(["--zk", &simplekv::testkit::zk_connect("replay-record")])
        .arg("--record")
        .arg(&recording)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("simplekv-lab replay"), "{stdout}");
    let changes = simplekv::lab::Timeline::load(&recording)
        .expect("the recording loads")
        .len();
    assert!(changes > 2, "{changes} changes recorded");

    let tmux = Tmux::start(120, 36);
    tmux.type_line(&format!("{BIN} replay {}", recording.display()));
    let screen = tmux.wait("the replay's first change", Duration::from_secs(30), |s| {
        s.contains("REPLAY of run.jsonl +") && s.contains(&format!("change 1 of {changes}"))
    });
    assert!(!screen.contains("brokers are up"), "{screen}");
    tmux.send(&["End"]);
    tmux.wait("the last change", Duration::from_secs(10), |s| {
        s.contains(&format!("change {changes} of {changes}"))
    });
    tmux.send(&["["]);
    tmux.wait("one change back", Duration::from_secs(10), |s| {
        s.contains(&format!("change {} of {changes}", changes - 1))
    });
    // The seed transcript wrote to partition 0 from broker 1: its log strip shows records.
    tmux.send(&["Tab"]);
    tmux.send(&["l"]);
    tmux.wait("the log strips", Duration::from_secs(10), |s| {
        s.contains("Log of partition 0") && s.contains("b1 leader")
    });
    tmux.send(&["Tab"]);
    tmux.type_line("set a 1");
    tmux.wait("the refusal", Duration::from_secs(10), |s| {
        s.contains("this is a recording and no cluster runs")
    });
    tmux.type_line("quit");
    let screen = tmux.wait("the shell back", Duration::from_secs(10), |s| {
        !s.contains("REPLAY") && s.lines().any(|l| l.trim() == "$")
    });
    assert!(!screen.contains("simplekv>"), "{screen}");
}
