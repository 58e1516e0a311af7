//! A private Apache ZooKeeper server: the real one, from the machine's install, on a free loopback
//! port with its own data directory. The lab, `run`, the benchmarks and the test harness use it when
//! no `--zk` is given.
//!
//! The server runs under a small shell watchdog in its own process group: dropping [`ZkServer`]
//! stops the group, and if this process dies without dropping it (a panic with `abort`, SIGKILL) the
//! watchdog notices within half a second and stops the server itself, so no JVM is ever left behind.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to serve after it starts (a JVM on a busy machine is slow).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a starting server is asked whether it serves.
const READY_POLL: Duration = Duration::from_millis(50);
/// Connecting to a server to ask it a four-letter word.
const FOUR_LETTER_CONNECT: Duration = Duration::from_millis(500);
/// How long its answer may take.
const FOUR_LETTER_ANSWER: Duration = Duration::from_secs(2);
/// How long a stopped server has to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often a stopping server is looked at.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Why the private server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No ZooKeeper installation was found.
    #[error(
        "Apache ZooKeeper is not installed (no /usr/share/java/zookeeper.jar, and ZOOKEEPER_HOME is \
         not set): run 'make lab' or 'make test' once, which installs it, or set ZOOKEEPER_HOME"
    )]
    NotInstalled,
    /// No `java` on the PATH.
    #[error(
        "no 'java' found on the PATH; ZooKeeper needs a Java runtime: run 'make test' or 'make lab' once, which installs one"
    )]
    NoJava,
    /// The server started but never answered.
    #[error("ZooKeeper did not start within {0:?}; its log ({1}) says: {2}")]
    NotReady(Duration, String, String),
    /// Settings or a data directory that do not fit.
    #[error("{0}")]
    Refused(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let what = what.into();
    move |source| ServerError::Io { what, source }
}

/// Settings of a private server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// ZooKeeper's tick; session timeouts are bounded to 2 ticks .. max(20 ticks, 60 s).
    pub tick_ms: u64,
    /// How long to wait for `srvr` to answer `Mode: standalone`.
    pub start_timeout: Duration,
    /// Delete the server's directory when it stops (for throw-away test servers).
    pub remove_dir_on_exit: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            tick_ms: 200,
            start_timeout: START_TIMEOUT,
            remove_dir_on_exit: false,
        }
    }
}

/// A running private ZooKeeper server; stopped when dropped.
#[derive(Debug)]
pub struct ZkServer {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    /// Stopped and reaped: its process group id may belong to someone else now.
    stopped: bool,
}

/// The Java classpath of the installed ZooKeeper.
fn classpath() -> Result<String, ServerError> {
    if let Ok(home) = std::env::var("ZOOKEEPER_HOME") {
        let lib = Path::new(&home).join("lib");
        let mut jars: Vec<String> = std::fs::read_dir(&lib)
            .map_err(|_| ServerError::NotInstalled)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jar"))
            .map(|p| p.display().to_string())
            .collect();
        if jars.is_empty() {
            return Err(ServerError::NotInstalled);
        }
        jars.sort();
        jars.push(Path::new(&home).join("conf").display().to_string());
        return Ok(jars.join(":"));
    }
    let debian = Path::new("/usr/share/java/zookeeper.jar");
    if !debian.exists() {
        return Err(ServerError::NotInstalled);
    }
    let mut parts = vec![debian.display().to_string()];
    for extra in [
        "/usr/share/java/slf4j-log4j12.jar",
        "/usr/share/java/log4j-1.2.jar",
        "/etc/zookeeper/conf",
    ] {
        if Path::new(extra).exists() {
            parts.push(extra.to_string());
        }
    }
    Ok(parts.join(":"))
}

/// The classpath of the installed ZooKeeper, once `java` is known to run.
pub(super) fn java_classpath() -> Result<String, ServerError> {
    let cp = classpath()?;
    if Command::new("java")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Err(ServerError::NoJava);
    }
    Ok(cp)
}

/// A server's `zoo.cfg`: data under `dir/data`, clients on loopback `port`, the lab's `tick_ms`,
/// then `extra` lines (an ensemble's `server.N` lines).
pub(super) fn server_config(dir: &Path, port: u16, tick_ms: u64, extra: &str) -> String {
    let tick = tick_ms.max(10);
    format!(
        "tickTime={tick}\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\n\
         clientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\n\
         4lw.commands.whitelist=ruok,srvr,stat,mntr,cons\nminSessionTimeout={}\n\
         maxSessionTimeout={}\nautopurge.purgeInterval=1\n{extra}",
        dir.join("data").display(),
        tick * 2,
        // Above ZooKeeper's default of 20 ticks, so a lab or test with a short tick can still
        // ask for long sessions.
        (tick * 20).max(60_000),
    )
}

/// What a server says it is (`srvr`'s `Mode:` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ZkMode {
    /// The ensemble's leader.
    Leader,
    /// A follower of the ensemble's leader.
    Follower,
    /// A single server, not part of an ensemble.
    Standalone,
    /// Up, but not serving: no quorum, or an election under way.
    NotServing,
    /// Not answering at all.
    Down,
}

impl ZkMode {
    /// Whether it serves clients.
    pub fn serves(self) -> bool {
        matches!(self, Self::Leader | Self::Follower | Self::Standalone)
    }

    /// Reads a `srvr` answer.
    pub fn parse(answer: &str) -> Self {
        match answer
            .lines()
            .find_map(|l| l.strip_prefix("Mode:"))
            .map(str::trim)
        {
            Some("leader") => Self::Leader,
            Some("follower") => Self::Follower,
            Some("standalone") => Self::Standalone,
            _ => Self::NotServing,
        }
    }

    /// The word the console shows.
    pub fn name(self) -> &'static str {
        match self {
            Self::Leader => "leader",
            Self::Follower => "follower",
            Self::Standalone => "standalone",
            Self::NotServing => "not serving",
            Self::Down => "down",
        }
    }
}

/// The mode of the server at `addr` (blocking, at most about 2.5 s).
pub fn mode_of(addr: SocketAddr) -> ZkMode {
    match four_letter_word(addr, "srvr") {
        Ok(answer) => ZkMode::parse(&answer),
        Err(_) => ZkMode::Down,
    }
}

/// The mode of the server at `addr`, without blocking a thread; `None` when it took longer than
/// `timeout` to answer (a busy machine, not a verdict).
pub async fn mode_of_async(addr: SocketAddr, timeout: Duration) -> Option<ZkMode> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"srvr").await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    match tokio::time::timeout(timeout, ask).await {
        Ok(Ok(answer)) => Some(ZkMode::parse(&answer)),
        Ok(Err(_)) => Some(ZkMode::Down),
        Err(_) => None,
    }
}

/// A free loopback port (bound and released; ZooKeeper binds it right after).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Sends a four-letter word and returns the answer.
pub fn four_letter_word(addr: SocketAddr, word: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, FOUR_LETTER_CONNECT)?;
    s.set_read_timeout(Some(FOUR_LETTER_ANSWER))?;
    s.write_all(word.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

impl ZkServer {
    /// Starts a standalone server with its data under `dir` on a free port and waits until it
    /// serves.
    pub fn start(dir: &Path, options: &ServerOptions) -> Result<Self, ServerError> {
        let cp = java_classpath()?;
        let mut last_err = None;
        for _attempt in 0..3 {
            let started = free_port()
                .map_err(io("find a free port"))
                .and_then(|port| {
                    let cfg = server_config(dir, port, options.tick_ms, "");
                    Self::spawn(dir, &cfg, port, options.remove_dir_on_exit, &cp)
                })
                .and_then(|mut server| {
                    server.wait_until(options.start_timeout, |m| m == ZkMode::Standalone)?;
                    Ok(server)
                });
            match started {
                Ok(s) => return Ok(s),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or(ServerError::NotInstalled))
    }

    /// Starts a server from the configuration text `cfg` (its `zoo.cfg`, with the data directory
    /// under `dir` already named in it) listening for clients on `port`, and returns at once.
    pub(super) fn spawn(
        dir: &Path,
        cfg: &str,
        port: u16,
        remove_dir_on_exit: bool,
        cp: &str,
    ) -> Result<Self, ServerError> {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).map_err(io(format!("create {}", data.display())))?;
        let cfg_path = dir.join("zoo.cfg");
        std::fs::write(&cfg_path, cfg).map_err(io(format!("write {}", cfg_path.display())))?;
        let log_path = dir.join("zookeeper.out");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(format!("open {}", log_path.display())))?;
        let log_err = log.try_clone().map_err(io("duplicate the log handle"))?;

        // The watchdog: run the JVM in the background and stop it when we (the owner) disappear or
        // when we are asked to stop.
        let cleanup = if remove_dir_on_exit {
            format!("rm -rf '{}'", dir.display())
        } else {
            "true".to_string()
        };
        let script = format!(
            "java -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
             -Dzookeeper.log.dir='{dir}' -cp '{cp}' \
             org.apache.zookeeper.server.quorum.QuorumPeerMain '{cfg}' & zk=$!; \
             trap 'kill $zk 2>/dev/null; wait $zk; {cleanup}; exit 0' TERM INT; \
             while kill -0 {owner} 2>/dev/null && kill -0 $zk 2>/dev/null; do sleep 0.5; done; \
             kill $zk 2>/dev/null; wait $zk; {cleanup}",
            dir = dir.display(),
            cfg = cfg_path.display(),
            owner = std::process::id(),
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().map_err(io("start the ZooKeeper server"))?;
        Ok(Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: dir.to_path_buf(),
            stopped: false,
        })
    }

    /// Waits until `srvr` answers with a mode `ready` accepts; stops the server and says why
    /// when it exits or `timeout` passes first.
    pub(super) fn wait_until(
        &mut self,
        timeout: Duration,
        ready: impl Fn(ZkMode) -> bool,
    ) -> Result<(), ServerError> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready(mode_of(self.addr)) {
                tracing::info!(addr = %self.addr, dir = %self.dir.display(), "private ZooKeeper serving");
                return Ok(());
            }
            if self.has_exited() || Instant::now() > deadline {
                let tail = self.log_error();
                self.stop();
                return Err(ServerError::NotReady(
                    timeout,
                    self.dir.join("zookeeper.out").display().to_string(),
                    tail,
                ));
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// The last error line of the server's log, or `(nothing)`.
    pub(super) fn log_error(&self) -> String {
        std::fs::read_to_string(self.dir.join("zookeeper.out"))
            .unwrap_or_default()
            .lines()
            .rev()
            .find(|l| l.contains("ERROR") || l.contains("Exception"))
            .unwrap_or("(nothing)")
            .to_string()
    }

    /// Whether its process has exited (crashed, or stopped).
    pub fn has_exited(&mut self) -> bool {
        self.stopped || matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A connect string for `chroot` (e.g. `/simplekv`), or the root when empty.
    pub fn connect_string(&self, chroot: &str) -> String {
        format!("{}{}", self.addr, chroot)
    }

    /// The server's directory (config, data, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the server at once (SIGKILL, no clean shutdown), as a crashed machine would, and
    /// reaps it. Its data directory stays.
    pub fn crash(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        signal_group(self.child.id() as libc::pid_t, libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// Stops the server and waits for it to exit. Idempotent: once stopped (explicitly, then
    /// again from `Drop`), its reaped process group is never signalled again.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pgid = self.child.id() as libc::pid_t;
        signal_group(pgid, libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(STOP_POLL);
        }
        signal_group(pgid, libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Signals the process group `pgid` of our own child (the JVM and its watchdog), not yet reaped.
#[allow(unsafe_code)]
fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) takes no pointers; a negative pid names a process group, here the one our
    // unreaped child leads, so the id cannot have been reused.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        self.stop();
    }
}
