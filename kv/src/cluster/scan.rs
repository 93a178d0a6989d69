//! Merging per-node scan pages into one cluster page, sans IO.
//!
//! A cluster scan asks every live node for one page of its own keys (each node stores only the
//! keys it replicates) and merges them by key. A node that has more keys after its page bounds
//! what the merged page may contain: past its last key, keys of that node are still unknown. The
//! smallest such last key is the cut; because that node alone returned a full page at or before
//! the cut, the merged page is always full when a cut exists. See
//! docs/adr/0411-kv-cluster-scan-and-batches.md for what this view promises.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::model::Object;

/// One node's page: its rows in key order, and, when it holds more keys after them, the last key
/// it read (the rows may have been filtered since, so this is kept apart).
pub type NodePage = (Vec<(Bytes, Object)>, Option<Bytes>);

/// The merged page: up to `page_size` keys in order with their merged objects, and whether the
/// scan continues after the last of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergedPage {
    /// Keys in order, each with the merge of every node's object for it.
    pub rows: Vec<(Bytes, Object)>,
    /// True when keys may follow the last row (continue after it).
    pub more: bool,
}

/// Merges the pages of several nodes, each at most `page_size` rows.
pub fn merge_pages(pages: Vec<NodePage>, page_size: usize) -> MergedPage {
    let cut: Option<Bytes> = pages.iter().filter_map(|(_, last)| last.clone()).min();
    let mut by_key: BTreeMap<Bytes, Object> = BTreeMap::new();
    for (rows, _) in pages {
        for (key, object) in rows {
            if cut.as_ref().is_some_and(|c| key > *c) {
                continue;
            }
            match by_key.get_mut(&key) {
                Some(held) => *held = held.merge(&object),
                None => {
                    by_key.insert(key, object);
                }
            }
        }
    }
    let total = by_key.len();
    let rows: Vec<(Bytes, Object)> = by_key.into_iter().take(page_size).collect();
    MergedPage {
        more: cut.is_some() || total > page_size,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActorId, Dot, Sibling, Timestamp, VersionVector};

    fn obj(actor: u64) -> Object {
        let s = Sibling {
            dot: Dot::new(ActorId(actor), 1),
            value: Bytes::from(format!("v{actor}")),
            written_at: Timestamp(1),
            expires_at: None,
            lww: false,
        };
        Object::from_parts(vec![s], VersionVector::new())
    }

    fn page(keys: &[&str], actor: u64, more: bool) -> NodePage {
        let last = keys.last().map(|k| Bytes::from(k.to_string()));
        (
            keys.iter()
                .map(|k| (Bytes::from(k.to_string()), obj(actor)))
                .collect(),
            last.filter(|_| more),
        )
    }

    fn keys(p: &MergedPage) -> Vec<&[u8]> {
        p.rows.iter().map(|(k, _)| k.as_ref()).collect()
    }

    #[test]
    fn replicas_of_one_key_merge_into_one_row() {
        let p = merge_pages(
            vec![page(&["a", "b"], 1, false), page(&["b"], 2, false)],
            10,
        );
        assert_eq!(keys(&p), vec![&b"a"[..], b"b"]);
        assert_eq!(p.rows[1].1.siblings().len(), 2, "concurrent copies kept");
        assert!(!p.more);
    }

    #[test]
    fn a_node_with_more_keys_bounds_the_page() {
        // Node 1 has more after "c"; node 2 is done but holds "d", which must wait: node 1 may
        // hold keys between "c" and "d".
        let p = merge_pages(
            vec![page(&["a", "b", "c"], 1, true), page(&["b", "d"], 2, false)],
            3,
        );
        assert_eq!(keys(&p), vec![&b"a"[..], b"b", b"c"]);
        assert!(p.more);
    }

    #[test]
    fn a_node_whose_rows_were_all_filtered_still_bounds_the_page() {
        let mut filtered = page(&["a", "b", "c"], 1, true);
        filtered.0.clear();
        let p = merge_pages(vec![filtered, page(&["b", "d"], 2, false)], 3);
        assert_eq!(keys(&p), vec![&b"b"[..]]);
        assert!(p.more, "keys after c are still unknown");
    }

    #[test]
    fn exhausted_nodes_can_still_overflow_one_page() {
        let p = merge_pages(
            vec![page(&["a", "c"], 1, false), page(&["b", "d"], 2, false)],
            3,
        );
        assert_eq!(keys(&p), vec![&b"a"[..], b"b", b"c"]);
        assert!(p.more);
        let empty = merge_pages(vec![page(&[], 1, false)], 3);
        assert!(empty.rows.is_empty() && !empty.more);
    }
}
