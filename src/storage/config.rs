//! Storage settings, loaded from YAML as part of a broker's configuration.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// When appended bytes are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Every append returns after its bytes are durable; concurrent appends share one fsync
    /// (group commit).
    Always,
    /// A background thread syncs every `fsync_interval_ms`; a crash of the machine loses at most
    /// that window.
    #[default]
    Interval,
    /// Never sync: the page cache decides. A process crash loses nothing, a machine crash may.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(Self::Always),
            "interval" => Ok(Self::Interval),
            "never" => Ok(Self::Never),
            other => Err(format!(
                "unknown fsync policy '{other}': use always, interval or never"
            )),
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Always => "always",
            Self::Interval => "interval",
            Self::Never => "never",
        })
    }
}

/// The settings of one store (one partition replica).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The active segment is sealed and a new one started once it reaches this size.
    pub segment_bytes: u64,
    /// Bound on the bytes of values kept in the LRU cache.
    pub cache_bytes: usize,
    /// Durability policy.
    pub fsync: FsyncPolicy,
    /// Period of the `interval` policy.
    pub fsync_interval_ms: u64,
    /// Largest key accepted.
    pub max_key_bytes: usize,
    /// Largest value accepted.
    pub max_value_bytes: usize,
    /// How long merge keeps tombstones, so that lagging followers still see deletes.
    pub tombstone_retention_ms: u64,
    /// What a power loss would leave (the lab's; off otherwise).
    #[serde(skip)]
    pub disk: super::DiskModel,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            cache_bytes: 64 << 20,
            fsync: FsyncPolicy::Interval,
            fsync_interval_ms: 1000,
            max_key_bytes: 64 << 10,
            max_value_bytes: 16 << 20,
            tombstone_retention_ms: 24 * 3600 * 1000,
            disk: super::DiskModel::default(),
        }
    }
}

/// The largest `max_key_bytes` a store may be configured with.
pub const KEY_BYTES_LIMIT: usize = 1 << 20;
/// The largest `max_value_bytes` a store may be configured with.
pub const VALUE_BYTES_LIMIT: usize = 256 << 20;

impl StoreConfig {
    /// Largest encoded record any store may hold, whatever its configured limits: what a record
    /// header read from disk or from a leader may claim. The configured limits bound what is
    /// written now; records written under larger limits (before an operator lowered them, or by
    /// a leader configured otherwise) are data, never a torn tail or corruption. The scanner and
    /// the readers check a claimed length against the file before they read it.
    pub fn max_record_bytes(&self) -> usize {
        super::record::HEADER_LEN + KEY_BYTES_LIMIT + VALUE_BYTES_LIMIT
    }

    /// The fsync interval as a duration.
    pub fn fsync_interval(&self) -> Duration {
        Duration::from_millis(self.fsync_interval_ms.max(1))
    }

    /// Checks the settings make sense; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_bytes < 4096 || self.segment_bytes > (1 << 30) {
            return Err(format!(
                "storage.segment_bytes is {}; it must be between 4096 and 1073741824",
                self.segment_bytes
            ));
        }
        if self.max_key_bytes == 0 || self.max_key_bytes > KEY_BYTES_LIMIT {
            return Err(format!(
                "storage.max_key_bytes must be between 1 and {KEY_BYTES_LIMIT}"
            ));
        }
        if self.max_value_bytes > VALUE_BYTES_LIMIT {
            return Err(format!(
                "storage.max_value_bytes must be at most {VALUE_BYTES_LIMIT}"
            ));
        }
        Ok(())
    }
}
