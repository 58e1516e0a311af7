//! One RESP command against the cluster, through the client (which routes each key to its
//! partition's leader, so any listener takes any key). Redis's reply shapes and error words:
//! `-NOREPLICAS` when the ISR is below min.insync, `-TRYAGAIN` when a write's outcome is unknown,
//! `-ERR` for the rest.

use super::frame::Reply;
use crate::client::{Client, ClientError};
use crate::replica::Acks;
use bytes::Bytes;
use std::time::Duration;

/// How commands run.
#[derive(Clone)]
pub struct ExecOptions {
    /// Acks for writes (`resp_acks`; all unless set).
    pub acks: Acks,
    /// The broker this listener belongs to, for `INFO` (its own replicas' LEO, HW and ISR).
    pub broker: Option<crate::broker::Broker>,
    /// How long a half-sent command may wait for its next byte ([`super::PARTIAL_COMMAND_IDLE`]).
    pub partial_command_idle: Duration,
    /// Connections served at once ([`super::MAX_CONNECTIONS`]).
    pub max_connections: usize,
}

impl ExecOptions {
    /// Writes with `acks`, `INFO` about `broker`, the default bounds.
    pub fn new(acks: Acks, broker: Option<crate::broker::Broker>) -> Self {
        Self {
            acks,
            broker,
            partial_command_idle: super::PARTIAL_COMMAND_IDLE,
            max_connections: super::MAX_CONNECTIONS,
        }
    }
}

/// Whether `args` is `QUIT` (answered `+OK`, then the connection closes).
pub fn is_quit(args: &[Bytes]) -> bool {
    args.first()
        .is_some_and(|c| c.eq_ignore_ascii_case(b"quit"))
}

/// Runs one command.
pub async fn execute(client: Client, args: Vec<Bytes>, opts: std::sync::Arc<ExecOptions>) -> Reply {
    let Some(name) = args.first() else {
        return Reply::err("empty command");
    };
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    let rest = &args[1..];
    let wrong = || Reply::err(format!("wrong number of arguments for '{name}' command"));
    match name.as_str() {
        "ping" => match rest {
            [] => Reply::Status("PONG"),
            [msg] => Reply::Bulk(Some(msg.clone())),
            _ => wrong(),
        },
        "echo" => match rest {
            [msg] => Reply::Bulk(Some(msg.clone())),
            _ => wrong(),
        },
        "get" => match rest {
            [k] => reply(client.get(k).await.map(Reply::Bulk)),
            _ => wrong(),
        },
        "set" => set(&client, rest, &opts).await,
        "del" | "unlink" => {
            if rest.is_empty() {
                return wrong();
            }
            let mut removed = 0;
            for (i, k) in rest.iter().enumerate() {
                // Not atomic with the delete: Redis's count, as near as a replicated store gives it.
                let existed = match client.ttl(k).await {
                    Ok(t) => t != -2,
                    Err(e) => return partly(i, &e),
                };
                if let Err(e) = client.del(k, opts.acks).await {
                    return partly(i, &e);
                }
                removed += i64::from(existed);
            }
            Reply::Int(removed)
        }
        "exists" => {
            if rest.is_empty() {
                return wrong();
            }
            let mut n = 0;
            for k in rest {
                match client.ttl(k).await {
                    Ok(-2) => {}
                    Ok(_) => n += 1,
                    Err(e) => return error(&e),
                }
            }
            Reply::Int(n)
        }
        "expire" => match rest {
            [k, secs] => match number(secs) {
                Some(s) if s > 0 && expiry_ms(s, 1000).is_none() => {
                    Reply::err("invalid expire time in 'expire' command")
                }
                Some(s) => reply(
                    client
                        .expire(k, s.max(0), opts.acks)
                        .await
                        .map(|found| Reply::Int(i64::from(found))),
                ),
                None => Reply::err("value is not an integer or out of range"),
            },
            _ => wrong(),
        },
        "ttl" | "pttl" => match rest {
            [k] => reply(client.ttl(k).await.map(|t| {
                // The store answers in whole seconds.
                Reply::Int(if name == "pttl" && t >= 0 {
                    t * 1000
                } else {
                    t
                })
            })),
            _ => wrong(),
        },
        "select" => match rest {
            [db] if &db[..] == b"0" => Reply::Status("OK"),
            [_] => Reply::err("DB index is out of range"),
            _ => wrong(),
        },
        "client" => match rest.first().map(|s| s.to_ascii_lowercase()) {
            Some(s) if s == b"getname" => Reply::Bulk(None),
            Some(s) if s == b"id" => Reply::Int(1),
            Some(s) if s == b"list" || s == b"info" => {
                Reply::Bulk(Some(Bytes::from_static(b"id=1 name= db=0 cmd=client\n")))
            }
            // Client libraries name themselves on connect; nothing here keeps names.
            Some(s) if s == b"setname" || s == b"setinfo" => Reply::Status("OK"),
            Some(_) => Reply::err(format!(
                "unknown subcommand '{}'. Try CLIENT SETNAME, GETNAME, ID, LIST or INFO.",
                String::from_utf8_lossy(&rest[0])
            )),
            None => wrong(),
        },
        "command" => super::docs::command(rest),
        // RESP3 is not spoken; clients that ask fall back to RESP2 on NOPROTO, as with Redis 5.
        "hello" => match rest.first().map(|v| &v[..]) {
            None | Some(b"2") => hello(),
            Some(v) if number(v).is_none() => {
                Reply::err("Protocol version is not an integer or out of range")
            }
            Some(_) => Reply::Error("NOPROTO unsupported protocol version".into()),
        },
        "info" => info(&client, &opts),
        "config" => config(rest),
        _ => {
            let shown: Vec<String> = rest
                .iter()
                .take(4)
                .map(|a| format!("'{}'", String::from_utf8_lossy(a)))
                .collect();
            Reply::err(format!(
                "unknown command '{}', with args beginning with: {}",
                String::from_utf8_lossy(&args[0]),
                shown.join(" ")
            ))
        }
    }
}

/// `CONFIG GET name`: the two settings tools ask about (redis-benchmark prints them): no
/// snapshots (`save` is empty) and an append-only log. Nothing is set over RESP; the cluster is
/// configured in its YAML files.
fn config(rest: &[Bytes]) -> Reply {
    const SETTINGS: [(&str, &str); 2] = [("save", ""), ("appendonly", "yes")];
    match rest {
        [sub, names @ ..] if sub.eq_ignore_ascii_case(b"get") && !names.is_empty() => {
            let mut out = Vec::new();
            for (name, value) in SETTINGS {
                if names
                    .iter()
                    .any(|n| &n[..] == b"*" || n.eq_ignore_ascii_case(name.as_bytes()))
                {
                    out.push(Reply::Bulk(Some(Bytes::from_static(name.as_bytes()))));
                    out.push(Reply::Bulk(Some(Bytes::from_static(value.as_bytes()))));
                }
            }
            Reply::Array(out)
        }
        [sub, ..] if sub.eq_ignore_ascii_case(b"get") => {
            Reply::err("wrong number of arguments for 'config|get' command")
        }
        [_, ..] => Reply::err(
            "CONFIG SET/REWRITE/RESETSTAT are not served: the cluster is configured in its YAML files",
        ),
        [] => Reply::err("wrong number of arguments for 'config' command"),
    }
}

/// `HELLO`'s answer, a map written as a flat array (RESP2).
fn hello() -> Reply {
    let s = |t: &'static str| Reply::Bulk(Some(Bytes::from_static(t.as_bytes())));
    Reply::Array(vec![
        s("server"),
        s("simplekv-lab"),
        s("version"),
        s(env!("CARGO_PKG_VERSION")),
        s("proto"),
        Reply::Int(2),
        s("id"),
        Reply::Int(1),
        s("mode"),
        s("cluster"),
        s("role"),
        s("master"),
        s("modules"),
        Reply::Array(Vec::new()),
    ])
}

/// What a connection runs: one command, or a run of `SET`s to one key sent as one request that
/// keeps them in order ([`Client::set_group`]).
pub enum Job {
    /// One command (the name first).
    One(Vec<Bytes>),
    /// `SET key value [EX|PX n]`, several times, in order.
    Group {
        /// The key.
        key: Bytes,
        /// Each value and its expiry.
        values: Vec<(Bytes, Option<Duration>)>,
    },
}

/// The replies of a [`Job`], in order.
pub enum Done {
    /// One command's.
    One(Reply),
    /// A group's, one per `SET`.
    Many(Vec<Reply>),
}

/// Runs a job.
pub async fn run(client: Client, job: Job, opts: std::sync::Arc<ExecOptions>) -> Done {
    match job {
        Job::One(args) => Done::One(execute(client, args, opts).await),
        Job::Group { key, values } => Done::Many(
            client
                .set_group(&key, &values, opts.acks)
                .await
                .into_iter()
                .map(|r| reply(r.map(|_| Reply::Status("OK"))))
                .collect(),
        ),
    }
}

/// The key, value and expiry of a well-formed `SET` (the command name first); `None` for
/// anything else, which then runs alone (and says what is wrong with it).
pub fn plain_set(args: &[Bytes]) -> Option<(Bytes, Bytes, Option<Duration>)> {
    let (name, rest) = args.split_first()?;
    if !name.eq_ignore_ascii_case(b"set") {
        return None;
    }
    let [k, v, ..] = rest else { return None };
    let ttl = set_expiry(&rest[2..]).ok()?;
    Some((k.clone(), v.clone(), ttl))
}

/// The expiry of `SET`'s options: none, `EX s` or `PX ms`; or the error reply.
fn set_expiry(options: &[Bytes]) -> Result<Option<Duration>, Reply> {
    Ok(match options {
        [] => None,
        [unit, n] => {
            let per_unit = match unit.to_ascii_lowercase().as_slice() {
                b"ex" => 1000,
                b"px" => 1,
                _ => return Err(Reply::err("syntax error")),
            };
            let Some(n) = number(n) else {
                return Err(Reply::err("value is not an integer or out of range"));
            };
            match expiry_ms(n, per_unit) {
                Some(ms) => Some(Duration::from_millis(ms)),
                None => return Err(Reply::err("invalid expire time in 'set' command")),
            }
        }
        _ => return Err(Reply::err("syntax error")),
    })
}

/// `SET k v [EX s | PX ms]`
async fn set(client: &Client, rest: &[Bytes], opts: &ExecOptions) -> Reply {
    let [k, v, options @ ..] = rest else {
        return Reply::err("wrong number of arguments for 'set' command");
    };
    let ttl = match set_expiry(options) {
        Ok(t) => t,
        Err(e) => return e,
    };
    reply(
        client
            .set(k, v, ttl, opts.acks)
            .await
            .map(|_| Reply::Status("OK")),
    )
}

/// `INFO`: this broker's replicas (role, epoch, LEO, HW, ISR as it believes them), then the
/// cluster as ZooKeeper last said (leader, epoch and ISR per partition).
fn info(client: &Client, opts: &ExecOptions) -> Reply {
    // Routes as the client last learned them (they follow ZooKeeper by themselves): INFO
    // must not queue behind, or hold up, the refreshes that failover re-routing needs.
    let view = client.cached_view();
    let ids = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join("/");
    let mut s = String::from("# Replication\r\n");
    if let Some(b) = &opts.broker {
        let snap = b.snapshot();
        s.push_str(&format!("broker:{}\r\n", snap.id));
        for r in &snap.replicas {
            let copies_from = match r.role {
                crate::replica::Role::Follower { leader } => format!(",leader={leader}"),
                _ => String::new(),
            };
            s.push_str(&format!(
                "partition{}:role={}{copies_from},epoch={},leo={},hw={},isr={}\r\n",
                r.partition,
                r.role.name(),
                r.leader_epoch,
                r.log_end_offset,
                r.high_watermark,
                ids(&r.isr)
            ));
        }
    }
    s.push_str(&format!(
        "\r\n# Cluster\r\nbrokers_live:{}\r\n",
        view.brokers.len()
    ));
    for p in &view.partitions {
        s.push_str(&format!(
            "cluster_partition{}:leader={},epoch={},isr={}\r\n",
            p.partition,
            p.leader.map_or("none".to_string(), |l| l.to_string()),
            p.leader_epoch,
            ids(&p.isr)
        ));
    }
    Reply::Bulk(Some(Bytes::from(s)))
}

/// `n` seconds (`per_unit` 1000) or milliseconds (1) as milliseconds from now, if positive and
/// the moment it names is one a clock can hold (Redis refuses the rest the same way).
fn expiry_ms(n: i64, per_unit: i64) -> Option<u64> {
    let ms = n.checked_mul(per_unit).filter(|&ms| ms > 0)?;
    let now = i64::try_from(crate::storage::now_ms()).ok()?;
    now.checked_add(ms)?;
    u64::try_from(ms).ok()
}

fn number(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn reply(r: Result<Reply, ClientError>) -> Reply {
    r.unwrap_or_else(|e| error(&e))
}

/// The error of a multi-key write that failed at key `i`: if earlier keys were written, the
/// command was not "not written", so it is `-TRYAGAIN` (a DEL is safe to repeat).
fn partly(i: usize, e: &ClientError) -> Reply {
    if i == 0 {
        return error(e);
    }
    Reply::Error(format!(
        "TRYAGAIN the first {i} key(s) were deleted, then: {e}"
    ))
}

/// A client error in Redis's words.
pub fn error(e: &ClientError) -> Reply {
    match e {
        ClientError::NotEnoughReplicas(msg) => Reply::Error(format!("NOREPLICAS {msg}")),
        e if e.outcome_unknown() => Reply::Error(format!("TRYAGAIN {e}")),
        e => Reply::err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_past_what_a_clock_holds_are_refused() {
        assert_eq!(expiry_ms(10, 1000), Some(10_000));
        assert_eq!(expiry_ms(1500, 1), Some(1500));
        assert_eq!(expiry_ms(0, 1000), None);
        assert_eq!(expiry_ms(-5, 1), None);
        assert_eq!(
            expiry_ms(18_446_744_073_709_552 / 2, 1000),
            None,
            "overflows the multiply"
        );
        assert_eq!(expiry_ms(i64::MAX, 1), None, "overflows now + ms");
    }

    #[test]
    fn client_errors_take_redis_error_words() {
        let words = |e: ClientError| match error(&e) {
            Reply::Error(s) => s.split(' ').next().unwrap_or_default().to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            words(ClientError::NotEnoughReplicas("isr 1".into())),
            "NOREPLICAS"
        );
        assert_eq!(
            words(ClientError::OutcomeUnknown("timed out".into())),
            "TRYAGAIN"
        );
        assert_eq!(words(ClientError::InvalidArgument("too big".into())), "ERR");
    }
}
