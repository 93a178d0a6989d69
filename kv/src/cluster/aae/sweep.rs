//! One sweep: the roots of every partition two replicas share, compared in one call.
//!
//! A full exchange ([`session`](super::session)) costs a tree descent and at least one call per
//! partition even when nothing differs, which is nearly always. A sweep refreshes this node's
//! trees of the shared partitions, asks the peer for the roots of the same partitions
//! (`TreeRoots`, which refreshes the peer's trees first), and names the partitions whose roots
//! differ: only those need an exchange. With 512 partitions a node and two fellow replicas of
//! each, a round over every partition costs two calls instead of about 600.

use ringkit_hashring::NodeId;

use super::node::Aae;
use super::remote::{AaePeers, MAX_ROOTS_PER_QUERY, RootsQuery};
use crate::error::KvError;
use crate::storage::Storage;

/// How one partition's roots compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootVerdict {
    /// Same rows and digest on both sides: nothing to do.
    Equal,
    /// The roots differ: the partition needs an exchange.
    Differs,
    /// The peer does not replicate the partition (its map is older or newer than ours).
    NotReplicatedThere,
}

impl<S: Storage> Aae<S> {
    /// Compares the roots of `partitions` here and on `peer`; returns a verdict for each one
    /// this node still replicates, in order.
    ///
    /// # Errors
    /// The peer failed, refused (another ring size or tree shape) or answered malformed, or
    /// storage failed. Nothing is repaired by a sweep, so a failed one changes nothing.
    pub async fn sweep(
        &self,
        remote: &dyn AaePeers,
        peer: &NodeId,
        partitions: &[u32],
    ) -> Result<Vec<(u32, RootVerdict)>, KvError> {
        let (count, mine) = self.sync()?;
        let shared: Vec<u32> = partitions
            .iter()
            .copied()
            .filter(|p| mine.contains(p))
            .collect();
        let mut verdicts = Vec::with_capacity(shared.len());
        for chunk in shared.chunks(MAX_ROOTS_PER_QUERY) {
            for &p in chunk {
                self.trees()
                    .refresh_paced(self.node().storage(), p, self.budget())
                    .await?;
            }
            let q = RootsQuery {
                partition_count: count,
                shape: self.config().shape,
                partitions: chunk.to_vec(),
            };
            let theirs = remote.tree_roots(peer, q).await?;
            if theirs.len() != chunk.len() {
                return Err(KvError::Internal(format!(
                    "peer {peer} sent {} tree roots for {}",
                    theirs.len(),
                    chunk.len()
                )));
            }
            for (&p, their) in chunk.iter().zip(theirs) {
                // `None` here: the partition left this node while the call ran; say nothing.
                let Some(ours) = self.trees().with_tree(count, p, |t| t.node(0, 0)).flatten()
                else {
                    continue;
                };
                let verdict = match their {
                    None => RootVerdict::NotReplicatedThere,
                    Some(their) if their == ours => RootVerdict::Equal,
                    Some(_) => RootVerdict::Differs,
                };
                verdicts.push((p, verdict));
            }
        }
        Ok(verdicts)
    }
}
