//! The Redis protocol against a real cluster, driven by the real `redis-cli` and
//! `redis-benchmark` (make test installs redis-tools).

use crate::support::*;
use simplekv::replica::Acks;
use simplekv::resp::{ExecOptions, serve};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A RESP listener over a client of `c`; its port.
async fn listen(c: &simplekv::lab::Cluster, stop: &CancellationToken) -> u16 {
    listen_with(c, stop, ExecOptions::new(Acks::All, None)).await
}

/// A RESP listener with these options over a client of `c`; its port.
async fn listen_with(
    c: &simplekv::lab::Cluster,
    stop: &CancellationToken,
    opts: ExecOptions,
) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(serve(listener, client(c).await, opts, stop.clone()));
    port
}

async fn redis_cli(port: u16, args: &[&str]) -> String {
    let (ok, text) = redis_cli_status(port, args).await;
    assert!(ok, "redis-cli {args:?}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_runs_the_seed_transcript() {
    let c = start("resp-cli", spec(3, 3, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let stop = CancellationToken::new();
    let port = listen(&c, &stop).await;
    assert_eq!(redis_cli(port, &["ping"]).await, "PONG");
    assert_eq!(redis_cli(port, &["set", "hello", "1"]).await, "OK");
    assert_eq!(redis_cli(port, &["get", "hello"]).await, "1");
    assert_eq!(redis_cli(port, &["exists", "hello", "nope"]).await, "1");
    assert_eq!(redis_cli(port, &["expire", "hello", "100"]).await, "1");
    let ttl: i64 = redis_cli(port, &["ttl", "hello"])
        .await
        .parse()
        .expect("a number");
    assert!((95..=100).contains(&ttl), "ttl {ttl}");
    assert_eq!(
        redis_cli(port, &["set", "brief", "x", "px", "60000"]).await,
        "OK"
    );
    let pttl: i64 = redis_cli(port, &["pttl", "brief"])
        .await
        .parse()
        .expect("a number");
    assert!((50_000..=60_000).contains(&pttl), "pttl {pttl}");
    assert_eq!(redis_cli(port, &["del", "hello", "nope"]).await, "1");
    assert_eq!(redis_cli(port, &["get", "hello"]).await, "");
    assert_eq!(redis_cli(port, &["ttl", "hello"]).await, "-2");
    let unknown = redis_cli(port, &["frobnicate", "a"]).await;
    assert!(
        unknown.starts_with("ERR unknown command 'frobnicate'"),
        "{unknown}"
    );
    let info = redis_cli(port, &["info", "replication"]).await;
    assert!(info.contains("cluster_partition0:leader="), "{info}");
    // redis-cli's help and hints come from COMMAND DOCS: this store's SET, not Redis's.
    let help = redis_cli(port, &["help", "set"]).await;
    assert!(
        help.contains("key value [EX seconds|PX milliseconds]") && !help.contains("NX"),
        "{help}"
    );
    assert!(
        redis_cli(port, &["help", "ttl"])
            .await
            .contains("-2 if there is no key"),
        "help ttl"
    );
    assert_eq!(
        redis_cli(port, &["hello", "3"]).await,
        "NOPROTO unsupported protocol version"
    );
    // An expiry a clock cannot hold is refused, not wrapped to a short one.
    assert_eq!(
        redis_cli(port, &["set", "ov", "v", "ex", "18446744073709552"]).await,
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        redis_cli(port, &["set", "ov", "v", "ex", "soon"]).await,
        "ERR value is not an integer or out of range"
    );
    // What redis-cli wrote is what the cluster holds.
    let direct = client(&c).await;
    assert_eq!(
        direct.get(b"brief").await.expect("get").as_deref(),
        Some(&b"x"[..])
    );
    stop.cancel();
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_benchmark_pipelined_completes_without_errors() {
    let c = start("resp-bench", spec(3, 3, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let stop = CancellationToken::new();
    let port = listen(&c, &stop).await;
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("redis-benchmark")
            .args([
                "-p",
                &port.to_string(),
                "-t",
                "set,get",
                "-n",
                "4000",
                "-c",
                "8",
            ])
            .args(["-P", "16", "-r", "1000", "-q", "--csv"])
            .output(),
    )
    .await
    .expect("redis-benchmark finished")
    .expect("redis-benchmark runs (make test installs redis-tools)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("\"SET\"") && text.contains("\"GET\""),
        "{text}"
    );
    assert!(!text.to_lowercase().contains("error"), "{text}");
    // It reads the server's CONFIG (save, appendonly) and warns when it cannot.
    assert!(!text.contains("WARNING"), "{text}");
    // Its writes landed: redis-benchmark's keys are key:000000000000 .. key:000000000999.
    let direct = client(&c).await;
    let mut found = 0;
    for i in 0..1000 {
        let key = format!("key:{i:012}");
        if direct.get(key.as_bytes()).await.expect("get").is_some() {
            found += 1;
        }
    }
    assert!(found > 900, "only {found} of 1000 keys were written");
    stop.cancel();
    c.cluster.shutdown().await;
}

/// Whether `redis-cli` reached the listener and succeeded, and its output (stdout, trimmed; with
/// stderr when it failed).
async fn redis_cli_status(port: u16, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("redis-cli is needed (make test installs redis-tools): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ok = out.status.success()
        && !stdout.contains("Could not connect")
        && !stderr.contains("Could not connect");
    if ok {
        (true, stdout)
    } else {
        (false, format!("{stdout}{stderr}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lab_broker_has_a_redis_port_that_lives_and_dies_with_it() {
    let c = start("resp-lab", spec(3, 3, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let ports: Vec<u16> = c
        .resp_ports()
        .into_iter()
        .map(|p| p.expect("every broker up has a RESP port"))
        .collect();
    assert_eq!(redis_cli(ports[1], &["set", "k", "v"]).await, "OK");
    assert_eq!(redis_cli(ports[2], &["get", "k"]).await, "v");
    // INFO tells what this broker believes of its own replicas.
    let info = redis_cli(ports[1], &["info", "replication"]).await;
    assert!(info.contains("broker:2"), "{info}");
    assert!(
        info.contains("partition0:role=") && info.contains(",hw="),
        "{info}"
    );
    // Roles in words, a follower naming its leader (not Rust's debug form).
    assert!(
        info.contains("role=follower,leader=") && !info.contains('{'),
        "{info}"
    );
    c.kill(1).await.expect("kill");
    assert_eq!(c.resp_ports()[0], None);
    let (answered, text) = redis_cli_status(ports[0], &["ping"]).await;
    assert!(
        !answered,
        "a killed broker's Redis port must not answer: {text}"
    );
    c.restore(1).await.expect("restore");
    assert_eq!(c.resp_ports()[0], Some(ports[0]), "back on its old port");
    wait_for("broker 1's Redis port", Duration::from_secs(30), || async {
        redis_cli_status(ports[0], &["get", "k"]).await == (true, "v".to_string())
    })
    .await;
    c.cluster.shutdown().await;
}

/// One RESP array of bulk strings.
fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads until `n` replies' worth of lines (status, error, integer, bulk) have arrived.
async fn replies(stream: &mut tokio::net::TcpStream, n: usize) -> Vec<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        let mut lines = text.split("\r\n").peekable();
        let mut out = Vec::new();
        while let Some(l) = lines.next() {
            if l.is_empty() {
                break;
            }
            if l.starts_with('$') && l != "$-1" {
                match lines.next() {
                    Some(v) if text.contains(&format!("{l}\r\n{v}\r\n")) => out.push(v.to_string()),
                    _ => break,
                }
            } else {
                out.push(l.to_string());
            }
        }
        if out.len() >= n {
            return out;
        }
        let mut chunk = [0u8; 4096];
        let got = stream.read(&mut chunk).await.expect("read");
        assert!(got > 0, "closed after {out:?}");
        buf.extend_from_slice(&chunk[..got]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_take_effect_in_the_order_sent() {
    use tokio::io::AsyncWriteExt;
    let c = start("resp-order", spec(3, 3, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let stop = CancellationToken::new();
    let port = listen(&c, &stop).await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut burst = Vec::new();
    for i in 0..20 {
        let k = format!("k{i}");
        burst.extend(command(&[b"SET", k.as_bytes(), b"v1"]));
        burst.extend(command(&[b"DEL", k.as_bytes()]));
        burst.extend(command(&[b"SET", k.as_bytes(), b"v2"]));
        burst.extend(command(&[b"GET", k.as_bytes()]));
    }
    s.write_all(&burst).await.expect("write");
    let got = replies(&mut s, 80).await;
    for (i, four) in got.chunks(4).enumerate() {
        assert_eq!(four, ["+OK", ":1", "+OK", "v2"], "k{i}");
    }
    stop.cancel();
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_longer_than_the_limit_is_refused_and_the_connection_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = start("resp-long", spec(1, 1, 1, 1)).await;
    let stop = CancellationToken::new();
    let port = listen(&c, &stop).await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    // Two 45 MB arguments: each within the argument limit, together past the command limit.
    let big = 45 << 20;
    let mut head = format!("*3\r\n$3\r\nSET\r\n${big}\r\n").into_bytes();
    head.extend(std::iter::repeat_n(b'x', big));
    head.extend(format!("\r\n${big}\r\n").into_bytes());
    s.write_all(&head).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut answer))
        .await
        .expect("an answer and a close, not a hang")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("-ERR Protocol error: the command is longer than"),
        "{answer}"
    );
    stop.cancel();
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_write_does_not_wait_for_a_stuck_write_to_another_key() {
    use tokio::io::AsyncWriteExt;
    let c = start("resp-concurrent", spec(3, 3, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let stop = CancellationToken::new();
    let port = listen(&c, &stop).await;
    let direct = client(&c).await;
    // Two keys whose partitions have different leaders.
    let key_led_by = |want_other_than: Option<u32>| {
        (0..1000)
            .map(|i| format!("key{i}"))
            .find(|k| {
                let l = leader_of(&c, direct.partition_of(k.as_bytes()));
                l.is_some() && want_other_than.is_none_or(|o| l != Some(o))
            })
            .expect("a key")
    };
    let stuck = key_led_by(None);
    let stuck_leader = leader_of(&c, direct.partition_of(stuck.as_bytes())).expect("leader");
    let free = key_led_by(Some(stuck_leader));
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    // Warm the connection's routes, then freeze the first key's leader.
    s.write_all(&command(&[b"PING"])).await.expect("write");
    assert_eq!(replies(&mut s, 1).await, ["+PONG"]);
    c.pause(stuck_leader).await.expect("pause");
    let mut burst = command(&[b"SET", stuck.as_bytes(), b"1"]);
    burst.extend(command(&[b"SET", free.as_bytes(), b"2"]));
    s.write_all(&burst).await.expect("write");
    // Run one after another, the second write could not land before the first is answered.
    wait_for(
        "the second write while the first waits",
        Duration::from_secs(20),
        || async { direct.get(free.as_bytes()).await.ok().flatten().is_some() },
    )
    .await;
    let mut peek = [0u8; 64];
    assert!(
        matches!(s.try_read(&mut peek), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the stuck write was answered before the free one landed: not concurrent"
    );
    c.resume(stuck_leader).await.expect("resume");
    // Both replies, in the order sent (the stuck write may succeed or time out).
    let got = replies(&mut s, 2).await;
    assert_eq!(got[1], "+OK", "{got:?}");
    stop.cancel();
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_closes_its_side_still_has_its_commands_run_and_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = start("resp-eof", spec(3, 3, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let stop = CancellationToken::new();
    let port = listen(&c, &stop).await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut burst = Vec::new();
    for i in 0..50 {
        burst.extend(command(&[b"SET", format!("eof{i}").as_bytes(), b"v"]));
    }
    // As `printf ... | nc` does: send everything, then close the sending side.
    s.write_all(&burst).await.expect("write");
    s.shutdown().await.expect("shutdown");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut answer))
        .await
        .expect("answers, then a close")
        .expect("read");
    assert_eq!(String::from_utf8_lossy(&answer), "+OK\r\n".repeat(50));
    let direct = client(&c).await;
    for i in 0..50 {
        let k = format!("eof{i}");
        assert!(
            direct.get(k.as_bytes()).await.expect("get").is_some(),
            "{k}"
        );
    }
    stop.cancel();
    c.cluster.shutdown().await;
}

/// What one RESP writer saw: (key, write number) answered `+OK`, and how many answers were not.
#[derive(Default)]
struct Answers {
    acked: Vec<(String, usize)>,
    unknown: usize,
    refused: Vec<String>,
}

/// Writes through `port` until `stop`, 64 pipelined at a time: 16 keys `ack{w}-{n}`, each set
/// four times in a row to `0`..`3` (so each key's writes travel as one ordered group).
async fn write_until(
    w: usize,
    port: u16,
    acked: Arc<AtomicUsize>,
    stop: CancellationToken,
) -> Answers {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut out = Answers::default();
    let mut n = 0;
    while !stop.is_cancelled() {
        let writes: Vec<(String, usize)> = (n..n + 16)
            .flat_map(|i| (0..4).map(move |j| (format!("ack{w}-{i}"), j)))
            .collect();
        n += 16;
        let mut burst = Vec::new();
        for (k, j) in &writes {
            burst.extend(command(&[b"SET", k.as_bytes(), j.to_string().as_bytes()]));
        }
        s.write_all(&burst).await.expect("write");
        for (write, answer) in writes.into_iter().zip(replies(&mut s, 64).await) {
            if answer == "+OK" {
                out.acked.push(write);
                acked.fetch_add(1, Ordering::SeqCst);
            } else if answer.starts_with("-TRYAGAIN") {
                out.unknown += 1;
            } else {
                out.refused.push(answer);
            }
        }
    }
    out
}

/// Runs `redis-benchmark -t set` against `port` until `stop`. redis-benchmark exits at the first
/// error reply, so a `-TRYAGAIN` from a write caught by the crash ends a run; it is started
/// again. Returns what each early exit printed.
async fn benchmark_until(port: u16, stop: CancellationToken) -> Vec<String> {
    let mut stops = Vec::new();
    while !stop.is_cancelled() {
        let run = tokio::process::Command::new("redis-benchmark")
            .args([
                "-p",
                &port.to_string(),
                "-t",
                "set",
                "-n",
                "10000000",
                "-c",
                "16",
            ])
            .args(["-P", "8", "-r", "100000", "-q"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-benchmark runs (make test installs redis-tools)");
        tokio::select! {
            out = run.wait_with_output() => {
                let out = out.expect("redis-benchmark");
                stops.push(String::from_utf8_lossy(&out.stderr).to_string());
            }
            // Dropping the run kills it.
            _ = stop.cancelled() => {}
        }
    }
    stops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_when_a_leader_crashes_under_redis_benchmark() {
    let c = start("resp-crash", spec(3, 3, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let ports: Vec<u16> = c
        .resp_ports()
        .into_iter()
        .map(|p| p.expect("port"))
        .collect();
    // Everything goes through broker 1's listener; the broker that crashes leads a partition
    // broker 1 does not, so its writes are forwarded to the leader that dies.
    let victim = (0..3)
        .filter_map(|p| leader_of(&c, p))
        .find(|&l| l != 1)
        .expect("a partition led by broker 2 or 3");
    let port = ports[0];
    let stop = CancellationToken::new();
    let bench = tokio::spawn(benchmark_until(port, stop.clone()));
    let acked = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(write_until(w, port, Arc::clone(&acked), stop.clone())))
        .collect();
    let at_least = |n: usize| {
        let acked = Arc::clone(&acked);
        move || {
            let acked = Arc::clone(&acked);
            async move { acked.load(Ordering::SeqCst) >= n }
        }
    };
    wait_for(
        "300 acknowledged writes",
        Duration::from_secs(60),
        at_least(300),
    )
    .await;
    c.kill(victim).await.expect("kill");
    let at_kill = acked.load(Ordering::SeqCst);
    wait_for(
        "300 more acknowledged writes after the crash",
        Duration::from_secs(60),
        at_least(at_kill + 300),
    )
    .await;
    stop.cancel();
    let mut answers = Answers::default();
    for w in writers {
        let a = w.await.expect("writer");
        answers.acked.extend(a.acked);
        answers.unknown += a.unknown;
        answers.refused.extend(a.refused);
    }
    let stops = bench.await.expect("redis-benchmark load");
    assert!(
        stops
            .iter()
            .all(|e| e.contains("Error from server: TRYAGAIN") || e.contains("NOREPLICAS")),
        "redis-benchmark stopped for another reason than an unknown outcome: {stops:?}"
    );
    assert!(
        answers.refused.is_empty(),
        "a definite refusal during a failover with a quorum left: {:?}",
        &answers.refused[..answers.refused.len().min(3)]
    );
    // Every key holds its last acknowledged write or a later one: no acknowledged write lost,
    // and none undone by an older one landing after it.
    let direct = client(&c).await;
    let other = ports[if victim == 2 { 2 } else { 1 }];
    let mut newest: std::collections::BTreeMap<&str, usize> = Default::default();
    for (k, j) in &answers.acked {
        let e = newest.entry(k.as_str()).or_default();
        *e = (*e).max(*j);
    }
    let mut wrong = Vec::new();
    for (k, j) in &newest {
        let held = direct.get(k.as_bytes()).await.expect("get");
        let held: Option<usize> = held.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok());
        if held.is_none_or(|h| h < *j) {
            wrong.push(format!("{k}: acknowledged {j}, holds {held:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} keys lost an acknowledged write: {:?}",
        wrong.len(),
        newest.len(),
        &wrong[..wrong.len().min(5)]
    );
    let (last, j) = answers.acked.last().expect("writes");
    let through_other = redis_cli(other, &["get", last]).await;
    assert!(
        through_other.parse::<usize>().is_ok_and(|h| h >= *j),
        "{last}: {through_other}"
    );
    eprintln!(
        "acknowledged {}, unknown {}, leader {victim} killed after {at_kill}, redis-benchmark \
         restarted {} times",
        answers.acked.len(),
        answers.unknown,
        stops.len()
    );
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_serves_its_own_brokers_partitions_in_process_and_forwards_the_rest() {
    let c = start("resp-local", spec(3, 3, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let ports: Vec<u16> = c
        .resp_ports()
        .into_iter()
        .map(|p| p.expect("port"))
        .collect();
    let direct = client(&c).await;
    // A key broker 1 leads and a key another broker leads.
    let led_by = |mine: bool| {
        (0..1000)
            .map(|i| format!("local{i}"))
            .find(|k| (leader_of(&c, direct.partition_of(k.as_bytes())) == Some(1)) == mine)
            .expect("a key")
    };
    let (own, other) = (led_by(true), led_by(false));
    let local = c.broker(1).expect("broker 1").local_kv();
    let before = local.calls();
    assert_eq!(redis_cli(ports[0], &["set", &own, "a"]).await, "OK");
    assert_eq!(redis_cli(ports[0], &["get", &own]).await, "a");
    let after_own = local.calls();
    assert!(after_own >= before + 2, "{before} -> {after_own}");
    assert_eq!(redis_cli(ports[0], &["set", &other, "b"]).await, "OK");
    assert_eq!(redis_cli(ports[0], &["get", &other]).await, "b");
    assert_eq!(
        local.calls(),
        after_own,
        "another leader's keys are forwarded"
    );
    // What went in-process is what the cluster holds, replicated.
    assert_eq!(
        direct.get(own.as_bytes()).await.expect("get").as_deref(),
        Some(&b"a"[..])
    );
    let p = direct.partition_of(own.as_bytes());
    wait_caught_up(&c, p).await;
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_silent_mid_command_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = start("resp-idle", spec(1, 1, 1, 1)).await;
    let stop = CancellationToken::new();
    let opts = ExecOptions {
        partial_command_idle: Duration::from_millis(500),
        ..ExecOptions::new(Acks::All, None)
    };
    let port = listen_with(&c, &stop, opts).await;
    // Half a SET of a large value, then silence: answered once, closed, its buffer freed.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    slow.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\nxxxx")
        .await
        .expect("write");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(30), slow.read_to_string(&mut answer))
        .await
        .expect("cut off, not held")
        .expect("read");
    assert!(
        answer.starts_with("-ERR Protocol error: no byte of the command arrived for"),
        "{answer}"
    );
    // An idle connection with nothing half-sent is not cut off.
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    idle.write_all(&command(&[b"PING"])).await.expect("write");
    assert_eq!(replies(&mut idle, 1).await, ["+PONG"]);
    let mut peek = [0u8; 16];
    let quiet = tokio::time::timeout(Duration::from_millis(1500), idle.read(&mut peek)).await;
    assert!(quiet.is_err(), "an idle connection was closed: {quiet:?}");
    stop.cancel();
    c.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_serves_at_most_its_connection_cap_and_says_so() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = start("resp-cap", spec(1, 1, 1, 1)).await;
    let stop = CancellationToken::new();
    let opts = ExecOptions {
        max_connections: 2,
        ..ExecOptions::new(Acks::All, None)
    };
    let port = listen_with(&c, &stop, opts).await;
    let connect = || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect")
    };
    // Two connections hold the two slots (each answered, so each was taken in).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect().await;
        s.write_all(&command(&[b"PING"])).await.expect("write");
        assert_eq!(replies(&mut s, 1).await, ["+PONG"]);
        held.push(s);
    }
    let mut over = connect().await;
    let mut refusal = String::new();
    tokio::time::timeout(Duration::from_secs(10), over.read_to_string(&mut refusal))
        .await
        .expect("refused and closed at once")
        .expect("read");
    assert_eq!(refusal, "-ERR max number of clients reached\r\n");
    // A slot freed is a slot given.
    drop(held.pop());
    wait_for("a free slot", Duration::from_secs(10), || async {
        let mut s = connect().await;
        s.write_all(&command(&[b"PING"])).await.is_ok()
            && matches!(
                tokio::time::timeout(Duration::from_secs(2), replies_or_closed(&mut s)).await,
                Ok(Some(r)) if r == "+PONG"
            )
    })
    .await;
    stop.cancel();
    c.cluster.shutdown().await;
}

/// The first reply line, or `None` if the connection closed first.
async fn replies_or_closed(s: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            return Some(String::from_utf8_lossy(&buf[..end]).to_string());
        }
        let mut chunk = [0u8; 256];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_of_writes_to_one_key_is_one_request_in_order() {
    use tokio::io::AsyncWriteExt;
    let c = start("resp-group", spec(3, 3, 3, 2)).await;
    wait_for_isr(&c, 3).await;
    let ports: Vec<u16> = c
        .resp_ports()
        .into_iter()
        .map(|p| p.expect("port"))
        .collect();
    let direct = client(&c).await;
    // A key broker 1 leads, so its listener's requests can be counted.
    let key = (0..1000)
        .map(|i| format!("group{i}"))
        .find(|k| leader_of(&c, direct.partition_of(k.as_bytes())) == Some(1))
        .expect("a key broker 1 leads");
    let local = c.broker(1).expect("broker 1").local_kv();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", ports[0]))
        .await
        .expect("connect");
    // Warm the routes, then 60 SETs of one key in one burst, and a GET.
    s.write_all(&command(&[b"GET", key.as_bytes()]))
        .await
        .expect("write");
    replies(&mut s, 1).await;
    let before = local.calls();
    let mut burst = Vec::new();
    for i in 0..60 {
        burst.extend(command(&[
            b"SET",
            key.as_bytes(),
            format!("val{i:03}end").as_bytes(),
        ]));
    }
    burst.extend(command(&[b"GET", key.as_bytes()]));
    s.write_all(&burst).await.expect("write");
    let got = replies(&mut s, 61).await;
    assert!(got[..60].iter().all(|r| r == "+OK"), "{got:?}");
    assert_eq!(got[60], "val059end", "the last write stays");
    let requests = local.calls() - before;
    assert!(
        requests <= 4,
        "60 pipelined writes to one key took {requests} requests (one at a time: 60)"
    );
    // In the log, in the order sent.
    let p = direct.partition_of(key.as_bytes());
    wait_caught_up(&c, p).await;
    let order: Vec<usize> = log_prefix(&log_of(&c, 1, p), u64::MAX)
        .into_iter()
        .filter_map(|(_, raw)| {
            let at = raw.windows(3).position(|w| w == b"val")?;
            std::str::from_utf8(raw.get(at + 3..at + 6)?)
                .ok()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(
        order,
        (0..60).collect::<Vec<usize>>(),
        "the log holds them as sent"
    );
    c.cluster.shutdown().await;
}
