//! Executing commands: key-value commands through a [`Client`], fault / wait / load / check
//! commands through [`LabControl`], which the lab implements (so this module never depends on
//! the lab, and `cli` runs it with [`NoLab`]).

use super::CommandError;
use super::faults::Fault;
use super::parse::{Check, Command, HELP, LoadSpec, Target, WaitCondition};
use crate::client::{Client, ClientError};
use crate::replica::Acks;
use bytes::Bytes;
use std::future::Future;
use std::time::Duration;

/// How a recorded write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged.
    Ok,
    /// Refused or failed; it did not take effect.
    Error,
    /// It may or may not have taken effect.
    Unknown,
}

impl Outcome {
    /// The outcome of a client call.
    pub fn of<T>(r: &Result<T, ClientError>) -> Self {
        match r {
            Ok(_) => Self::Ok,
            Err(e) if e.outcome_unknown() || e.kind() == "unavailable" => Self::Unknown,
            Err(_) => Self::Error,
        }
    }
}

/// What a recorded client operation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// `set`
    Set,
    /// `get`
    Get,
    /// `del`
    Del,
    /// `expire`
    Expire,
}

/// One client operation, as the history records it (DESIGN §14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// What it was.
    pub kind: OpKind,
    /// The key.
    pub key: Bytes,
    /// The value written (`set`) or read (`get`; `None`: not found).
    pub value: Option<Bytes>,
    /// The expiry a `set` gave the key.
    pub ttl_ms: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
    /// Acks it was sent with (writes).
    pub acks: Acks,
}

/// What the lab offers the command language beyond key-value commands. Each method returns the
/// reply line(s) or one error line.
pub trait LabControl: Send + Sync {
    /// `kill B`
    fn kill(&self, target: Target) -> impl Future<Output = Result<String, CommandError>> + Send;
    /// `restore B`
    fn restore(&self, target: Target) -> impl Future<Output = Result<String, CommandError>> + Send;
    /// `wipe B`
    fn wipe(&self, target: Target) -> impl Future<Output = Result<String, CommandError>> + Send;
    /// `rebalance`
    fn rebalance(&self) -> impl Future<Output = Result<String, CommandError>> + Send;
    /// `status`
    fn status(&self) -> impl Future<Output = Result<String, CommandError>> + Send;
    /// `wait COND [TIMEOUT]`
    fn wait(
        &self,
        cond: WaitCondition,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<String, CommandError>> + Send;
    /// `load ...` (with the session's acks when the spec names none).
    fn load(
        &self,
        spec: LoadSpec,
        acks: Acks,
    ) -> impl Future<Output = Result<String, CommandError>> + Send;
    /// `check ...`
    fn check(&self, check: Check) -> impl Future<Output = Result<String, CommandError>> + Send;
    /// A link, machine or nemesis fault.
    fn fault(&self, fault: Fault) -> impl Future<Output = Result<String, CommandError>> + Send;
    /// `history save FILE`
    fn save_history(
        &self,
        path: std::path::PathBuf,
    ) -> impl Future<Output = Result<String, CommandError>> + Send;
    /// Notes a client operation issued by a shell or scenario (`started` is when it was sent).
    fn record(&self, op: OpRecord, started: std::time::Instant);
    /// Called before every command but `wait` and `sleep`, so that `wait leader-change` and
    /// `wait controller-change` compare against the state before the command that caused it.
    fn before_command(&self) {}
    /// Called after every command (the console refreshes).
    fn after_command(&self) {}
}

/// No lab (`cli`): fault commands explain where they work; `rebalance` goes through the
/// client's ZooKeeper session when it has one.
#[derive(Debug, Clone, Default)]
pub struct NoLab {
    coord: Option<crate::coord::Coord>,
}

impl NoLab {
    /// A `cli` session whose client found the cluster through `coord` (if any).
    pub fn with_zookeeper(coord: Option<crate::coord::Coord>) -> Self {
        Self { coord }
    }
}

/// A value as the shell prints it: as text when it is UTF-8 with no control characters (tabs
/// aside); otherwise in double quotes with every other byte escaped (`"\xff\x00a"`), never
/// lossily and never as raw control bytes on the terminal.
pub fn shown_value(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) if !s.chars().any(|c| c.is_control() && c != '\t') => s.to_string(),
        _ => format!("\"{}\"", v.escape_ascii()),
    }
}

impl LabControl for NoLab {
    async fn kill(&self, _: Target) -> Result<String, CommandError> {
        Err(CommandError::LabOnly("kill"))
    }
    async fn restore(&self, _: Target) -> Result<String, CommandError> {
        Err(CommandError::LabOnly("restore"))
    }
    async fn wipe(&self, _: Target) -> Result<String, CommandError> {
        Err(CommandError::LabOnly("wipe"))
    }
    async fn rebalance(&self) -> Result<String, CommandError> {
        let Some(coord) = &self.coord else {
            return Err(CommandError::Usage(
                "'rebalance' asks the controller through ZooKeeper: run the cli with --zk HOST:PORT/CHROOT"
                    .into(),
            ));
        };
        let spec = coord
            .cluster()
            .await
            .map_err(|e| CommandError::Failed(e.to_string()))?
            .ok_or_else(|| {
                CommandError::Refused(
                    "ZooKeeper holds no cluster here (/cluster is missing): is the chroot right?"
                        .into(),
                )
            })?;
        super::rebalance(coord, &spec).await
    }
    async fn status(&self) -> Result<String, CommandError> {
        Err(CommandError::LabOnly("status"))
    }
    async fn wait(&self, _: WaitCondition, _: Option<Duration>) -> Result<String, CommandError> {
        Err(CommandError::LabOnly("wait"))
    }
    async fn load(&self, _: LoadSpec, _: Acks) -> Result<String, CommandError> {
        Err(CommandError::LabOnly("load"))
    }
    async fn check(&self, _: Check) -> Result<String, CommandError> {
        Err(CommandError::LabOnly("check"))
    }
    async fn fault(&self, _: Fault) -> Result<String, CommandError> {
        Err(CommandError::LabOnly("fault commands"))
    }
    async fn save_history(&self, _: std::path::PathBuf) -> Result<String, CommandError> {
        Err(CommandError::LabOnly("history"))
    }
    fn record(&self, _: OpRecord, _: std::time::Instant) {}
}

/// What a command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Text to print.
    Text(String),
    /// The user asked to leave.
    Quit,
}

/// A shell session: a client, the session's acks, and the lab (or [`NoLab`]).
pub struct Session<L> {
    client: Client,
    acks: Acks,
    lab: L,
}

impl<L: LabControl> Session<L> {
    /// A session writing with `acks`.
    pub fn new(client: Client, acks: Acks, lab: L) -> Self {
        Self { client, acks, lab }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Parses and runs one line. `None` for a blank line or comment.
    pub async fn run_line(&mut self, line: &str) -> Option<Result<Reply, CommandError>> {
        match super::parse(line) {
            Ok(None) => None,
            Ok(Some(cmd)) => Some(self.execute(cmd).await),
            Err(e) => Some(Err(e)),
        }
    }

    /// Records a key-value operation with the lab's history.
    fn note<T>(
        &self,
        kind: OpKind,
        key: Bytes,
        value: Option<Bytes>,
        ttl_ms: Option<u64>,
        r: &Result<T, ClientError>,
        started: std::time::Instant,
    ) {
        let op = OpRecord {
            kind,
            key,
            value,
            ttl_ms,
            outcome: Outcome::of(r),
            acks: self.acks,
        };
        self.lab.record(op, started);
    }

    /// Runs one command.
    pub async fn execute(&mut self, cmd: Command) -> Result<Reply, CommandError> {
        let text = |s: &str| Ok(Reply::Text(s.to_string()));
        if !matches!(cmd, Command::Wait(..) | Command::Sleep(_)) {
            self.lab.before_command();
        }
        let started = std::time::Instant::now();
        let result = match cmd {
            Command::Set { key, value, ttl_ms } => {
                let r = self
                    .client
                    .set(&key, &value, ttl_ms.map(Duration::from_millis), self.acks)
                    .await;
                self.lab.record(
                    OpRecord {
                        kind: OpKind::Set,
                        key,
                        value: Some(value),
                        ttl_ms,
                        outcome: Outcome::of(&r),
                        acks: self.acks,
                    },
                    started,
                );
                r.map_err(CommandError::from).and_then(|_| text("OK"))
            }
            Command::Get { key } => {
                let r = self.client.get(&key).await;
                self.note(
                    OpKind::Get,
                    key,
                    r.as_ref().ok().cloned().flatten(),
                    None,
                    &r,
                    started,
                );
                match r {
                    Ok(Some(v)) => text(&shown_value(&v)),
                    Ok(None) => text("record not found"),
                    Err(e) => Err(e.into()),
                }
            }
            Command::Del { key } => {
                let r = self.client.del(&key, self.acks).await;
                self.note(OpKind::Del, key, None, None, &r, started);
                r.map_err(CommandError::from).and_then(|_| text("OK"))
            }
            Command::Expire { key, seconds } => {
                let r = self.client.expire(&key, seconds, self.acks).await;
                // "record not found" changed nothing: it is a failed expire, not an expiry.
                let took = r.clone().and_then(|found| {
                    if found {
                        Ok(())
                    } else {
                        Err(ClientError::InvalidArgument("record not found".into()))
                    }
                });
                self.note(OpKind::Expire, key, None, None, &took, started);
                match r {
                    Ok(true) => text("OK"),
                    Ok(false) => text("record not found"),
                    Err(e) => Err(e.into()),
                }
            }
            Command::Ttl { key } => match self.client.ttl(&key).await {
                Ok(t) => text(&t.to_string()),
                Err(e) => Err(e.into()),
            },
            Command::Acks(a) => {
                self.acks = a;
                text("OK")
            }
            Command::Kill(t) => self.lab.kill(t).await.map(Reply::Text),
            Command::Restore(t) => self.lab.restore(t).await.map(Reply::Text),
            Command::Wipe(t) => self.lab.wipe(t).await.map(Reply::Text),
            Command::Rebalance => self.lab.rebalance().await.map(Reply::Text),
            Command::Fault(f) => self.lab.fault(f).await.map(Reply::Text),
            Command::SaveHistory(path) => self.lab.save_history(path).await.map(Reply::Text),
            Command::Status => self.lab.status().await.map(Reply::Text),
            Command::Wait(c, timeout) => self.lab.wait(c, timeout).await.map(Reply::Text),
            Command::Sleep(d) => {
                tokio::time::sleep(d).await;
                text("OK")
            }
            Command::Load(spec) => {
                let acks = spec.acks.unwrap_or(self.acks);
                self.lab.load(spec, acks).await.map(Reply::Text)
            }
            Command::Check(c) => self.lab.check(c).await.map(Reply::Text),
            Command::Help => text(HELP),
            Command::Quit => Ok(Reply::Quit),
        };
        self.lab.after_command();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::{CommandError, LabControl, NoLab, Target, shown_value};

    #[tokio::test]
    async fn the_cli_says_which_commands_need_the_lab() {
        let lab = NoLab::default();
        let e = lab.kill(Target::All).await.expect_err("no lab");
        assert!(matches!(e, CommandError::LabOnly("kill")), "{e:?}");
        let e = lab.rebalance().await.expect_err("no ZooKeeper");
        assert!(matches!(e, CommandError::Usage(_)), "{e:?}");
        assert!(e.to_string().contains("--zk"), "{e}");
    }

    #[test]
    fn values_print_as_text_when_they_are_text_and_escaped_otherwise() {
        assert_eq!(shown_value(b"hello world"), "hello world");
        assert_eq!(shown_value("grüße\tdu".as_bytes()), "grüße\tdu");
        assert_eq!(shown_value(b"\xff\x00a"), "\"\\xff\\x00a\"");
        assert_eq!(shown_value(b"\x1b[2Jboo"), "\"\\x1b[2Jboo\"");
        assert_eq!(shown_value(b"two\nlines"), "\"two\\nlines\"");
        assert_eq!(shown_value(b""), "");
    }
}
