//! `simplekv-lab cli`: the command language against a running cluster, as a REPL with history
//! (prompt `simplekv> `) or one-shot. Replies go to stdout, errors to stderr as `error: ...`;
//! one-shot mode exits 1 on an error reply.

use crate::client::{Client, ClientConfig};
use crate::command::{NoLab, Reply, Session, parse_words};
use crate::replica::Acks;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

/// Where the cli finds the cluster.
#[derive(Debug, Clone)]
pub enum Discovery {
    /// Through ZooKeeper.
    Zk(String),
    /// Through seed brokers' Metadata.
    Brokers(Vec<String>),
}

/// How the cli reaches the cluster.
#[derive(Debug, Clone)]
pub struct Connect {
    /// Where it finds the brokers.
    pub discovery: Discovery,
    /// How long one command may take, retries included.
    pub timeout: Duration,
    /// TLS to client ports, when brokers serve them so.
    pub tls: Option<crate::net::tls::ClientTls>,
}

/// Connects a client (errors are one line).
pub async fn connect(how: &Connect) -> Result<Client, String> {
    let cfg = ClientConfig {
        request_timeout: how.timeout,
        tls: how.tls.clone(),
        ..ClientConfig::default()
    };
    connect_with(&how.discovery, cfg).await
}

/// Connects a client with these settings (errors are one line).
pub async fn connect_with(discovery: &Discovery, cfg: ClientConfig) -> Result<Client, String> {
    match discovery {
        Discovery::Zk(zk) => Client::connect_zk(zk, cfg).await,
        Discovery::Brokers(b) => Client::connect_brokers(b.clone(), cfg).await,
    }
    .map_err(|e| e.to_string())
}

fn print_reply(r: &Result<Reply, crate::command::CommandError>) {
    match r {
        Ok(Reply::Text(t)) => println!("{t}"),
        Ok(Reply::Quit) => {}
        Err(e) => eprintln!("error: {e}"),
    }
}

/// Stops the client following ZooKeeper when the session ends, however it ends, before the
/// runtime shuts down (see `Client::stop_following`).
struct StopFollowing(Client);

impl Drop for StopFollowing {
    fn drop(&mut self) {
        self.0.stop_following();
    }
}

/// Runs one command given as words; returns the process exit code.
pub fn one_shot(rt: &tokio::runtime::Runtime, how: &Connect, acks: Acks, words: &[String]) -> i32 {
    let cmd = match parse_words(words) {
        Ok(Some(c)) => c,
        Ok(None) => return 0,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    rt.block_on(async {
        let client = match connect(how).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        let lab = NoLab::with_zookeeper(client.coord());
        let _stop = StopFollowing(client.clone());
        let mut session = Session::new(client, acks, lab);
        let r = session.execute(cmd).await;
        print_reply(&r);
        i32::from(r.is_err())
    })
}

/// The interactive loop (or line-by-line from a pipe).
pub fn repl(rt: &tokio::runtime::Runtime, how: &Connect, acks: Acks) -> i32 {
    let client = match rt.block_on(connect(how)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let lab = NoLab::with_zookeeper(client.coord());
    let _stop = StopFollowing(client.clone());
    let mut session = Session::new(client, acks, lab);
    let mut failed = false;
    let mut run = |line: &str| -> bool {
        match rt.block_on(session.run_line(line)) {
            None => true,
            Some(Ok(Reply::Quit)) => false,
            Some(r) => {
                failed |= r.is_err();
                print_reply(&r);
                let _ = std::io::stdout().flush();
                true
            }
        }
    };
    if !std::io::stdin().is_terminal() {
        // A script: every line runs, a line that is not text is an error like any other, and
        // the exit code says whether any command failed (1) or none did (0).
        let mut unreadable = false;
        for (n, line) in std::io::stdin().lock().split(b'\n').enumerate() {
            let line = match line {
                Ok(bytes) => bytes,
                Err(e) => {
                    eprintln!("error: reading standard input: {e}");
                    unreadable = true;
                    break;
                }
            };
            let Ok(line) = std::str::from_utf8(&line) else {
                eprintln!("error: line {} is not UTF-8 text; it was not run", n + 1);
                unreadable = true;
                continue;
            };
            if !run(line.strip_suffix('\r').unwrap_or(line)) {
                break;
            }
        }
        return i32::from(failed || unreadable);
    }
    let Ok(mut editor) = rustyline::DefaultEditor::new() else {
        eprintln!("error: cannot set up line editing on this terminal");
        return 1;
    };
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".simplekv_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!("connected; type 'help' for commands, 'quit' to leave");
    loop {
        match editor.readline("simplekv> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if !run(&line) {
                    break;
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break,
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    0
}
