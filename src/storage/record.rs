//! One log record: its on-disk encoding and decoding.
//!
//! The layout (little-endian) is documented once, in the storage module; this file is the code
//! that matches it byte for byte.

use bytes::Bytes;

/// Bytes before the key: crc32 (4) offset (8) leader_epoch (4) timestamp_ms (8)
/// expire_at_ms (8) kind (1) key_len (4) value_len (4).
pub const HEADER_LEN: usize = 41;

const CRC_END: usize = 4;

/// What a record does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// Sets the value (and its absolute expiry, 0 = none).
    Put = 1,
    /// A tombstone: the key is gone.
    Delete = 2,
    /// Sets a new absolute expiry. It carries the value too, so every record describes its key
    /// completely and merge can keep just the latest one.
    Expire = 3,
}

impl RecordKind {
    /// Decodes the kind byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Put),
            2 => Some(Self::Delete),
            3 => Some(Self::Expire),
            _ => None,
        }
    }

    /// A short lower-case name, as the console and logs show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Delete => "delete",
            Self::Expire => "expire",
        }
    }
}

/// A record to be appended by a leader: the store assigns the offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Put, delete or expire.
    pub kind: RecordKind,
    /// The key (never empty).
    pub key: Bytes,
    /// The value (empty for a delete).
    pub value: Bytes,
    /// Absolute expiry in Unix milliseconds, 0 = none.
    pub expire_at_ms: u64,
    /// The leader epoch stamped into the record.
    pub leader_epoch: u32,
    /// Wall-clock time of the write, Unix milliseconds.
    pub timestamp_ms: u64,
}

impl Write {
    /// A put of `value` under `key`, epoch 0, stamped now.
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self {
            kind: RecordKind::Put,
            key: key.into(),
            value: value.into(),
            expire_at_ms: 0,
            leader_epoch: 0,
            timestamp_ms: crate::storage::now_ms(),
        }
    }

    /// A tombstone for `key`, epoch 0, stamped now.
    pub fn delete(key: impl Into<Bytes>) -> Self {
        Self {
            kind: RecordKind::Delete,
            key: key.into(),
            value: Bytes::new(),
            expire_at_ms: 0,
            leader_epoch: 0,
            timestamp_ms: crate::storage::now_ms(),
        }
    }

    /// Sets the absolute expiry.
    pub fn with_expiry(mut self, expire_at_ms: u64) -> Self {
        self.expire_at_ms = expire_at_ms;
        self
    }

    /// Sets the leader epoch.
    pub fn with_epoch(mut self, leader_epoch: u32) -> Self {
        self.leader_epoch = leader_epoch;
        self
    }

    /// Sets the timestamp.
    pub fn with_timestamp(mut self, timestamp_ms: u64) -> Self {
        self.timestamp_ms = timestamp_ms;
        self
    }

    /// Encoded size of this record.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.key.len() + self.value.len()
    }
}

/// The fixed-size part of a decoded record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Position in the replicated log.
    pub offset: u64,
    /// Epoch of the leader that wrote it.
    pub leader_epoch: u32,
    /// Write time, Unix milliseconds.
    pub timestamp_ms: u64,
    /// Absolute expiry, Unix milliseconds, 0 = none.
    pub expire_at_ms: u64,
    /// What the record does.
    pub kind: RecordKind,
    /// Key length in bytes.
    pub key_len: u32,
    /// Value length in bytes.
    pub value_len: u32,
}

impl Header {
    /// Total encoded length of the record this header starts.
    pub fn record_len(&self) -> usize {
        HEADER_LEN + self.key_len as usize + self.value_len as usize
    }
}

/// A record decoded in place from a buffer.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// The fixed fields.
    pub header: Header,
    /// The key bytes.
    pub key: &'a [u8],
    /// The value bytes.
    pub value: &'a [u8],
}

/// Why bytes did not decode as a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ends before the record does (a torn tail, or just a short read).
    Incomplete,
    /// The checksum does not match the bytes.
    BadCrc,
    /// The kind byte is not a known kind.
    BadKind(u8),
    /// The lengths in the header exceed what any valid record may have.
    BadLength,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Incomplete => write!(f, "record is cut short"),
            Self::BadCrc => write!(f, "checksum mismatch"),
            Self::BadKind(k) => write!(f, "unknown record kind {k}"),
            Self::BadLength => write!(f, "impossible key or value length"),
        }
    }
}

/// Appends the encoding of `w` at `offset` to `buf`.
pub fn encode_into(buf: &mut Vec<u8>, offset: u64, w: &Write) {
    let start = buf.len();
    buf.reserve(w.encoded_len());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&w.leader_epoch.to_le_bytes());
    buf.extend_from_slice(&w.timestamp_ms.to_le_bytes());
    buf.extend_from_slice(&w.expire_at_ms.to_le_bytes());
    buf.push(w.kind as u8);
    buf.extend_from_slice(&(w.key.len() as u32).to_le_bytes());
    buf.extend_from_slice(&(w.value.len() as u32).to_le_bytes());
    buf.extend_from_slice(&w.key);
    buf.extend_from_slice(&w.value);
    let crc = crc32fast::hash(&buf[start + CRC_END..]);
    buf[start..start + CRC_END].copy_from_slice(&crc.to_le_bytes());
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decodes the header at the start of `buf` without checking the CRC.
/// `max_record` bounds the lengths (what any store may hold, about 257 MiB); what keeps a
/// corrupt length from costing memory is each caller checking it against the bytes it has (the
/// file's length, a segment's end, a received batch) before it reads that much.
pub fn decode_header(buf: &[u8], max_record: usize) -> Result<Header, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::Incomplete);
    }
    let kind_byte = buf[32];
    let kind = RecordKind::from_u8(kind_byte).ok_or(DecodeError::BadKind(kind_byte))?;
    let header = Header {
        offset: u64_at(buf, 4),
        leader_epoch: u32_at(buf, 12),
        timestamp_ms: u64_at(buf, 16),
        expire_at_ms: u64_at(buf, 24),
        kind,
        key_len: u32_at(buf, 33),
        value_len: u32_at(buf, 37),
    };
    if header.key_len == 0 || header.record_len() > max_record {
        return Err(DecodeError::BadLength);
    }
    Ok(header)
}

/// Decodes and verifies the record at the start of `buf`; returns it and its length.
pub fn decode(buf: &[u8], max_record: usize) -> Result<(RecordRef<'_>, usize), DecodeError> {
    let header = decode_header(buf, max_record)?;
    let len = header.record_len();
    if buf.len() < len {
        return Err(DecodeError::Incomplete);
    }
    let stored = u32_at(buf, 0);
    if crc32fast::hash(&buf[CRC_END..len]) != stored {
        return Err(DecodeError::BadCrc);
    }
    let key_end = HEADER_LEN + header.key_len as usize;
    Ok((
        RecordRef {
            header,
            key: &buf[HEADER_LEN..key_end],
            value: &buf[key_end..len],
        },
        len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_field() {
        let w = Write::put("k", "value")
            .with_expiry(77)
            .with_epoch(3)
            .with_timestamp(1234);
        let mut buf = Vec::new();
        encode_into(&mut buf, 42, &w);
        assert_eq!(buf.len(), w.encoded_len());
        let (r, len) = decode(&buf, 1 << 20).expect("decodes");
        assert_eq!(len, buf.len());
        assert_eq!(r.header.offset, 42);
        assert_eq!(r.header.leader_epoch, 3);
        assert_eq!(r.header.timestamp_ms, 1234);
        assert_eq!(r.header.expire_at_ms, 77);
        assert_eq!(r.header.kind, RecordKind::Put);
        assert_eq!(r.key, b"k");
        assert_eq!(r.value, b"value");
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 1, &Write::put("key", "some value"));
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(
                decode(&bad, 1 << 20).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn every_short_prefix_is_incomplete() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 1, &Write::put("key", "v"));
        for n in 0..buf.len() {
            assert_eq!(
                decode(&buf[..n], 1 << 20).err(),
                Some(DecodeError::Incomplete)
            );
        }
    }
}
