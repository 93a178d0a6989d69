//! [`MerkleTree`]: one partition's hash tree, sans-IO.
//!
//! The partition's hash range is cut into `fan_out^depth` equal leaves. A leaf holds the
//! [`RangeSummary`] of its sub-range (row count and wrapping sum of row digests), exactly what
//! [`ReadView::summarize`](crate::storage::ReadView::summarize) returns for it. An inner node is
//! the wrapping sum of its children, so every node equals the summary of its whole range, and a
//! changed leaf updates its ancestors by adding the difference (new minus old) instead of
//! rehashing. Leaves that writes touched are marked *dirty* until a refresh re-reads them.

use crate::model::HashRange;
use crate::storage::RangeSummary;

/// The shape of every tree: both sides of an exchange must agree on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeShape {
    /// Children per inner node.
    pub fan_out: u32,
    /// Levels below the root; the leaves are at level `depth`.
    pub depth: u32,
}

impl Default for TreeShape {
    /// 16 x 16 x 16 = 4096 leaves a partition: a few rows a leaf at a million keys a node, and
    /// 70 KiB of memory a partition.
    fn default() -> Self {
        Self {
            fan_out: 16,
            depth: 3,
        }
    }
}

impl TreeShape {
    /// Most leaves a tree may have (bounds memory and message sizes).
    pub const MAX_LEAVES: u64 = 1 << 20;

    /// Checks the shape is usable.
    ///
    /// # Errors
    /// A message naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.fan_out < 2 || self.depth == 0 {
            return Err(format!(
                "tree fan_out must be >= 2 and depth >= 1 (got {} and {})",
                self.fan_out, self.depth
            ));
        }
        match self.nodes_at(self.depth) {
            Some(n) if n <= Self::MAX_LEAVES => Ok(()),
            _ => Err(format!(
                "tree of fan_out {} and depth {} has more than {} leaves",
                self.fan_out,
                self.depth,
                Self::MAX_LEAVES
            )),
        }
    }

    /// Nodes at `level` (`fan_out^level`), if it fits in a `u64`.
    pub fn nodes_at(&self, level: u32) -> Option<u64> {
        u64::from(self.fan_out).checked_pow(level)
    }

    /// Number of leaves. Only meaningful for a validated shape.
    pub fn leaves(&self) -> u64 {
        self.nodes_at(self.depth).unwrap_or(u64::MAX)
    }
}

/// Adds `b` to `a` (both fields wrap, so subtraction undoes addition exactly).
fn add(a: RangeSummary, b: RangeSummary) -> RangeSummary {
    RangeSummary {
        rows: a.rows.wrapping_add(b.rows),
        digest: a.digest.wrapping_add(b.digest),
    }
}

/// Subtracts `b` from `a`.
fn sub(a: RangeSummary, b: RangeSummary) -> RangeSummary {
    RangeSummary {
        rows: a.rows.wrapping_sub(b.rows),
        digest: a.digest.wrapping_sub(b.digest),
    }
}

/// The hash tree of one partition.
#[derive(Clone, Debug)]
pub struct MerkleTree {
    /// The partition's hash range.
    range: HashRange,
    /// Fan-out and depth.
    shape: TreeShape,
    /// `levels[l][i]`: node `i` of level `l` (level 0 is the root).
    levels: Vec<Vec<RangeSummary>>,
    /// One bit a leaf: written since its last refresh.
    dirty: Vec<u64>,
    /// Number of set bits in `dirty`.
    dirty_count: usize,
}

impl MerkleTree {
    /// An empty tree over `range` with every leaf dirty: it must be refreshed from storage
    /// before it says anything (a new tree knows nothing, so it must not claim "empty").
    ///
    /// # Errors
    /// The shape is invalid.
    pub fn new(range: HashRange, shape: TreeShape) -> Result<Self, String> {
        shape.validate()?;
        let levels = (0..=shape.depth)
            .map(|l| vec![RangeSummary::default(); shape.nodes_at(l).unwrap_or(1) as usize])
            .collect();
        let leaves = shape.leaves() as usize;
        let mut tree = Self {
            range,
            shape,
            levels,
            dirty: vec![0; leaves.div_ceil(64)],
            dirty_count: 0,
        };
        tree.mark_all();
        Ok(tree)
    }

    /// The partition's hash range.
    pub fn range(&self) -> &HashRange {
        &self.range
    }

    /// The tree's shape.
    pub fn shape(&self) -> TreeShape {
        self.shape
    }

    /// The whole partition's summary.
    pub fn root(&self) -> RangeSummary {
        self.levels[0][0]
    }

    /// Node `index` of `level`, or `None` if there is no such node.
    pub fn node(&self, level: u32, index: u64) -> Option<RangeSummary> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
    }

    /// The leaf whose range holds `hash`, or `None` outside the partition.
    pub fn leaf_of(&self, hash: u64) -> Option<u64> {
        if !self.range.contains(&hash) {
            return None;
        }
        let span = self.span();
        let offset = u128::from(hash - self.range.start());
        let leaves = u128::from(self.shape.leaves());
        // Leaf i starts at floor(span * i / leaves): the last start at or below `offset`.
        Some((((offset + 1) * leaves - 1) / span) as u64)
    }

    /// The hash range of leaf `index`; `None` if the index is out of range or the leaf is empty
    /// (a partition narrower than its leaf count).
    pub fn leaf_range(&self, index: u64) -> Option<HashRange> {
        self.node_range(self.shape.depth, index)
    }

    /// The hash range of node `index` at `level` (see [`leaf_range`](Self::leaf_range)).
    pub fn node_range(&self, level: u32, index: u64) -> Option<HashRange> {
        let count = u128::from(self.shape.nodes_at(level)?);
        if u128::from(index) >= count {
            return None;
        }
        let span = self.span();
        let start = span * u128::from(index) / count;
        let end = span * (u128::from(index) + 1) / count;
        if end == start {
            return None;
        }
        let base = *self.range.start();
        Some(base + start as u64..=base + (end - 1) as u64)
    }

    /// Number of hashes in the partition (up to 2^64).
    fn span(&self) -> u128 {
        u128::from(self.range.end() - self.range.start()) + 1
    }

    /// Marks the leaf holding `hash` dirty; hashes outside the partition are ignored.
    pub fn mark(&mut self, hash: u64) {
        if let Some(leaf) = self.leaf_of(hash) {
            let (word, bit) = ((leaf / 64) as usize, leaf % 64);
            if self.dirty[word] & (1 << bit) == 0 {
                self.dirty[word] |= 1 << bit;
                self.dirty_count += 1;
            }
        }
    }

    /// Marks every leaf dirty (a change the tree cannot place, or a periodic full rebuild).
    pub fn mark_all(&mut self) {
        let leaves = self.shape.leaves();
        for (w, word) in self.dirty.iter_mut().enumerate() {
            let bits = leaves.saturating_sub(w as u64 * 64).min(64);
            *word = if bits == 64 {
                u64::MAX
            } else {
                (1 << bits) - 1
            };
        }
        self.dirty_count = leaves as usize;
    }

    /// Leaves written since their last refresh.
    pub fn dirty_count(&self) -> usize {
        self.dirty_count
    }

    /// Takes up to `limit` dirty leaves, clearing their marks. The caller must then read each
    /// leaf's summary from a storage snapshot taken *after* this call and give it to
    /// [`set_leaf`](Self::set_leaf): a write that commits later marks the leaf again.
    pub fn take_dirty(&mut self, limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        for (w, word) in self.dirty.iter_mut().enumerate() {
            while *word != 0 && out.len() < limit {
                let bit = word.trailing_zeros();
                *word &= !(1 << bit);
                out.push(w as u64 * 64 + u64::from(bit));
            }
            if out.len() >= limit {
                break;
            }
        }
        self.dirty_count -= out.len();
        out
    }

    /// Clears every dirty mark. The caller must then summarise the whole partition from a
    /// storage snapshot taken *after* this call and give it to [`rebuild`](Self::rebuild)
    /// (the rule of [`take_dirty`](Self::take_dirty), for every leaf at once).
    pub fn take_all_dirty(&mut self) {
        self.dirty.fill(0);
        self.dirty_count = 0;
    }

    /// Replaces every node by the summary of `rows`, the `(hash, digest)` of every row of the
    /// partition in any order (hashes outside it are ignored): one pass over the rows, then
    /// one over the inner nodes, where setting each leaf would update its ancestors each time.
    pub fn rebuild(&mut self, rows: impl IntoIterator<Item = (u64, u64)>) {
        for level in &mut self.levels {
            level.fill(RangeSummary::default());
        }
        let depth = self.shape.depth as usize;
        for (hash, digest) in rows {
            if let Some(leaf) = self.leaf_of(hash) {
                let node = &mut self.levels[depth][leaf as usize];
                *node = add(*node, RangeSummary { rows: 1, digest });
            }
        }
        let fan_out = self.shape.fan_out as usize;
        for level in (0..depth).rev() {
            let (upper, lower) = self.levels.split_at_mut(level + 1);
            for (parent, children) in upper[level].iter_mut().zip(lower[0].chunks(fan_out)) {
                *parent = children
                    .iter()
                    .fold(RangeSummary::default(), |a, &c| add(a, c));
            }
        }
    }

    /// Sets leaf `index` to `summary` and updates its ancestors by the difference.
    /// Out-of-range indexes are ignored.
    pub fn set_leaf(&mut self, index: u64, summary: RangeSummary) {
        let depth = self.shape.depth as usize;
        let Some(old) = self.node(self.shape.depth, index) else {
            return;
        };
        let delta = sub(summary, old);
        let mut i = index as usize;
        for level in (0..=depth).rev() {
            self.levels[level][i] = add(self.levels[level][i], delta);
            i /= self.shape.fan_out as usize;
        }
    }

    /// Children of node `index` at `level` (indexes at `level + 1`).
    pub fn children(&self, index: u64) -> std::ops::Range<u64> {
        let f = u64::from(self.shape.fan_out);
        index * f..(index + 1) * f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(range: HashRange, fan_out: u32, depth: u32) -> MerkleTree {
        MerkleTree::new(range, TreeShape { fan_out, depth }).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn leaves_tile_the_partition_and_leaf_of_agrees() {
        for range in [
            0..=u64::MAX,
            (1u64 << 62)..=((1 << 63) - 1),
            100..=1099,
            5..=9,
        ] {
            let t = tree(range.clone(), 4, 2);
            let mut next = *range.start();
            for i in 0..16 {
                let Some(r) = t.leaf_range(i) else { continue };
                assert_eq!(*r.start(), next, "leaf {i} of {range:?}");
                assert_eq!(t.leaf_of(*r.start()), Some(i));
                assert_eq!(t.leaf_of(*r.end()), Some(i));
                next = r.end().wrapping_add(1);
            }
            assert_eq!(next, range.end().wrapping_add(1));
            if *range.end() != u64::MAX {
                assert_eq!(t.leaf_of(range.end() + 1), None);
            }
        }
    }

    #[test]
    fn set_leaf_keeps_every_node_the_sum_of_its_children() {
        let mut t = tree(0..=u64::MAX, 4, 3);
        let s = |rows, digest| RangeSummary { rows, digest };
        t.set_leaf(0, s(2, u64::MAX));
        t.set_leaf(63, s(1, 7));
        t.set_leaf(0, s(1, 5));
        assert_eq!(t.root(), s(2, 12));
        assert_eq!(t.node(1, 0), Some(s(1, 5)));
        assert_eq!(t.node(1, 3), Some(s(1, 7)));
        assert_eq!(t.node(2, 15), Some(s(1, 7)));
        t.set_leaf(63, RangeSummary::default());
        t.set_leaf(0, RangeSummary::default());
        assert_eq!(t.root(), RangeSummary::default());
        assert_eq!(t.node(4, 0), None);
    }

    #[test]
    fn a_rebuild_from_rows_equals_setting_each_leaf() {
        let range = 1000..=50_999;
        let rows: Vec<(u64, u64)> = (0..500u64)
            .map(|i| {
                (
                    1000 + i * 97 % 50_000,
                    i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                )
            })
            .chain([(999, 1), (51_000, 2)]) // outside: ignored
            .collect();
        let mut rebuilt = tree(range.clone(), 4, 3);
        rebuilt.set_leaf(5, RangeSummary { rows: 9, digest: 9 }); // stale, replaced
        rebuilt.take_all_dirty();
        assert_eq!(rebuilt.dirty_count(), 0);
        assert!(rebuilt.take_dirty(100).is_empty());
        rebuilt.rebuild(rows.iter().copied());

        let mut by_leaf = tree(range, 4, 3);
        for leaf in 0..64 {
            let r = by_leaf
                .leaf_range(leaf)
                .unwrap_or_else(|| panic!("leaf {leaf}"));
            let summary = rows
                .iter()
                .filter(|(h, _)| r.contains(h))
                .fold(RangeSummary::default(), |a, &(_, d)| {
                    add(a, RangeSummary { rows: 1, digest: d })
                });
            by_leaf.set_leaf(leaf, summary);
        }
        assert_eq!(rebuilt.root().rows, 500);
        for level in 0..=3 {
            assert_eq!(
                rebuilt.levels[level], by_leaf.levels[level],
                "level {level}"
            );
        }
    }

    #[test]
    fn dirty_marks_are_taken_once_and_a_new_tree_is_all_dirty() {
        let mut t = tree(0..=1023, 4, 2);
        assert_eq!(t.dirty_count(), 16);
        assert_eq!(t.take_dirty(10).len(), 10);
        assert_eq!(t.take_dirty(100).len(), 6);
        assert_eq!(t.dirty_count(), 0);
        t.mark(0);
        t.mark(63);
        t.mark(64);
        t.mark(5000);
        assert_eq!(t.take_dirty(100), vec![0, 1]);
    }

    #[test]
    fn shapes_are_validated() {
        assert!(
            TreeShape {
                fan_out: 1,
                depth: 3
            }
            .validate()
            .is_err()
        );
        assert!(
            TreeShape {
                fan_out: 2,
                depth: 0
            }
            .validate()
            .is_err()
        );
        assert!(
            TreeShape {
                fan_out: 1024,
                depth: 3
            }
            .validate()
            .is_err()
        );
        assert!(TreeShape::default().validate().is_ok());
    }
}
