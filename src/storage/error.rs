//! Storage errors: each names what went wrong and, where there is one, the file and position.

use std::path::PathBuf;

/// Everything the storage engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Keys must have at least one byte.
    #[error("the key is empty; keys need at least one byte")]
    EmptyKey,
    /// Key longer than `max_key_bytes`.
    #[error("the key is {len} bytes; the limit is {max} bytes")]
    KeyTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Value longer than `max_value_bytes`.
    #[error("the value is {len} bytes; the limit is {max} bytes")]
    ValueTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes on disk that are not what was written.
    #[error("{}: corrupt data at byte {pos}: {why}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte position in the file.
        pos: u64,
        /// What is wrong.
        why: String,
    },
    /// Records handed to `append_raw` that fail their checks.
    #[error("replicated records rejected: {0}")]
    BadBatch(String),
    /// An I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another store holds the directory.
    #[error("{} is in use by another broker (its lock file is held)", .0.display())]
    Locked(PathBuf),
    /// An earlier fsync or write failed; the store refuses further writes.
    #[error("the store stopped after an earlier failure ({0}); restart the broker")]
    Failed(String),
    /// A setting is out of range.
    #[error("{0}")]
    Config(String),
}

/// Result with [`StorageError`].
pub type Result<T> = std::result::Result<T, StorageError>;

/// Attaches a path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| StorageError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
