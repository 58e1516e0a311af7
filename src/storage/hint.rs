//! Hint files: a compact list of every record of a sealed segment without the values, so start-up
//! rebuilds the keydir without reading segment data.
//!
//! Layout (little-endian): `"SKVHINT1" | segment_len u64 | count u64 | entries | crc32`, each entry
//! `offset u64 | expire_at_ms u64 | pos u32 | value_len u32 | key_len u32 | kind u8 | key`.
//! The crc32 covers everything before it. A hint whose CRC or `segment_len` does not match its
//! segment is ignored and the segment is scanned instead.

use super::error::{IoContext, Result};
use super::record::RecordKind;
use std::path::Path;

const MAGIC: &[u8; 8] = b"SKVHINT1";
const PREFIX: usize = 24;
const ENTRY_FIXED: usize = 29;

/// One hint entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HintEntry<'a> {
    /// Record offset.
    pub offset: u64,
    /// Absolute expiry, 0 = none.
    pub expire_at_ms: u64,
    /// Record position in the segment.
    pub pos: u32,
    /// Value length.
    pub value_len: u32,
    /// Record kind.
    pub kind: RecordKind,
    /// The key.
    pub key: &'a [u8],
}

/// Accumulates the entries of a segment as records are appended, in chunks of [`CHUNK`] bytes
/// that no entry straddles. One growing buffer would copy everything at each doubling, and fault
/// in twice the memory: a full 64 MiB segment of small records holds ~50 MB of entries, and that
/// growth cost a leader ~8 % of its thread in a pipelined benchmark. Chunks are kept, emptied,
/// when the segment rolls, so the next segment reuses them.
#[derive(Debug, Default, Clone)]
pub struct HintBuf {
    chunks: Vec<Vec<u8>>,
    /// The chunk being filled (those after it are empty).
    current: usize,
    count: u64,
}

/// Bytes per chunk (an entry longer than this gets a chunk of its own length).
const CHUNK: usize = 1 << 20;

impl HintBuf {
    /// Adds one entry.
    pub fn push(&mut self, e: &HintEntry<'_>) {
        let len = ENTRY_FIXED + e.key.len();
        let chunk = self.chunk_for(len);
        chunk.extend_from_slice(&e.offset.to_le_bytes());
        chunk.extend_from_slice(&e.expire_at_ms.to_le_bytes());
        chunk.extend_from_slice(&e.pos.to_le_bytes());
        chunk.extend_from_slice(&e.value_len.to_le_bytes());
        chunk.extend_from_slice(&(e.key.len() as u32).to_le_bytes());
        chunk.push(e.kind as u8);
        chunk.extend_from_slice(e.key);
        self.count += 1;
    }

    /// A chunk with room for `len` more bytes: the current one, else the next (kept from an
    /// earlier segment, or new).
    fn chunk_for(&mut self, len: usize) -> &mut Vec<u8> {
        let fits = |c: &Vec<u8>| c.capacity() - c.len() >= len;
        if self.chunks.is_empty() {
            self.chunks.push(Vec::with_capacity(CHUNK.max(len)));
        } else if !fits(&self.chunks[self.current]) {
            self.current += 1;
            if self.current == self.chunks.len() {
                self.chunks.push(Vec::with_capacity(CHUNK.max(len)));
            } else {
                self.chunks[self.current].reserve(len);
            }
        }
        &mut self.chunks[self.current]
    }

    /// The entries, in the order they were pushed.
    pub fn entries(&self) -> impl Iterator<Item = HintEntry<'_>> {
        // Every entry was pushed whole or checked by `read`: none is malformed.
        self.chunks.iter().flat_map(|c| Entries(c).flatten())
    }

    /// How many entries it holds.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Forgets everything (keeping the chunks' memory for the next segment).
    pub fn clear(&mut self) {
        self.chunks.iter_mut().for_each(Vec::clear);
        self.current = 0;
        self.count = 0;
    }

    /// Writes the hint for a segment of `segment_len` bytes to `path` (via a temporary name, so a
    /// crash never leaves half a hint under the real name). `sync` fsyncs it first.
    pub fn write(
        &self,
        path: &Path,
        segment_len: u64,
        sync: bool,
        disk: &super::DiskModel,
    ) -> Result<()> {
        let body: usize = self.chunks.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(PREFIX + body + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&segment_len.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        self.chunks.iter().for_each(|c| out.extend_from_slice(c));
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        super::checkpoint::write_file_atomic(path, &out, sync)?;
        if sync {
            disk.durable_now(path);
        } else {
            disk.created(path);
        }
        Ok(())
    }
}

/// Reads the hint at `path` for a segment now `segment_len` bytes long: its entries, or `None`
/// when the hint is missing, damaged or stale (then the segment must be scanned).
pub fn read(path: &Path, segment_len: u64) -> Result<Option<HintBuf>> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(path),
    };
    let hint = decode(data, segment_len);
    if hint.is_none() {
        tracing::warn!(hint = %path.display(), "ignoring a damaged or stale hint file; scanning its segment");
    }
    Ok(hint)
}

/// A hint file's bytes as its entries, or `None` when they are damaged or stale.
pub(crate) fn decode(mut data: Vec<u8>, segment_len: u64) -> Option<HintBuf> {
    let count = validate(&data, segment_len)?;
    data.truncate(data.len() - 4);
    data.drain(..PREFIX);
    Some(HintBuf {
        chunks: vec![data],
        current: 0,
        count,
    })
}

/// Checks magic, CRC, segment length and the shape of every entry; returns the entry bytes.
fn validate(data: &[u8], segment_len: u64) -> Option<u64> {
    if data.len() < PREFIX + 4 || &data[..8] != MAGIC {
        return None;
    }
    let (body, crc) = data.split_at(data.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let seg_len = u64::from_le_bytes(body[8..16].try_into().ok()?);
    let count = u64::from_le_bytes(body[16..24].try_into().ok()?);
    if seg_len != segment_len {
        return None;
    }
    let mut n = 0u64;
    for e in Entries(&body[PREFIX..]) {
        e?;
        n += 1;
    }
    (n == count).then_some(count)
}

/// Decodes entries one after another; yields `None` (and stops) at a malformed one.
struct Entries<'a>(&'a [u8]);

impl<'a> Iterator for Entries<'a> {
    type Item = Option<HintEntry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let entry = decode_entry(self.0);
        match entry {
            Some((e, len)) => {
                self.0 = &self.0[len..];
                Some(Some(e))
            }
            None => {
                self.0 = &[];
                Some(None)
            }
        }
    }
}

fn decode_entry(b: &[u8]) -> Option<(HintEntry<'_>, usize)> {
    let fixed = b.get(..ENTRY_FIXED)?;
    let key_len = u32::from_le_bytes(fixed[24..28].try_into().ok()?) as usize;
    let key = b.get(ENTRY_FIXED..ENTRY_FIXED + key_len)?;
    let entry = HintEntry {
        offset: u64::from_le_bytes(fixed[0..8].try_into().ok()?),
        expire_at_ms: u64::from_le_bytes(fixed[8..16].try_into().ok()?),
        pos: u32::from_le_bytes(fixed[16..20].try_into().ok()?),
        value_len: u32::from_le_bytes(fixed[20..24].try_into().ok()?),
        kind: RecordKind::from_u8(fixed[28])?,
        key,
    };
    Some((entry, ENTRY_FIXED + key_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: u64, key: &[u8]) -> HintEntry<'_> {
        HintEntry {
            offset,
            expire_at_ms: 9,
            pos: offset as u32 * 10,
            value_len: 3,
            kind: RecordKind::Put,
            key,
        }
    }

    #[test]
    fn round_trips_and_rejects_damage_or_staleness() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.hint");
        let mut h = HintBuf::default();
        h.push(&entry(1, b"a"));
        h.push(&entry(2, b"bb"));
        h.write(&path, 100, false, &super::super::DiskModel::default())
            .expect("write");

        let hints = read(&path, 100).expect("read").expect("a valid hint");
        let seen: Vec<_> = hints
            .entries()
            .map(|e| (e.offset, e.key.to_vec()))
            .collect();
        assert_eq!(seen, vec![(1, b"a".to_vec()), (2, b"bb".to_vec())]);

        assert!(read(&path, 101).expect("read").is_none(), "a stale hint");
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[30] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(read(&path, 100).expect("read").is_none(), "a damaged hint");
        assert!(
            read(&dir.path().join("none.hint"), 0)
                .expect("read")
                .is_none()
        );
    }

    #[test]
    fn entries_across_chunks_come_back_in_order_through_a_file_a_clear_and_a_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.hint");
        // Keys of every length up to 300 bytes (entries end anywhere in a chunk), and one key
        // longer than a chunk.
        let keys: Vec<Vec<u8>> = (0..60_000u64)
            .map(|i| vec![b'a' + (i % 26) as u8; (i % 300) as usize + 1])
            .chain([vec![b'z'; CHUNK + 10]])
            .collect();
        let mut h = HintBuf::default();
        for (i, k) in keys.iter().enumerate() {
            h.push(&entry(i as u64, k));
        }
        assert!(h.chunks.len() > 5, "the entries span chunks");
        let pushed: Vec<(u64, Vec<u8>)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (i as u64, k.clone()))
            .collect();
        let listed = |h: &HintBuf| -> Vec<(u64, Vec<u8>)> {
            h.entries().map(|e| (e.offset, e.key.to_vec())).collect()
        };
        assert_eq!(h.len(), pushed.len() as u64);
        assert_eq!(listed(&h), pushed);

        h.write(&path, 7, false, &super::super::DiskModel::default())
            .expect("write");
        let mut reloaded = read(&path, 7).expect("read").expect("a valid hint");
        assert_eq!(listed(&reloaded), pushed);
        // The active segment's hint is reloaded at start-up, then grows.
        reloaded.push(&entry(99_999, b"after"));
        assert_eq!(listed(&reloaded).last(), Some(&(99_999, b"after".to_vec())));
        assert_eq!(reloaded.len(), pushed.len() as u64 + 1);

        let chunks = h.chunks.len();
        h.clear();
        assert_eq!((h.len(), listed(&h)), (0, Vec::new()));
        h.push(&entry(5, b"next segment"));
        h.push(&entry(6, &keys[keys.len() - 1]));
        assert_eq!(
            listed(&h),
            vec![
                (5, b"next segment".to_vec()),
                (6, keys[keys.len() - 1].clone())
            ]
        );
        assert_eq!(h.chunks.len(), chunks, "the next segment reuses the chunks");
    }
}
