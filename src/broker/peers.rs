//! gRPC clients for other brokers' replication services, one lazily connected channel per address.

use super::{Inner, MAX_MESSAGE_BYTES};
use crate::rpc::replication_client::ReplicationClient;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tonic::transport::Channel;

/// A replication client.
pub(super) type PeerClient = ReplicationClient<Channel>;

pub(super) struct PeerClients {
    by_addr: Mutex<HashMap<String, PeerClient>>,
    dialer: crate::rpc::Dialer,
}

impl PeerClients {
    /// Clients that dial through `dialer`.
    pub(super) fn new(dialer: crate::rpc::Dialer) -> Self {
        Self {
            by_addr: Mutex::new(HashMap::new()),
            dialer,
        }
    }

    /// A client for `addr` (`host:port`).
    pub(super) fn get(&self, addr: &str) -> Option<PeerClient> {
        // Per address dialed, asked anew each time (see `Client::channel`).
        let dialed = self.dialer.dial(addr);
        let mut map = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(dialed.as_ref()) {
            return Some(c.clone());
        }
        let channel = Channel::from_shared(format!("http://{dialed}"))
            .ok()?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy();
        let client = ReplicationClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        map.insert(dialed.into_owned(), client.clone());
        Some(client)
    }
}

/// The replication address of broker `id`, from the metadata or straight from ZooKeeper.
pub(super) async fn peer_addr(inner: &Inner, id: u32) -> Option<String> {
    if let Some(info) = inner.metadata().brokers.get(&id) {
        return Some(info.peer_addr());
    }
    let coord = inner.current_session()?;
    coord.broker(id).await.ok().flatten().map(|i| i.peer_addr())
}
