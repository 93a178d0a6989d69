//! The conformance suite itself: every function takes any engine.

use super::*;

pub(super) fn put_then_get(s: &impl Storage) {
    let r = write(s, vec![put("k", "v1", None)]);
    let obj = written(&r[0]).clone();
    assert_eq!(values(&obj), vec!["v1"]);
    assert_eq!(obj.siblings()[0].dot.actor, s.actor());
    assert_eq!(get(s, "k"), Some(obj));
    assert_eq!(get(s, "missing"), None);
}

pub(super) fn siblings_and_causal_overwrite(s: &impl Storage) {
    write(s, vec![put("k", "a", None)]);
    let two = written(&write(s, vec![put("k", "b", None)])[0]).clone();
    assert_eq!(values(&two), vec!["a", "b"]);
    let one = written(&write(s, vec![put("k", "c", Some(two.context().clone()))])[0]).clone();
    assert_eq!(values(&one), vec!["c"]);
    assert_eq!(get(s, "k"), Some(one));
}

pub(super) fn delete_leaves_tombstone(s: &impl Storage) {
    let obj = written(&write(s, vec![put("k", "a", None)])[0]).clone();
    let del = written(&write(s, vec![delete("k", Some(obj.context().clone()))])[0]).clone();
    assert!(del.is_tombstone());
    let stored = get(s, "k").unwrap_or_else(|| panic!("tombstone missing"));
    assert!(stored.is_tombstone());
    assert!(stored.context().descends(obj.context()));
    let stats = s
        .read_blocking(|v| v.stats())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((stats.rows, stats.tombstones), (1, 1));
}

pub(super) fn rejected_op_stores_nothing_and_others_apply(s: &impl Storage) {
    for _ in 0..LIMITS.max {
        write(s, vec![put("hot", "x", None)]);
    }
    let before = get(s, "hot");
    let r = write(
        s,
        vec![put("hot", "too many", None), put("other", "fine", None)],
    );
    assert!(matches!(r[0], Err(KvError::Rejected(_))), "got {:?}", r[0]);
    assert!(r[1].is_ok());
    assert_eq!(get(s, "hot"), before);
    assert!(get(s, "other").is_some());
}

pub(super) fn forged_context_is_rejected(s: &impl Storage) {
    let forged = VersionVector::from_pairs([(s.actor(), 1_000_000)]);
    let r = write(s, vec![put("k", "v", Some(forged))]);
    assert!(matches!(r[0], Err(KvError::Rejected(_))), "got {:?}", r[0]);
    assert_eq!(get(s, "k"), None);
}

pub(super) fn merge_is_idempotent(s: &impl Storage) {
    let other = MemStorage::new(ActorId(7));
    let remote = written(&write(&other, vec![put("k", "remote", None)])[0]).clone();
    write(s, vec![put("k", "local", None)]);
    let r = write(
        s,
        vec![WriteOp::Merge {
            key: Bytes::from_static(b"k"),
            object: remote.clone(),
        }],
    );
    let Ok(Applied::Merged {
        object,
        changed: true,
    }) = &r[0]
    else {
        panic!("got {:?}", r[0])
    };
    let mut got = values(object);
    got.sort();
    assert_eq!(got, vec!["local", "remote"]);
    let again = write(
        s,
        vec![WriteOp::Merge {
            key: Bytes::from_static(b"k"),
            object: remote,
        }],
    );
    assert!(
        matches!(again[0], Ok(Applied::Merged { changed: false, .. })),
        "got {:?}",
        again[0]
    );
}

pub(super) fn scan_orders_and_hides_deleted_and_expired(s: &impl Storage) {
    write_at(
        s,
        10,
        vec![
            put("a/1", "1", None),
            put("a/2", "2", None),
            put_ttl("a/3", "3", None, Some(20)),
            put("a/4", "4", None),
            put("b/1", "5", None),
        ],
    );
    write_at(s, 11, vec![delete("a/2", None)]);
    let keys = |now: u64, range: KeyRange, limit: usize| -> Vec<String> {
        let rows = s
            .read_blocking(move |v| v.scan(&range, Timestamp(now), limit))
            .unwrap_or_else(|e| panic!("{e}"));
        rows.iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect()
    };
    assert_eq!(
        keys(15, KeyRange::prefix(b"a/"), 10),
        vec!["a/1", "a/3", "a/4"]
    );
    assert_eq!(keys(20, KeyRange::prefix(b"a/"), 10), vec!["a/1", "a/4"]);
    assert_eq!(keys(15, KeyRange::prefix(b"a/"), 2), vec!["a/1", "a/3"]);
    assert_eq!(
        keys(
            15,
            KeyRange::prefix(b"a/").after(Bytes::from_static(b"a/3")),
            10
        ),
        vec!["a/4"]
    );
    assert_eq!(
        keys(15, KeyRange::half_open(b"a/4", b""), 10),
        vec!["a/4", "b/1"]
    );
    assert_eq!(keys(15, KeyRange::all(), 100).len(), 4);
    // A range resumed at its own end is empty, not an error (or a panic).
    let r = KeyRange::half_open(b"a/", b"a/4").after(Bytes::from_static(b"a/4"));
    assert!(keys(15, r, 10).is_empty());
}

pub(super) fn purge_and_reap_are_bounded_and_selective(s: &impl Storage) {
    write_at(
        s,
        10,
        vec![
            put_ttl("t1", "x", None, Some(20)),
            put_ttl("t2", "x", None, Some(20)),
            put_ttl("t3", "x", None, Some(99)),
            put("keep", "x", None),
        ],
    );
    let r = write_at(s, 20, vec![WriteOp::PurgeExpired { limit: 1 }]);
    assert!(
        matches!(r[0], Ok(Applied::Removed { rows: 1 })),
        "got {:?}",
        r[0]
    );
    let r = write_at(s, 20, vec![WriteOp::PurgeExpired { limit: 10 }]);
    assert!(
        matches!(r[0], Ok(Applied::Removed { rows: 1 })),
        "got {:?}",
        r[0]
    );
    assert!(get(s, "t3").is_some() && get(s, "keep").is_some());

    write_at(s, 30, vec![delete("keep", None)]);
    let r = write_at(
        s,
        40,
        vec![WriteOp::ReapTombstones {
            deleted_before: Timestamp(30),
            limit: 10,
        }],
    );
    assert!(
        matches!(r[0], Ok(Applied::Removed { rows: 0 })),
        "got {:?}",
        r[0]
    );
    let r = write_at(
        s,
        40,
        vec![WriteOp::ReapTombstones {
            deleted_before: Timestamp(31),
            limit: 10,
        }],
    );
    assert!(
        matches!(r[0], Ok(Applied::Removed { rows: 1 })),
        "got {:?}",
        r[0]
    );
    assert_eq!(get(s, "keep"), None);
}

/// The row digest of `key` (which must be stored, value or tombstone).
fn digest_of(s: &impl Storage, key: &'static str) -> u64 {
    let rows = s
        .read_blocking(|v| v.hash_range(&(0..=u64::MAX), None, 100))
        .unwrap_or_else(|e| panic!("{e}"));
    rows.into_iter()
        .find(|r| r.key == key.as_bytes())
        .map(|r| r.digest)
        .unwrap_or_else(|| panic!("{key} missing"))
}

/// Applies one removal `op`; returns the rows it removed.
fn removed(s: &impl Storage, op: WriteOp) -> usize {
    match &write(s, vec![op])[0] {
        Ok(Applied::Removed { rows }) => *rows,
        other => panic!("got {other:?}"),
    }
}

pub(super) fn reap_if_unchanged_needs_the_exact_tombstone(s: &impl Storage) {
    write(s, vec![put("gone", "v", None), put("live", "v", None)]);
    write(s, vec![delete("gone", None)]);
    let (gone, live) = (digest_of(s, "gone"), digest_of(s, "live"));
    let reap = |key: &str, digest: u64| {
        removed(
            s,
            WriteOp::ReapIfUnchanged {
                key: Bytes::from(key.to_owned()),
                digest,
            },
        )
    };
    assert_eq!(reap("live", live), 0, "a live key is never reaped");
    assert_eq!(
        reap("gone", gone.wrapping_add(1)),
        0,
        "a changed tombstone is kept"
    );
    assert_eq!(reap("gone", gone), 1);
    assert_eq!(get(s, "gone"), None);
}

pub(super) fn drop_if_unchanged_needs_the_exact_row_value_or_tombstone(s: &impl Storage) {
    write(s, vec![put("live", "v", None), put("gone", "v", None)]);
    write(s, vec![delete("gone", None)]);
    let (gone, live) = (digest_of(s, "gone"), digest_of(s, "live"));
    let drop = |key: &str, digest: u64| {
        removed(
            s,
            WriteOp::DropIfUnchanged {
                key: Bytes::from(key.to_owned()),
                digest,
            },
        )
    };
    // The row changed since its digest was read: kept.
    write(s, vec![put("live", "newer", None)]);
    assert_eq!(drop("live", live), 0, "a changed row is kept");
    assert_eq!(
        values(&get(s, "live").unwrap_or_else(|| panic!("live"))).len(),
        2
    );
    assert_eq!(
        drop("live", digest_of(s, "live")),
        1,
        "a value is dropped too"
    );
    assert_eq!(drop("gone", gone), 1, "and a tombstone");
    assert_eq!(drop("absent", gone), 0);
    assert_eq!((get(s, "live"), get(s, "gone")), (None, None));
}

pub(super) fn hash_ranges_partition_the_keys(s: &impl Storage) {
    let ops = (0..60)
        .map(|i| put(&format!("key-{i}"), "v", None))
        .collect();
    write(s, ops);
    write(s, vec![delete("key-7", None)]);
    let all = s
        .read_blocking(|v| v.hash_range(&(0..=u64::MAX), None, 1000))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 60, "tombstones are listed too");
    assert!(
        all.windows(2)
            .all(|w| (w[0].hash, &w[0].key) < (w[1].hash, &w[1].key))
    );

    // Four partitions: paging through each with a small page gives the same rows.
    let mut paged = Vec::new();
    for p in 0..4 {
        let range = partition_hash_range(2, p).unwrap_or_else(|| panic!("partition"));
        let mut after: Option<(u64, Bytes)> = None;
        loop {
            let (r, a) = (range.clone(), after.clone());
            let page = s
                .read_blocking(move |v| {
                    v.hash_range(&r, a.as_ref().map(|(h, k)| (*h, k.as_ref())), 7)
                })
                .unwrap_or_else(|e| panic!("{e}"));
            if page.is_empty() {
                break;
            }
            after = page.last().map(|e| (e.hash, e.key.clone()));
            assert!(page.iter().all(|e| range.contains(&e.hash)));
            paged.extend(page);
        }
    }
    assert_eq!(paged, all);

    let total = s
        .read_blocking(|v| v.summarize(&(0..=u64::MAX)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sum = (0u64, 0u64);
    for p in 0..4 {
        let range = partition_hash_range(2, p).unwrap_or_else(|| panic!("partition"));
        let part = s
            .read_blocking(move |v| v.summarize(&range))
            .unwrap_or_else(|e| panic!("{e}"));
        sum = (sum.0 + part.rows, sum.1.wrapping_add(part.digest));
    }
    assert_eq!((total.rows, total.digest), sum);
    assert_eq!(total.rows, 60);

    // Row digests: one (hash, digest) a row, the same rows and digests the summaries add up.
    for p in 0..4 {
        let range = partition_hash_range(2, p).unwrap_or_else(|| panic!("partition"));
        let r = range.clone();
        let mut digests = s
            .read_blocking(move |v| v.row_digests(&r))
            .unwrap_or_else(|e| panic!("{e}"));
        digests.sort_unstable();
        let mut hashes: Vec<u64> = all
            .iter()
            .map(|e| e.hash)
            .filter(|h| range.contains(h))
            .collect();
        hashes.sort_unstable();
        assert_eq!(digests.iter().map(|d| d.0).collect::<Vec<_>>(), hashes);
        let part = s
            .read_blocking(move |v| v.summarize(&range))
            .unwrap_or_else(|e| panic!("{e}"));
        let digest = digests.iter().fold(0u64, |a, d| a.wrapping_add(d.1));
        assert_eq!((digests.len() as u64, digest), (part.rows, part.digest));
    }
}

pub(super) fn closed_store_refuses_work(s: &impl Storage) {
    write(s, vec![put("k", "v", None)]);
    s.close();
    let r = s.write_blocking(WriteRequest {
        now: Timestamp(1),
        siblings: LIMITS,
        ops: vec![put("k", "v", None)],
    });
    assert!(matches!(r, Err(KvError::Closed)), "got {r:?}");
    assert!(matches!(
        s.read_blocking(|v| v.get(b"k")),
        Err(KvError::Closed)
    ));
}
