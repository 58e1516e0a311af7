//! The keydir: key → where its latest record lives.
//!
//! A hash table of `u32` slot numbers over a dense `Vec` of slots keeps the table itself at five
//! bytes a bucket, so the whole keydir stays well under 100 bytes per key beyond the key bytes.
//! It is split into [`SHARDS`] such tables by bits of the key's hash, so that opening a store
//! can fill the shards on every core at once ([`Keydir::fill`]), each thread keeping its own
//! shards' keys, with smaller tables that miss the cache less than one big one.
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
    key: KeyBytes,
    loc: Location,
}

/// Keys up to this long live inside their slot.
const INLINE_KEY: usize = 22;

/// A key, kept inside its slot when short (as most keys are): then the keydir makes no
/// allocation per key, and comparing a key follows no pointer. Opening a store with a million
/// keys spends most of its time here.
enum KeyBytes {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl KeyBytes {
    fn new(key: &[u8]) -> Self {
        if key.len() <= INLINE_KEY {
            let mut bytes = [0u8; INLINE_KEY];
            bytes[..key.len()].copy_from_slice(key);
            KeyBytes::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            KeyBytes::Heap(key.into())
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            KeyBytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyBytes::Heap(b) => b,
        }
    }
}

/// Shards of the keydir (a power of two).
pub const SHARDS: usize = 64;

/// Below this many records a bulk insert runs on the calling thread.
const PARALLEL_MIN: usize = 1 << 14;

/// Key → [`Location`].
pub struct Keydir {
    shards: Vec<Shard>,
    hasher: foldhash::fast::FixedState,
}

#[derive(Default)]
struct Shard {
    table: HashTable<u32>,
    slots: Vec<Slot>,
    live: usize,
}

impl Shard {
    fn get(&self, h: u64, key: &[u8]) -> Option<&Location> {
        let slots = &self.slots;
        self.table
            .find(h, |&i| slots[i as usize].key.as_slice() == key)
            .map(|&i| &slots[i as usize].loc)
    }

    fn insert(
        &mut self,
        hasher: &foldhash::fast::FixedState,
        h: u64,
        key: &[u8],
        loc: Location,
    ) -> Option<Location> {
        let slots = &mut self.slots;
        if let Some(&i) = self
            .table
            .find(h, |&i| slots[i as usize].key.as_slice() == key)
        {
            let slot = &mut slots[i as usize];
            let old = std::mem::replace(&mut slot.loc, loc);
            self.live = self.live + usize::from(!loc.tombstone) - usize::from(!old.tombstone);
            return Some(old);
        }
        let idx = u32::try_from(slots.len()).expect("a keydir shard holds at most 2^32 keys");
        slots.push(Slot {
            key: KeyBytes::new(key),
            loc,
        });
        self.table.insert_unique(h, idx, |&i| {
            hasher.hash_one(slots[i as usize].key.as_slice())
        });
        self.live += usize::from(!loc.tombstone);
        None
    }

    fn remove(
        &mut self,
        hasher: &foldhash::fast::FixedState,
        h: u64,
        key: &[u8],
    ) -> Option<Location> {
        let idx = {
            let slots = &self.slots;
            let entry = self
                .table
                .find_entry(h, |&i| slots[i as usize].key.as_slice() == key)
                .ok()?;
            let (idx, _) = entry.remove();
            idx
        };
        let last = (self.slots.len() - 1) as u32;
        if idx != last {
            // The last slot moves into the hole: repoint its table entry.
            let moved_hash = hasher.hash_one(self.slots[last as usize].key.as_slice());
            if let Some(p) = self.table.find_mut(moved_hash, |&i| i == last) {
                *p = idx;
            }
        }
        let slot = self.slots.swap_remove(idx as usize);
        self.live -= usize::from(!slot.loc.tombstone);
        Some(slot.loc)
    }

    /// Gives back room when less than half of it is used.
    fn shrink_if_oversized(&mut self, hasher: &foldhash::fast::FixedState) {
        if self.slots.capacity() > 2 * self.slots.len() + 16 {
            self.slots.shrink_to_fit();
            let slots = &self.slots;
            self.table
                .shrink_to_fit(|&i| hasher.hash_one(slots[i as usize].key.as_slice()));
        }
    }

    fn reserve(&mut self, hasher: &foldhash::fast::FixedState, n: usize) {
        self.slots.reserve(n);
        let slots = &self.slots;
        self.table
            .reserve(n, |&i| hasher.hash_one(slots[i as usize].key.as_slice()));
    }
}

impl Default for Keydir {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher: foldhash::fast::FixedState::with_seed(0x5eed_cafe),
        }
    }
}

/// The shard of a hash: bits the tables themselves do not use (hashbrown takes its bucket from
/// the low bits and its tag from the top seven).
fn shard_of(h: u64) -> usize {
    (h >> 32) as usize & (SHARDS - 1)
}

impl Keydir {
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The location of `key`, tombstones included.
    pub fn get(&self, key: &[u8]) -> Option<&Location> {
        let h = self.hash(key);
        self.shards[shard_of(h)].get(h, key)
    }

    /// Sets the location of `key`, returning the previous one.
    pub fn insert(&mut self, key: &[u8], loc: Location) -> Option<Location> {
        let h = self.hash(key);
        self.shards[shard_of(h)].insert(&self.hasher, h, key, loc)
    }

    /// Fills the keydir from `records`, which hands every (key, location) to the function it is
    /// given, in log order; the result is that of [`Keydir::insert`] one after another. Several
    /// threads each call `records` and keep only the keys of their own shards (each key in one
    /// shard, so its records stay in order), `expected` keys spread evenly over the shards.
    pub fn fill(
        &mut self,
        expected: usize,
        records: impl Fn(&mut dyn FnMut(&[u8], Location)) + Sync,
    ) {
        let per_shard = expected / SHARDS + expected / (SHARDS * 16) + 1;
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let threads = if expected < PARALLEL_MIN { 1 } else { threads };
        let per = SHARDS.div_ceil(threads);
        let hasher = &self.hasher;
        let fill_range = |first: usize, shards: &mut [Shard]| {
            for shard in shards.iter_mut() {
                shard.reserve(hasher, per_shard);
            }
            let end = first + shards.len();
            records(&mut |key, loc| {
                let h = hasher.hash_one(key);
                let s = shard_of(h);
                if (first..end).contains(&s) {
                    shards[s - first].insert(hasher, h, key, loc);
                }
            });
            // Room was made for every record; a log of many updates to few keys needs far less.
            for shard in shards.iter_mut() {
                shard.shrink_if_oversized(hasher);
            }
        };
        if threads == 1 {
            fill_range(0, &mut self.shards);
            return;
        }
        std::thread::scope(|s| {
            for (i, shards) in self.shards.chunks_mut(per).enumerate() {
                let fill_range = &fill_range;
                s.spawn(move || fill_range(i * per, shards));
            }
        });
    }

    /// Removes `key`, returning its location.
    pub fn remove(&mut self, key: &[u8]) -> Option<Location> {
        let h = self.hash(key);
        self.shards[shard_of(h)].remove(&self.hasher, h, key)
    }

    /// Number of keys with a live (non-tombstone) record.
    pub fn live_keys(&self) -> usize {
        self.shards.iter().map(|s| s.live).sum()
    }

    /// Number of entries, tombstones included.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.slots.len()).sum()
    }

    /// Mutable access to every location (merge repoints them in place).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&[u8], &mut Location)) {
        for shard in &mut self.shards {
            let mut live = 0;
            for s in &mut shard.slots {
                f(s.key.as_slice(), &mut s.loc);
                live += usize::from(!s.loc.tombstone);
            }
            shard.live = live;
        }
    }

    /// Bytes the keydir's own structures occupy (keys of up to [`INLINE_KEY`] bytes included;
    /// longer keys' own bytes not).
    pub fn overhead_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.table.allocation_size() + s.slots.capacity() * std::mem::size_of::<Slot>())
            .sum()
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
    fn a_bulk_insert_ends_where_inserting_one_by_one_does() {
        // Enough records to go parallel, with keys repeated so order within a key matters.
        let records: Vec<(Vec<u8>, Location)> = (0..(PARALLEL_MIN as u64 * 3))
            .map(|i| {
                let key = format!("key-{}", i % 20_000).into_bytes();
                (key, loc(i, i % 7 == 0))
            })
            .collect();
        let mut one_by_one = Keydir::default();
        for (k, l) in &records {
            one_by_one.insert(k, *l);
        }
        let mut bulk = Keydir::default();
        bulk.insert(b"key-1", loc(u64::MAX, false));
        bulk.fill(records.len(), |apply| {
            for (k, l) in &records {
                apply(k, *l);
            }
        });
        assert_eq!(bulk.len(), one_by_one.len());
        assert_eq!(bulk.live_keys(), one_by_one.live_keys());
        for i in 0..20_000 {
            let key = format!("key-{i}").into_bytes();
            assert_eq!(bulk.get(&key), one_by_one.get(&key), "key-{i}");
        }
    }

    #[test]
    fn a_fill_of_many_updates_to_few_keys_keeps_room_for_the_keys_only() {
        let n = 200_000u64;
        let key = |i: u64| format!("k{}", i % 1000).into_bytes();
        let mut one_by_one = Keydir::default();
        for i in 0..n {
            one_by_one.insert(&key(i), loc(i, false));
        }
        let mut filled = Keydir::default();
        filled.fill(n as usize, |apply| {
            for i in 0..n {
                apply(&key(i), loc(i, false));
            }
        });
        let (a, b) = (one_by_one.overhead_bytes(), filled.overhead_bytes());
        assert!(b < 4 * a, "one by one {a} bytes, filled {b} bytes");
        assert_eq!(filled.get(b"k999").map(|l| l.offset), Some(n - 1));
    }

    #[test]
    fn long_keys_live_outside_their_slot_and_still_match() {
        let mut kd = Keydir::default();
        let long = vec![b'k'; INLINE_KEY + 1];
        let mut longer = long.clone();
        longer.push(b'!');
        kd.insert(&long, loc(1, false));
        kd.insert(&longer, loc(2, false));
        kd.insert(&long[..INLINE_KEY], loc(3, false));
        assert_eq!(kd.get(&long).map(|l| l.offset), Some(1));
        assert_eq!(kd.get(&longer).map(|l| l.offset), Some(2));
        assert_eq!(kd.get(&long[..INLINE_KEY]).map(|l| l.offset), Some(3));
        assert_eq!(kd.remove(&long).map(|l| l.offset), Some(1));
        assert_eq!(kd.get(&longer).map(|l| l.offset), Some(2));
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
