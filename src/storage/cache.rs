//! A value cache bounded in bytes, in least-recently-used order (`lru` crate).
//!
//! Every write, delete, expire and truncate of a key invalidates its entry, so a hit is always the
//! key's latest record and costs no I/O.

use bytes::Bytes;
use lru::LruCache;

/// A cached value with what a reader needs besides the bytes.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The value.
    pub value: Bytes,
    /// Offset of the record it came from.
    pub offset: u64,
    /// Absolute expiry, Unix ms, 0 = none.
    pub expire_at_ms: u64,
}

/// Fixed per-entry cost counted against the bound besides key and value bytes.
const ENTRY_OVERHEAD: usize = 64;

/// The cache.
pub struct ValueCache {
    lru: LruCache<Box<[u8]>, Cached, foldhash::fast::FixedState>,
    bytes: usize,
    cap: usize,
    hits: u64,
    misses: u64,
}

impl ValueCache {
    /// A cache holding at most `cap` bytes (0 disables it).
    pub fn new(cap: usize) -> Self {
        Self {
            lru: LruCache::unbounded_with_hasher(foldhash::fast::FixedState::with_seed(0x1ee7)),
            bytes: 0,
            cap,
            hits: 0,
            misses: 0,
        }
    }

    fn cost(key: &[u8], value: &Bytes) -> usize {
        key.len() + value.len() + ENTRY_OVERHEAD
    }

    /// The cached entry for `key`, marking it most recently used.
    pub fn get(&mut self, key: &[u8]) -> Option<&Cached> {
        let hit = self.lru.get(key);
        if hit.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        hit
    }

    /// Caches `entry` for `key`, evicting the least recently used entries beyond the bound.
    pub fn insert(&mut self, key: &[u8], entry: Cached) {
        let cost = Self::cost(key, &entry.value);
        if cost > self.cap {
            self.invalidate(key);
            return;
        }
        if let Some(old) = self.lru.put(key.into(), entry) {
            self.bytes -= Self::cost(key, &old.value);
        }
        self.bytes += cost;
        while self.bytes > self.cap {
            match self.lru.pop_lru() {
                Some((k, v)) => self.bytes -= Self::cost(&k, &v.value),
                None => break,
            }
        }
    }

    /// Drops `key`'s entry.
    pub fn invalidate(&mut self, key: &[u8]) {
        // Opening a store applies every record with the cache still empty: skip the hashing.
        if self.lru.is_empty() {
            return;
        }
        if let Some(old) = self.lru.pop(key) {
            self.bytes -= Self::cost(key, &old.value);
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.lru.clear();
        self.bytes = 0;
    }

    /// Bytes currently counted against the bound.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// (hits, misses) since the store opened.
    pub fn hit_counts(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: &'static str) -> Cached {
        Cached {
            value: Bytes::from_static(v.as_bytes()),
            offset: 0,
            expire_at_ms: 0,
        }
    }

    #[test]
    fn stays_within_its_byte_bound_and_evicts_the_oldest() {
        let mut c = ValueCache::new(3 * (1 + 10 + ENTRY_OVERHEAD));
        for k in ["a", "b", "c", "d"] {
            c.insert(k.as_bytes(), entry("0123456789"));
        }
        assert!(c.bytes() <= 3 * (11 + ENTRY_OVERHEAD));
        assert!(c.get(b"a").is_none(), "oldest entry evicted");
        assert!(c.get(b"d").is_some());
    }

    #[test]
    fn invalidate_forgets_the_key_and_its_bytes() {
        let mut c = ValueCache::new(1 << 20);
        c.insert(b"k", entry("v"));
        c.invalidate(b"k");
        assert!(c.get(b"k").is_none());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn a_value_larger_than_the_bound_is_not_cached() {
        let mut c = ValueCache::new(10);
        c.insert(b"k", entry("far too long for this cache"));
        assert!(c.get(b"k").is_none());
        assert_eq!(c.bytes(), 0);
    }
}
