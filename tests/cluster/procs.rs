//! Running the real `simplekv-lab` binary: `node` processes and `cli` one-shot commands.

use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_simplekv-lab");

/// What a command printed and how it exited.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `simplekv-lab cli ARGS...` to completion.
pub async fn cli(args: &[&str]) -> Output {
    cli_piped(args, None).await
}

/// Runs `simplekv-lab cli ARGS...` to completion with `script` on its standard input (none
/// when `None`).
pub async fn cli_piped(args: &[&str], script: Option<Vec<u8>>) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new(BIN)
            .arg("cli")
            .args(&args)
            .stdin(if script.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the cli");
        if let (Some(script), Some(mut stdin)) = (script, child.stdin.take()) {
            stdin.write_all(&script).expect("write the script");
        }
        let out = child.wait_with_output().expect("the cli's output");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("cli task")
}

/// `simplekv-lab node` processes, killed when dropped.
pub struct Nodes(pub Vec<Child>);

fn spawn_node(cfg: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    Command::new(BIN)
        .args(["node", "--config"])
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn node")
}

impl Nodes {
    pub fn spawn(configs: &[std::path::PathBuf], logs: &Path) -> Self {
        Self(
            configs
                .iter()
                .enumerate()
                .map(|(i, cfg)| spawn_node(cfg, &logs.join(format!("node-{}.out", i + 1))))
                .collect(),
        )
    }

    /// Starts node `i` (0-based) again on `cfg`, after it was killed.
    pub fn respawn(&mut self, i: usize, cfg: &Path, logs: &Path) {
        self.0[i] = spawn_node(cfg, &logs.join(format!("node-{}.out", i + 1)));
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
