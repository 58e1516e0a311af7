//! The Redis protocol (RESP2, DESIGN §15): a listener that lets `redis-cli`, `redis-benchmark`
//! and Redis client libraries talk to the cluster. Each command goes through a [`Client`], which
//! routes the key to its partition's leader, so one address takes every key.
//!
//! A connection may pipeline: its commands run one after another, in the order sent, as Redis
//! runs them (a pipelined `SET k a`, `DEL k`, `SET k b` leaves `b`), and their replies go back
//! in one write per burst. Concurrency comes from connections: many clients' writes share the
//! client's write batches. A command longer than [`Limits::max_command`] gets `-ERR Protocol
//! error` and the connection is closed, as Redis does with any malformed request; so does a
//! client that has not taken its replies within [`WRITE_TIMEOUT`]. Each connection is its own
//! task and holds nothing another needs while it waits.

mod exec;
mod frame;

pub use exec::ExecOptions;
pub use frame::{Limits, ProtocolError, Reply, next_command};

use crate::client::Client;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long a reply may wait for the client to take it before the connection is closed.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Replies gathered before they are written even if more commands are buffered.
const FLUSH_BYTES: usize = 1 << 20;

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

/// One client connection: run what is buffered in order, answer, read more.
async fn connection(
    stream: TcpStream,
    client: Client,
    opts: ExecOptions,
    stop: CancellationToken,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let limits = Limits::default();
    let opts = std::sync::Arc::new(opts);
    let mut input = BytesMut::with_capacity(16 << 10);
    let mut output = BytesMut::with_capacity(16 << 10);
    loop {
        let mut closing = false;
        while !closing {
            let reply = match next_command(&mut input, &limits) {
                Ok(Some(args)) if exec::is_quit(&args) => {
                    closing = true;
                    Reply::Status("OK")
                }
                Ok(Some(args)) => {
                    tokio::select! {
                        r = exec::execute(client.clone(), args, std::sync::Arc::clone(&opts)) => r,
                        _ = stop.cancelled() => return Ok(()),
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    closing = true;
                    Reply::err(e)
                }
            };
            reply.encode(&mut output);
            if output.len() >= FLUSH_BYTES {
                flush(&mut wr, &mut output).await?;
            }
        }
        flush(&mut wr, &mut output).await?;
        if closing {
            wr.shutdown().await.ok();
            return Ok(());
        }
        tokio::select! {
            n = rd.read_buf(&mut input) => {
                if n? == 0 {
                    return Ok(());
                }
            }
            _ = stop.cancelled() => return Ok(()),
        }
    }
}

/// Writes the gathered replies; a client that does not take them in time is cut off.
async fn flush(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    output: &mut BytesMut,
) -> std::io::Result<()> {
    if output.is_empty() {
        return Ok(());
    }
    match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(output)).await {
        Ok(written) => written?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client took no replies for 30 s",
            ));
        }
    }
    output.clear();
    Ok(())
}
