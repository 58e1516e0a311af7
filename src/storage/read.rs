//! The store's read path: key lookups (with lazy expiry and the value cache) and raw records for
//! replication. Readers copy a segment handle out of the lock and read outside it. A key lookup
//! that races with a truncation notices it (offset, key and CRC are checked) and retries; a
//! replication read that races with one may fail, and the fetcher asks again.

use super::cache::Cached;
use super::error::{Result, StorageError};
use super::keydir::Location;
use super::record::{self, HEADER_LEN};
use super::segment::SegFile;
use super::store::{Lookup, READ_CHUNK, RawRecords, Store, expired};
use bytes::Bytes;
use std::sync::Arc;

/// What a read says of a record whose length runs past where it can end.
const RUNS_PAST: &str = "a record runs past the end of its segment";

impl Store {
    /// Looks `key` up now.
    pub fn get(&self, key: &[u8]) -> Result<Lookup> {
        self.get_at(key, super::now_ms())
    }

    /// Looks `key` up as of `now_ms` (expiry is lazy: an expired record reads as `Expired`).
    pub fn get_at(&self, key: &[u8], now_ms: u64) -> Result<Lookup> {
        let max = self.shared.config.max_record_bytes();
        loop {
            let (loc, file) = {
                let mut st = self.shared.state.lock();
                if let Some(c) = st.cache.get(key) {
                    return Ok(if expired(c.expire_at_ms, now_ms) {
                        Lookup::Expired { offset: c.offset }
                    } else {
                        Lookup::Found {
                            value: c.value.clone(),
                            offset: c.offset,
                            expire_at_ms: c.expire_at_ms,
                        }
                    });
                }
                match st.keydir.get(key) {
                    None => return Ok(Lookup::Absent),
                    Some(l) if l.tombstone => return Ok(Lookup::Deleted { offset: l.offset }),
                    Some(l) if expired(l.expire_at_ms, now_ms) => {
                        return Ok(Lookup::Expired { offset: l.offset });
                    }
                    Some(l) => (*l, Arc::clone(&st.by_id[&l.segment])),
                }
            };
            match read_value(&file, &loc, key, max) {
                Ok(value) => {
                    let mut st = self.shared.state.lock();
                    if st.keydir.get(key).is_some_and(|l| l.offset == loc.offset) {
                        st.cache.insert(
                            key,
                            Cached {
                                value: value.clone(),
                                offset: loc.offset,
                                expire_at_ms: loc.expire_at_ms,
                            },
                        );
                    }
                    return Ok(Lookup::Found {
                        value,
                        offset: loc.offset,
                        expire_at_ms: loc.expire_at_ms,
                    });
                }
                Err(e) => {
                    // A truncation or merge may have moved the key while we read: look again.
                    // If nothing moved, the bytes on disk are bad.
                    let st = self.shared.state.lock();
                    if st.keydir.get(key) == Some(&loc) {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Reads raw records starting at the first record at or after `offset`, up to about
    /// `max_bytes` (always at least one whole record), from one segment. `None` when `offset` is at
    /// or past the log end. Each record's CRC is checked before it is handed out.
    pub fn read_from(&self, offset: u64, max_bytes: usize) -> Result<Option<RawRecords>> {
        let max = self.shared.config.max_record_bytes();
        let (file, len, mut pos) = {
            let st = self.shared.state.lock();
            if offset >= st.leo {
                return Ok(None);
            }
            let Some(meta) = st
                .segments
                .values()
                .find(|m| m.last_offset.is_some_and(|l| l >= offset))
            else {
                return Ok(None);
            };
            (Arc::clone(&meta.file), meta.len, meta.index_pos(offset))
        };
        // Skip to the first record at or after `offset`. The last chunk read stays, with where
        // it was read from: near the log end it already holds what the fetch wants.
        let mut chunk: Vec<u8>;
        let mut chunk_pos: u64;
        'skip: loop {
            if pos >= len {
                return Ok(None);
            }
            let want = ((len - pos) as usize).min(READ_CHUNK);
            chunk = vec![0u8; want];
            chunk_pos = pos;
            file.read_at(&mut chunk, pos)?;
            let mut q = 0;
            while q + HEADER_LEN <= chunk.len() {
                let h = record::decode_header(&chunk[q..], max)
                    .map_err(|e| file.corrupt(pos + q as u64, e.to_string()))?;
                if h.offset >= offset {
                    pos += q as u64;
                    break 'skip;
                }
                if pos + (q + h.record_len()) as u64 > len {
                    // Skipping it would leave the segment without finding `offset`, which it
                    // holds: a damaged length, not the end of the log.
                    return Err(file.corrupt(pos + q as u64, RUNS_PAST));
                }
                q += h.record_len();
            }
            pos += q as u64;
        }
        // Collect whole records up to `max_bytes`.
        let mut want = ((len - pos) as usize).min(max_bytes.max(HEADER_LEN));
        let start = (pos - chunk_pos) as usize;
        let mut buf = if start + want <= chunk.len() {
            chunk.truncate(start + want);
            chunk.drain(..start);
            chunk
        } else {
            let mut buf = vec![0u8; want];
            file.read_at(&mut buf, pos)?;
            buf
        };
        let first_len = record::decode_header(&buf, max)
            .map_err(|e| file.corrupt(pos, e.to_string()))?
            .record_len();
        if first_len > want {
            // A length past where the record can end is damage, not a record to read whole.
            if pos + first_len as u64 > self.record_end_bound(&file, pos, len) {
                return Err(file.corrupt(pos, RUNS_PAST));
            }
            want = first_len;
            buf.resize(want, 0);
            file.read_at(&mut buf, pos)?;
        }
        let (mut q, mut count, mut first, mut last) = (0, 0u32, 0, 0);
        while q < buf.len() {
            match record::decode(&buf[q..], max) {
                Ok((r, l)) => {
                    if count == 0 {
                        first = r.header.offset;
                    }
                    last = r.header.offset;
                    count += 1;
                    q += l;
                }
                Err(record::DecodeError::Incomplete) if count > 0 => break,
                Err(e) => return Err(file.corrupt(pos + q as u64, e.to_string())),
            }
        }
        buf.truncate(q);
        Ok(Some(RawRecords {
            bytes: Bytes::from(buf),
            count,
            first_offset: first,
            last_offset: last,
        }))
    }

    /// The furthest a record starting at `pos` in `file` (a segment `len` bytes long) can reach:
    /// the next record start the sparse index sampled (a record longer than the sampling interval
    /// always has its successor sampled), else the segment's end. Bounds what a damaged length
    /// can make a replication read allocate.
    fn record_end_bound(&self, file: &SegFile, pos: u64, len: u64) -> u64 {
        let st = self.shared.state.lock();
        st.segments
            .get(&file.base)
            .filter(|m| std::ptr::eq(Arc::as_ptr(&m.file), file))
            .and_then(|m| {
                let i = m.index.partition_point(|&(_, p)| u64::from(p) <= pos);
                m.index.get(i).map(|&(_, p)| u64::from(p))
            })
            .map_or(len, |next| next.min(len))
    }

    /// Every record below `upto`, as (offset, raw bytes): what replicas compare to prove their logs
    /// identical up to a high watermark.
    pub fn records_below(&self, upto: u64) -> Result<Vec<(u64, Bytes)>> {
        let max = self.shared.config.max_record_bytes();
        let mut out = Vec::new();
        let mut at = 0;
        while at < upto {
            let Some(raw) = self.read_from(at, 1 << 20)? else {
                break;
            };
            let mut p = 0;
            while p < raw.bytes.len() {
                let h = record::decode_header(&raw.bytes[p..], max)
                    .map_err(|e| StorageError::BadBatch(e.to_string()))?;
                if h.offset >= upto {
                    return Ok(out);
                }
                out.push((h.offset, raw.bytes.slice(p..p + h.record_len())));
                at = h.offset + 1;
                p += h.record_len();
            }
        }
        Ok(out)
    }
}

/// Reads and verifies the record at `loc`, returning its value.
pub(super) fn read_value(file: &SegFile, loc: &Location, key: &[u8], max: usize) -> Result<Bytes> {
    let len = HEADER_LEN + key.len() + loc.value_len as usize;
    let mut buf = vec![0u8; len];
    let pos = u64::from(loc.pos);
    file.read_at(&mut buf, pos)
        .map_err(|e| file.corrupt(pos, format!("cannot read the record: {e}")))?;
    let (r, _) = record::decode(&buf, max).map_err(|e| file.corrupt(pos, e.to_string()))?;
    if r.header.offset != loc.offset || r.key != key {
        return Err(file.corrupt(pos, "the record is not the one the keydir expects"));
    }
    let start = HEADER_LEN + key.len();
    Ok(Bytes::from(buf).slice(start..))
}
