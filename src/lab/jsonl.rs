//! Reads and writes histories as JSON Lines, one [`Operation`] per line.
//!
//! Why: histories are recorded by one program (the load generator) and checked
//! by another, sometimes much later, and people read them when a check fails;
//! one JSON object per line is easy to append, grep and diff. The format is the
//! one the design doc fixes:
//!
//! ```text
//! {"client": 3, "op": "set", "key": "k1", "value": "v9", "call_ns": 1200, "return_ns": 3400, "outcome": "ok"}
//! {"client": 5, "op": "get", "key": "k1", "value": null, "call_ns": 3500, "return_ns": 3900, "outcome": "ok"}
//! ```
//!
//! `value` is present on `set` (the value written) and `get` (the value read,
//! `null` when not found) only; `ttl_ms` only on sets that have one. Keys and
//! values are byte strings: UTF-8 ones are ordinary JSON strings, others are
//! written byte by byte as the characters U+0000..U+00FF, bytes from 0x80 up
//! always as `\u00XX` escapes (printable ASCII stays readable). A JSON string
//! cannot say which of the two it is once parsed, so the reader looks at the
//! raw text: a string that contains an escape `\u0080`..`\u00ff` is read as
//! bytes. Our writer never escapes those characters in UTF-8 text, so every
//! line it writes reads back exactly; in hand-written files, write `é`, not
//! `\u00e9`, for the UTF-8 character. The reader is strict about the fields it
//! knows (a misspelt field shows up as a missing one) and ignores others.

use std::io::{BufRead, Write};

use bytes::Bytes;
use serde_json::{Map, Value};

use super::linearizable::{Kind, Operation, Outcome};

/// Formats one operation as a history line (no trailing newline), for recorders and tests.
pub fn write_line(op: &Operation) -> String {
    let mut line = format!(
        "{{\"client\": {}, \"op\": \"{}\", \"key\": ",
        op.client,
        kind_name(op.kind)
    );
    push_bytes(&mut line, &op.key);
    if matches!(op.kind, Kind::Set | Kind::Get) {
        line.push_str(", \"value\": ");
        match &op.value {
            Some(value) => push_bytes(&mut line, value),
            None => line.push_str("null"),
        }
    }
    if let (Kind::Set, Some(ttl)) = (op.kind, op.ttl_ms) {
        line.push_str(&format!(", \"ttl_ms\": {ttl}"));
    }
    let outcome = match op.outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Unknown => "unknown",
    };
    line.push_str(&format!(
        ", \"call_ns\": {}, \"return_ns\": {}, \"outcome\": \"{outcome}\"}}",
        op.call_ns, op.return_ns
    ));
    line
}

/// Writes a whole history, one line per operation, each ending in a newline.
pub fn write_all(ops: &[Operation], w: &mut impl Write) -> std::io::Result<()> {
    for op in ops {
        writeln!(w, "{}", write_line(op))?;
    }
    Ok(())
}

/// Parses one history line; the error says what is wrong, in one line.
pub fn read_line(line: &str) -> Result<Operation, String> {
    let parsed: Value = serde_json::from_str(line).map_err(|e| {
        let text = e.to_string();
        let what = text.split(" at line ").next().unwrap_or(&text);
        format!("not valid JSON: {what} at column {}", e.column())
    })?;
    let Value::Object(fields) = parsed else {
        return Err(format!(
            "expected a JSON object, found {}",
            describe(&parsed)
        ));
    };
    // Only lines with a byte escape need the raw text of their strings.
    let raw = has_byte_escape(line).then(|| RawStrings::of(line));
    let op = match text_field(&fields, "op")? {
        "set" => Kind::Set,
        "get" => Kind::Get,
        "del" => Kind::Del,
        "expire" => Kind::Expire,
        other => {
            return Err(format!(
                "unknown op {other:?} (expected set, get, del or expire)"
            ));
        }
    };
    let outcome = match text_field(&fields, "outcome")? {
        "ok" => Outcome::Ok,
        "fail" => Outcome::Fail,
        "unknown" => Outcome::Unknown,
        other => {
            return Err(format!(
                "unknown outcome {other:?} (expected ok, fail or unknown)"
            ));
        }
    };
    let client = number_field(&fields, "client")?;
    let client = u32::try_from(client)
        .map_err(|_| format!("\"client\" {client} does not fit in 32 bits"))?;
    let key = bytes_field(&fields, raw.as_ref(), "key")?;
    let value = match (op, fields.get("value")) {
        (Kind::Set, Some(Value::String(_))) | (Kind::Get, Some(Value::String(_))) => {
            Some(bytes_field(&fields, raw.as_ref(), "value")?)
        }
        (Kind::Get, Some(Value::Null)) => None,
        (Kind::Set, _) => return Err("a set needs \"value\": the string written".into()),
        (Kind::Get, _) => {
            return Err("a get needs \"value\": the string read, or null when not found".into());
        }
        (_, None) => None,
        (_, Some(_)) => return Err("\"value\" is only allowed on set and get".into()),
    };
    let ttl_ms = match (op, fields.contains_key("ttl_ms")) {
        (_, false) => None,
        (Kind::Set, true) => Some(number_field(&fields, "ttl_ms")?),
        (_, true) => return Err("\"ttl_ms\" is only allowed on set".into()),
    };
    let call_ns = number_field(&fields, "call_ns")?;
    let return_ns = number_field(&fields, "return_ns")?;
    if return_ns < call_ns {
        return Err(format!(
            "\"return_ns\" {return_ns} is before \"call_ns\" {call_ns}"
        ));
    }
    Ok(Operation {
        client,
        kind: op,
        key,
        value,
        ttl_ms,
        call_ns,
        return_ns,
        outcome,
    })
}

/// Parses a whole history; blank lines are skipped, and the first bad line stops it with its number.
pub fn read_all(r: impl BufRead) -> Result<Vec<Operation>, String> {
    let mut ops = Vec::new();
    for (index, line) in r.lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| format!("line {number}: cannot read: {e}"))?;
        if !line.trim().is_empty() {
            ops.push(read_line(&line).map_err(|e| format!("line {number}: {e}"))?);
        }
    }
    Ok(ops)
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Set => "set",
        Kind::Get => "get",
        Kind::Del => "del",
        Kind::Expire => "expire",
    }
}

/// Appends `bytes` as a JSON string: plain JSON for UTF-8, byte escapes otherwise.
fn push_bytes(out: &mut String, bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        out.push_str(&Value::from(text).to_string());
        return;
    }
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..0x7f => out.push(char::from(b)),
            _ => out.push_str(&format!("\\u{b:04x}")),
        }
    }
    out.push('"');
}

fn field<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a Value, String> {
    fields
        .get(name)
        .ok_or_else(|| format!("missing field {name:?}"))
}

fn text_field<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match field(fields, name)? {
        Value::String(text) => Ok(text),
        other => Err(format!(
            "field {name:?} must be a string, found {}",
            describe(other)
        )),
    }
}

/// String field `name` as bytes, decoding byte escapes when the line has some.
fn bytes_field(
    fields: &Map<String, Value>,
    raw: Option<&RawStrings>,
    name: &str,
) -> Result<Bytes, String> {
    let text = text_field(fields, name)?;
    match raw {
        Some(raw) => raw.bytes(name),
        None => Ok(Bytes::copy_from_slice(text.as_bytes())),
    }
}

fn number_field(fields: &Map<String, Value>, name: &str) -> Result<u64, String> {
    let value = field(fields, name)?;
    value.as_u64().ok_or_else(|| {
        format!(
            "field {name:?} must be a non-negative integer, found {}",
            describe(value)
        )
    })
}

/// A value as an error message shows it: short JSON text.
fn describe(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The raw text of the top-level string fields of a line that is valid JSON,
/// needed to tell byte escapes from characters (see the module doc).
struct RawStrings<'a> {
    fields: Vec<(String, &'a str)>,
}

impl<'a> RawStrings<'a> {
    fn of(line: &'a str) -> Self {
        let bytes = line.as_bytes();
        let mut fields = Vec::new();
        let (mut depth, mut i) = (0usize, 0);
        let (mut name, mut expect_value) = (None::<String>, false);
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    let start = i;
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    let token = line.get(start..=i).unwrap_or_default();
                    if depth == 1 && expect_value {
                        fields.extend(name.take().map(|n| (n, token)));
                    } else if depth == 1 {
                        name = serde_json::from_str(token).ok();
                    }
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth = depth.saturating_sub(1),
                b':' if depth == 1 => expect_value = true,
                b',' if depth == 1 => expect_value = false,
                _ => {}
            }
            i += 1;
        }
        RawStrings { fields }
    }

    /// The bytes of string field `name` (the last one, as serde_json keeps the last duplicate).
    fn bytes(&self, name: &str) -> Result<Bytes, String> {
        let raw = self
            .fields
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, raw)| *raw);
        let raw = raw.ok_or_else(|| format!("field {name:?} must be a string"))?;
        let text: String = serde_json::from_str(raw).map_err(|e| format!("field {name:?}: {e}"))?;
        if !has_byte_escape(raw) {
            return Ok(Bytes::from(text.into_bytes()));
        }
        text.chars()
            .map(|c| u8::try_from(c).map_err(|_| {
                format!("field {name:?} mixes byte escapes (\\u0080..\\u00ff) with the character {c:?}")
            }))
            .collect::<Result<Vec<u8>, String>>()
            .map(Bytes::from)
    }
}

/// Does this raw JSON string contain an escape `\u0080`..`\u00ff`?
fn has_byte_escape(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let hex = bytes.get(i + 2..i + 6).unwrap_or_default();
            if bytes.get(i + 1) == Some(&b'u')
                && hex.len() == 4
                && hex[..2] == *b"00"
                && matches!(hex[2], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
            {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Operation> {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let op = |client, kind, value: Option<&str>, outcome| Operation {
            client,
            kind,
            key: b("k1"),
            value: value.map(b),
            ttl_ms: None,
            call_ns: 1200,
            return_ns: 3400,
            outcome,
        };
        let mut with_ttl = op(7, Kind::Set, Some("v"), Outcome::Unknown);
        with_ttl.ttl_ms = Some(1500);
        vec![
            op(3, Kind::Set, Some("v9"), Outcome::Ok),
            op(5, Kind::Get, None, Outcome::Ok),
            op(
                5,
                Kind::Get,
                Some("a \"quoted\"\n\\u00e9 é ☃"),
                Outcome::Fail,
            ),
            op(u32::MAX, Kind::Del, None, Outcome::Ok),
            op(0, Kind::Expire, None, Outcome::Unknown),
            with_ttl,
        ]
    }

    #[test]
    fn writes_the_documented_format() {
        let ops = sample();
        let doc = r#"{"client": 3, "op": "set", "key": "k1", "value": "v9", "call_ns": 1200, "return_ns": 3400, "outcome": "ok"}"#;
        assert_eq!(write_line(&ops[0]), doc);
        assert!(
            write_line(&ops[1]).contains(r#""op": "get", "key": "k1", "value": null, "call_ns""#)
        );
        assert!(!write_line(&ops[3]).contains("value"));
        assert!(write_line(&ops[5]).contains(r#""value": "v", "ttl_ms": 1500, "call_ns""#));
    }

    #[test]
    fn round_trips() {
        let ops = sample();
        let mut file = Vec::new();
        write_all(&ops, &mut file).expect("writing to memory");
        assert_eq!(file.iter().filter(|&&b| b == b'\n').count(), ops.len());
        assert_eq!(read_all(&file[..]), Ok(ops));
    }

    #[test]
    fn non_utf8_bytes_round_trip_as_byte_escapes() {
        let mut op = sample()[0].clone();
        op.key = Bytes::from_static(b"k\xff\x00\"\\\xc3");
        op.value = Some(Bytes::from_static(b"\xe9t\xe9"));
        let line = write_line(&op);
        assert!(
            line.contains(r#""key": "k\u00ff\u0000\"\\\u00c3""#),
            "{line}"
        );
        assert!(line.contains(r#""value": "\u00e9t\u00e9""#), "{line}");
        assert_eq!(read_line(&line), Ok(op.clone()));
        // The same characters written plainly are UTF-8 text, not bytes.
        let plain = line.replace(r"\u00e9", "é");
        assert_eq!(
            read_line(&plain).map(|o| o.value),
            Ok(Some(Bytes::from("ét\u{e9}")))
        );
    }

    #[test]
    fn malformed_lines_give_clear_errors() {
        let good = write_line(&sample()[0]);
        let cases = [
            (good[..20].to_string(), "not valid JSON: EOF while parsing"),
            ("[1, 2]".to_string(), "expected a JSON object, found [1,2]"),
            (
                good.replace(r#""client": 3, "#, ""),
                "missing field \"client\"",
            ),
            (
                good.replace("\"set\"", "\"put\""),
                "unknown op \"put\" (expected set, get, del or expire)",
            ),
            (
                good.replace("\"ok\"", "\"maybe\""),
                "unknown outcome \"maybe\"",
            ),
            (
                good.replace("\"ok\"", "1"),
                "field \"outcome\" must be a string, found 1",
            ),
            (
                good.replace("3400", "-4"),
                "field \"return_ns\" must be a non-negative integer, found -4",
            ),
            (
                good.replace("3400", "1000"),
                "\"return_ns\" 1000 is before \"call_ns\" 1200",
            ),
            (
                good.replace(r#""value": "v9", "#, ""),
                "a set needs \"value\"",
            ),
            (
                good.replace("\"set\"", "\"del\""),
                "\"value\" is only allowed on set and get",
            ),
            (
                good.replace("\"k1\"", "\"\\u00ff\\u2603\""),
                "mixes byte escapes",
            ),
            (
                good.replace(": 3,", ": 4294967296,"),
                "\"client\" 4294967296 does not fit in 32 bits",
            ),
        ];
        for (line, expected) in cases {
            let error = read_line(&line).expect_err(&line);
            assert!(
                error.contains(expected),
                "{line}\n gave {error}\n expected {expected}"
            );
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn read_all_names_the_bad_line() {
        let good = write_line(&sample()[0]);
        let file = format!("{good}\n\n{good}\n{{\"client\": 1}}\n");
        let error = read_all(file.as_bytes()).expect_err("line 4 is bad");
        assert_eq!(error, "line 4: missing field \"op\"");
        let error = read_all(&b"{\"a\" 1}\n"[..]).expect_err("bad JSON");
        assert_eq!(error, "line 1: not valid JSON: expected `:` at column 6");
        let error = read_all(&b"\xff\n"[..]).expect_err("not UTF-8");
        assert!(error.starts_with("line 1: cannot read: "), "{error}");
    }
}
