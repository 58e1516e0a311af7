//! Shared set-up for tests and benchmarks: one private ZooKeeper per test process, each test under
//! its own chroot. The same code path as the lab's private ZooKeeper.

use crate::coord::{ServerOptions, ZkServer};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

struct Shared {
    server: ZkServer,
    _dir: tempfile::TempDir,
}

static SERVER: OnceLock<Shared> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The process-wide private ZooKeeper (started on first use; stopped by its watchdog when the
/// process exits).
pub fn zk() -> &'static ZkServer {
    &SERVER
        .get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("simplekv-test-zk-")
                .tempdir()
                .unwrap_or_else(|e| panic!("cannot create a directory for ZooKeeper: {e}"));
            let options = ServerOptions {
                remove_dir_on_exit: true,
                ..ServerOptions::default()
            };
            let server = ZkServer::start(dir.path(), &options).unwrap_or_else(|e| panic!("{e}"));
            Shared { server, _dir: dir }
        })
        .server
}

/// Ends the ZooKeeper session `session` of a client connected at `connect` the way a server
/// ends a session whose client was away too long: another connection takes the session over and
/// closes it, and the client, when it next reaches a server, learns its session has expired.
/// The owner may reconnect and win the session back while the takeover connects, so it is
/// tried until it succeeds or ZooKeeper answers that the session is gone.
pub async fn expire_session(connect: &str, session: crate::coord::SessionInfo) {
    let servers = connect.split('/').next().unwrap_or(connect);
    let mut last = String::new();
    for _ in 0..50 {
        let takeover = zookeeper_client::Client::connector()
            .with_session(session.clone())
            .with_session_timeout(std::time::Duration::from_secs(2))
            .connect(servers);
        match tokio::time::timeout(std::time::Duration::from_secs(5), takeover).await {
            // Dropping the last handle closes the session.
            Ok(Ok(thief)) => {
                drop(thief);
                return;
            }
            Ok(Err(zookeeper_client::Error::SessionExpired)) => return,
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "no answer in 5 s".into(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("cannot take the session over: {last}");
}

/// A connect string with a chroot no other test uses.
pub fn zk_connect(test: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    zk().connect_string(&format!("/t-{}-{n}-{test}", std::process::id()))
}
