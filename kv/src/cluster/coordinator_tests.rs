//! The coordinator shell against in-memory peers, under paused tokio time: a replica that never
//! answers costs exactly the replica timeout, a stand-in takes its place (sloppy) or the write
//! fails (strict), and reads merge what the replicas hold.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::{NodeId, RingConfig};
use tokio::sync::watch;

use super::{Coordinator, CoordinatorConfig};
use crate::clock::SystemClock;
use crate::cluster::peers::ReplicaPeers;
use crate::cluster::topology::{ClusterMap, LiveSet, Member};
use crate::error::KvError;
use crate::model::{ActorId, Object, key_hash};
use crate::node::{KvNode, NodeConfig, Put, Quorum, QuorumMode};
use crate::storage::MemStorage;

/// In-memory peers: each holds objects by key; merges are recorded; `hung` ones never answer.
#[derive(Default)]
struct FakePeers {
    hung: BTreeSet<NodeId>,
    stores: Mutex<HashMap<NodeId, HashMap<Bytes, Object>>>,
    merges: Mutex<Vec<(NodeId, Option<NodeId>)>>,
}

#[async_trait::async_trait]
impl ReplicaPeers for FakePeers {
    async fn merge(
        &self,
        to: &NodeId,
        items: Vec<(Bytes, Object)>,
        hint_for: Option<&NodeId>,
    ) -> Result<(), KvError> {
        if self.hung.contains(to) {
            std::future::pending::<()>().await;
        }
        if let Ok(mut m) = self.merges.lock() {
            m.push((to.clone(), hint_for.cloned()));
        }
        if hint_for.is_none()
            && let Ok(mut s) = self.stores.lock()
        {
            let store = s.entry(to.clone()).or_default();
            for (k, o) in items {
                let merged = store.get(&k).map_or(o.clone(), |held| held.merge(&o));
                store.insert(k, merged);
            }
        }
        Ok(())
    }

    async fn read(&self, to: &NodeId, keys: Vec<Bytes>) -> Result<Vec<Option<Object>>, KvError> {
        if self.hung.contains(to) {
            std::future::pending::<()>().await;
        }
        let s = self
            .stores
            .lock()
            .map_err(|_| KvError::Internal("poisoned".into()))?;
        let store = s.get(to);
        Ok(keys
            .iter()
            .map(|k| store.and_then(|st| st.get(k).cloned()))
            .collect())
    }
}

/// Five members; the coordinator is the first primary of `key`. Returns it, the fake peers and
/// the key's preference list (primaries then fallbacks).
fn setup(key: &str, hang: &[usize]) -> (Coordinator<MemStorage>, Arc<FakePeers>, Vec<NodeId>) {
    let members: Vec<Member> = (0..5)
        .map(|i| Member::new(format!("n{i}"), format!("h:{i}")))
        .collect();
    let map = ClusterMap::bootstrap(RingConfig::for_cluster_size(5), members)
        .unwrap_or_else(|e| panic!("{e}"));
    let set = map.replica_set(key_hash(key.as_bytes()), 3);
    let order: Vec<NodeId> = set.write.iter().chain(&set.fallbacks).cloned().collect();
    let local = order[0].clone();
    let mut peers = FakePeers::default();
    for &i in hang {
        peers.hung.insert(order[i].clone());
    }
    let peers = Arc::new(peers);
    let live: LiveSet = Arc::new(order.iter().cloned().collect::<BTreeSet<_>>());
    let mut config = NodeConfig::new(local.as_str());
    config.maintenance.tombstone_grace = None;
    let node = KvNode::new(MemStorage::new(ActorId(7)), config, Arc::new(SystemClock))
        .unwrap_or_else(|e| panic!("{e}"));
    let coordinator = Coordinator::new(
        node,
        local,
        watch::channel(Arc::new(map)).1,
        watch::channel(live).1,
        Arc::clone(&peers) as Arc<dyn ReplicaPeers>,
        CoordinatorConfig {
            replica_timeout: Duration::from_secs(1),
            max_read_repairs: 4,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (coordinator, peers, order)
}

fn put(key: &str, w: u32, mode: QuorumMode) -> Put {
    let mut p = Put::new(key.to_owned(), "v");
    p.quorum = Quorum {
        n: 3,
        r: 2,
        w,
        mode,
    };
    p
}

#[tokio::test(start_paused = true)]
async fn w2_answers_without_waiting_for_a_hung_replica() {
    let (c, peers, order) = setup("k", &[2]);
    let start = tokio::time::Instant::now();
    c.put(put("k", 2, QuorumMode::Sloppy))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        start.elapsed() < Duration::from_millis(1),
        "no timeout was waited for"
    );
    // The hung primary times out in the background; a fallback stands in with a hint.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let merges = peers.merges.lock().map(|m| m.clone()).unwrap_or_default();
    assert!(merges.contains(&(order[1].clone(), None)));
    assert!(merges.contains(&(order[3].clone(), Some(order[2].clone()))));
}

#[tokio::test(start_paused = true)]
async fn w3_waits_one_timeout_then_counts_the_stand_in_or_fails_strict() {
    let (c, _peers, _order) = setup("k", &[2]);
    let start = tokio::time::Instant::now();
    c.put(put("k", 3, QuorumMode::Sloppy))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "one replica timeout"
    );
    let err = c
        .put(put("k", 3, QuorumMode::Strict))
        .await
        .err()
        .unwrap_or_else(|| panic!("strict W=3 with a hung primary must fail"));
    let msg = err.to_string();
    assert!(matches!(err, KvError::Unavailable(_)), "{msg}");
    assert!(
        msg.contains("got 2 of 3") && msg.contains("timeouts: [\""),
        "{msg}"
    );
}

#[tokio::test(start_paused = true)]
async fn reads_merge_replicas_and_fail_when_r_is_out_of_reach() {
    let (c, _peers, _order) = setup("k", &[1, 2]);
    let mut p = put("k", 1, QuorumMode::Sloppy);
    p.value = Bytes::from("one");
    c.put(p).await.unwrap_or_else(|e| panic!("{e}"));
    let one = Quorum {
        n: 3,
        r: 1,
        w: 1,
        mode: QuorumMode::Sloppy,
    };
    let v = c
        .get(Bytes::from("k"), one)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.values.len(), 1);
    let two = Quorum { r: 2, ..one };
    let start = tokio::time::Instant::now();
    let err = c.get(Bytes::from("k"), two).await.err();
    assert!(matches!(err, Some(KvError::Unavailable(_))), "{err:?}");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}
