//! `check replicas-agree`: whether two replicas' logs below the high watermark agree. Replicas
//! merge on their own schedules, so their raw logs legitimately differ (one dropped overwritten
//! records the other still has). They agree when (1) every offset both still hold carries the
//! same record, byte for byte, and (2) both would serve the same thing: the same live key → value
//! map (with expiries) from their records below the HW.

use crate::storage::RecordKind;
use crate::storage::record;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};

/// What a replica would serve for each live key: (value, absolute expiry).
type Served = BTreeMap<Bytes, (Bytes, u64)>;

fn served(records: &[(u64, Bytes)], max_record: usize) -> Result<Served, String> {
    let mut out = Served::new();
    for (offset, bytes) in records {
        let (r, _) = record::decode(bytes, max_record)
            .map_err(|e| format!("the record at offset {offset} does not decode: {e}"))?;
        let key = Bytes::copy_from_slice(r.key);
        match r.header.kind {
            RecordKind::Delete => {
                out.remove(&key);
            }
            RecordKind::Put | RecordKind::Expire => {
                out.insert(
                    key,
                    (Bytes::copy_from_slice(r.value), r.header.expire_at_ms),
                );
            }
        }
    }
    Ok(out)
}

/// Where `mine` (a follower's records below the HW, in offset order) disagrees with
/// `reference` (the leader's): a sentence, or `None` when they agree.
pub fn disagreement(
    reference: &[(u64, Bytes)],
    mine: &[(u64, Bytes)],
    max_record: usize,
) -> Result<Option<String>, String> {
    let by_offset: HashMap<u64, &Bytes> = reference.iter().map(|(o, b)| (*o, b)).collect();
    if let Some((o, _)) = mine
        .iter()
        .find(|(o, b)| by_offset.get(o).is_some_and(|r| *r != b))
    {
        return Ok(Some(format!("different records at offset {o}")));
    }
    let (a, b) = (served(reference, max_record)?, served(mine, max_record)?);
    if a == b {
        return Ok(None);
    }
    let key = a
        .iter()
        .find(|(k, v)| b.get(*k) != Some(*v))
        .or_else(|| b.iter().find(|(k, _)| !a.contains_key(*k)))
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default();
    Ok(Some(format!(
        "they would serve different data: {} live key(s) against {}, first difference at key '{key}'",
        b.len(),
        a.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Write;

    const MAX: usize = 1 << 20;

    fn rec(offset: u64, w: Write) -> (u64, Bytes) {
        let mut buf = Vec::new();
        record::encode_into(&mut buf, offset, &w.with_epoch(1).with_timestamp(1));
        (offset, Bytes::from(buf))
    }

    #[test]
    fn a_merged_replica_agrees_with_an_unmerged_one() {
        let full = vec![
            rec(0, Write::put(&b"a"[..], &b"1"[..])),
            rec(1, Write::put(&b"a"[..], &b"2"[..])),
            rec(2, Write::put(&b"b"[..], &b"x"[..])),
            rec(3, Write::delete(&b"b"[..])),
        ];
        // Merge kept only a's latest record and dropped b's put and tombstone.
        let merged = vec![full[1].clone()];
        assert_eq!(disagreement(&full, &merged, MAX).expect("decode"), None);
        assert_eq!(disagreement(&merged, &full, MAX).expect("decode"), None);
    }

    #[test]
    fn a_different_record_or_different_live_data_is_named() {
        let leader = vec![
            rec(0, Write::put(&b"a"[..], &b"1"[..])),
            rec(1, Write::put(&b"b"[..], &b"2"[..])),
        ];
        let forked = vec![
            rec(0, Write::put(&b"a"[..], &b"1"[..])),
            rec(1, Write::put(&b"b"[..], &b"3"[..])),
        ];
        let d = disagreement(&leader, &forked, MAX).expect("decode");
        assert_eq!(d.as_deref(), Some("different records at offset 1"));
        // A replica that kept a key the leader merged away as deleted (a resurrected key).
        let resurrected = vec![
            rec(0, Write::put(&b"a"[..], &b"1"[..])),
            rec(1, Write::put(&b"b"[..], &b"2"[..])),
            rec(5, Write::put(&b"z"[..], &b"old"[..])),
        ];
        let d = disagreement(&leader, &resurrected, MAX)
            .expect("decode")
            .expect("differs");
        assert!(d.contains("key 'z'"), "{d}");
    }
}
