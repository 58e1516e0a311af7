//! One RESP connection: commands are cut from the read buffer and run concurrently, and their
//! replies go back in the order the commands came. A [`Window`] bounds what runs at once:
//! [`MAX_IN_FLIGHT`] commands, [`MAX_IN_FLIGHT_BYTES`] of arguments, [`MAX_READS_IN_FLIGHT`]
//! `GET`s (each may bring back a whole value); what it does not admit stays in the read buffer,
//! and nothing more is read until it starts. So one connection holds at most ~32 MiB of
//! arguments, 16 values and 1 MiB of unwritten replies, whatever its client sends.
//!
//! Redis runs a connection's commands one after another. Here a command waits only for earlier
//! commands that touch one of its keys when either of them writes ([`Window::admits`]): a
//! pipelined `SET k a`, `DEL k`, `SET k b` still leaves `b`, and `SET k 1` then `GET k` still
//! reads `1`, while writes to different keys share the client's write batches as many
//! connections' writes do, and reads of one key run together. A run of `SET`s of one key already
//! in the buffer goes as one ordered request ([`gather`]), so a pipeline of writes to one key
//! costs one round trip rather than one each. Across
//! different keys the order is the one Redis Cluster gives a pipeline spanning shards: each
//! reply comes back in order, but another client may see the second key written before the first.

use super::exec::{self, ExecOptions};
use super::frame::{Limits, Parser, ProtocolError, Reply};
use crate::client::Client;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::sync::CancellationToken;

/// How long a reply may wait for the client to take it before the connection is closed.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Replies gathered before they are written even if more are ready.
const FLUSH_BYTES: usize = 1 << 20;
/// Commands of one connection running at once; more stay unread in the socket.
pub const MAX_IN_FLIGHT: usize = 128;
/// Argument bytes of one connection's running commands (one larger command runs alone).
pub const MAX_IN_FLIGHT_BYTES: usize = 32 << 20;
/// How long a half-sent command may wait for its next byte before the connection is closed
/// (a client that stops mid-command would otherwise hold its buffer for ever).
pub const PARTIAL_COMMAND_IDLE: std::time::Duration = std::time::Duration::from_secs(30);
/// Most `SET`s to one key sent as one ordered group.
pub const MAX_GROUP: usize = 64;
/// `GET`s of one connection running at once: each may hold a whole value (up to the store's
/// largest, 16 MiB by default) until its reply is written.
pub const MAX_READS_IN_FLIGHT: usize = 16;

/// The keys a command touches, for ordering commands on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// No key (`PING`, `INFO`, an unknown command): never waits for another command.
    None,
    /// One key, kept without an allocation.
    One(Bytes),
    /// Several (`DEL a b`, `EXISTS a b`).
    Many(Vec<Bytes>),
}

impl Keys {
    /// The keys of `args` (the command name first).
    pub fn of(args: &[Bytes]) -> Keys {
        let Some(name) = args.first() else {
            return Keys::None;
        };
        let lower = |n: &[u8]| n.to_ascii_lowercase();
        match lower(name).as_slice() {
            b"get" | b"set" | b"expire" | b"ttl" | b"pttl" => {
                args.get(1).map_or(Keys::None, |k| Keys::One(k.clone()))
            }
            b"del" | b"unlink" | b"exists" => match &args[1..] {
                [] => Keys::None,
                [k] => Keys::One(k.clone()),
                ks => Keys::Many(ks.to_vec()),
            },
            _ => Keys::None,
        }
    }

    fn as_slice(&self) -> &[Bytes] {
        match self {
            Keys::None => &[],
            Keys::One(k) => std::slice::from_ref(k),
            Keys::Many(ks) => ks,
        }
    }
}

/// What the window knows of a command: its keys, its size, whether it reads a value.
#[derive(Debug, Clone)]
pub struct Entry {
    keys: Keys,
    bytes: usize,
    /// A `GET`: its reply may hold a whole value.
    read: bool,
    /// It changes its keys (`SET`, `DEL`, `EXPIRE`): later commands on them wait for it.
    writes: bool,
    /// Commands it stands for (more than one for a group of `SET`s to one key).
    commands: usize,
}

impl Entry {
    /// The entry of a command (`args` with the command name first).
    pub fn of(args: &[Bytes]) -> Entry {
        let is = |names: &[&str]| {
            args.first()
                .is_some_and(|n| names.iter().any(|m| n.eq_ignore_ascii_case(m.as_bytes())))
        };
        Entry {
            keys: Keys::of(args),
            bytes: args.iter().map(Bytes::len).sum(),
            read: is(&["get"]),
            writes: is(&["set", "del", "unlink", "expire"]),
            commands: 1,
        }
    }
}

/// The commands of one connection that are running, oldest first, and their totals.
#[derive(Debug, Default)]
pub struct Window {
    running: VecDeque<Entry>,
    /// Commands running (a group counts each of its `SET`s).
    commands: usize,
    bytes: usize,
    reads: usize,
    /// Per key of a running command: how many running commands read it and how many write it
    /// (so admitting a command costs its own keys, not theirs times everyone else's).
    keys: HashMap<Bytes, (u32, u32)>,
}

impl Window {
    /// Whether `e` may start now: room in the window, no running command on one of its keys
    /// where either writes, and within the byte and read bounds (an empty window takes any one
    /// command).
    pub fn admits(&self, e: &Entry) -> bool {
        self.commands + e.commands <= MAX_IN_FLIGHT
            && (self.running.is_empty() || self.bytes + e.bytes <= MAX_IN_FLIGHT_BYTES)
            && (!e.read || self.reads < MAX_READS_IN_FLIGHT)
            && !e.keys.as_slice().iter().any(|k| {
                self.keys
                    .get(k)
                    .is_some_and(|&(readers, writers)| writers > 0 || (e.writes && readers > 0))
            })
    }

    /// `e` has started.
    pub fn push(&mut self, e: Entry) {
        self.commands += e.commands;
        self.bytes += e.bytes;
        self.reads += usize::from(e.read);
        for k in e.keys.as_slice() {
            let (readers, writers) = self.keys.entry(k.clone()).or_default();
            if e.writes {
                *writers += 1;
            } else {
                *readers += 1;
            }
        }
        self.running.push_back(e);
    }

    /// The oldest running command has been answered.
    pub fn pop(&mut self) {
        let Some(e) = self.running.pop_front() else {
            return;
        };
        self.commands -= e.commands;
        self.bytes -= e.bytes;
        self.reads -= usize::from(e.read);
        for k in e.keys.as_slice() {
            if let Some((readers, writers)) = self.keys.get_mut(k) {
                if e.writes {
                    *writers -= 1;
                } else {
                    *readers -= 1;
                }
                if (*readers, *writers) == (0, 0) {
                    self.keys.remove(k);
                }
            }
        }
    }

    fn is_full(&self) -> bool {
        self.commands >= MAX_IN_FLIGHT
    }
}

/// Serves one client until it quits, sends something unparseable, stops taking replies, or
/// `stop` is cancelled.
pub async fn serve(
    stream: TcpStream,
    client: Client,
    opts: Arc<ExecOptions>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let mut parser = Parser::new(Limits::default());
    let mut input = BytesMut::with_capacity(16 << 10);
    let mut output = BytesMut::with_capacity(16 << 10);
    let mut running = FuturesOrdered::new();
    // What is known of each running command, in the same order as `running`.
    let mut window = Window::default();
    // A parsed command the window did not admit yet.
    let mut held: Option<(Vec<Bytes>, Entry)> = None;
    // The last reply before the connection closes (`QUIT`'s `+OK` or a protocol error).
    let mut last: Option<Reply> = None;
    // The client has closed its side: what it sent still runs and is answered, then we close.
    let mut eof = false;
    loop {
        // Start what may start.
        while last.is_none() && !window.is_full() {
            let (args, entry) = match held.take() {
                Some(h) => h,
                None => match parser.next(&mut input) {
                    Ok(Some(args)) if exec::is_quit(&args) => {
                        last = Some(Reply::Status("OK"));
                        break;
                    }
                    Ok(Some(args)) => {
                        let entry = Entry::of(&args);
                        (args, entry)
                    }
                    Ok(None) => break,
                    Err(e) => {
                        last = Some(Reply::err(e));
                        break;
                    }
                },
            };
            if !window.admits(&entry) {
                held = Some((args, entry));
                break;
            }
            let (job, entry) = gather(
                args,
                entry,
                &mut parser,
                &mut input,
                &window,
                &mut held,
                &mut last,
            );
            running.push_back(exec::run(client.clone(), job, Arc::clone(&opts)));
            window.push(entry);
        }
        if running.is_empty() {
            if let Some(reply) = last.take() {
                reply.encode(&mut output);
                flush(&mut wr, &mut output).await?;
                wr.shutdown().await.ok();
                return Ok(());
            }
            if eof {
                // Replies to a client that closed both sides cannot be written; that is its loss.
                flush(&mut wr, &mut output).await.ok();
                return Ok(());
            }
        }
        // Answer what has finished; write when nothing more is ready at once.
        let mut progressed = false;
        while let Some(Some(reply)) = futures_util::FutureExt::now_or_never(running.next()) {
            window.pop();
            encode(reply, &mut output);
            progressed = true;
            if output.len() >= FLUSH_BYTES {
                flush(&mut wr, &mut output).await?;
            }
        }
        if progressed {
            // A finished command may have released a held one, or made room.
            continue;
        }
        flush(&mut wr, &mut output).await?;
        let may_read = !eof && last.is_none() && held.is_none() && !window.is_full();
        tokio::select! {
            Some(reply) = running.next(), if !running.is_empty() => {
                window.pop();
                encode(reply, &mut output);
            }
            n = rd.read_buf(&mut input), if may_read => {
                eof = n? == 0;
            }
            // Restarted whenever bytes arrive: only a client silent mid-command is cut off.
            () = tokio::time::sleep(opts.partial_command_idle),
                if may_read && running.is_empty() && !input.is_empty() =>
            {
                last = Some(Reply::err(ProtocolError(format!(
                    "no byte of the command arrived for {:?}",
                    opts.partial_command_idle
                ))));
            }
            _ = stop.cancelled() => return Ok(()),
        }
    }
}

/// The job for `args`, just admitted: alone, or, for a `SET`, with the `SET`s of the same key
/// that follow it in the buffer, sent as one request that keeps them in order (so a pipeline of
/// writes to one key costs one round trip, not one each). The first command after the run is
/// parsed already: it goes to `held`; a `QUIT` or a malformed command goes to `last`.
fn gather(
    args: Vec<Bytes>,
    mut entry: Entry,
    parser: &mut Parser,
    input: &mut BytesMut,
    window: &Window,
    held: &mut Option<(Vec<Bytes>, Entry)>,
    last: &mut Option<Reply>,
) -> (exec::Job, Entry) {
    let Some((key, value, ttl)) = exec::plain_set(&args) else {
        return (exec::Job::One(args), entry);
    };
    let mut values = vec![(value, ttl)];
    while window.commands + values.len() < MAX_IN_FLIGHT && values.len() < MAX_GROUP {
        let next = match parser.next(input) {
            Ok(Some(next)) if exec::is_quit(&next) => {
                *last = Some(Reply::Status("OK"));
                break;
            }
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(e) => {
                *last = Some(Reply::err(e));
                break;
            }
        };
        let next_entry = Entry::of(&next);
        match exec::plain_set(&next) {
            Some((k, v, t))
                if k == key
                    && window.bytes + entry.bytes + next_entry.bytes <= MAX_IN_FLIGHT_BYTES =>
            {
                entry.bytes += next_entry.bytes;
                values.push((v, t));
            }
            _ => {
                *held = Some((next, next_entry));
                break;
            }
        }
    }
    if values.len() == 1 {
        return (exec::Job::One(args), entry);
    }
    entry.commands = values.len();
    (exec::Job::Group { key, values }, entry)
}

fn encode(done: exec::Done, output: &mut BytesMut) {
    match done {
        exec::Done::One(r) => r.encode(output),
        exec::Done::Many(rs) => rs.iter().for_each(|r| r.encode(output)),
    }
}

/// Writes the gathered replies; a client that does not take them in time is cut off.
async fn flush(wr: &mut OwnedWriteHalf, output: &mut BytesMut) -> std::io::Result<()> {
    if output.is_empty() {
        return Ok(());
    }
    match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(output)).await {
        Ok(written) => written?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the client took no replies for {} s",
                    WRITE_TIMEOUT.as_secs()
                ),
            ));
        }
    }
    output.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(words: &str) -> Vec<Bytes> {
        words
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    /// Whether `second` may start while `first` runs.
    fn may_follow(first: &str, second: &str) -> bool {
        let mut w = Window::default();
        w.push(Entry::of(&cmd(first)));
        w.admits(&Entry::of(&cmd(second)))
    }

    #[test]
    fn commands_on_a_common_key_wait_when_either_writes() {
        assert_eq!(Keys::of(&cmd("SET a 1")), Keys::One(Bytes::from("a")));
        assert!(!may_follow("SET a 1", "get a"));
        assert!(!may_follow("SET a 1", "DEL b a"));
        assert!(!may_follow("EXISTS c a", "SET a 1"));
        assert!(!may_follow("ttl a", "expire a 5"));
        assert!(!may_follow("DEL a a", "SET a 2"));
        assert!(may_follow("SET a 1", "SET b 1"));
        assert!(may_follow("SET a 1", "SET b a"), "a value is not a key");
        assert!(
            may_follow("GET a", "EXISTS a b"),
            "reads of one key together"
        );
        for keyless in ["PING", "INFO", "ECHO a", "FLUSHALL", "SELECT 0", "DEL"] {
            assert_eq!(Keys::of(&cmd(keyless)), Keys::None, "{keyless}");
            assert!(may_follow("SET a 1", keyless), "{keyless}");
        }
        // Once answered, a command's keys are free again, counted per command.
        let mut w = Window::default();
        w.push(Entry::of(&cmd("GET a")));
        w.push(Entry::of(&cmd("GET a")));
        w.pop();
        assert!(
            !w.admits(&Entry::of(&cmd("SET a 1"))),
            "one reader still runs"
        );
        w.pop();
        assert!(w.admits(&Entry::of(&cmd("SET a 1"))));
        assert!(w.keys.is_empty());
    }

    #[test]
    fn the_window_bounds_commands_bytes_and_reads() {
        let mut w = Window::default();
        let n = |i: usize| format!("k{i}");
        for i in 0..MAX_IN_FLIGHT {
            let e = Entry::of(&cmd(&format!("SET {} v", n(i))));
            assert!(w.admits(&e), "command {i}");
            w.push(e);
        }
        assert!(
            !w.admits(&Entry::of(&cmd("PING"))),
            "full at {MAX_IN_FLIGHT}"
        );
        w.pop();
        assert!(w.admits(&Entry::of(&cmd("PING"))));
        assert!(!w.admits(&Entry::of(&cmd("GET k5"))), "k5 is being written");
        assert!(
            !w.admits(&Entry::of(&cmd("SET k5 w"))),
            "k5 is being written"
        );

        let mut w = Window::default();
        w.push(Entry::of(&cmd("GET k")));
        w.push(Entry::of(&cmd("TTL k")));
        assert!(
            w.admits(&Entry::of(&cmd("EXISTS k"))),
            "reads of one key run together"
        );
        assert!(
            !w.admits(&Entry::of(&cmd("EXPIRE k 5"))),
            "a write waits for them"
        );
        assert!(!w.admits(&Entry::of(&cmd("DEL j k"))));

        let mut w = Window::default();
        for i in 0..MAX_READS_IN_FLIGHT {
            w.push(Entry::of(&cmd(&format!("GET {}", n(i)))));
        }
        assert!(!w.admits(&Entry::of(&cmd("GET other"))), "reads bounded");
        assert!(
            w.admits(&Entry::of(&cmd("SET other v"))),
            "writes still start"
        );

        let big = |key: &str| {
            vec![
                Bytes::from("SET"),
                Bytes::copy_from_slice(key.as_bytes()),
                Bytes::from(vec![b'x'; MAX_IN_FLIGHT_BYTES / 2]),
            ]
        };
        let mut w = Window::default();
        let huge = Entry::of(&[
            Bytes::from("SET"),
            Bytes::from("h"),
            Bytes::from(vec![0; MAX_IN_FLIGHT_BYTES * 2]),
        ]);
        assert!(w.admits(&huge), "an empty window takes any one command");
        w.push(Entry::of(&big("a")));
        assert!(!w.admits(&Entry::of(&big("b"))), "bytes bounded");
        w.pop();
        assert!(w.admits(&Entry::of(&big("b"))), "and released");
        assert_eq!((w.bytes, w.reads), (0, 0));
    }
}
