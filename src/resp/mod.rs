//! The Redis protocol (RESP2, DESIGN §15): a listener that lets `redis-cli`, `redis-benchmark`
//! and Redis client libraries talk to the cluster. Each command goes through a [`Client`], which
//! routes the key to its partition's leader, so one address takes every key.
//!
//! A connection may pipeline: up to [`MAX_IN_FLIGHT`] of its commands run at once, a command
//! waiting only for earlier ones on one of its keys (a pipelined `SET k a`, `DEL k`, `SET k b`
//! leaves `b`), and the replies go back in the order sent, in one write per burst (`conn.rs`).
//! A command longer than [`Limits::max_command`] gets `-ERR Protocol error` and the connection
//! is closed, as Redis does with any malformed request; so is a client that has not taken its
//! replies within [`WRITE_TIMEOUT`]. Each connection is its own task and holds nothing another
//! needs while it waits.

mod conn;
mod docs;
mod exec;
mod frame;

pub use conn::{MAX_IN_FLIGHT, PARTIAL_COMMAND_IDLE, WRITE_TIMEOUT};
pub use exec::ExecOptions;
pub use frame::{Limits, Parser, ProtocolError, Reply, next_command};

use crate::client::Client;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long one command through a listener may take, retries and failover included (longer
/// than a broker's own acks=all wait, so a broker's answer, not this, usually ends a command).
pub const CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Connections one listener serves at once (Redis's `maxclients` default); more are told so and
/// closed.
pub const MAX_CONNECTIONS: usize = 10_000;
/// The pause after a failed accept (out of descriptors, say) before the listener tries again.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// Serves RESP on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    client: Client,
    opts: ExecOptions,
    stop: CancellationToken,
) {
    let opts = Arc::new(opts);
    let slots = Arc::new(tokio::sync::Semaphore::new(opts.max_connections));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((mut stream, peer)) => {
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    tokio::spawn(async move {
                        use tokio::io::AsyncWriteExt;
                        let refusal = b"-ERR max number of clients reached\r\n";
                        let _ =
                            tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(refusal)).await;
                    });
                    continue;
                };
                let (client, opts, stop) = (client.clone(), Arc::clone(&opts), stop.child_token());
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = conn::serve(stream, client, opts, stop).await {
                        tracing::debug!(%peer, error = %e, "RESP connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "RESP accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}
