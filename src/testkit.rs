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
pub async fn expire_session(connect: &str, session: crate::coord::SessionInfo) {
    let servers = connect.split('/').next().unwrap_or(connect);
    let thief = zookeeper_client::Client::connector()
        .with_session(session)
        .connect(servers)
        .await
        .unwrap_or_else(|e| panic!("cannot take the session over: {e}"));
    // Dropping the last handle closes the session.
    drop(thief);
}

/// A connect string with a chroot no other test uses.
pub fn zk_connect(test: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    zk().connect_string(&format!("/t-{}-{n}-{test}", std::process::id()))
}
