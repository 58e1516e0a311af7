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
            start_timeout: Duration::from_secs(30),
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

/// A free loopback port (bound and released; ZooKeeper binds it right after).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Sends a four-letter word and returns the answer.
pub fn four_letter_word(addr: SocketAddr, word: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(word.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

impl ZkServer {
    /// Starts a server with its data under `dir` and waits until it serves.
    pub fn start(dir: &Path, options: &ServerOptions) -> Result<Self, ServerError> {
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
        let mut last_err = None;
        for _attempt in 0..3 {
            match Self::start_once(dir, options, &cp) {
                Ok(s) => return Ok(s),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or(ServerError::NotInstalled))
    }

    fn start_once(dir: &Path, options: &ServerOptions, cp: &str) -> Result<Self, ServerError> {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).map_err(io(format!("create {}", data.display())))?;
        let port = free_port().map_err(io("find a free port"))?;
        let tick = options.tick_ms.max(10);
        let cfg = format!(
            "tickTime={tick}\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\n\
             clientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\n\
             4lw.commands.whitelist=ruok,srvr,stat,mntr,cons\nminSessionTimeout={}\n\
             maxSessionTimeout={}\nautopurge.purgeInterval=1\n",
            data.display(),
            tick * 2,
            // Above ZooKeeper's default of 20 ticks, so a lab or test with a short tick can still
            // ask for long sessions.
            (tick * 20).max(60_000),
        );
        let cfg_path = dir.join("zoo.cfg");
        std::fs::write(&cfg_path, cfg).map_err(io(format!("write {}", cfg_path.display())))?;
        let log_path = dir.join("zookeeper.out");
        let log = std::fs::File::create(&log_path)
            .map_err(io(format!("create {}", log_path.display())))?;
        let log_err = log.try_clone().map_err(io("duplicate the log handle"))?;

        // The watchdog: run the JVM in the background and stop it when we (the owner) disappear or
        // when we are asked to stop.
        let cleanup = if options.remove_dir_on_exit {
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
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: dir.to_path_buf(),
            stopped: false,
        };
        let deadline = Instant::now() + options.start_timeout;
        loop {
            if let Ok(answer) = four_letter_word(server.addr, "srvr")
                && answer.contains("Mode: standalone")
            {
                tracing::info!(addr = %server.addr, dir = %dir.display(), "private ZooKeeper serving");
                return Ok(server);
            }
            let exited = matches!(server.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let tail = std::fs::read_to_string(&log_path)
                    .unwrap_or_default()
                    .lines()
                    .rev()
                    .find(|l| l.contains("ERROR") || l.contains("Exception"))
                    .unwrap_or("(nothing)")
                    .to_string();
                server.stop();
                return Err(ServerError::NotReady(
                    options.start_timeout,
                    log_path.display().to_string(),
                    tail,
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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

    /// Stops the server and waits for it to exit. Idempotent: once stopped (explicitly, then
    /// again from `Drop`), its reaped process group is never signalled again.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pgid = self.child.id() as libc::pid_t;
        signal_group(pgid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
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
