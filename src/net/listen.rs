//! Accepting connections within bounds: at most so many per port, and none held open by a peer
//! that says nothing. A gRPC server takes its connections from [`incoming`].
//!
//! The rules, each for a fault a careless or hostile peer brings:
//! - **A limit per port, and per peer address.** A connection past either is accepted and
//!   closed at once, so a flood of clients cannot take every file descriptor (it gets a closed
//!   connection, not a hang), and one host cannot take every slot of a port from the others
//!   (a broker that must reconnect still gets in).
//! - **A handshake deadline.** A connection must send its first bytes (an HTTP/2 preface, or a
//!   TLS ClientHello) within the handshake timeout, or it is closed.
//! - **An idle deadline.** After that, a connection on which nothing arrives for longer than a
//!   keep-alive round (the server's ping interval plus its timeout) is closed. A live peer always
//!   answers the server's HTTP/2 pings, so only dead or silent peers reach it; this also closes a
//!   peer that finishes a TLS handshake and never starts HTTP/2, before which no ping is sent.

use crate::events::{EventKind, EventSink};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
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
    /// Most connections open at once on each port from one peer address.
    pub max_per_address: usize,
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
            max_per_address: 256,
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
        if self.max_per_address == 0 {
            return Err("connections.max_per_address must be at least 1".into());
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

/// Whether a port with `open` connections, `from_address` of them from the new one's address,
/// takes it; if not, which limit it met, as the event says it.
pub fn admit(limits: &ConnectionLimits, open: usize, from_address: usize) -> Result<(), String> {
    if open >= limits.max_per_port {
        Err(format!("{open} connections open, the limit"))
    } else if from_address >= limits.max_per_address {
        Err(format!(
            "{from_address} connections open from one address, the limit per address"
        ))
    } else {
        Ok(())
    }
}

/// The connections a port has open, in all and per peer address.
#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A connection's place in [`Open`], given back when it closes.
struct Slot {
    open: Arc<Mutex<Open>>,
    address: IpAddr,
}

impl Slot {
    fn take(
        open: &Arc<Mutex<Open>>,
        limits: &ConnectionLimits,
        address: IpAddr,
    ) -> Result<Self, String> {
        let mut o = open.lock();
        let from_address = o.by_address.get(&address).copied().unwrap_or(0);
        admit(limits, o.total, from_address)?;
        o.total += 1;
        *o.by_address.entry(address).or_default() += 1;
        Ok(Self {
            open: Arc::clone(open),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.open.lock();
        o.total = o.total.saturating_sub(1);
        if let Some(n) = o.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                o.by_address.remove(&self.address);
            }
        }
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
    let open = Arc::new(Mutex::new(Open::default()));
    futures_util::stream::unfold(
        (listener, open, 0u64),
        move |(listener, open, mut refused)| {
            let events = events.clone();
            async move {
                loop {
                    let (stream, peer) = match listener.accept().await {
                        Ok(c) => c,
                        // Out of descriptors and the like: the server logs it and goes on.
                        Err(e) => return Some((Err(e), (listener, open, refused))),
                    };
                    let slot = match Slot::take(&open, &limits, peer.ip()) {
                        Ok(slot) => slot,
                        Err(why) => {
                            // Closed at once: the peer sees the connection end, not a hang.
                            drop(stream);
                            refused += 1;
                            if refused.is_power_of_two() {
                                events.emit(
                                    EventKind::Warning,
                                    None,
                                    format!(
                                        "{port} port: {why}; refused one from {} ({refused} refused so far)",
                                        peer.ip()
                                    ),
                                );
                            }
                            continue;
                        }
                    };
                    let conn = stream
                        .set_nodelay(true)
                        .map(|()| Conn::new(stream, slot, limits));
                    return Some((conn, (listener, open, refused)));
                }
            }
        },
    )
}

/// An accepted connection that holds its slot until it closes and ends itself at its deadline.
pub struct Conn {
    io: TcpStream,
    _slot: Slot,
    limits: ConnectionLimits,
    opened: Instant,
    last_read: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
}

impl Conn {
    fn new(io: TcpStream, slot: Slot, limits: ConnectionLimits) -> Self {
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
    fn a_connection_is_taken_within_both_limits_and_refused_saying_which() {
        let l = ConnectionLimits {
            max_per_port: 10,
            max_per_address: 3,
            ..ConnectionLimits::default()
        };
        assert!(admit(&l, 0, 0).is_ok());
        assert!(admit(&l, 9, 2).is_ok());
        assert!(admit(&l, 9, 3).unwrap_err().contains("limit per address"));
        assert!(
            admit(&l, 10, 0)
                .unwrap_err()
                .contains("10 connections open, the limit")
        );
        let open = Arc::new(Mutex::new(Open::default()));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let held: Vec<Slot> = (0..3)
            .map(|_| Slot::take(&open, &l, a).expect("a"))
            .collect();
        assert!(Slot::take(&open, &l, a).is_err(), "a fourth from a");
        let other = Slot::take(&open, &l, b).expect("another address still gets in");
        drop(held);
        drop(other);
        let o = open.lock();
        assert_eq!(
            (o.total, o.by_address.len()),
            (0, 0),
            "every slot given back"
        );
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
