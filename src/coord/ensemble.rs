//! A private ZooKeeper ensemble: 1, 3 or 5 real servers on loopback, each with its own data
//! directory, client port, and (with more than one) quorum and election ports. One server runs
//! standalone; more form a quorum, which serves while a majority is up (DESIGN §16).
//!
//! Each server can be crashed and restarted on its data (`kill zk:N`, `restore zk:N`). Its ports
//! are chosen once, when the ensemble starts, because every member's configuration names them.
//! Every server runs under the watchdog of [`ZkServer`], so none outlives this process.

use super::server::{ServerError, ServerOptions, ZkMode, ZkServer, java_classpath, server_config};
use parking_lot::Mutex;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often a restarted server is asked whether it has joined its ensemble.
const JOIN_POLL: Duration = Duration::from_millis(50);

/// The most servers an ensemble may have (ZooKeeper's usual sizes are 1, 3 and 5).
pub const MAX_SERVERS: u32 = 7;

/// Why an ensemble size is refused: ZooKeeper needs a majority, so an even size only adds a
/// server that can fail without tolerating one more failure.
pub fn check_size(servers: u32) -> Result<(), String> {
    if servers == 0 || servers > MAX_SERVERS || servers.is_multiple_of(2) {
        return Err(format!(
            "zk_servers is {servers}; give an odd number from 1 to {MAX_SERVERS} (1, 3 or 5): a \
             quorum is a majority, so an even count tolerates no more failures than one fewer"
        ));
    }
    Ok(())
}

/// How many servers make a quorum of `servers`.
pub fn quorum_of(servers: usize) -> usize {
    servers / 2 + 1
}

/// Whether servers in `modes` serve as a quorum: a majority up and serving (or the one
/// standalone server).
pub fn quorum_stands(modes: &[ZkMode]) -> bool {
    modes.iter().filter(|m| m.serves()).count() >= quorum_of(modes.len())
}

#[derive(Debug, Clone)]
struct Member {
    id: u32,
    dir: PathBuf,
    client: u16,
    config: String,
}

/// A running ensemble; every server stops when it is dropped.
#[derive(Debug)]
pub struct Ensemble {
    members: Vec<Member>,
    /// Each server's process; a lock is held only for a moment, never across a wait.
    servers: Vec<Mutex<Option<ZkServer>>>,
    /// One kill or restore at a time (held across its wait; `stop` does not take it).
    ops: Mutex<()>,
    /// Stopped for good: a restore finishing late starts nothing.
    stopped: AtomicBool,
    options: ServerOptions,
    classpath: String,
}

/// The first port of the kernel's range for outgoing connections and `bind(0)`: ports below it
/// are never handed out by the kernel, so one chosen there stays free for the server that owns
/// it while that server is down (a follower's quorum port is not even bound while it follows).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// `count` distinct loopback ports that are free now, below the kernel's ephemeral range (from
/// a random start, so two labs rarely probe the same ones). Ports asked for one at a time from
/// the kernel can repeat, and can be taken by an outgoing connection before a server binds them.
pub fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let high = ephemeral_low().max(12_000);
    let low = high.saturating_sub(10_000).max(1024);
    let span = u64::from(high - low);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64)
        ^ (u64::from(std::process::id()) << 20);
    let mut ports = Vec::new();
    let mut held = Vec::new();
    for i in 0..span {
        if ports.len() == count {
            return Ok(ports);
        }
        let port = low + ((seed.wrapping_add(i * 7919)) % span) as u16;
        if ports.contains(&port) {
            continue;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            ports.push(port);
            held.push(l);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("fewer than {count} free ports between {low} and {high}"),
    ))
}

/// Refuses a data directory whose ZooKeeper was laid out for another number of servers: a
/// standalone server keeps its data in `dir/data`, an ensemble in `dir/server-N/data`; starting
/// the other kind would start an empty ZooKeeper over brokers that remember a cluster.
fn check_layout(dir: &Path, servers: u32) -> Result<(), String> {
    let standalone = dir.join("data").exists();
    let members = (1..=MAX_SERVERS)
        .filter(|n| dir.join(format!("server-{n}")).exists())
        .count() as u32;
    let was = match (standalone, members) {
        (false, 0) => return Ok(()),
        (true, _) => 1,
        (false, n) => n,
    };
    if was == servers {
        return Ok(());
    }
    Err(format!(
        "{} holds the ZooKeeper of {was} server(s), not {servers}: start with --zk-servers {was} \
         (zk_servers: {was}), or use a fresh --data-dir",
        dir.display()
    ))
}

impl Ensemble {
    /// Starts `servers` servers under `dir` (one standalone, or `server-N/` each) and waits until
    /// every one serves.
    pub fn start(dir: &Path, servers: u32, options: &ServerOptions) -> Result<Self, ServerError> {
        check_size(servers).map_err(ServerError::Refused)?;
        check_layout(dir, servers).map_err(ServerError::Refused)?;
        let classpath = java_classpath()?;
        let n = servers as usize;
        let ports = free_ports(3 * n).map_err(|source| ServerError::Io {
            what: "find free ports".into(),
            source,
        })?;
        let quorum_lines: String = (0..n)
            .map(|i| {
                format!(
                    "server.{}=127.0.0.1:{}:{}\n",
                    i + 1,
                    ports[n + 2 * i],
                    ports[n + 2 * i + 1]
                )
            })
            .collect();
        let members: Vec<Member> = (0..n)
            .map(|i| {
                let id = i as u32 + 1;
                let dir = if n == 1 {
                    dir.to_path_buf()
                } else {
                    dir.join(format!("server-{id}"))
                };
                let extra = if n == 1 { "" } else { &quorum_lines };
                let config = server_config(&dir, ports[i], options.tick_ms, extra);
                Member {
                    id,
                    dir,
                    client: ports[i],
                    config,
                }
            })
            .collect();
        let ensemble = Self {
            servers: members.iter().map(|_| Mutex::new(None)).collect(),
            ops: Mutex::new(()),
            stopped: AtomicBool::new(false),
            members,
            options: options.clone(),
            classpath,
        };
        for m in &ensemble.members {
            if let Err(e) = ensemble.launch(m) {
                ensemble.stop();
                return Err(e);
            }
        }
        for (m, slot) in ensemble.members.iter().zip(&ensemble.servers) {
            let mut guard = slot.lock();
            if let Some(server) = guard.as_mut()
                && let Err(e) = server.wait_until(options.start_timeout, ZkMode::serves)
            {
                drop(guard);
                ensemble.stop();
                tracing::warn!(server = m.id, "ZooKeeper server did not start");
                return Err(e);
            }
        }
        Ok(ensemble)
    }

    fn launch(&self, m: &Member) -> Result<(), ServerError> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(ServerError::Refused("the ensemble is stopping".into()));
        }
        if self.members.len() > 1 {
            let data = m.dir.join("data");
            std::fs::create_dir_all(&data).map_err(|source| ServerError::Io {
                what: format!("create {}", data.display()),
                source,
            })?;
            std::fs::write(data.join("myid"), format!("{}\n", m.id)).map_err(|source| {
                ServerError::Io {
                    what: format!("write {}/myid", data.display()),
                    source,
                }
            })?;
        }
        let server = ZkServer::spawn(
            &m.dir,
            &m.config,
            m.client,
            self.options.remove_dir_on_exit,
            &self.classpath,
        )?;
        let mut slot = self.slot(m.id).lock();
        *slot = Some(server);
        if self.stopped.load(Ordering::SeqCst) {
            // `stop` ran while this one started: it must not outlive the ensemble.
            if let Some(mut late) = slot.take() {
                late.crash();
            }
        }
        Ok(())
    }

    fn slot(&self, id: u32) -> &Mutex<Option<ZkServer>> {
        &self.servers[(id - 1) as usize]
    }

    fn member(&self, id: u32) -> Result<&Member, String> {
        id.checked_sub(1)
            .and_then(|i| self.members.get(i as usize))
            .ok_or_else(|| {
                format!(
                    "there is no ZooKeeper server {id}; servers are zk:1..zk:{}",
                    self.members.len()
                )
            })
    }

    /// Whether it was stopped for good (its servers are down on purpose).
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// How many servers it has.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Each server's client address, in id order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.members
            .iter()
            .map(|m| SocketAddr::from(([127, 0, 0, 1], m.client)))
            .collect()
    }

    /// The connect string of every server (`a:1,b:2,c:3`), without a chroot.
    pub fn servers(&self) -> String {
        self.addrs()
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether server `id`'s process is running (it may still not serve: no quorum).
    pub fn is_up(&self, id: u32) -> bool {
        self.member(id).is_ok()
            && self
                .slot(id)
                .lock()
                .as_mut()
                .is_some_and(|s| !s.has_exited())
    }

    /// How many servers' processes are running.
    pub fn up_count(&self) -> usize {
        self.members.iter().filter(|m| self.is_up(m.id)).count()
    }

    /// Crashes server `id` (SIGKILL: no clean shutdown); its data directory stays.
    pub fn kill(&self, id: u32) -> Result<(), String> {
        self.member(id)?;
        let _one = self.ops.lock();
        let taken = self.slot(id).lock().take();
        match taken {
            Some(mut server) => {
                let was_running = !server.has_exited();
                server.crash();
                if was_running {
                    Ok(())
                } else {
                    Err(format!("ZooKeeper server zk:{id} had already exited"))
                }
            }
            None => Err(format!("ZooKeeper server zk:{id} is already down")),
        }
    }

    /// Starts server `id` again on its data and ports. Waits until it serves when enough
    /// servers are up for a quorum; otherwise returns once it runs.
    pub fn restore(&self, id: u32) -> Result<(), String> {
        let m = self.member(id)?.clone();
        let _one = self.ops.lock();
        if self.is_up(id) {
            return Err(format!("ZooKeeper server zk:{id} is already up"));
        }
        self.launch(&m)
            .map_err(|e| format!("cannot restart zk:{id}: {e}"))?;
        if self.up_count() < quorum_of(self.size()) {
            return Ok(());
        }
        // Asked without the server's lock held, so `stop` and the console never wait on it.
        let addr = SocketAddr::from(([127, 0, 0, 1], m.client));
        let deadline = Instant::now() + self.options.start_timeout;
        loop {
            if super::server::mode_of(addr).serves() {
                return Ok(());
            }
            let mut slot = self.slot(id).lock();
            let Some(server) = slot.as_mut() else {
                return Err(format!("zk:{id} was stopped while it restarted"));
            };
            if server.has_exited() || Instant::now() > deadline {
                let why = server.log_error();
                server.crash();
                *slot = None;
                return Err(format!(
                    "zk:{id} was restarted but did not join its ensemble within {:?}; its log says: {why}",
                    self.options.start_timeout
                ));
            }
            drop(slot);
            std::thread::sleep(JOIN_POLL);
        }
    }

    /// Stops every server (cleanly, SIGTERM first), all at once, and waits for each.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let taken: Vec<ZkServer> = self
            .servers
            .iter()
            .filter_map(|slot| slot.lock().take())
            .collect();
        std::thread::scope(|s| {
            for mut server in taken {
                s.spawn(move || server.stop());
            }
        });
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_odd_and_small_and_a_quorum_is_a_majority() {
        for ok in [1, 3, 5, 7] {
            assert!(check_size(ok).is_ok(), "{ok}");
        }
        for bad in [0, 2, 4, 9] {
            assert!(check_size(bad).is_err(), "{bad}");
        }
        assert_eq!((quorum_of(1), quorum_of(3), quorum_of(5)), (1, 2, 3));
        use ZkMode::*;
        assert!(quorum_stands(&[Leader, Follower, Down]));
        assert!(!quorum_stands(&[NotServing, Down, Down]));
        assert!(!quorum_stands(&[Leader, Down, Down, Follower, Down]));
        assert!(quorum_stands(&[Standalone]));
        assert!(!quorum_stands(&[Down]));
    }

    #[test]
    fn srvr_answers_name_the_mode() {
        let answer = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n";
        assert_eq!(ZkMode::parse(answer), ZkMode::Follower);
        assert_eq!(ZkMode::parse("Mode: leader\n"), ZkMode::Leader);
        assert_eq!(
            ZkMode::parse("This ZooKeeper instance is not currently serving requests\n"),
            ZkMode::NotServing
        );
    }

    #[test]
    fn ports_are_distinct_and_never_ones_the_kernel_hands_out() {
        let ports = free_ports(15).expect("ports");
        let unique: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(unique.len(), 15);
        assert!(
            ports.iter().all(|&p| p < ephemeral_low() && p >= 1024),
            "{ports:?}"
        );
    }

    #[test]
    fn a_data_directory_keeps_its_number_of_servers() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(
            check_layout(dir.path(), 3).is_ok(),
            "a fresh directory takes any"
        );
        std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
        assert!(check_layout(dir.path(), 1).is_ok());
        let e = check_layout(dir.path(), 3).expect_err("standalone data");
        assert!(
            e.contains("of 1 server(s), not 3: start with --zk-servers 1"),
            "{e}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        for n in 1..=3 {
            std::fs::create_dir_all(dir.path().join(format!("server-{n}"))).expect("mkdir");
        }
        assert!(check_layout(dir.path(), 3).is_ok());
        assert!(check_layout(dir.path(), 5).is_err());
        assert!(check_layout(dir.path(), 1).is_err());
    }
}
