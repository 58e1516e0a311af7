//! The link proxy's tests: forwarding, half-close, cuts, delays, resets, over real loopback
//! sockets.

use super::*;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Guard against hangs only: no condition awaited here takes nearly this long.
const LIMIT: Duration = Duration::from_secs(60);
/// The one kind of fixed wait: how long a cut link must be seen to stay silent.
const QUIET: Duration = Duration::from_millis(200);
const CUT: LinkState = LinkState {
    cut: true,
    delay: Duration::ZERO,
    jitter: Duration::ZERO,
};
const HEALTHY: LinkState = LinkState {
    cut: false,
    delay: Duration::ZERO,
    jitter: Duration::ZERO,
};

fn fixed(addr: SocketAddr) -> UpstreamFn {
    Arc::new(move || Some(addr))
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match timeout(LIMIT, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Polls `cond` until it holds (a condition wait, not a fixed one).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// A target, a proxy to it, and one connection through it: the client end and the target's.
async fn through_proxy() -> (Target, LinkProxy, TcpStream, TcpStream) {
    let mut target = Target::new().await;
    let proxy = start(target.addr).await;
    let client = connect(proxy.addr()).await;
    let upstream = target.next().await;
    (target, proxy, client, upstream)
}

async fn start(target: SocketAddr) -> LinkProxy {
    LinkProxy::start("test", fixed(target))
        .await
        .expect("start proxy")
}

/// An upstream that echoes every byte and echoes end of stream too.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let (mut r, mut w) = stream.split();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if w.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A "sink" upstream that hands every accepted connection to the test,
/// which can then watch what arrives and when it closes.
struct Target {
    addr: SocketAddr,
    accepted: mpsc::UnboundedReceiver<TcpStream>,
}

impl Target {
    async fn new() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind target");
        let addr = listener.local_addr().expect("target addr");
        let (tx, accepted) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if tx.send(stream).is_err() {
                    return;
                }
            }
        });
        Self { addr, accepted }
    }

    async fn next(&mut self) -> TcpStream {
        within("upstream connection", self.accepted.recv())
            .await
            .expect("target stopped")
    }
}

async fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    within("bytes", stream.read_exact(&mut buf))
        .await
        .expect("read_exact");
    buf
}

async fn expect_eof(stream: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let n = within("end of stream", stream.read(&mut buf))
        .await
        .expect("read at end of stream");
    assert_eq!(n, 0, "expected end of stream, got {n} bytes");
}

/// The connection was closed, by FIN or by reset.
async fn expect_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 16];
    if let Ok(n) = within("close", stream.read(&mut buf)).await {
        assert_eq!(n, 0, "expected a closed connection, got {n} bytes");
    }
}

/// Nothing arrives on `stream` (not even a close) for [`QUIET`].
async fn expect_quiet(stream: &mut TcpStream) {
    let mut buf = [0u8; 16];
    if let Ok(result) = timeout(QUIET, stream.read(&mut buf)).await {
        panic!("expected silence across the cut, got {result:?}");
    }
}

/// Deterministic pseudo-random data, so corruption cannot go unnoticed.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        data.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    data.truncate(len);
    data
}

/// Reads to end of stream, checking every byte against `expected`.
async fn receive_exactly(mut src: impl AsyncRead + Unpin, expected: &[u8]) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut at = 0;
    loop {
        let n = src.read(&mut buf).await.expect("read transfer");
        if n == 0 {
            break;
        }
        assert!(at + n <= expected.len(), "more bytes than were sent");
        assert!(buf[..n] == expected[at..at + n], "corrupt bytes at {at}");
        at += n;
    }
    assert_eq!(at, expected.len(), "transfer truncated");
}

async fn send_and_close(mut dst: impl AsyncWrite + Unpin, data: &[u8]) {
    dst.write_all(data).await.expect("write transfer");
    dst.shutdown().await.expect("shutdown transfer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_both_ways() {
    let (_target, proxy, mut client, mut upstream) = through_proxy().await;
    client.write_all(b"to upstream").await.expect("write");
    assert_eq!(read_n(&mut upstream, 11).await, b"to upstream");
    upstream.write_all(b"to client").await.expect("write");
    assert_eq!(read_n(&mut client, 9).await, b"to client");
    assert_eq!(proxy.connections(), 1);
    // Counted just after each write returns, so possibly after the read.
    eventually("20 bytes counted", || proxy.bytes() == 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_round_trips() {
    let proxy = start(echo_server().await).await;
    let mut client = connect(proxy.addr()).await;
    let mut sent = 0u64;
    for i in 0..3000usize {
        let msg = payload(1 + i % 300, i as u64);
        client.write_all(&msg).await.expect("write");
        assert_eq!(read_n(&mut client, msg.len()).await, msg, "round trip {i}");
        sent += msg.len() as u64;
    }
    // Every byte is counted once per crossing.
    eventually("bytes counted", || proxy.bytes() == 2 * sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_propagates() {
    let (_target, proxy, mut client, mut upstream) = through_proxy().await;
    client.write_all(b"request").await.expect("write");
    client.shutdown().await.expect("client shutdown");
    assert_eq!(read_n(&mut upstream, 7).await, b"request");
    expect_eof(&mut upstream).await;
    // The other direction still flows after the client's half-close.
    upstream.write_all(b"response").await.expect("write");
    assert_eq!(read_n(&mut client, 8).await, b"response");
    upstream.shutdown().await.expect("upstream shutdown");
    expect_eof(&mut client).await;
    eventually("connection to end", || proxy.connections() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_closes_inbound_at_once() {
    let proxy = LinkProxy::start("down", Arc::new(|| None))
        .await
        .expect("start proxy");
    let mut client = connect(proxy.addr()).await;
    expect_closed(&mut client).await;
    eventually("connection to end", || proxy.connections() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_holds_existing_connections_and_heal_delivers_in_order() {
    let (_target, proxy, mut client, mut upstream) = through_proxy().await;
    client.write_all(b"before").await.expect("write");
    assert_eq!(read_n(&mut upstream, 6).await, b"before");

    proxy.set(CUT);
    assert_eq!(proxy.state(), CUT);
    for part in [&b"held-1 "[..], b"held-2 ", b"held-3"] {
        client.write_all(part).await.expect("write");
    }
    upstream.write_all(b"reply-1 ").await.expect("write");
    upstream.write_all(b"reply-2").await.expect("write");
    tokio::join!(expect_quiet(&mut upstream), expect_quiet(&mut client));

    proxy.set(HEALTHY);
    assert_eq!(read_n(&mut upstream, 20).await, b"held-1 held-2 held-3");
    assert_eq!(read_n(&mut client, 15).await, b"reply-1 reply-2");
    client.write_all(b"after").await.expect("write");
    assert_eq!(read_n(&mut upstream, 5).await, b"after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_holds_chunks_already_in_flight_under_delay() {
    let (_target, proxy, mut client, mut upstream) = through_proxy().await;
    let slow = LinkState {
        delay: Duration::from_millis(50),
        ..HEALTHY
    };
    proxy.set(slow);
    client.write_all(b"first").await.expect("write");
    assert_eq!(read_n(&mut upstream, 5).await, b"first");
    // Read at once, due 50 ms later: the cut must hold it past its due time.
    client.write_all(b"in flight").await.expect("write");
    proxy.set(LinkState { cut: true, ..slow });
    expect_quiet(&mut upstream).await;

    proxy.set(slow);
    assert_eq!(read_n(&mut upstream, 9).await, b"in flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_stops_reading_so_backpressure_builds() {
    // Far more than the kernel buffers on both sides of the proxy hold.
    const LEN: usize = 64 * 1024 * 1024;
    let mut target = Target::new().await;
    let proxy = start(target.addr).await;
    let client = connect(proxy.addr()).await;
    let mut upstream = target.next().await;
    proxy.set(CUT);
    let data = Arc::new(payload(LEN, 7));
    let (_client_read, client_write) = client.into_split();
    let writer = tokio::spawn({
        let data = Arc::clone(&data);
        async move { send_and_close(client_write, &data).await }
    });
    expect_quiet(&mut upstream).await;
    assert!(!writer.is_finished(), "the cut link swallowed the writes");

    proxy.set(HEALTHY);
    within("held bytes", receive_exactly(&mut upstream, &data)).await;
    within("writer", writer).await.expect("writer task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_made_during_cut_waits_for_heal() {
    let mut target = Target::new().await;
    let proxy = start(target.addr).await;
    proxy.set(CUT);
    let mut client = connect(proxy.addr()).await;
    client.write_all(b"early").await.expect("write");
    eventually("accept during the cut", || proxy.connections() == 1).await;
    expect_quiet(&mut client).await;
    assert!(
        target.accepted.try_recv().is_err(),
        "dialled upstream during the cut"
    );

    proxy.set(HEALTHY);
    let mut upstream = target.next().await;
    assert_eq!(read_n(&mut upstream, 5).await, b"early");
    upstream.write_all(b"late").await.expect("write");
    assert_eq!(read_n(&mut client, 4).await, b"late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_during_cut_crosses_only_after_heal() {
    let (_target, proxy, mut client, mut upstream) = through_proxy().await;
    client.write_all(b"x").await.expect("write");
    assert_eq!(read_n(&mut upstream, 1).await, b"x");

    proxy.set(CUT);
    // One direction closes behind held bytes, the other with nothing held.
    client.write_all(b"last words").await.expect("write");
    client.shutdown().await.expect("client shutdown");
    upstream.shutdown().await.expect("upstream shutdown");
    tokio::join!(expect_quiet(&mut upstream), expect_quiet(&mut client));

    proxy.set(HEALTHY);
    assert_eq!(read_n(&mut upstream, 10).await, b"last words");
    expect_eof(&mut upstream).await;
    expect_eof(&mut client).await;
    eventually("connection to end", || proxy.connections() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_by_one_side_closes_the_other() {
    let (_target, proxy, mut client, mut upstream) = through_proxy().await;
    client.write_all(b"x").await.expect("write");
    assert_eq!(read_n(&mut upstream, 1).await, b"x");
    client.set_zero_linger().expect("linger");
    drop(client); // Sends a reset, not a FIN.
    expect_closed(&mut upstream).await;
    eventually("connection to end", || proxy.connections() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_slows_every_round_trip() {
    const DELAY: Duration = Duration::from_millis(50);
    let proxy = start(echo_server().await).await;
    let mut client = connect(proxy.addr()).await;
    proxy.set(LinkState {
        delay: DELAY,
        ..HEALTHY
    });
    for i in 0..5u8 {
        let started = Instant::now();
        client.write_all(&[i; 100]).await.expect("write");
        assert_eq!(read_n(&mut client, 100).await, [i; 100]);
        let took = started.elapsed();
        assert!(took >= 2 * DELAY, "round trip {i} took only {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_never_reorders() {
    const COUNT: u32 = 10_000;
    let proxy = start(echo_server().await).await;
    proxy.set(LinkState {
        cut: false,
        delay: Duration::from_millis(1),
        jitter: Duration::from_millis(20),
    });
    let client = connect(proxy.addr()).await;
    let (mut r, mut w) = client.into_split();
    let writer = tokio::spawn(async move {
        for i in 0..COUNT {
            w.write_all(&i.to_be_bytes()).await?;
            tokio::task::yield_now().await;
        }
        w.shutdown().await
    });
    let mut buf = [0u8; 4];
    for i in 0..COUNT {
        within("numbered chunk", r.read_exact(&mut buf))
            .await
            .expect("read chunk");
        assert_eq!(u32::from_be_bytes(buf), i, "chunk out of order");
    }
    within("writer", writer)
        .await
        .expect("writer task")
        .expect("writer io");
    let n = within("end of stream", r.read(&mut buf))
        .await
        .expect("read");
    assert_eq!(n, 0, "end of stream is delivered after the data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_closes_both_sides_and_keeps_accepting() {
    let (mut target, proxy, mut client, mut upstream) = through_proxy().await;
    client.write_all(b"ping").await.expect("write");
    assert_eq!(read_n(&mut upstream, 4).await, b"ping");

    proxy.reset();
    expect_eof(&mut client).await;
    expect_eof(&mut upstream).await;
    eventually("connections to drop", || proxy.connections() == 0).await;

    let mut client = connect(proxy.addr()).await;
    let mut upstream = target.next().await;
    client.write_all(b"again").await.expect("write");
    assert_eq!(read_n(&mut upstream, 5).await, b"again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_closes_connections_and_stops_listening() {
    let mut target = Target::new().await;
    let proxy = start(target.addr).await;
    let addr = proxy.addr();
    let mut client = connect(addr).await;
    let mut upstream = target.next().await;
    // One connection held by a cut too: drop must not wait for the heal.
    let mut held = connect(addr).await;
    client.write_all(b"ping").await.expect("write");
    assert_eq!(read_n(&mut upstream, 4).await, b"ping");
    proxy.set(CUT);
    eventually("second accept", || proxy.connections() == 2).await;

    drop(proxy);
    expect_eof(&mut upstream).await;
    expect_eof(&mut client).await;
    expect_eof(&mut held).await;
    within("listener to close", async {
        while let Ok(stream) = TcpStream::connect(addr).await {
            drop(stream);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

async fn large_transfer(state: LinkState) {
    const LEN: usize = 50 * 1024 * 1024;
    let mut target = Target::new().await;
    let proxy = start(target.addr).await;
    proxy.set(state);
    let client = connect(proxy.addr()).await;
    let upstream = target.next().await;
    let up_data = Arc::new(payload(LEN, 1));
    let down_data = Arc::new(payload(LEN, 2));
    let (client_r, client_w) = client.into_split();
    let (upstream_r, upstream_w) = upstream.into_split();
    let tasks = [
        tokio::spawn({
            let d = Arc::clone(&up_data);
            async move { send_and_close(client_w, &d).await }
        }),
        tokio::spawn({
            let d = Arc::clone(&up_data);
            async move { receive_exactly(upstream_r, &d).await }
        }),
        tokio::spawn({
            let d = Arc::clone(&down_data);
            async move { send_and_close(upstream_w, &d).await }
        }),
        tokio::spawn({
            let d = Arc::clone(&down_data);
            async move { receive_exactly(client_r, &d).await }
        }),
    ];
    for task in tasks {
        within("transfer", task).await.expect("transfer task");
    }
    eventually("bytes counted", || proxy.bytes() == 2 * LEN as u64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_transfer_intact_without_delay() {
    large_transfer(HEALTHY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_transfer_intact_with_delay() {
    large_transfer(LinkState {
        cut: false,
        delay: Duration::from_millis(2),
        jitter: Duration::from_millis(3),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_moving_target() {
    let mut first = Target::new().await;
    let mut second = Target::new().await;
    let current = Arc::new(Mutex::new(Some(first.addr)));
    let upstream: UpstreamFn = {
        let current = Arc::clone(&current);
        Arc::new(move || *lock(&current))
    };
    let proxy = LinkProxy::start("moving", upstream)
        .await
        .expect("start proxy");

    let mut old_client = connect(proxy.addr()).await;
    let mut old_upstream = first.next().await;
    old_client.write_all(b"one").await.expect("write");
    assert_eq!(read_n(&mut old_upstream, 3).await, b"one");

    *lock(&current) = None; // Target restarting.
    let mut refused = connect(proxy.addr()).await;
    expect_closed(&mut refused).await;

    *lock(&current) = Some(second.addr); // Back on a new port.
    let mut new_client = connect(proxy.addr()).await;
    let mut new_upstream = second.next().await;
    new_client.write_all(b"two").await.expect("write");
    assert_eq!(read_n(&mut new_upstream, 3).await, b"two");

    // The connection made before the move still goes to the old target.
    old_client.write_all(b"still").await.expect("write");
    assert_eq!(read_n(&mut old_upstream, 5).await, b"still");
    assert!(first.accepted.try_recv().is_err());
}

/// Round trips per second of `conns` connections doing `size`-byte
/// ping-pong against an echo server at `addr` for `run`.
async fn ping_pong(addr: SocketAddr, conns: usize, size: usize, run: Duration) -> f64 {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..conns {
        clients.push(connect(addr).await);
    }
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for mut client in clients {
        let stop = Arc::clone(&stop);
        let count = Arc::clone(&count);
        tasks.spawn(async move {
            let msg = vec![7u8; size];
            let mut buf = vec![0u8; size];
            while !stop.load(Ordering::Relaxed) {
                if client.write_all(&msg).await.is_err()
                    || client.read_exact(&mut buf).await.is_err()
                {
                    return;
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(run).await;
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test --release -- --ignored --nocapture throughput"]
async fn throughput_proxy_vs_direct() {
    const RUN: Duration = Duration::from_secs(3);
    let echo = echo_server().await;
    let proxy = start(echo).await;
    let (mut direct, mut proxied) = (0.0, 0.0);
    for round in 1..=3 {
        let d = ping_pong(echo, 64, 100, RUN).await;
        let p = ping_pong(proxy.addr(), 64, 100, RUN).await;
        println!(
            "round {round}: direct {d:.0} rt/s, proxy {p:.0} rt/s, ratio {:.2}",
            p / d
        );
        direct += d;
        proxied += p;
    }
    println!("overall ratio proxy/direct: {:.2}", proxied / direct);
}
