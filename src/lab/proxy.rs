//! A TCP proxy between one broker and ZooKeeper, owned by the lab. Cutting it drops the broker's
//! connection without a session close, exactly as a crash or a network partition would: ZooKeeper
//! keeps the session (and its ephemeral znodes) until the session times out.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

struct Shared {
    upstream: SocketAddr,
    open: Mutex<bool>,
    conns: Mutex<Vec<AbortHandle>>,
}

/// A proxy listening on a loopback port of its own.
pub struct ZkProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

impl ZkProxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            open: Mutex::new(true),
            conns: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !*s.open.lock().unwrap_or_else(|p| p.into_inner()) {
                    drop(inbound);
                    continue;
                }
                let upstream = s.upstream;
                let task = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(upstream).await {
                        let mut inbound = inbound;
                        let _ = inbound.set_nodelay(true);
                        let _ = out.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                let mut conns = s.conns.lock().unwrap_or_else(|p| p.into_inner());
                conns.retain(|h| !h.is_finished());
                conns.push(task.abort_handle());
            }
        })
        .abort_handle();
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// Where brokers connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every connection and refuses new ones until [`ZkProxy::resume`].
    pub fn cut(&self) {
        *self.shared.open.lock().unwrap_or_else(|p| p.into_inner()) = false;
        for h in self
            .shared
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            h.abort();
        }
    }

    /// Accepts connections again.
    pub fn resume(&self) {
        *self.shared.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }
}

impl Drop for ZkProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
