//! Segment files: naming, the open file handle shared with readers, and a sequential scanner.

use super::error::{IoContext, Result, StorageError};
use super::record::{self, DecodeError, HEADER_LEN, RecordRef};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Suffix of segment files.
pub const LOG_SUFFIX: &str = ".log";
/// Suffix of hint files.
pub const HINT_SUFFIX: &str = ".hint";

/// `<dir>/<base, 20 digits>.log`
pub fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{LOG_SUFFIX}"))
}

/// `<dir>/<base, 20 digits>.hint`
pub fn hint_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{HINT_SUFFIX}"))
}

/// The base offset named by a segment file name, if it is one.
pub fn parse_log_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(LOG_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// An open segment file. Readers hold an `Arc` to it, so a file that merge or truncation unlinks
/// stays readable for reads already under way. The active segment is written with positioned
/// writes into space preallocated in chunks of written zeros (see the store).
#[derive(Debug)]
pub struct SegFile {
    /// In-memory id (what the keydir stores).
    pub id: u32,
    /// Offset of its first record (its name).
    pub base: u64,
    /// Its path.
    pub path: PathBuf,
    /// The file, opened for reading and appending.
    pub file: File,
}

impl SegFile {
    /// Opens (or creates) the segment file at `path`.
    pub fn open(id: u32, base: u64, path: PathBuf, create: bool) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .open(&path)
            .at(&path)?;
        Ok(Self {
            id,
            base,
            path,
            file,
        })
    }

    /// Reads exactly `buf.len()` bytes at `pos`.
    pub fn read_at(&self, buf: &mut [u8], pos: u64) -> Result<()> {
        self.file.read_exact_at(buf, pos).at(&self.path)
    }

    /// A corruption error at `pos` in this file.
    pub fn corrupt(&self, pos: u64, why: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            path: self.path.clone(),
            pos,
            why: why.into(),
        }
    }
}

/// How a scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanEnd {
    /// Bytes of valid records from the start of the file.
    pub valid_len: u64,
    /// The file's length.
    pub file_len: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub error: Option<DecodeError>,
}

/// Reads a file sequentially with positioned reads (the handle's cursor is shared with the
/// appender and never moved here), through a buffer.
struct PosReader<'a> {
    file: &'a File,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_pos: u64,
    file_len: u64,
}

impl<'a> PosReader<'a> {
    fn new(file: &'a File, file_len: u64) -> Self {
        Self {
            file,
            buf: Vec::new(),
            buf_pos: 0,
            file_len,
        }
    }

    /// The `len` bytes at `pos` (the caller checked they lie within the file).
    fn bytes_at(&mut self, pos: u64, len: usize) -> std::io::Result<&[u8]> {
        let end = pos + len as u64;
        if pos < self.buf_pos || end > self.buf_pos + self.buf.len() as u64 {
            let want = (len.max(SCAN_CHUNK) as u64).min(self.file_len - pos) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_pos = pos;
        }
        let start = (pos - self.buf_pos) as usize;
        Ok(&self.buf[start..start + len])
    }
}

const SCAN_CHUNK: usize = 1 << 20;

/// Reads every record of `file` in order, calling `f(pos, record)`; stops at the first record that
/// does not decode and reports where.
pub fn scan(
    file: &File,
    path: &Path,
    max_record: usize,
    mut f: impl FnMut(u64, &RecordRef<'_>) -> Result<()>,
) -> Result<ScanEnd> {
    let file_len = file.metadata().at(path)?.len();
    let mut reader = PosReader::new(file, file_len);
    let mut pos = 0u64;
    loop {
        if pos == file_len {
            return Ok(ScanEnd {
                valid_len: pos,
                file_len,
                error: None,
            });
        }
        let end = |error| ScanEnd {
            valid_len: pos,
            file_len,
            error: Some(error),
        };
        if file_len - pos < HEADER_LEN as u64 {
            return Ok(end(DecodeError::Incomplete));
        }
        let header =
            match record::decode_header(reader.bytes_at(pos, HEADER_LEN).at(path)?, max_record) {
                Ok(h) => h,
                Err(e) => return Ok(end(e)),
            };
        let len = header.record_len();
        if file_len - pos < len as u64 {
            return Ok(end(DecodeError::Incomplete));
        }
        match record::decode(reader.bytes_at(pos, len).at(path)?, max_record) {
            Ok((r, _)) => f(pos, &r)?,
            Err(e) => return Ok(end(e)),
        }
        pos += len as u64;
    }
}
