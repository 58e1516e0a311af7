//! A fault-injecting TCP proxy for one directed link of the lab.
//!
//! # Why this exists
//!
//! The lab runs several brokers, their clients and ZooKeeper in one process
//! on loopback, where the real network never fails. To teach what partitions,
//! latency and crashed peers do to a replicated store, every directed link
//! ("broker 1 → broker 2's peer port", "clients → broker 3",
//! "broker 2 → ZooKeeper") goes through a [`LinkProxy`]: whoever opens
//! connections on the link dials the proxy's loopback address, the proxy dials
//! the real target, and the lab changes the link's [`LinkState`] to inject
//! faults. The proxy must behave like a real network path, so the semantics
//! below are deliberate.
//!
//! # Semantics
//!
//! * **Forwarding.** Bytes are copied both ways with one reused buffer per
//!   direction and `TCP_NODELAY` on both sockets, so a healthy link adds one
//!   read and one write per chunk and no allocation.
//! * **Half-close.** End of stream on one side becomes a write shutdown (FIN)
//!   on the other; the other direction keeps flowing. A connection ends when
//!   both directions have ended, or as soon as either side errors (a reset,
//!   a write to a closed peer): errors close both sockets at once, and bytes
//!   still in flight on that connection are dropped, as a reset would drop
//!   them.
//! * **Cut (a blackhole, i.e. a partition).** Neither side is told anything;
//!   they find out through their own timeouts.
//!   - Existing connections stop forwarding in both directions. Bytes the
//!     proxy already read are held, and it stops reading, so backpressure
//!     builds up in the kernel buffers as on a dead path. One caveat: a read
//!     that was already waiting when the cut began may still take in one
//!     chunk (at most 64 KiB); that chunk is held like the rest. Checking the
//!     state on every read instead would make every idle connection register
//!     with the state channel on every round trip, which costs more than this
//!     slack is worth.
//!   - A connection opened during a cut is accepted (the kernel completes the
//!     handshake anyway) but not dialled upstream, and nothing crosses.
//!   - When the cut heals, held connections resume where they stopped and
//!     deliver their held bytes in order, as TCP retransmission would after a
//!     short partition, and held new connections are dialled then (asking the
//!     upstream function where to dial at that moment). A cut longer than a
//!     broker's keep-alive round (interval + timeout, 30 s by default) is not
//!     short: the broker closes the connections it serves across it, as it
//!     would on a real network, and clients dial again after the heal.
//!   - A FIN cannot cross a cut either: a side that closed or reset during
//!     the cut is seen to close by the other side only once the cut heals.
//! * **Delay and jitter** model latency, not bandwidth. The proxy keeps
//!   reading while earlier chunks are in flight (up to 4 MiB per direction,
//!   then it stops reading, for backpressure). Each chunk gets a due time of
//!   `max(previous due, read time + delay + uniform(0..=jitter))` and is
//!   written at that time, so bytes are never reordered within a connection;
//!   the end of stream is delayed the same way. A new state applies to chunks
//!   read after it was set. Delays are capped at one day. While a delay or
//!   jitter is set, each chunk is copied into its own allocation.
//! * **Reset** closes every open connection at once, both sides see the close,
//!   as when the process at one end dies; the proxy keeps accepting. It
//!   ignores a cut: to model a process dying behind a partition, keep the
//!   link cut and reset it only when the partition heals.
//! * **Drop** resets and stops accepting; no task or socket is left behind.
//!
//! # Cost
//!
//! One tokio task per connection (both directions and their delay timers run
//! inside it), plus one accept task per proxy. Finished connection tasks are
//! pruned at each accept. Each connection holds two 64 KiB buffers, plus up
//! to 4 MiB per direction of chunks in flight while a delay is set. The
//! upstream function is called once per new connection (it must not block),
//! and the dial has no timeout of its own, which is fine for loopback targets
//! (refused at once when down).

use super::rng::Rng;
use parking_lot::{Mutex, MutexGuard};
use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, Sleep};
use tracing::{debug, warn};

/// Size of the read buffer of each direction of a connection.
const READ_BUF: usize = 64 * 1024;
/// Most bytes a direction holds in flight under delay before it stops reading.
const MAX_IN_FLIGHT: usize = 4 * 1024 * 1024;
/// Longest latency a chunk can be given, so due times can never overflow.
const MAX_DELAY: Duration = Duration::from_secs(24 * 60 * 60);
/// First pause after a failed accept; doubled on each further failure.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause after failed accepts.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Tells a [`LinkProxy`] where to dial for each new connection.
///
/// It is a function rather than an address because the target may come back
/// on another port after a restart; `None` means the target is down.
pub type UpstreamFn = Arc<dyn Fn() -> Option<SocketAddr> + Send + Sync>;

/// The faults currently applied to a link; the default is a healthy link.
///
/// The lab sets it with [`LinkProxy::set`] to simulate partitions and
/// latency; see the module documentation for the exact semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkState {
    /// Nothing crosses, in either direction, on existing or new connections.
    pub cut: bool,
    /// Every chunk is delivered no earlier than `delay` (+ a uniform random
    /// extra in `0..=jitter`) after it was read.
    pub delay: Duration,
    /// Upper bound of the uniform random extra latency added to each chunk.
    pub jitter: Duration,
}

impl LinkState {
    /// Whether chunks read in this state may be written straight away.
    fn immediate(&self) -> bool {
        self.delay.is_zero() && self.jitter.is_zero()
    }
}

/// A TCP proxy for one directed link of the lab, whose state injects faults.
///
/// Connections to [`LinkProxy::addr`] are forwarded to the address returned
/// by the upstream function at connect time, subject to the current
/// [`LinkState`]. Dropping the proxy closes every connection and stops it.
pub struct LinkProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Tasks>>,
    accept: JoinHandle<()>,
}

/// What the connection tasks of a proxy share with it.
struct Shared {
    name: String,
    state: watch::Sender<LinkState>,
    upstream: UpstreamFn,
    open: AtomicUsize,
    bytes: AtomicU64,
}

/// The connection tasks of a proxy, so that reset and drop can abort them.
#[derive(Default)]
struct Tasks {
    set: JoinSet<()>,
    /// Set when the proxy is dropped: connections accepted late are closed.
    closed: bool,
}

/// Locks a mutex, ignoring poisoning: the data it guards stays consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock()
}

impl LinkProxy {
    /// Starts a proxy listening on `127.0.0.1:0` for the link called `name`.
    ///
    /// `upstream` is asked at each new connection where to dial (the target
    /// may move to new ports after a restart); `None` means the target is
    /// down, and the inbound connection is then closed at once, as a refused
    /// connect would be. Must be called within a tokio runtime.
    pub async fn start(name: impl Into<String>, upstream: UpstreamFn) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (state, _) = watch::channel(LinkState::default());
        let shared = Arc::new(Shared {
            name: name.into(),
            state,
            upstream,
            open: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
        });
        let tasks = Arc::new(Mutex::new(Tasks::default()));
        let accept = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&shared),
            Arc::clone(&tasks),
        ));
        debug!(link = %shared.name, %addr, "link proxy listening");
        Ok(Self {
            addr,
            shared,
            tasks,
            accept,
        })
    }

    /// The loopback address to dial instead of the real target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The link's name, as given to [`LinkProxy::start`] (for logs and consoles).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Applies a new state to the link: at once for `cut`, and for chunks read
    /// from now on for `delay` and `jitter`.
    pub fn set(&self, state: LinkState) {
        let changed = self.shared.state.send_if_modified(|current| {
            if *current == state {
                false
            } else {
                *current = state;
                true
            }
        });
        if changed {
            debug!(link = %self.shared.name, ?state, "link state changed");
        }
    }

    /// The state last set on the link.
    pub fn state(&self) -> LinkState {
        *self.shared.state.borrow()
    }

    /// Closes every open connection at once (both sides see the close), as
    /// when the process at one end dies. New connections are still accepted.
    ///
    /// The sockets are closed as the runtime tears the aborted tasks down,
    /// which happens right away but not within this call.
    pub fn reset(&self) {
        let old = std::mem::take(&mut lock(&self.tasks).set);
        debug!(link = %self.shared.name, connections = old.len(), "link reset");
        // Dropping a JoinSet aborts all its tasks; each task owns its sockets.
        drop(old);
    }

    /// Number of connections open now (accepted and not yet finished,
    /// including those held by a cut), for a console.
    pub fn connections(&self) -> usize {
        self.shared.open.load(Ordering::Relaxed)
    }

    /// Bytes delivered so far, in both directions and over all connections,
    /// for a console.
    pub fn bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for LinkProxy {
    /// Stops accepting and closes every connection; no task is left behind.
    fn drop(&mut self) {
        self.accept.abort();
        let old = {
            let mut tasks = lock(&self.tasks);
            tasks.closed = true;
            std::mem::take(&mut tasks.set)
        };
        drop(old);
    }
}

impl std::fmt::Debug for LinkProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkProxy")
            .field("name", &self.shared.name)
            .field("addr", &self.addr)
            .field("state", &self.state())
            .field("connections", &self.connections())
            .finish()
    }
}

/// Accepts connections forever, backing off on errors such as `EMFILE`.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tasks: Arc<Mutex<Tasks>>) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut next_id: u64 = 0;
    loop {
        match listener.accept().await {
            Ok((inbound, peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                next_id = next_id.wrapping_add(1);
                spawn_connection(&shared, &tasks, inbound, peer, next_id);
            }
            Err(error) => {
                warn!(link = %shared.name, %error, ?backoff, "accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// Counts a connection as open for as long as its task exists.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Starts the task of an accepted connection, tracked for reset and drop.
fn spawn_connection(
    shared: &Arc<Shared>,
    tasks: &Mutex<Tasks>,
    inbound: TcpStream,
    peer: SocketAddr,
    id: u64,
) {
    let mut tasks = lock(tasks);
    while let Some(done) = tasks.set.try_join_next() {
        if let Err(error) = done
            && error.is_panic()
        {
            warn!(link = %shared.name, %error, "link connection task panicked");
        }
    }
    if tasks.closed {
        return; // The proxy is being dropped: `inbound` closes here.
    }
    shared.open.fetch_add(1, Ordering::Relaxed);
    let guard = OpenGuard(Arc::clone(shared));
    let shared = Arc::clone(shared);
    tasks.set.spawn(async move {
        let _guard = guard;
        run_connection(&shared, inbound, peer, id).await;
    });
}

/// Runs one connection: waits out a cut, dials upstream, then forwards both
/// ways until the connection ends. Its sockets close when this returns.
async fn run_connection(shared: &Shared, inbound: TcpStream, peer: SocketAddr, id: u64) {
    let link = shared.name.as_str();
    if let Err(error) = inbound.set_nodelay(true) {
        debug!(link, id, %error, "cannot set TCP_NODELAY on inbound socket");
    }
    let mut gate = Gate::new(shared.state.subscribe());
    // A connection opened during a cut is dialled only once the cut heals.
    if gate.open().await.is_err() {
        return;
    }
    let Some(target) = (shared.upstream)() else {
        debug!(link, id, %peer, "upstream down; closing inbound connection");
        return;
    };
    let outbound = match TcpStream::connect(target).await {
        Ok(stream) => stream,
        Err(error) => {
            debug!(link, id, %peer, %target, %error, "cannot dial upstream; closing inbound connection");
            return;
        }
    };
    if let Err(error) = outbound.set_nodelay(true) {
        debug!(link, id, %error, "cannot set TCP_NODELAY on outbound socket");
    }
    debug!(link, id, %peer, %target, "connection open");
    let mut inbound = inbound;
    let mut outbound = outbound;
    let (in_read, in_write) = inbound.split();
    let (out_read, out_write) = outbound.split();
    let result = tokio::try_join!(
        pump(
            in_read,
            out_write,
            gate.clone(),
            Rng::seeded(),
            &shared.bytes
        ),
        pump(out_read, in_write, gate, Rng::seeded(), &shared.bytes),
    );
    match result {
        Ok(_) => debug!(link, id, "connection closed"),
        Err(error) => debug!(link, id, %error, "connection closed on error"),
    }
}

/// A view of the link state that is cheap to check on every chunk.
#[derive(Clone)]
struct Gate {
    rx: watch::Receiver<LinkState>,
    state: LinkState,
}

impl Gate {
    fn new(mut rx: watch::Receiver<LinkState>) -> Self {
        let state = *rx.borrow_and_update();
        Self { rx, state }
    }

    /// The current state; an atomic load unless the state has changed.
    fn current(&mut self) -> LinkState {
        if self.rx.has_changed().unwrap_or(false) {
            self.state = *self.rx.borrow_and_update();
        }
        self.state
    }

    /// Waits for the next state change.
    async fn changed(&mut self) -> io::Result<()> {
        if self.rx.changed().await.is_err() {
            return Err(io::Error::other("link proxy stopped"));
        }
        self.state = *self.rx.borrow_and_update();
        Ok(())
    }

    /// Waits until the link is not cut.
    async fn open(&mut self) -> io::Result<LinkState> {
        loop {
            let state = self.current();
            if !state.cut {
                return Ok(state);
            }
            self.changed().await?;
        }
    }
}

/// A chunk read but not yet fully written; empty data stands for end of stream.
struct Chunk {
    due: Instant,
    data: Vec<u8>,
    written: usize,
}

/// Queues `data`, just read, to be written at `due` (empty: the end of stream, delayed like the
/// bytes before it). Returns whether it was the end.
fn enqueue(queue: &mut VecDeque<Chunk>, queued: &mut usize, due: Instant, data: &[u8]) -> bool {
    *queued += data.len();
    queue.push_back(Chunk {
        due,
        data: data.to_vec(),
        written: 0,
    });
    data.is_empty()
}

/// What woke a direction that has chunks in flight.
enum Event {
    StateChanged(io::Result<()>),
    Delivered(io::Result<usize>),
    Read(io::Result<usize>),
}

/// Forwards one direction of a connection until end of stream has been
/// delivered (`Ok`) or either side failed (`Err`).
async fn pump<R, W>(
    mut src: R,
    mut dst: W,
    mut gate: Gate,
    mut rng: Rng,
    bytes: &AtomicU64,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; READ_BUF];
    let mut queue: VecDeque<Chunk> = VecDeque::new();
    let mut queued = 0usize;
    let mut last_due = Instant::now();
    let mut ended = false;
    let timer = tokio::time::sleep_until(last_due);
    tokio::pin!(timer);

    loop {
        if queue.is_empty() {
            if ended {
                return Ok(()); // Not reached: delivering the end returns.
            }
            // Nothing in flight: wait for bytes. This read does not watch the
            // state (see the module doc); what it reads is checked below.
            let n = match src.read(&mut buf).await {
                Ok(n) => n,
                Err(error) => {
                    gate.open().await?;
                    return Err(error);
                }
            };
            let state = gate.current();
            if state.immediate() {
                if n == 0 {
                    gate.open().await?;
                    dst.shutdown().await?;
                    return Ok(());
                }
                write_gated(&mut dst, &buf[..n], &mut gate, bytes).await?;
                continue;
            }
            let due = next_due(&state, &mut rng, &mut last_due);
            ended = enqueue(&mut queue, &mut queued, due, &buf[..n]);
            continue;
        }

        if gate.current().cut {
            gate.changed().await?;
            continue;
        }
        let can_read = !ended && queued < MAX_IN_FLIGHT;
        let event = {
            let Some(head) = queue.front() else { continue };
            if timer.deadline() != head.due {
                timer.as_mut().reset(head.due);
            }
            tokio::select! {
                biased;
                r = gate.changed() => Event::StateChanged(r),
                r = deliver(&mut dst, head, timer.as_mut()) => Event::Delivered(r),
                r = src.read(&mut buf), if can_read => Event::Read(r),
            }
        };
        match event {
            Event::StateChanged(result) => result?,
            Event::Delivered(result) => {
                let n = result?;
                let Some(head) = queue.front_mut() else {
                    continue;
                };
                if head.data.is_empty() {
                    return Ok(()); // End of stream delivered; nothing follows it.
                }
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                bytes.fetch_add(n as u64, Ordering::Relaxed);
                head.written += n;
                if head.written >= head.data.len() {
                    queued -= head.data.len();
                    queue.pop_front();
                }
            }
            Event::Read(Ok(n)) => {
                let state = gate.current();
                let due = next_due(&state, &mut rng, &mut last_due);
                ended = enqueue(&mut queue, &mut queued, due, &buf[..n]);
            }
            Event::Read(Err(error)) => {
                gate.open().await?;
                return Err(error);
            }
        }
    }
}

/// Writes all of `data` now, pausing while the link is cut (also in the middle
/// of a write the peer is slow to accept).
async fn write_gated<W>(
    dst: &mut W,
    mut data: &[u8],
    gate: &mut Gate,
    bytes: &AtomicU64,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    while !data.is_empty() {
        if gate.current().cut {
            gate.open().await?;
        }
        // Biased: when the write completes at once, the state future is
        // dropped without ever being polled, so the common case costs nothing.
        let n = tokio::select! {
            biased;
            r = dst.write(data) => r?,
            r = gate.changed() => {
                r?;
                continue;
            }
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        data = &data[n..];
    }
    Ok(())
}

/// Waits until `chunk` is due, then writes (part of) it or, for the end of
/// stream, shuts the write side down. Cancel-safe: nothing is written unless
/// it returns.
async fn deliver<W>(dst: &mut W, chunk: &Chunk, timer: Pin<&mut Sleep>) -> io::Result<usize>
where
    W: AsyncWrite + Unpin,
{
    timer.await;
    if chunk.data.is_empty() {
        dst.shutdown().await?;
        Ok(0)
    } else {
        dst.write(&chunk.data[chunk.written..]).await
    }
}

/// Due time of a chunk read now: never earlier than the previous chunk's, so
/// that the queue stays in due order.
fn next_due(state: &LinkState, rng: &mut Rng, last_due: &mut Instant) -> Instant {
    let now = Instant::now();
    let jitter = u64::try_from(state.jitter.as_nanos()).unwrap_or(u64::MAX);
    let extra = Duration::from_nanos(rng.up_to(jitter));
    let latency = state.delay.saturating_add(extra).min(MAX_DELAY);
    let due = now.checked_add(latency).unwrap_or(now).max(*last_due);
    *last_due = due;
    due
}

#[cfg(test)]
mod tests;
