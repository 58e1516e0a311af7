//! gRPC clients for other brokers' replication services, one lazily connected channel per address.

use super::{Inner, MAX_MESSAGE_BYTES};
use crate::net::tls::Tls;
use crate::rpc::replication_client::ReplicationClient;
use parking_lot::Mutex;
use std::collections::HashMap;

use tonic::transport::Channel;

/// A replication client.
pub(super) type PeerClient = ReplicationClient<Channel>;

pub(super) struct PeerClients {
    /// By address dialed: the broker the channel was made for (with TLS it checks that broker's
    /// certificate) and the client.
    by_addr: Mutex<HashMap<String, (u32, PeerClient)>>,
    dialer: crate::rpc::Dialer,
    tls: Option<Tls>,
}

impl PeerClients {
    /// Clients that dial through `dialer`, with mutual TLS when `tls` is given.
    pub(super) fn new(dialer: crate::rpc::Dialer, tls: Option<Tls>) -> Self {
        Self {
            by_addr: Mutex::new(HashMap::new()),
            dialer,
            tls,
        }
    }

    /// A client for broker `id`'s peer port at `addr` (`host:port`).
    pub(super) fn get(&self, id: u32, addr: &str) -> Option<PeerClient> {
        // Per address dialed, asked anew each time (see `Client::channel`).
        let dialed = self.dialer.dial(addr);
        let mut map = self.by_addr.lock();
        if let Some((made_for, c)) = map.get(dialed.as_ref())
            && *made_for == id
        {
            return Some(c.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Channel::from_shared(format!("{scheme}://{dialed}"))
            .ok()?
            .connect_timeout(crate::rpc::CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            // The peer must prove it is broker `id`, whatever address reached it.
            endpoint = match endpoint.tls_config(tls.peer_client(id)) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(peer = id, error = %e, "cannot set up TLS to a peer");
                    return None;
                }
            };
        }
        let channel = endpoint.connect_lazy();
        let client = ReplicationClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        map.insert(dialed.into_owned(), (id, client.clone()));
        Some(client)
    }
}

/// A client for broker `id`'s replication service.
pub(super) async fn peer(inner: &Inner, id: u32) -> Option<PeerClient> {
    let addr = peer_addr(inner, id).await?;
    inner.peers.get(id, &addr)
}

/// The replication address of broker `id`, from the metadata or straight from ZooKeeper.
pub(super) async fn peer_addr(inner: &Inner, id: u32) -> Option<String> {
    if let Some(info) = inner.metadata().brokers.get(&id) {
        return Some(info.peer_addr());
    }
    let coord = inner.current_session()?;
    coord.broker(id).await.ok().flatten().map(|i| i.peer_addr())
}
