//! What the listener says about its commands: `COMMAND`, `COMMAND INFO`, `COMMAND DOCS`,
//! `COMMAND COUNT`, `COMMAND LIST`. `redis-cli` builds its hints and `help` from `COMMAND DOCS`,
//! so `help set` shows this store's `SET` (no `NX`, `GET` or `KEEPTTL`), not Redis's.

use super::frame::Reply;
use bytes::Bytes;

/// One documented command.
struct Command {
    name: &'static str,
    /// Redis's arity: the argument count with the name, negative for "at least".
    arity: i64,
    flags: &'static [&'static str],
    /// Position of the first and last key, and the step between keys (0, 0, 0 for none).
    keys: (i64, i64, i64),
    group: &'static str,
    summary: &'static str,
    complexity: &'static str,
    args: &'static [Arg],
}

/// One argument in `COMMAND DOCS` form.
struct Arg {
    name: &'static str,
    /// `key`, `string`, `integer`, `pure-token`, `oneof` or `block`.
    kind: &'static str,
    /// The word typed before the value (`EX` in `EX seconds`).
    token: Option<&'static str>,
    optional: bool,
    multiple: bool,
    /// The choices of a `oneof`, the parts of a `block`.
    sub: &'static [Arg],
}

const fn arg(name: &'static str, kind: &'static str) -> Arg {
    Arg {
        name,
        kind,
        token: None,
        optional: false,
        multiple: false,
        sub: &[],
    }
}

const fn optional(a: Arg) -> Arg {
    Arg {
        optional: true,
        ..a
    }
}

const fn multiple(a: Arg) -> Arg {
    Arg {
        multiple: true,
        ..a
    }
}

const fn token(token: &'static str, a: Arg) -> Arg {
    Arg {
        token: Some(token),
        ..a
    }
}

const KEY: Arg = arg("key", "key");
const KEYS: Arg = multiple(KEY);
const EXPIRY: &[Arg] = &[
    token("EX", arg("seconds", "integer")),
    token("PX", arg("milliseconds", "integer")),
];

/// Every command the listener serves.
const COMMANDS: &[Command] = &[
    Command {
        name: "client",
        arity: -2,
        flags: &["loading", "stale"],
        keys: (0, 0, 0),
        group: "connection",
        summary: "Connection commands: SETNAME, GETNAME, ID, LIST, INFO (names are not kept)",
        complexity: "O(1)",
        args: &[
            arg("subcommand", "string"),
            optional(multiple(arg("arg", "string"))),
        ],
    },
    Command {
        name: "command",
        arity: -1,
        flags: &["loading", "stale"],
        keys: (0, 0, 0),
        group: "server",
        summary: "Describes the commands this listener serves: COUNT, DOCS, INFO, LIST",
        complexity: "O(N) where N is the number of commands",
        args: &[
            optional(arg("subcommand", "string")),
            optional(multiple(arg("command-name", "string"))),
        ],
    },
    Command {
        name: "config",
        arity: -2,
        flags: &["admin", "loading", "stale"],
        keys: (0, 0, 0),
        group: "server",
        summary: "Answers an empty list: the cluster is configured in its YAML files",
        complexity: "O(1)",
        args: &[
            arg("subcommand", "string"),
            optional(multiple(arg("arg", "string"))),
        ],
    },
    Command {
        name: "del",
        arity: -2,
        flags: &["write"],
        keys: (1, -1, 1),
        group: "generic",
        summary: "Deletes keys, one after another (acks as resp_acks); answers how many existed",
        complexity: "O(N) where N is the number of keys",
        args: &[KEYS],
    },
    Command {
        name: "echo",
        arity: 2,
        flags: &["loading", "stale", "fast"],
        keys: (0, 0, 0),
        group: "connection",
        summary: "Returns the given string",
        complexity: "O(1)",
        args: &[arg("message", "string")],
    },
    Command {
        name: "exists",
        arity: -2,
        flags: &["readonly", "fast"],
        keys: (1, -1, 1),
        group: "keyspace",
        summary: "Counts the given keys that exist (read from each partition's leader)",
        complexity: "O(N) where N is the number of keys",
        args: &[KEYS],
    },
    Command {
        name: "expire",
        arity: 3,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "keyspace",
        summary: "Sets a key's time to live in seconds; 1 if the key exists, else 0",
        complexity: "O(1)",
        args: &[KEY, arg("seconds", "integer")],
    },
    Command {
        name: "get",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Returns a key's value, read from its partition's leader",
        complexity: "O(1)",
        args: &[KEY],
    },
    Command {
        name: "hello",
        arity: -1,
        flags: &["loading", "stale", "fast"],
        keys: (0, 0, 0),
        group: "connection",
        summary: "Handshake; only protocol 2 (RESP2) is spoken",
        complexity: "O(1)",
        args: &[optional(arg("protover", "integer"))],
    },
    Command {
        name: "info",
        arity: -1,
        flags: &["loading", "stale"],
        keys: (0, 0, 0),
        group: "server",
        summary: "This broker's replicas (role, epoch, LEO, HW, ISR) and the cluster as ZooKeeper says",
        complexity: "O(P) where P is the number of partitions",
        args: &[optional(multiple(arg("section", "string")))],
    },
    Command {
        name: "ping",
        arity: -1,
        flags: &["fast"],
        keys: (0, 0, 0),
        group: "connection",
        summary: "Returns PONG, or the message",
        complexity: "O(1)",
        args: &[optional(arg("message", "string"))],
    },
    Command {
        name: "pttl",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "keyspace",
        summary: "A key's time to live in milliseconds (kept in whole seconds), -1 none, -2 no key",
        complexity: "O(1)",
        args: &[KEY],
    },
    Command {
        name: "quit",
        arity: -1,
        flags: &["loading", "stale", "fast"],
        keys: (0, 0, 0),
        group: "connection",
        summary: "Answers OK and closes the connection once earlier commands are answered",
        complexity: "O(1)",
        args: &[],
    },
    Command {
        name: "select",
        arity: 2,
        flags: &["loading", "stale", "fast"],
        keys: (0, 0, 0),
        group: "connection",
        summary: "Only database 0 exists",
        complexity: "O(1)",
        args: &[arg("index", "integer")],
    },
    Command {
        name: "set",
        arity: -3,
        flags: &["write"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Sets a key's value, replicated with the listener's acks (resp_acks, all by default)",
        complexity: "O(1)",
        args: &[
            KEY,
            arg("value", "string"),
            Arg {
                sub: EXPIRY,
                ..optional(arg("expiration", "oneof"))
            },
        ],
    },
    Command {
        name: "ttl",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "keyspace",
        summary: "A key's time to live in seconds, -1 if it has none, -2 if there is no key",
        complexity: "O(1)",
        args: &[KEY],
    },
    Command {
        name: "unlink",
        arity: -2,
        flags: &["write", "fast"],
        keys: (1, -1, 1),
        group: "keyspace",
        summary: "The same as DEL",
        complexity: "O(N) where N is the number of keys",
        args: &[KEYS],
    },
];

/// `COMMAND [COUNT | DOCS [name ...] | INFO [name ...] | LIST]`
pub fn command(rest: &[Bytes]) -> Reply {
    let Some(sub) = rest.first() else {
        return Reply::Array(COMMANDS.iter().map(info).collect());
    };
    let names = &rest[1..];
    match sub.to_ascii_lowercase().as_slice() {
        b"count" => Reply::Int(COMMANDS.len() as i64),
        b"list" => Reply::Array(COMMANDS.iter().map(|c| bulk(c.name)).collect()),
        b"info" if names.is_empty() => Reply::Array(COMMANDS.iter().map(info).collect()),
        b"info" => Reply::Array(
            names
                .iter()
                .map(|n| find(n).map_or(Reply::Bulk(None), info))
                .collect(),
        ),
        b"docs" => {
            let chosen: Vec<&Command> = if names.is_empty() {
                COMMANDS.iter().collect()
            } else {
                names.iter().filter_map(|n| find(n)).collect()
            };
            Reply::Array(
                chosen
                    .into_iter()
                    .flat_map(|c| [bulk(c.name), docs(c)])
                    .collect(),
            )
        }
        _ => Reply::err(format!(
            "unknown subcommand '{}'. Try COMMAND COUNT, DOCS, INFO or LIST.",
            String::from_utf8_lossy(sub)
        )),
    }
}

fn find(name: &[u8]) -> Option<&'static Command> {
    COMMANDS
        .iter()
        .find(|c| c.name.as_bytes().eq_ignore_ascii_case(name))
}

fn bulk(s: &'static str) -> Reply {
    Reply::Bulk(Some(Bytes::from_static(s.as_bytes())))
}

/// Redis 7's `COMMAND INFO` entry: name, arity, flags, first key, last key, step, ACL
/// categories, tips, key specifications, subcommands.
fn info(c: &Command) -> Reply {
    let (first, last, step) = c.keys;
    Reply::Array(vec![
        bulk(c.name),
        Reply::Int(c.arity),
        Reply::Array(c.flags.iter().map(|&f| Reply::Status(f)).collect()),
        Reply::Int(first),
        Reply::Int(last),
        Reply::Int(step),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

/// Redis 7's `COMMAND DOCS` entry, a map written as a flat array (RESP2).
fn docs(c: &Command) -> Reply {
    Reply::Array(vec![
        bulk("summary"),
        bulk(c.summary),
        bulk("since"),
        bulk("1.0.0"),
        bulk("group"),
        bulk(c.group),
        bulk("complexity"),
        bulk(c.complexity),
        bulk("arguments"),
        Reply::Array(c.args.iter().map(arg_docs).collect()),
    ])
}

fn arg_docs(a: &Arg) -> Reply {
    let mut out = vec![bulk("name"), bulk(a.name), bulk("type"), bulk(a.kind)];
    if a.kind != "oneof" && a.kind != "block" {
        out.extend([bulk("display_text"), bulk(a.name)]);
    }
    if let Some(t) = a.token {
        out.extend([bulk("token"), bulk(t)]);
    }
    let flags: Vec<Reply> = [(a.optional, "optional"), (a.multiple, "multiple")]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| Reply::Status(f))
        .collect();
    if !flags.is_empty() {
        // redis-cli asserts these are status replies, not bulk strings.
        out.extend([bulk("flags"), Reply::Array(flags)]);
    }
    if !a.sub.is_empty() {
        out.extend([
            bulk("arguments"),
            Reply::Array(a.sub.iter().map(arg_docs).collect()),
        ]);
    }
    Reply::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(reply: &Reply) -> Vec<String> {
        match reply {
            Reply::Array(items) => items
                .iter()
                .filter_map(|r| match r {
                    Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).to_string()),
                    _ => None,
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn docs_name_each_command_once_and_count_agrees() {
        let all = words(&command(&[Bytes::from("DOCS")]));
        let mut listed: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        assert_eq!(all, listed, "DOCS alternates name and docs");
        listed.sort_unstable();
        listed.dedup();
        assert_eq!(listed.len(), COMMANDS.len());
        assert_eq!(
            command(&[Bytes::from("count")]),
            Reply::Int(COMMANDS.len() as i64)
        );
        assert_eq!(
            words(&command(&[
                Bytes::from("docs"),
                Bytes::from("SET"),
                Bytes::from("nope")
            ])),
            ["set"]
        );
    }

    #[test]
    fn info_arity_matches_what_exec_accepts() {
        let Reply::Array(entry) =
            command(&[Bytes::from("info"), Bytes::from("get"), Bytes::from("nope")])
        else {
            panic!()
        };
        assert_eq!(entry[1], Reply::Bulk(None), "an unknown name is nil");
        let Reply::Array(get) = &entry[0] else {
            panic!()
        };
        assert_eq!(get[1], Reply::Int(2));
        assert_eq!(
            (&get[3], &get[4], &get[5]),
            (&Reply::Int(1), &Reply::Int(1), &Reply::Int(1))
        );
    }
}
