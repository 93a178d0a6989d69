//! Golden vectors: checked-in placements that must never change.
//!
//! Every process and every release must agree on where a key lives. If one of these fails, a
//! change moved keys in deployed clusters: that needs a new hash seed or strategy version and a
//! migration, never a quiet update of the expected values.

mod common;

use ringkit_hashring::{
    JumpHash, KEY_HASH_SEED, Maglev, Node, PartitionId, PartitionedRing, Placement, Rendezvous,
    RingConfig, TokenRing, key_hash,
};
use xxhash_rust::xxh3::xxh3_64;

const KEYS: [&str; 8] = [
    "",
    "a",
    "user:42",
    "order/2024/0001",
    "0123456789abcdef",
    "ringkit",
    "\u{1F980}",
    "k",
];

fn members() -> Vec<Node> {
    vec![
        Node::new("alpha").with_zone("eu-1"),
        Node::new("bravo").with_zone("eu-2"),
        Node::new("charlie").with_zone("eu-3"),
        Node::new("delta").with_zone("eu-1").with_weight(2),
        Node::new("echo").with_zone("eu-2"),
        Node::new("foxtrot").with_zone("eu-3"),
    ]
}

/// Owner and 3-entry preference list of every key, as one line per key.
fn placements(p: &dyn Placement) -> Vec<String> {
    KEYS.iter()
        .map(|k| {
            let list: Vec<&str> = p.preference_list_str(k, 3).map(|id| id.as_str()).collect();
            list.join(" ")
        })
        .collect()
}

/// A digest of the owners of 4096 hashes spread over the whole space (a Weyl sequence): pins the
/// whole placement, not just a few keys.
fn digest(p: &dyn Placement) -> u64 {
    let mut bytes = Vec::new();
    for i in 0u64..4096 {
        let owner = p.owner_of_hash(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        bytes.extend_from_slice(owner.unwrap().as_str().as_bytes());
        bytes.push(0);
    }
    xxh3_64(&bytes)
}

#[test]
fn key_hash_is_xxh3_with_the_ringkit1_seed() {
    assert_eq!(KEY_HASH_SEED, 0x3174_696b_676e_6972);
    let got: Vec<u64> = KEYS.iter().map(|k| key_hash(k.as_bytes())).collect();
    assert_eq!(got, GOLDEN_KEY_HASH);
}

#[test]
fn partitioned_ring_placement_is_pinned() {
    let ring = PartitionedRing::new(RingConfig::default(), members()).unwrap();
    assert_eq!(placements(&ring), GOLDEN_PARTITIONED);
    assert_eq!(digest(&ring), GOLDEN_DIGESTS[0]);
    let owners: Vec<u64> = (0..ring.partition_count())
        .map(|p| key_hash(ring.partition_owner(PartitionId(p)).as_str().as_bytes()))
        .collect();
    let bytes: Vec<u8> = owners.iter().flat_map(|o| o.to_le_bytes()).collect();
    assert_eq!(xxh3_64(&bytes), GOLDEN_DIGESTS[1]);
    // A change is pinned too, since it depends on the claim, not only on the node set.
    let grown = ring.with_node(Node::new("golf").with_zone("eu-1")).unwrap();
    assert_eq!(digest(&grown), GOLDEN_DIGESTS[2]);
}

#[test]
fn other_strategies_are_pinned() {
    let token = TokenRing::new(160, members()).unwrap();
    let plain: Vec<Node> = members().into_iter().map(|n| n.with_weight(1)).collect();
    let jump = JumpHash::new(plain).unwrap();
    let hrw = Rendezvous::new(members()).unwrap();
    let maglev = Maglev::new(members()).unwrap();
    assert_eq!(placements(&token), GOLDEN_TOKEN);
    assert_eq!(placements(&jump), GOLDEN_JUMP);
    assert_eq!(placements(&hrw), GOLDEN_RENDEZVOUS);
    assert_eq!(placements(&maglev), GOLDEN_MAGLEV);
    assert_eq!(
        [digest(&token), digest(&jump), digest(&hrw), digest(&maglev)],
        GOLDEN_DIGESTS[3..7]
    );
}

const GOLDEN_KEY_HASH: [u64; 8] = [
    0x04c18846dab43654,
    0xdcec708c14e3c427,
    0x63e41f469ac74754,
    0xd6e49f5cc1938a67,
    0x12ce0380c91906bf,
    0x12808103ae6cef28,
    0x466c22e528be8c46,
    0xf80da9192cf4bdf5,
];
const GOLDEN_PARTITIONED: [&str; 8] = [
    "delta foxtrot bravo alpha echo charlie",
    "echo charlie delta foxtrot alpha bravo",
    "foxtrot delta bravo echo charlie alpha",
    "delta foxtrot echo bravo charlie alpha",
    "foxtrot delta bravo charlie alpha echo",
    "delta echo charlie alpha bravo foxtrot",
    "bravo delta charlie echo foxtrot alpha",
    "charlie echo delta foxtrot alpha bravo",
];
const GOLDEN_TOKEN: [&str; 8] = [
    "bravo delta foxtrot echo charlie alpha",
    "alpha bravo charlie echo foxtrot delta",
    "bravo alpha foxtrot echo charlie delta",
    "alpha charlie bravo echo foxtrot delta",
    "foxtrot delta bravo echo charlie alpha",
    "alpha charlie bravo delta echo foxtrot",
    "delta foxtrot echo alpha bravo charlie",
    "alpha foxtrot bravo delta echo charlie",
];
const GOLDEN_JUMP: [&str; 8] = [
    "alpha bravo foxtrot delta echo charlie",
    "alpha bravo foxtrot echo charlie delta",
    "alpha bravo foxtrot delta echo charlie",
    "foxtrot bravo alpha echo charlie delta",
    "delta bravo foxtrot echo charlie alpha",
    "charlie echo delta bravo foxtrot alpha",
    "echo foxtrot alpha charlie delta bravo",
    "echo alpha charlie delta bravo foxtrot",
];
const GOLDEN_RENDEZVOUS: [&str; 8] = [
    "alpha foxtrot bravo charlie delta echo",
    "foxtrot echo delta charlie alpha bravo",
    "delta foxtrot bravo alpha echo charlie",
    "alpha foxtrot echo charlie delta bravo",
    "foxtrot delta echo bravo charlie alpha",
    "charlie delta bravo alpha echo foxtrot",
    "charlie delta echo foxtrot alpha bravo",
    "echo delta charlie alpha bravo foxtrot",
];
const GOLDEN_MAGLEV: [&str; 8] = [
    "bravo charlie delta foxtrot alpha echo",
    "alpha foxtrot echo charlie delta bravo",
    "echo foxtrot alpha bravo charlie delta",
    "delta echo charlie bravo foxtrot alpha",
    "alpha charlie bravo foxtrot delta echo",
    "delta echo foxtrot alpha bravo charlie",
    "charlie alpha bravo delta echo foxtrot",
    "charlie alpha echo delta bravo foxtrot",
];
const GOLDEN_DIGESTS: [u64; 7] = [
    0x253257547ae5001d,
    0x5e2af7d36a17da97,
    0xb5ad241503c688e7,
    0x85824513f8ab6b87,
    0x1a459f30de9909ae,
    0x75ea7b08d26524be,
    0x2749888aae20a8eb,
];
