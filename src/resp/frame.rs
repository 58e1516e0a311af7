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

/// Cuts the next whole command off the front of `buf` with a fresh [`Parser`].
pub fn next_command(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    Parser::new(*limits).next(buf)
}

/// Cuts commands off a connection's read buffer. A multibulk command that has not fully arrived
/// is remembered as far as it was read, so each new piece is looked at once (a command of a
/// million arguments sent a packet at a time costs its length, not its length squared).
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    partial: Option<Partial>,
    /// Argument headers read, counting re-reads (tests check a command is read once).
    #[cfg(test)]
    headers_read: usize,
}

/// How far into an incomplete multibulk command the parser has got.
#[derive(Debug)]
struct Partial {
    count: usize,
    /// Where the next argument's `$` is expected.
    pos: usize,
    /// Where each argument read so far lies.
    spans: Vec<(usize, usize)>,
}

impl Parser {
    /// A parser with these limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            partial: None,
            #[cfg(test)]
            headers_read: 0,
        }
    }

    /// Cuts the next whole command off the front of `buf`: its arguments, or `None` if more
    /// bytes are needed. Nothing is consumed until a whole command is there; `buf` must only
    /// grow at its end between calls.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let limits = self.limits;
        loop {
            let mut p = match self.partial.take() {
                Some(p) => p,
                None => {
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    if first != b'*' {
                        match inline(buf, &limits)? {
                            // An empty line is skipped, as Redis does.
                            Some(args) if args.is_empty() => continue,
                            other => return Ok(other),
                        }
                    }
                    let Some((count, pos)) = line_number(buf, 1, limits.max_inline)? else {
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
                    Partial {
                        count,
                        pos,
                        spans: Vec::with_capacity(count.min(1024)),
                    }
                }
            };
            // Find where every argument lies; cut only once all of them are in.
            while p.spans.len() < p.count {
                #[cfg(test)]
                {
                    self.headers_read += 1;
                }
                match next_bulk(buf, p.pos, &limits)? {
                    Some((span, next)) => {
                        p.spans.push(span);
                        p.pos = next;
                    }
                    None => {
                        self.partial = Some(p);
                        return Ok(None);
                    }
                }
            }
            let frame = buf.split_to(p.pos).freeze();
            return Ok(Some(
                p.spans
                    .into_iter()
                    .map(|(s, e)| frame.slice(s..e))
                    .collect(),
            ));
        }
    }
}

/// A bulk string found in the buffer: where its bytes lie, and where what follows starts.
type Bulk = ((usize, usize), usize);

/// The bulk string at `pos`: where its bytes lie and where the next thing starts, or `None` if
/// it has not all arrived.
fn next_bulk(buf: &[u8], pos: usize, limits: &Limits) -> Result<Option<Bulk>, ProtocolError> {
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
    Ok(Some(((start, end), end + 2)))
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
    // As Redis reads them: CRLF-terminated, digits only, no sign but a leading '-', no leading
    // zeros, no "-0".
    let Some(line) = rest[..nl].strip_suffix(b"\r") else {
        return Err(ProtocolError("a length line does not end in CRLF".into()));
    };
    let (negative, digits) = match line.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, line),
    };
    let canonical = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits == b"0" || digits[0] != b'0')
        && !(negative && digits == b"0");
    let n = std::str::from_utf8(line)
        .ok()
        .filter(|_| canonical)
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
    let text = &line[..nl];
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    split_args(text).map(Some)
}

/// Splits an inline command line into words as `redis-cli` and Redis do: spaces separate words,
/// `"..."` may hold spaces and the escapes `\n \r \t \b \a \\ \" \xHH`, `'...'` may hold
/// spaces and `\'`. A closing quote must end its word.
fn split_args(text: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let unbalanced = || ProtocolError("unbalanced quotes in request".into());
    // Redis reads the line as a C string: it ends at a NUL.
    let text = &text[..text.iter().position(|&b| b == 0).unwrap_or(text.len())];
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < text.len() && text[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == text.len() {
            return Ok(args);
        }
        let mut word = Vec::new();
        let mut quote = None;
        loop {
            let Some(&c) = text.get(i) else {
                if quote.is_some() {
                    return Err(unbalanced());
                }
                break;
            };
            match quote {
                None if c.is_ascii_whitespace() => break,
                // A quote opens mid-word too: a"b" is ab, as Redis reads it.
                None if c == b'"' || c == b'\'' => {
                    quote = Some(c);
                }
                None => word.push(c),
                Some(q) if c == q => {
                    i += 1;
                    if text.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                        return Err(unbalanced());
                    }
                    break;
                }
                Some(b'"') if c == b'\\' && i + 1 < text.len() => {
                    i += 1;
                    let hex = |b: u8| char::from(b).to_digit(16);
                    match text[i] {
                        b'x' if i + 2 < text.len()
                            && hex(text[i + 1]).is_some()
                            && hex(text[i + 2]).is_some() =>
                        {
                            let v =
                                hex(text[i + 1]).unwrap_or(0) * 16 + hex(text[i + 2]).unwrap_or(0);
                            word.push(v as u8);
                            i += 2;
                        }
                        b'n' => word.push(b'\n'),
                        b'r' => word.push(b'\r'),
                        b't' => word.push(b'\t'),
                        b'b' => word.push(8),
                        b'a' => word.push(7),
                        other => word.push(other),
                    }
                }
                Some(b'\'') if c == b'\\' && text.get(i + 1) == Some(&b'\'') => {
                    i += 1;
                    word.push(b'\'');
                }
                Some(_) => word.push(c),
            }
            i += 1;
        }
        args.push(Bytes::from(word));
    }
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
    fn inline_words_may_be_quoted_as_redis_cli_quotes_them() {
        let words = |line: &str| {
            let mut buf = BytesMut::from(format!("{line}\r\n").as_bytes());
            next_command(&mut buf, &Limits::default())
        };
        let ok = |line: &str| -> Vec<String> {
            words(line)
                .expect("valid")
                .expect("whole")
                .iter()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .collect()
        };
        assert_eq!(ok(r#"SET k "hello world""#), ["SET", "k", "hello world"]);
        assert_eq!(ok(r#"SET "" 'it\'s'"#), ["SET", "", "it's"]);
        assert_eq!(ok(r#"ECHO "a\tb\x41\"""#), ["ECHO", "a\tbA\""]);
        assert_eq!(ok(r#"ECHO a"b""#), ["ECHO", "ab"], "a quote opens mid-word");
        assert_eq!(ok("ECHO a\0b c"), ["ECHO", "a"], "the line ends at a NUL");
        for bad in [r#"SET k "unbalanced"#, r#"SET k "a"b"#, "SET k 'x"] {
            let e = words(bad).expect_err(bad);
            assert!(e.0.contains("unbalanced quotes"), "{bad}: {e}");
        }
    }

    #[test]
    fn empty_lines_are_skipped_and_lengths_are_plain_digits() {
        let (cmds, rest) = parse_all(b"\r\n\r\nPING\r\n", &Limits::default());
        assert_eq!(cmds, vec![vec![Bytes::from("PING")]]);
        assert!(rest.is_empty());
        let bad: [&[u8]; 5] = [
            b"*1\r\n$+4\r\nPING\r\n",
            b"*1\r\n$04\r\nPING\r\n",
            b"*01\r\n",
            b"*-0\r\n",
            b"*1\r\n$-0\r\n",
        ];
        for bad in bad {
            let mut buf = BytesMut::from(bad);
            let e = next_command(&mut buf, &Limits::default()).expect_err("refused");
            assert!(e.0.contains("invalid length"), "{bad:?}: {e}");
        }
        let mut bare = BytesMut::from(&b"*1\n$4\nPING\n"[..]);
        let e = next_command(&mut bare, &Limits::default()).expect_err("refused");
        assert!(e.0.contains("CRLF"), "{e}");
    }

    #[test]
    fn a_command_arriving_in_pieces_is_read_once_and_parses_the_same() {
        let n = 20_000;
        let mut input = format!("*{}\r\n$4\r\nECHO\r\n", n + 1).into_bytes();
        for _ in 0..n {
            input.extend_from_slice(b"$1\r\nx\r\n");
        }
        let mut parser = Parser::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut seen = 0;
        for piece in input.chunks(1400) {
            buf.extend_from_slice(piece);
            match parser.next(&mut buf).expect("valid") {
                None => {
                    let p = parser.partial.as_ref().expect("remembered");
                    assert!(p.spans.len() >= seen, "progress is kept between pieces");
                    seen = p.spans.len();
                }
                Some(args) => {
                    assert_eq!(args.len(), n + 1);
                    assert!(buf.is_empty());
                    // Each header read once (plus one retry per piece that cut one in two).
                    let pieces = input.len().div_ceil(1400);
                    assert!(
                        parser.headers_read <= n + 1 + pieces,
                        "{} headers read for {} arguments",
                        parser.headers_read,
                        n + 1
                    );
                    return;
                }
            }
        }
        panic!("the command never completed");
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
