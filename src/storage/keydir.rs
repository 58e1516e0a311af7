//! The keydir: key → where its latest record lives.
//!
//! A hash table of `u32` slot numbers over a dense `Vec` of slots keeps the table itself at five
//! bytes a bucket, so the whole keydir stays well under 100 bytes per key beyond the key bytes.
//! Tombstones stay in the keydir (until merge drops them) so that a reader can tell whether a
//! "not found" answer is itself committed.

use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Where a key's latest record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Offset of the record in the log.
    pub offset: u64,
    /// Absolute expiry, Unix ms, 0 = none.
    pub expire_at_ms: u64,
    /// In-memory id of the segment holding it.
    pub segment: u32,
    /// Byte position of the record in that segment.
    pub pos: u32,
    /// Length of the value.
    pub value_len: u32,
    /// The latest record is a delete.
    pub tombstone: bool,
}

struct Slot {
    key: Box<[u8]>,
    loc: Location,
}

/// Key → [`Location`].
pub struct Keydir {
    table: HashTable<u32>,
    slots: Vec<Slot>,
    hasher: foldhash::fast::FixedState,
    live: usize,
}

impl Default for Keydir {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl Keydir {
    /// An empty keydir with room for `n` keys.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            table: HashTable::with_capacity(n),
            slots: Vec::with_capacity(n),
            hasher: foldhash::fast::FixedState::with_seed(0x5eed_cafe),
            live: 0,
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The location of `key`, tombstones included.
    pub fn get(&self, key: &[u8]) -> Option<&Location> {
        let h = self.hash(key);
        let slots = &self.slots;
        self.table
            .find(h, |&i| &*slots[i as usize].key == key)
            .map(|&i| &slots[i as usize].loc)
    }

    /// Sets the location of `key`, returning the previous one.
    pub fn insert(&mut self, key: &[u8], loc: Location) -> Option<Location> {
        let h = self.hash(key);
        let slots = &mut self.slots;
        if let Some(&i) = self.table.find(h, |&i| &*slots[i as usize].key == key) {
            let slot = &mut slots[i as usize];
            let old = std::mem::replace(&mut slot.loc, loc);
            self.live = self.live + usize::from(!loc.tombstone) - usize::from(!old.tombstone);
            return Some(old);
        }
        let idx = u32::try_from(slots.len()).expect("keydir holds at most 2^32 keys");
        slots.push(Slot {
            key: key.into(),
            loc,
        });
        let hasher = &self.hasher;
        self.table
            .insert_unique(h, idx, |&i| hasher.hash_one(&*slots[i as usize].key));
        self.live += usize::from(!loc.tombstone);
        None
    }

    /// Removes `key`, returning its location.
    pub fn remove(&mut self, key: &[u8]) -> Option<Location> {
        let h = self.hash(key);
        let idx = {
            let slots = &self.slots;
            let entry = self
                .table
                .find_entry(h, |&i| &*slots[i as usize].key == key)
                .ok()?;
            let (idx, _) = entry.remove();
            idx
        };
        let last = (self.slots.len() - 1) as u32;
        if idx != last {
            // The last slot moves into the hole: repoint its table entry.
            let moved_hash = self.hash(&self.slots[last as usize].key);
            if let Some(p) = self.table.find_mut(moved_hash, |&i| i == last) {
                *p = idx;
            }
        }
        let slot = self.slots.swap_remove(idx as usize);
        self.live -= usize::from(!slot.loc.tombstone);
        Some(slot.loc)
    }

    /// Number of keys with a live (non-tombstone) record.
    pub fn live_keys(&self) -> usize {
        self.live
    }

    /// Number of entries, tombstones included.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Mutable access to every location (merge repoints them in place).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&[u8], &mut Location)) {
        let mut live = 0;
        for s in &mut self.slots {
            f(&s.key, &mut s.loc);
            live += usize::from(!s.loc.tombstone);
        }
        self.live = live;
    }

    /// Bytes the keydir's own structures occupy, excluding the key bytes themselves.
    pub fn overhead_bytes(&self) -> usize {
        self.table.allocation_size() + self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn loc(offset: u64, tombstone: bool) -> Location {
        Location {
            offset,
            expire_at_ms: 0,
            segment: 0,
            pos: 0,
            value_len: 0,
            tombstone,
        }
    }

    #[test]
    fn matches_a_hashmap_under_random_inserts_and_removes() {
        let mut kd = Keydir::default();
        let mut model: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut x: u64 = 7;
        for step in 0..20_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = format!("k{}", (x >> 33) % 500).into_bytes();
            if (x >> 20).is_multiple_of(3) {
                assert_eq!(kd.remove(&key).map(|l| l.offset), model.remove(&key));
            } else {
                assert_eq!(
                    kd.insert(&key, loc(step, false)).map(|l| l.offset),
                    model.insert(key.clone(), step)
                );
            }
        }
        assert_eq!(kd.len(), model.len());
        for (k, v) in &model {
            assert_eq!(kd.get(k).map(|l| l.offset), Some(*v));
        }
    }

    #[test]
    fn live_count_excludes_tombstones() {
        let mut kd = Keydir::default();
        kd.insert(b"a", loc(1, false));
        kd.insert(b"b", loc(2, false));
        kd.insert(b"a", loc(3, true));
        assert_eq!((kd.len(), kd.live_keys()), (2, 1));
        kd.remove(b"a");
        assert_eq!((kd.len(), kd.live_keys()), (1, 1));
    }
}
