//! A private ZooKeeper ensemble: 1, 3 or 5 real servers on loopback, each with its own data
//! directory, client port, and (with more than one) quorum and election ports. One server runs
//! standalone; more form a quorum, which serves while a majority is up (DESIGN §16).
//!
//! Each server can be crashed and restarted on its data (`kill zk:N`, `restore zk:N`). Its ports
//! are chosen once, when the ensemble starts, because every member's configuration names them.
//! Every server runs under the watchdog of [`ZkServer`], so none outlives this process.

use super::server::{ServerError, ServerOptions, ZkMode, ZkServer, java_classpath, server_config};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    servers: Vec<Mutex<Option<ZkServer>>>,
    options: ServerOptions,
    classpath: String,
}

/// `count` distinct free loopback ports (all bound at once, then released).
fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

impl Ensemble {
    /// Starts `servers` servers under `dir` (one standalone, or `server-N/` each) and waits until
    /// every one serves.
    pub fn start(dir: &Path, servers: u32, options: &ServerOptions) -> Result<Self, ServerError> {
        check_size(servers).map_err(|e| ServerError::Io {
            what: e,
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
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
            let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
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
        *self.slot(m.id).lock().unwrap_or_else(|p| p.into_inner()) = Some(server);
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
                .unwrap_or_else(|p| p.into_inner())
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
        let taken = self
            .slot(id)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
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
        if self.is_up(id) {
            return Err(format!("ZooKeeper server zk:{id} is already up"));
        }
        self.launch(&m)
            .map_err(|e| format!("cannot restart zk:{id}: {e}"))?;
        if self.up_count() < quorum_of(self.size()) {
            return Ok(());
        }
        let mut guard = self.slot(id).lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(server) => server
                .wait_until(self.options.start_timeout, ZkMode::serves)
                .map_err(|e| format!("zk:{id} was restarted but did not join: {e}")),
            None => Err(format!("zk:{id} was killed while it restarted")),
        }
    }

    /// Stops every server (cleanly, SIGTERM first) and waits for each.
    pub fn stop(&self) {
        for slot in &self.servers {
            let taken = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(mut server) = taken {
                server.stop();
            }
        }
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
    fn ports_are_distinct() {
        let ports = free_ports(9).expect("ports");
        let unique: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(unique.len(), 9);
    }
}
