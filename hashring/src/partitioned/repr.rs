//! Serialised form of [`PartitionedRing`], checked on the way in.
//!
//! The wire form is `{config, epoch, nodes, owners}` where `nodes` is sorted by id and `owners`
//! lists, partition by partition, the indices (into `nodes`) of its `min(replicas, nodes)`
//! replicas. Derived data (hashes, zones) is rebuilt, and every invariant the claim guarantees is
//! re-checked, so a corrupted or hand-edited ring is refused instead of misplacing keys.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::config::RingConfig;
use super::ring::PartitionedRing;
use crate::topology::{NONE, Topology, spread_ok};
use crate::{HashRingError, Node};

#[derive(Serialize)]
struct ReprOut<'a> {
    config: &'a RingConfig,
    epoch: u64,
    nodes: &'a [Node],
    owners: Vec<u32>,
}

#[derive(Deserialize)]
struct ReprIn {
    config: RingConfig,
    epoch: u64,
    nodes: Vec<Node>,
    owners: Vec<u32>,
}

impl Serialize for PartitionedRing {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ReprOut {
            config: self.config(),
            epoch: self.epoch(),
            nodes: &self.topo().nodes,
            owners: self
                .slots()
                .iter()
                .copied()
                .filter(|&n| n != NONE)
                .collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PartitionedRing {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = ReprIn::deserialize(deserializer)?;
        from_repr(repr).map_err(serde::de::Error::custom)
    }
}

fn corrupt(reason: impl Into<String>) -> HashRingError {
    HashRingError::CorruptRing {
        reason: reason.into(),
    }
}

fn from_repr(repr: ReprIn) -> Result<PartitionedRing, HashRingError> {
    let ReprIn {
        config,
        epoch,
        nodes,
        owners,
    } = repr;
    config.validate()?;
    let topo = Topology::new(nodes.clone(), false)?;
    if topo.nodes != nodes {
        return Err(corrupt("nodes are not sorted by id"));
    }
    if topo.len() > config.partitions as usize {
        return Err(corrupt("more nodes than partitions"));
    }
    let len = config.replicas.min(topo.len());
    let q = config.partitions as usize;
    if owners.len() != q * len {
        return Err(corrupt(format!(
            "expected {} owner entries ({q} partitions x {len} replicas), found {}",
            q * len,
            owners.len()
        )));
    }
    let mut slots = vec![NONE; q * config.replicas];
    for (p, list) in owners.chunks(len).enumerate() {
        for (j, &n) in list.iter().enumerate() {
            if n as usize >= topo.len() {
                return Err(corrupt(format!(
                    "partition {p}: node index {n} out of range"
                )));
            }
            if list[..j].contains(&n) {
                return Err(corrupt(format!("partition {p}: node {n} listed twice")));
            }
        }
        if !spread_ok(&topo, list.iter().copied()) {
            return Err(corrupt(format!(
                "partition {p}: replicas not spread over zones"
            )));
        }
        slots[p * config.replicas..p * config.replicas + len].copy_from_slice(list);
    }
    Ok(PartitionedRing::from_parts(config, epoch, topo, slots))
}
