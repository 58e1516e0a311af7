//! The Redis protocol (RESP2, DESIGN §15): a listener that lets `redis-cli`, `redis-benchmark`
//! and Redis client libraries talk to the cluster. Each command goes through a [`Client`], which
//! routes the key to its partition's leader, so one address takes every key.
//!
//! A connection may pipeline: the commands it has sent run concurrently (so a burst of writes
//! shares the client's write batches) and their replies go back in order. At most
//! [`MAX_IN_FLIGHT`] commands run per connection and at most [`MAX_BUFFERED`] unparsed bytes are
//! held; past either, the connection is simply not read until replies drain, so a client that
//! never reads its replies stalls only itself. A malformed request gets `-ERR Protocol error`
//! and the connection is closed, as Redis does.

mod exec;
mod frame;

pub use exec::ExecOptions;
pub use frame::{Limits, ProtocolError, Reply, next_command};

use crate::client::Client;
use bytes::BytesMut;
use futures_util::FutureExt;
use futures_util::stream::{FuturesOrdered, StreamExt};
use std::future::Future;
use std::pin::Pin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Commands one connection may have running at once.
pub const MAX_IN_FLIGHT: usize = 1024;
/// Unparsed request bytes one connection may hold (a whole maximal argument must fit).
pub const MAX_BUFFERED: usize = 80 << 20;

type Pending = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// Serves RESP on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    client: Client,
    opts: ExecOptions,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (client, opts, stop) = (client.clone(), opts.clone(), stop.child_token());
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, client, opts, stop).await {
                        tracing::debug!(%peer, error = %e, "RESP connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "RESP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// One client connection: parse what is buffered, run it, answer in order.
async fn connection(
    stream: TcpStream,
    client: Client,
    opts: ExecOptions,
    stop: CancellationToken,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let limits = Limits::default();
    let mut input = BytesMut::with_capacity(16 << 10);
    let mut output = BytesMut::with_capacity(16 << 10);
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let mut closing = false;
    let opts = std::sync::Arc::new(opts);
    loop {
        while !closing && pending.len() < MAX_IN_FLIGHT {
            match next_command(&mut input, &limits) {
                Ok(Some(args)) if exec::is_quit(&args) => {
                    pending.push_back(Box::pin(std::future::ready(Reply::Status("OK"))));
                    closing = true;
                }
                Ok(Some(args)) => {
                    pending.push_back(Box::pin(exec::execute(
                        client.clone(),
                        args,
                        std::sync::Arc::clone(&opts),
                    )));
                }
                Ok(None) => break,
                Err(e) => {
                    pending.push_back(Box::pin(std::future::ready(Reply::err(e))));
                    closing = true;
                }
            }
        }
        if closing && pending.is_empty() {
            wr.shutdown().await.ok();
            return Ok(());
        }
        let room = !closing && pending.len() < MAX_IN_FLIGHT && input.len() < MAX_BUFFERED;
        tokio::select! {
            Some(first) = pending.next(), if !pending.is_empty() => {
                first.encode(&mut output);
                // Every other reply already done goes out in the same write.
                while let Some(Some(r)) = pending.next().now_or_never() {
                    r.encode(&mut output);
                }
                wr.write_all(&output).await?;
                output.clear();
            }
            n = rd.read_buf(&mut input), if room => {
                if n? == 0 {
                    // The client closed its side: nobody is left to answer.
                    return Ok(());
                }
            }
            _ = stop.cancelled() => return Ok(()),
        }
    }
}
