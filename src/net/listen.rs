//! Accepting connections within bounds: at most so many per port, and none held open by a peer
//! that says nothing. A gRPC server takes its connections from [`incoming`].
//!
//! The rules, each for a fault a careless or hostile peer brings:
//! - **A limit per port.** A connection past the limit is accepted and closed at once, so a
//!   flood of clients cannot take every file descriptor (it gets a closed connection, not a hang).
//! - **A handshake deadline.** A connection must send its first bytes (an HTTP/2 preface, or a
//!   TLS ClientHello) within the handshake timeout, or it is closed.
//! - **An idle deadline.** After that, a connection on which nothing arrives for longer than a
//!   keep-alive round (the server's ping interval plus its timeout) is closed. A live peer always
//!   answers the server's HTTP/2 pings, so only dead or silent peers reach it; this also closes a
//!   peer that finishes a TLS handshake and never starts HTTP/2, before which no ping is sent.

use crate::events::{EventKind, EventSink};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Bytes a connection must send before the handshake deadline: an HTTP/2 client preface is 24,
/// a TLS ClientHello more.
const HANDSHAKE_BYTES: u64 = 24;

/// How a broker's ports bound their connections (`connections:` in a node's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionLimits {
    /// Most connections open at once on each port.
    pub max_per_port: usize,
    /// A new connection must send its first bytes (and finish a TLS handshake) within this.
    pub handshake_timeout_ms: u64,
    /// The server pings a connection's peer this often (HTTP/2 keep-alive).
    pub keepalive_interval_ms: u64,
    /// A peer that does not answer a ping within this is dropped.
    pub keepalive_timeout_ms: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_per_port: 1024,
            handshake_timeout_ms: 10_000,
            keepalive_interval_ms: 10_000,
            keepalive_timeout_ms: 20_000,
        }
    }
}

impl ConnectionLimits {
    /// Why these limits cannot work, if they cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_per_port == 0 {
            return Err("connections.max_per_port must be at least 1".into());
        }
        for (name, ms) in [
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("keepalive_interval_ms", self.keepalive_interval_ms),
            ("keepalive_timeout_ms", self.keepalive_timeout_ms),
        ] {
            if ms == 0 {
                return Err(format!("connections.{name} must be more than 0"));
            }
        }
        Ok(())
    }

    /// The handshake deadline.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    /// The server's HTTP/2 ping interval.
    pub fn keepalive_interval(&self) -> Duration {
        Duration::from_millis(self.keepalive_interval_ms)
    }

    /// How long a ping may go unanswered.
    pub fn keepalive_timeout(&self) -> Duration {
        Duration::from_millis(self.keepalive_timeout_ms)
    }

    /// Silence after which a connection is closed: one keep-alive round, which a live peer
    /// always breaks by answering the ping.
    pub fn idle_timeout(&self) -> Duration {
        self.keepalive_interval() + self.keepalive_timeout()
    }
}

/// The deadline of a connection that has received `received` bytes, the last at `last_read`:
/// the handshake deadline until it has sent [`HANDSHAKE_BYTES`], the idle deadline after.
pub fn deadline(
    limits: &ConnectionLimits,
    opened: Instant,
    last_read: Instant,
    received: u64,
) -> Instant {
    if received < HANDSHAKE_BYTES {
        opened + limits.handshake_timeout()
    } else {
        last_read + limits.idle_timeout()
    }
}

/// Connections accepted from `listener` within `limits`, with Nagle's algorithm off (small gRPC
/// replies must not wait for the peer's delayed ACK). `port` names the port in events.
pub fn incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
    port: &'static str,
    events: EventSink,
) -> impl tokio_stream::Stream<Item = io::Result<Conn>> {
    let slots = Arc::new(Semaphore::new(limits.max_per_port));
    futures_util::stream::unfold(
        (listener, slots, 0u64),
        move |(listener, slots, mut refused)| {
            let events = events.clone();
            async move {
                loop {
                    let (stream, _) = match listener.accept().await {
                        Ok(c) => c,
                        // Out of descriptors and the like: the server logs it and goes on.
                        Err(e) => return Some((Err(e), (listener, slots, refused))),
                    };
                    let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                        // Closed at once: the peer sees the connection end, not a hang.
                        drop(stream);
                        refused += 1;
                        if refused.is_power_of_two() {
                            events.emit(
                                EventKind::Warning,
                                None,
                                format!(
                                    "{port} port: {} connections open, the limit; refused one \
                                     ({refused} refused so far)",
                                    limits.max_per_port
                                ),
                            );
                        }
                        continue;
                    };
                    let conn = stream
                        .set_nodelay(true)
                        .map(|()| Conn::new(stream, permit, limits));
                    return Some((conn, (listener, slots, refused)));
                }
            }
        },
    )
}

/// An accepted connection that holds its slot until it closes and ends itself at its deadline.
pub struct Conn {
    io: TcpStream,
    _slot: OwnedSemaphorePermit,
    limits: ConnectionLimits,
    opened: Instant,
    last_read: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
}

impl Conn {
    fn new(io: TcpStream, slot: OwnedSemaphorePermit, limits: ConnectionLimits) -> Self {
        let now = Instant::now();
        Self {
            io,
            _slot: slot,
            limits,
            opened: now,
            last_read: now,
            received: 0,
            timer: Box::pin(tokio::time::sleep_until(deadline(&limits, now, now, 0))),
        }
    }

    /// Whether the deadline has passed; if the timer fired early (reads moved the deadline on),
    /// it is set again and waits.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let due = deadline(&self.limits, self.opened, self.last_read, self.received);
            if self.timer.deadline() != due {
                self.timer.as_mut().reset(due);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if Instant::now() >= due {
                return true;
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                if n > 0 {
                    self.received = self.received.saturating_add(n);
                    self.last_read = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                if self.received < HANDSHAKE_BYTES {
                    "the peer sent no handshake in time"
                } else {
                    "the peer went silent past a keep-alive round"
                },
            ))),
            other => other,
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The TCP connection's own info, so `Request::peer_certs` and `remote_addr` work as on a
/// plain `TcpStream`.
impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_has_the_handshake_deadline_until_it_speaks_then_the_idle_one() {
        let l = ConnectionLimits::default();
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(7);
        assert_eq!(deadline(&l, t0, t0, 0), t0 + l.handshake_timeout());
        // A few bytes are not a handshake: the first deadline stands.
        assert_eq!(deadline(&l, t0, later, 23), t0 + l.handshake_timeout());
        assert_eq!(deadline(&l, t0, later, 24), later + l.idle_timeout());
        assert!(l.idle_timeout() > l.keepalive_interval());
    }

    #[test]
    fn limits_that_cannot_work_are_refused() {
        assert!(ConnectionLimits::default().validate().is_ok());
        let none = ConnectionLimits {
            max_per_port: 0,
            ..ConnectionLimits::default()
        };
        assert!(none.validate().unwrap_err().contains("max_per_port"));
        let zero = ConnectionLimits {
            keepalive_timeout_ms: 0,
            ..ConnectionLimits::default()
        };
        assert!(
            zero.validate()
                .unwrap_err()
                .contains("keepalive_timeout_ms")
        );
    }
}
