//! The per-key search behind [`super::linearizable::check`], and the window
//! shown when a key fails.
//!
//! Why a separate file: the checker's data model, driver and report read on
//! their own; this is the algorithmic core, kept apart so each stays short.
//!
//! The search is Wing & Gong's with Lowe's memoisation, as in Porcupine: the
//! call and return events of one key sit in a doubly linked list in time order
//! (calls before returns at equal times). Walking from the head, a call is
//! tried as the next linearized operation (a write always fits, a read only if
//! it sees the register's value); placing it unlinks its two events and starts
//! again from the head. Reaching the return of an operation that is not placed
//! means the current prefix of choices cannot work, so the last choice is taken
//! back and the walk resumes after it. A memo of (placed set, register value)
//! configurations already explored, and the rejection of any choice that
//! overwrites a value some unplaced read still needs when nothing can write it
//! again (see `Left`), keep the search fast on real histories. Optional
//! operations (unknown outcome, or writes around a window) may also be left
//! out when their return is reached; unknown ones have no return.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use bytes::Bytes;

use super::linearizable::{KeyVerdict, Kind, Limits, Operation, Outcome};

/// Register value id for "absent": the initial value, and what `del` writes.
const ABSENT: u32 = 0;
/// Register value meaning "whatever the key held before the window": the first read decides it.
const ANY: u32 = u32::MAX;
/// Return time of an operation that may take effect arbitrarily late.
const NEVER: u64 = u64::MAX;

/// One operation as the search sees it: an interval and an effect on an interned value.
#[derive(Debug, Clone, Copy)]
struct Item {
    call: u64,
    ret: u64,
    write: bool,
    value: u32,
    /// May be left out: unknown outcome, or (in a window) a write around it.
    optional: bool,
}

/// An operation of the key being checked, with its search form.
struct KeyOp<'a> {
    op: &'a Operation,
    item: Item,
}

/// Decides one key: `None` when linearizable, else its verdict.
pub(super) fn check_key(key: &Bytes, list: &[&Operation], limits: &Limits) -> Option<KeyVerdict> {
    let ops = prepare(list);
    let items: Vec<Item> = ops.iter().map(|o| o.item).collect();
    let budget = limits.max_steps_per_key;
    let searched = search(&items, ABSENT, &[], budget);
    if searched.found == Found::Yes {
        return None;
    }
    // The search never got past `frontier`: a failing window ending there is a
    // proof as good as the search's (and often far cheaper, when it gave up).
    let end = ops.partition_point(|o| o.item.call <= searched.frontier);
    let mut windows = Windows {
        ops: &ops,
        left: budget,
    };
    let found = match windows.around(end) {
        Some(found) => Some(found),
        None if searched.found == Found::No => Some(windows.shortest_prefix()),
        None => None,
    };
    let key = key.clone();
    Some(match found {
        Some(((window, in_flight), from_initial)) => KeyVerdict::Violation {
            key,
            window,
            in_flight,
            from_initial,
        },
        None => KeyVerdict::GaveUp {
            key,
            ops: list.len(),
            steps: searched.steps,
        },
    })
}

/// Interns values, drops unknown writes nobody read, and sorts by call time.
fn prepare<'a>(list: &[&'a Operation]) -> Vec<KeyOp<'a>> {
    let mut ids: HashMap<&'a [u8], u32> = HashMap::new();
    let mut ops: Vec<KeyOp<'a>> = list
        .iter()
        .map(|&op| {
            let value = match (op.kind, &op.value) {
                (Kind::Del, _) | (_, None) => ABSENT,
                (_, Some(v)) => {
                    let fresh = ids.len() as u32 + 1;
                    *ids.entry(v.as_ref()).or_insert(fresh)
                }
            };
            let optional = op.outcome == Outcome::Unknown;
            // A return before the call is read as equal to it.
            let ret = if optional {
                NEVER
            } else {
                op.return_ns.max(op.call_ns)
            };
            let item = Item {
                call: op.call_ns,
                ret,
                write: op.kind != Kind::Get,
                value,
                optional,
            };
            KeyOp { op, item }
        })
        .collect();
    let read: HashSet<u32> = ops
        .iter()
        .filter(|o| !o.item.write)
        .map(|o| o.item.value)
        .collect();
    ops.retain(|o| !o.item.optional || read.contains(&o.item.value));
    ops.sort_by_key(|o| (o.item.call, o.item.ret));
    ops
}

/// The window method. A window is the operations with call-order index in
/// `s..k`, plus the writes that may take effect inside it: earlier writes
/// still running when operation `s` was called, and later writes called
/// before the window's last return. Those extra writes are optional (they may
/// also have taken effect before the window, or after it), and the initial
/// value is free (any value written before `k`, or absent). Any linearization
/// of the whole history, restricted to a window, is a valid order of that
/// window, so a failing window proves the key not linearizable, and windows
/// fail monotonically: if `s..k` fails, so do earlier starts and later ends.
///
/// The search starts from where the key's search got stuck (`end`): the
/// latest failing start for that end, by galloping back (small windows are
/// cheap to search, and galloping keeps those searched within about twice the
/// answer) then bisecting; then the earliest failing end for that start, by
/// bisecting. When no window there fails, the key's failure may rely on its
/// absent start: then the shortest failing prefix, from an absent start, is
/// found by galloping forward, and its latest start as above. All searches
/// share one budget; when it runs out, the smallest window confirmed so far
/// is kept.
struct Windows<'o, 'a> {
    ops: &'o [KeyOp<'a>],
    left: u64,
}

impl Windows<'_, '_> {
    /// Does window `s..k` fail, from any start value (`free`) or from absent?
    /// None when the budget ran out.
    fn fails(&mut self, s: usize, k: usize, free: bool) -> Option<bool> {
        let (items, _) = window(self.ops, s, k);
        let (init, seeds) = if free {
            (ANY, seedable(self.ops, k))
        } else {
            (ABSENT, Vec::new())
        };
        let searched = search(&items, init, &seeds, self.left);
        self.left = self.left.saturating_sub(searched.steps);
        match searched.found {
            Found::No => Some(true),
            Found::Yes => Some(false),
            Found::OutOfSteps => None,
        }
    }

    /// Walking from `pass` (an index known to pass) toward `limit`: the first index that
    /// fails, found by galloping then bisecting. None when none does, or the budget ran out first.
    fn edge(
        &mut self,
        pass: usize,
        limit: usize,
        mut fails: impl FnMut(&mut Self, usize) -> Option<bool>,
    ) -> Option<usize> {
        let (mut good, mut bad, mut step) = (pass, None, 1);
        while bad.is_none() && good != limit {
            let probe = match limit < pass {
                true => pass.saturating_sub(step).max(limit),
                false => (pass + step).min(limit),
            };
            match fails(self, probe)? {
                true => bad = Some(probe),
                false => (good, step) = (probe, step * 2),
            }
        }
        let mut bad = bad?;
        while good.abs_diff(bad) > 1 {
            let mid = (good + bad) / 2;
            match fails(self, mid) {
                Some(true) => bad = mid,
                Some(false) => good = mid,
                None => break,
            }
        }
        Some(bad)
    }

    /// The latest start from which the window ending at `k` fails from any start value.
    fn latest_start(&mut self, k: usize) -> Option<usize> {
        self.edge(k, 0, |w, s| w.fails(s, k, true))
    }

    /// A window ending by `end` that fails from any start value, if one is found.
    fn around(&mut self, end: usize) -> Option<(Shown, bool)> {
        let s = self.latest_start(end)?;
        let k = self.edge(s, end, |w, k| w.fails(s, k, true)).unwrap_or(end);
        Some((shown(self.ops, s, k), false))
    }

    /// For a key known to fail from its absent start: the shortest failing prefix, then its latest start.
    fn shortest_prefix(&mut self) -> (Shown, bool) {
        let n = self.ops.len();
        let k = self.edge(0, n, |w, k| w.fails(0, k, false)).unwrap_or(n);
        match self.latest_start(k) {
            Some(s) => (shown(self.ops, s, k), false),
            None => (shown(self.ops, 0, k), true),
        }
    }
}

/// A window for the report: its own operations, and the writes in flight around it.
type Shown = (Vec<Operation>, Vec<Operation>);

/// The operations of window `s..k` for the report, each part sorted by call.
fn shown(ops: &[KeyOp], s: usize, k: usize) -> Shown {
    let (_, members) = window(ops, s, k);
    let (mut own, mut in_flight) = (Vec::new(), Vec::new());
    for i in members {
        let part = if (s..k).contains(&i) {
            &mut own
        } else {
            &mut in_flight
        };
        part.push(ops[i].op.clone());
    }
    for part in [&mut own, &mut in_flight] {
        part.sort_by_key(|o| (o.call_ns, o.return_ns));
    }
    (own, in_flight)
}

/// The search items of window `s..k` (see `Windows`) and the indices of its members.
fn window(ops: &[KeyOp], s: usize, k: usize) -> (Vec<Item>, Vec<usize>) {
    let start = ops[s].item.call;
    let end = ops[s..k]
        .iter()
        .filter(|o| !o.item.optional)
        .map(|o| o.item.ret)
        .max()
        .unwrap_or(0);
    let mut members: Vec<usize> = (0..s)
        .filter(|&i| ops[i].item.write && ops[i].item.ret >= start)
        .collect();
    members.extend(s..k);
    members.extend(
        (k..ops.len())
            .take_while(|&i| ops[i].item.call <= end)
            .filter(|&i| ops[i].item.write),
    );
    let items = members
        .iter()
        .map(|&i| Item {
            optional: ops[i].item.optional || i < s || i >= k,
            ..ops[i].item
        })
        .collect();
    (items, members)
}

/// Which values a free start may hold: absent, or anything written before the window's end.
fn seedable(ops: &[KeyOp], k: usize) -> Vec<bool> {
    let size = ops
        .iter()
        .map(|o| o.item.value as usize + 1)
        .max()
        .unwrap_or(1);
    let mut seeds = vec![false; size];
    seeds[ABSENT as usize] = true;
    for o in ops[..k].iter().filter(|o| o.item.write) {
        seeds[o.item.value as usize] = true;
    }
    seeds
}

/// What a search found, how many steps it took, and the latest return it could not get past.
struct Searched {
    found: Found,
    steps: u64,
    frontier: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Yes,
    No,
    OutOfSteps,
}

/// The register after `item` runs in `state`, or None when a read would see another value.
fn apply(state: u32, item: &Item, seeds: &[bool]) -> Option<u32> {
    let seeded = state == ANY && seeds.get(item.value as usize) == Some(&true);
    (item.write || state == item.value || seeded).then_some(item.value)
}

/// Is there an order of `items`, starting from `init`, that respects real time and every read?
fn search(items: &[Item], init: u32, seeds: &[bool], budget: u64) -> Searched {
    let mut mandatory = items.iter().filter(|it| !it.optional).count();
    let mut list = EventList::new(items);
    let mut placed = Bits::new(items.len());
    let mut left = Left::new(items);
    // A read of a value that nothing can produce fails whatever the order: say so at once.
    let seeded = |v: u32| v == init || (init == ANY && seeds.get(v as usize) == Some(&true));
    let orphan = |it: &Item| !it.write && !it.optional && left.writes[it.value as usize] == 0;
    if let Some(it) = items.iter().find(|it| orphan(it) && !seeded(it.value)) {
        return Searched {
            found: Found::No,
            steps: 0,
            frontier: it.ret,
        };
    }
    let mut memo = Memo::default();
    // Placed items, with the value before them, and whether they were left out at their return.
    let mut stack: Vec<(usize, u32, bool)> = Vec::new();
    let (mut state, mut node, mut steps, mut frontier) = (init, list.next[0], 0u64, 0);
    let found = 'search: loop {
        if mandatory == 0 {
            break Found::Yes;
        } else if steps >= budget {
            break Found::OutOfSteps;
        }
        steps += 1;
        if node != 0 {
            let i = (node as usize - 1) / 2;
            let it = items[i];
            let is_call = node % 2 == 1;
            // At a call: linearize the item now. At an optional item's return: leave it out.
            let choice = match (is_call, it.optional) {
                (true, _) => apply(state, &it, seeds),
                (false, true) => Some(state),
                (false, false) => None,
            };
            if let Some(after) = choice {
                left.take(&it);
                placed.set(i);
                let stranded = [state, it.value]
                    .into_iter()
                    .find(|&v| left.stranded(v, after));
                if let Some(v) = stranded {
                    // The reads of `v` are what cannot be explained: the trouble reaches them.
                    frontier = frontier.max(left.last_read[v as usize]);
                } else if memo.first_visit(&placed, after) {
                    stack.push((i, state, !is_call));
                    state = after;
                    list.lift(i);
                    mandatory -= usize::from(!it.optional);
                    node = list.next[0];
                    continue;
                }
                placed.clear(i);
                left.put_back(&it);
            }
            if is_call {
                node = list.next[node as usize];
                continue;
            }
            frontier = frontier.max(it.ret);
        }
        // A return (or the end) was reached with its item unplaced: take back the latest choice.
        loop {
            let Some((j, before, dropped)) = stack.pop() else {
                break 'search Found::No;
            };
            placed.clear(j);
            left.put_back(&items[j]);
            state = before;
            list.unlift(j);
            mandatory += usize::from(!items[j].optional);
            if !dropped {
                node = list.next[2 * j + 1];
                break;
            }
        }
    };
    Searched {
        found,
        steps,
        frontier,
    }
}

/// Unplaced reads and writes per value. A choice that leaves the register
/// holding another value while reads of some value remain and nothing can
/// write that value again cannot succeed; rejecting it at once, instead of at
/// the return of such a read much later, is what keeps long operations (a
/// slow write placed too early and overwritten) from exploding the search.
struct Left {
    reads: Vec<u32>,
    writes: Vec<u32>,
    /// The latest return of a read of each value.
    last_read: Vec<u64>,
}

impl Left {
    fn new(items: &[Item]) -> Self {
        let size = items
            .iter()
            .map(|it| it.value as usize + 1)
            .max()
            .unwrap_or(0);
        let mut left = Left {
            reads: vec![0; size],
            writes: vec![0; size],
            last_read: vec![0; size],
        };
        for it in items {
            left.put_back(it);
            if !it.write {
                left.last_read[it.value as usize] = left.last_read[it.value as usize].max(it.ret);
            }
        }
        left
    }

    fn counter(&mut self, it: &Item) -> &mut u32 {
        let counts = if it.write {
            &mut self.writes
        } else {
            &mut self.reads
        };
        &mut counts[it.value as usize]
    }

    fn take(&mut self, it: &Item) {
        *self.counter(it) -= 1;
    }

    fn put_back(&mut self, it: &Item) {
        *self.counter(it) += 1;
    }

    /// Are reads of `value` left with no way to see it, now that the register holds `now`?
    fn stranded(&self, value: u32, now: u32) -> bool {
        let v = value as usize;
        value != now && value != ANY && self.reads[v] > 0 && self.writes[v] == 0
    }
}

/// Call and return events in time order as a doubly linked list (node 0 is the head;
/// item i has call node 2i+1 and return node 2i+2), so placed items unlink in O(1).
struct EventList {
    next: Vec<u32>,
    prev: Vec<u32>,
}

impl EventList {
    fn new(items: &[Item]) -> Self {
        let nodes = 2 * items.len() as u32;
        let mut order: Vec<u32> = (1..=nodes).collect();
        order.sort_unstable_by_key(|&node| {
            let it = &items[(node as usize - 1) / 2];
            if node % 2 == 1 {
                (it.call, 0u8, node)
            } else {
                (it.ret, 1, node)
            }
        });
        let mut list = EventList {
            next: vec![0; nodes as usize + 1],
            prev: vec![0; nodes as usize + 1],
        };
        let mut last = 0;
        for node in order {
            list.next[last as usize] = node;
            list.prev[node as usize] = last;
            last = node;
        }
        list.next[last as usize] = 0;
        list.prev[0] = last;
        list
    }

    fn unlink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p as usize] = n;
        self.prev[n as usize] = p;
    }

    fn relink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p as usize] = x as u32;
        self.prev[n as usize] = x as u32;
    }

    fn lift(&mut self, item: usize) {
        self.unlink(2 * item + 1);
        self.unlink(2 * item + 2);
    }

    /// Undoes `lift`; correct because lifts are undone in reverse order.
    fn unlift(&mut self, item: usize) {
        self.relink(2 * item + 2);
        self.relink(2 * item + 1);
    }
}

/// The set of placed items, tracking its full leading words and its last
/// non-empty word so that a memo key only stores the part in between.
struct Bits {
    words: Vec<u64>,
    /// First word that is not all ones.
    lo: usize,
    /// One past the last word that is not zero.
    hi: usize,
}

impl Bits {
    fn new(n: usize) -> Self {
        Bits {
            words: vec![0; n.div_ceil(64)],
            lo: 0,
            hi: 0,
        }
    }

    fn set(&mut self, i: usize) {
        let w = i / 64;
        self.words[w] |= 1 << (i % 64);
        while self.lo < self.words.len() && self.words[self.lo] == u64::MAX {
            self.lo += 1;
        }
        self.hi = self.hi.max(w + 1);
    }

    fn clear(&mut self, i: usize) {
        let w = i / 64;
        self.words[w] &= !(1 << (i % 64));
        self.lo = self.lo.min(w);
        while self.hi > 0 && self.words[self.hi - 1] == 0 {
            self.hi -= 1;
        }
    }
}

/// Lowe's memo: every (placed set, register value) configuration already explored.
#[derive(Default)]
struct Memo {
    seen: HashSet<Box<[u64]>, BuildHasherDefault<Mix>>,
    scratch: Vec<u64>,
}

impl Memo {
    /// Records the configuration; false when it was explored before.
    fn first_visit(&mut self, placed: &Bits, state: u32) -> bool {
        self.scratch.clear();
        self.scratch.extend([u64::from(state), placed.lo as u64]);
        self.scratch
            .extend_from_slice(&placed.words[placed.lo..placed.hi]);
        if self.seen.contains(self.scratch.as_slice()) {
            return false;
        }
        self.seen.insert(self.scratch.as_slice().into())
    }
}

/// A fast hasher for the memo's word slices (std's SipHash is several times slower here).
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }

    fn finish(&self) -> u64 {
        let z = (self.0 ^ (self.0 >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z ^ (z >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::super::linearizable::tests::{history, run, simulate, the_window};
    use super::super::linearizable::{KeyVerdict, Limits, check};
    use super::{ABSENT, Found, Item, prepare, search, window};

    #[test]
    fn optional_writes_may_be_left_out_at_their_return() {
        let item = |call, write, value, optional| Item {
            call,
            ret: call + 10,
            write,
            value,
            optional,
        };
        let read = item(20, false, ABSENT, false);
        assert_eq!(
            search(&[item(0, true, 1, true), read], ABSENT, &[], 100).found,
            Found::Yes
        );
        assert_eq!(
            search(&[item(0, true, 1, false), read], ABSENT, &[], 100).found,
            Found::No
        );
    }

    #[test]
    fn a_window_adds_the_writes_that_may_land_in_it_as_optional() {
        let ops =
            history("1 set a 0 100; 2 set b 10 20; 3 get b 30 40; 4 set c 35 60; 5 set d 41 50");
        let (items, members) = window(&prepare(&ops.iter().collect::<Vec<_>>()), 2, 3);
        assert_eq!(members, [0, 2, 3]);
        let optional: Vec<bool> = items.iter().map(|it| it.optional).collect();
        assert_eq!(optional, [true, false, true]);
    }

    #[test]
    fn writes_in_flight_around_the_window_are_part_of_it() {
        let ops =
            history("1 set a 0 100; 2 set b 10 20; 3 get b 30 40; 3 get a 50 60; 3 get b 70 80");
        let report = run(&ops);
        assert_eq!(the_window(&report), &ops[3..], "{report}");
        let KeyVerdict::Violation { in_flight, .. } = &report.verdicts[0] else {
            panic!("{report}");
        };
        assert_eq!(in_flight, &ops[..1]);
        let text = "  even if these writes in flight took effect anywhere among them, or never:\n  client 1  set \"a\"  [-0.000050 ms → 0.000050 ms]";
        assert!(report.to_string().contains(text), "{report}");
    }

    #[test]
    fn a_small_window_decides_what_the_whole_search_cannot() {
        // Each write is read once; then "v0" and "v1" are both read as the final value.
        // The whole search tries subsets of the writes, but the last two reads alone fail.
        let mut text: Vec<String> = (0..24)
            .map(|i| format!("{i} set v{i} 0 1000; 1{i} get v{i} 0 1000"))
            .collect();
        text.push("99 get v0 2000 3000; 99 get v1 4000 5000".into());
        let ops = history(&text.join(";"));
        let report = check(
            &ops,
            &Limits {
                max_steps_per_key: 50_000,
            },
        );
        assert_eq!(the_window(&report), &ops[48..], "{report}");
    }

    #[test]
    fn exhausted_budget_gives_up_instead_of_passing() {
        // Linearizable, so no window can fail, but far too big for this budget.
        let ops = simulate(3, 16, 100, 1);
        let report = check(
            &ops,
            &Limits {
                max_steps_per_key: 300,
            },
        );
        assert!(!report.is_linearizable() && report.gave_up(), "{report}");
        let [
            KeyVerdict::GaveUp {
                ops: n, steps: 300, ..
            },
        ] = report.verdicts[..]
        else {
            panic!("{report}");
        };
        let expected = format!("gave up after 300 steps on key \"k0\" with {n} operations");
        assert!(report.to_string().contains(&expected), "{report}");
        assert!(run(&ops).is_linearizable());
    }
}
