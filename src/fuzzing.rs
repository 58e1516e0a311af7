//! The bodies of the fuzz targets (`fuzz/`, run by `make fuzz`), one per decoder of outside
//! input. Each takes any bytes, must not panic, and checks what must hold of what it accepted.
//! The suite replays every saved corpus input through them (`tests/storage/fuzz_corpus.rs`), so
//! an input that once broke a decoder keeps being tried without a fuzzer.

use crate::storage::Write;
use crate::storage::hint;
use crate::storage::record::{self, HEADER_LEN};
use bytes::BytesMut;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The fuzz targets by name (the `fuzz/fuzz_targets/*.rs` files and corpus directories).
pub const TARGETS: [(&str, Target); 5] = [
    ("record", record),
    ("hint", hint),
    ("command", command),
    ("scenario", scenario),
    ("resp", resp),
];

/// A log's records, decoded one after another as recovery and a follower read them: each one
/// accepted re-encodes to exactly its bytes.
pub fn record(data: &[u8]) {
    // The bound recovery and followers use: what any store may be configured to hold.
    let max_record = crate::storage::StoreConfig::default().max_record_bytes();
    let mut at = 0;
    while at < data.len() {
        let Ok((r, len)) = record::decode(&data[at..], max_record) else {
            return;
        };
        assert!(len >= HEADER_LEN && at + len <= data.len());
        let w = Write {
            kind: r.header.kind,
            key: bytes::Bytes::copy_from_slice(r.key),
            value: bytes::Bytes::copy_from_slice(r.value),
            expire_at_ms: r.header.expire_at_ms,
            leader_epoch: r.header.leader_epoch,
            timestamp_ms: r.header.timestamp_ms,
        };
        let mut again = Vec::new();
        record::encode_into(&mut again, r.header.offset, &w);
        assert_eq!(
            again,
            &data[at..at + len],
            "a decoded record re-encodes as read"
        );
        at += len;
    }
}

/// A hint file, for a segment of the length it names (so whole files get past that check):
/// accepted only whole, and then every entry it counts can be read.
pub fn hint(data: &[u8]) {
    let segment_len = data
        .get(8..16)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    if let Some(h) = hint::decode(data.to_vec(), segment_len) {
        assert_eq!(
            h.entries().count() as u64,
            h.len(),
            "every counted entry reads"
        );
    }
}

/// A line of the command language (the shell, `cli`, scenarios).
pub fn command(data: &[u8]) {
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = crate::command::parse(line);
    }
}

/// A scenario file.
pub fn scenario(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::lab::scenario::Scenario::parse("fuzz.yaml", text);
    }
}

/// A RESP connection's bytes, with small limits: read whole or a byte at a time, the commands
/// (and the error that ends them, if any) are the same.
pub fn resp(data: &[u8]) {
    let limits = crate::resp::Limits {
        max_args: 64,
        max_bulk: 1024,
        max_inline: 1024,
        max_command: 4096,
    };
    let whole = {
        let mut buf = BytesMut::from(data);
        commands(&mut crate::resp::Parser::new(limits), &mut buf)
    };
    let trickled = {
        let mut parser = crate::resp::Parser::new(limits);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in data {
            buf.extend_from_slice(&[b]);
            let (cmds, err) = commands(&mut parser, &mut buf);
            got.extend(cmds);
            if err.is_some() {
                return assert_eq!(whole, (got, err), "whole and trickled differ");
            }
        }
        (got, None)
    };
    assert_eq!(whole, trickled, "whole and trickled differ");
}

type Parsed = (Vec<Vec<bytes::Bytes>>, Option<crate::resp::ProtocolError>);

fn commands(parser: &mut crate::resp::Parser, buf: &mut BytesMut) -> Parsed {
    let mut out = Vec::new();
    loop {
        match parser.next(buf) {
            Ok(Some(cmd)) => out.push(cmd),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}
