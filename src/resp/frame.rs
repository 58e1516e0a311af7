//! RESP2 framing: requests in (arrays of bulk strings, or an inline line as `telnet` sends),
//! replies out. Requests are cut out of the connection's read buffer without copying (each
//! argument is a `Bytes` view of it). Only this much of RESP is needed on the server side, so it
//! is written here rather than taking a general frame tree per command from a crate.

use bytes::{Buf, Bytes, BytesMut};

/// Bounds on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most arguments in one command.
    pub max_args: usize,
    /// Longest single argument (a key or value), bytes.
    pub max_bulk: usize,
    /// Longest inline command line, bytes.
    pub max_inline: usize,
    /// Most bytes one whole command may take on the wire.
    pub max_command: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_args: 1 << 20,
            max_bulk: 64 << 20,
            max_inline: 64 << 10,
            max_command: 80 << 20,
        }
    }
}

/// A request the connection cannot go on from (Redis closes it after saying why).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

/// Cuts the next whole command off the front of `buf`: its arguments, or `None` if more bytes are
/// needed. Nothing is consumed until a whole command is there.
pub fn next_command(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    loop {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        if first != b'*' {
            return inline(buf, limits);
        }
        let Some((count, mut pos)) = line_number(buf, 1, limits.max_inline)? else {
            return Ok(None);
        };
        if count <= 0 {
            // `*0` or `*-1`: an empty request, skipped as Redis does.
            buf.advance(pos);
            continue;
        }
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if count > limits.max_args {
            return Err(ProtocolError(format!(
                "invalid multibulk length {count} (at most {})",
                limits.max_args
            )));
        }
        // First find where every argument lies; cut only once all of them are in.
        let mut spans = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            match buf.get(pos) {
                None => return Ok(None),
                Some(b'$') => {}
                Some(&c) => {
                    return Err(ProtocolError(format!(
                        "expected '$', got '{}'",
                        char::from(c).escape_default()
                    )));
                }
            }
            let Some((len, start)) = line_number(buf, pos + 1, limits.max_inline)? else {
                return Ok(None);
            };
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= limits.max_bulk)
                .ok_or_else(|| {
                    ProtocolError(format!(
                        "invalid bulk length {len} (at most {} bytes)",
                        limits.max_bulk
                    ))
                })?;
            let end = start + len;
            if end + 2 > limits.max_command {
                return Err(ProtocolError(format!(
                    "the command is longer than {} bytes",
                    limits.max_command
                )));
            }
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError("a bulk string does not end in CRLF".into()));
            }
            spans.push((start, end));
            pos = end + 2;
        }
        let frame = buf.split_to(pos).freeze();
        return Ok(Some(
            spans.into_iter().map(|(s, e)| frame.slice(s..e)).collect(),
        ));
    }
}

/// Reads `<digits>\r\n` at `at`: the number and where the next byte starts.
fn line_number(buf: &[u8], at: usize, max: usize) -> Result<Option<(i64, usize)>, ProtocolError> {
    let rest = buf.get(at..).unwrap_or_default();
    let Some(nl) = rest.iter().take(max.min(32)).position(|&b| b == b'\n') else {
        if rest.len() >= max.min(32) {
            return Err(ProtocolError("a length line is too long".into()));
        }
        return Ok(None);
    };
    let line = rest[..nl].strip_suffix(b"\r").unwrap_or(&rest[..nl]);
    let n = std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| ProtocolError("invalid length".into()))?;
    Ok(Some((n, at + nl + 1)))
}

/// An inline command: one line of words separated by spaces.
fn inline(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = buf.iter().take(limits.max_inline).position(|&b| b == b'\n') else {
        if buf.len() >= limits.max_inline {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(None);
    };
    let line = buf.split_to(nl + 1).freeze();
    let text = line.slice(..nl);
    let text = text
        .strip_suffix(b"\r")
        .map_or(text.clone(), |t| text.slice(..t.len()));
    let mut args = Vec::new();
    let mut start = None;
    for (i, &b) in text.iter().enumerate() {
        match (b == b' ' || b == b'\t', start) {
            (true, Some(s)) => {
                args.push(text.slice(s..i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        args.push(text.slice(s..));
    }
    Ok(Some(args))
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`-style status.
    Status(&'static str),
    /// `-ERR ...`: the whole line after the dash (it starts with the error's code word).
    Error(String),
    /// `:n`
    Int(i64),
    /// `$len` and the bytes, or `$-1` for none.
    Bulk(Option<Bytes>),
    /// `*n` and the elements.
    Array(Vec<Reply>),
}

impl Reply {
    /// An `-ERR` reply.
    pub fn err(msg: impl std::fmt::Display) -> Self {
        Reply::Error(format!("ERR {msg}"))
    }

    /// Appends the reply's wire form to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Reply::Status(s) => {
                out.extend_from_slice(b"+");
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Error(e) => {
                out.extend_from_slice(b"-");
                // A reply line cannot hold a line break.
                for b in e.bytes() {
                    out.extend_from_slice(&[if b == b'\r' || b == b'\n' { b' ' } else { b }]);
                }
                out.extend_from_slice(b"\r\n");
            }
            Reply::Int(n) => {
                out.extend_from_slice(format!(":{n}\r\n").as_bytes());
            }
            Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
            Reply::Bulk(Some(b)) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for i in items {
                    i.encode(out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], limits: &Limits) -> (Vec<Vec<Bytes>>, BytesMut) {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(cmd) = next_command(&mut buf, limits).expect("valid") {
            out.push(cmd);
        }
        (out, buf)
    }

    #[test]
    fn pipelined_commands_come_out_whole_and_in_order() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhe\r\no\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPI";
        let (cmds, rest) = parse_all(input, &Limits::default());
        assert_eq!(
            cmds,
            vec![
                vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("he\r\no")],
                vec![Bytes::from("GET"), Bytes::from("k")],
            ]
        );
        assert_eq!(&rest[..], b"*1\r\n$4\r\nPI", "a half-sent command waits");
    }

    #[test]
    fn every_split_of_a_command_waits_then_parses_the_same() {
        let input = b"*2\r\n$4\r\nECHO\r\n$11\r\nhello world\r\n";
        for cut in 0..input.len() {
            let mut buf = BytesMut::from(&input[..cut]);
            assert_eq!(
                next_command(&mut buf, &Limits::default()),
                Ok(None),
                "cut at {cut}"
            );
            buf.extend_from_slice(&input[cut..]);
            let cmd = next_command(&mut buf, &Limits::default()).expect("valid");
            assert_eq!(cmd.map(|c| c.len()), Some(2));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn inline_commands_split_on_spaces() {
        let (cmds, rest) = parse_all(b"set  a 1\r\nping\n", &Limits::default());
        assert_eq!(
            cmds,
            vec![
                vec![Bytes::from("set"), Bytes::from("a"), Bytes::from("1")],
                vec![Bytes::from("ping")]
            ]
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn oversized_or_malformed_requests_are_refused_before_buffering() {
        let limits = Limits {
            max_args: 4,
            max_bulk: 10,
            max_inline: 16,
            max_command: 40,
        };
        let bad: &[(&[u8], &str)] = &[
            (b"*1\r\n$1073741824\r\n", "invalid bulk length"),
            (b"*5\r\n", "invalid multibulk length"),
            (b"*1\r\n:1\r\n", "expected '$'"),
            (b"*x\r\n", "invalid length"),
            (b"*1\r\n$1\r\nab\r\n", "CRLF"),
            (
                b"*3\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n$10\r\n",
                "longer than 40 bytes",
            ),
            (b"aaaaaaaaaaaaaaaaaaaaaaaa", "too big inline"),
        ];
        for (input, why) in bad {
            let mut buf = BytesMut::from(*input);
            let e = next_command(&mut buf, &limits).expect_err("refused");
            assert!(e.0.contains(why), "{input:?}: {e}");
        }
    }

    #[test]
    fn replies_encode_as_redis_writes_them() {
        let mut out = BytesMut::new();
        Reply::Array(vec![
            Reply::Status("OK"),
            Reply::Int(-2),
            Reply::Bulk(None),
            Reply::Bulk(Some(Bytes::from("v"))),
            Reply::err("bad\r\nthing"),
        ])
        .encode(&mut out);
        assert_eq!(
            &out[..],
            b"*5\r\n+OK\r\n:-2\r\n$-1\r\n$1\r\nv\r\n-ERR bad  thing\r\n"
        );
    }
}
