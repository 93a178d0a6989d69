//! Several members in memory on a fake clock: detection, restart, leave, ring announcements.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::NodeId;

/// Simulated time per step: datagrams sent in one step arrive in the next.
const TICK: Duration = Duration::from_millis(10);

struct Cluster {
    now: Duration,
    /// `None` while a node is stopped (its datagrams are lost).
    nodes: Vec<Option<Membership>>,
    in_flight: VecDeque<Transmit>,
    events: Vec<(Duration, usize, MemberEvent)>,
    /// Side of a network partition per node (datagrams between sides are lost); empty: none.
    sides: Vec<u8>,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16))
}

fn name(i: usize) -> NodeId {
    NodeId::from(format!("n{i}"))
}

fn member(i: usize, incarnation: u64) -> Membership {
    let me = MemberIdentity::new(
        name(i),
        addr(i),
        format!("127.0.0.1:{}", 50_000 + i),
        incarnation,
    );
    Membership::new(
        me,
        &MembershipConfig::default(),
        1000 + i as u64 + incarnation,
    )
    .unwrap()
}

impl Cluster {
    /// `n` members, each joining through member 0, run until everyone sees everyone.
    fn converged(n: usize) -> Self {
        let mut c = Self {
            now: Duration::ZERO,
            nodes: Vec::new(),
            in_flight: VecDeque::new(),
            events: Vec::new(),
            sides: Vec::new(),
        };
        for i in 0..n {
            c.nodes.push(Some(member(i, 1)));
            let now = c.now;
            c.node(i).join([addr(0)], now).unwrap();
        }
        let all: BTreeSet<NodeId> = (0..n).map(name).collect();
        c.run_until(Duration::from_secs(5), |c| (0..n).all(|i| c.live(i) == all));
        c
    }

    fn node(&mut self, i: usize) -> &mut Membership {
        self.nodes[i].as_mut().expect("node is running")
    }

    fn live(&self, i: usize) -> BTreeSet<NodeId> {
        self.nodes[i]
            .as_ref()
            .expect("node is running")
            .live_nodes()
    }

    fn step(&mut self) {
        self.now += TICK;
        let now = self.now;
        for t in std::mem::take(&mut self.in_flight) {
            if let Some(Some(m)) = self
                .nodes
                .iter_mut()
                .find(|m| m.as_ref().is_some_and(|m| m.identity().gossip_addr == t.to))
            {
                // Stale datagrams (to an old life, say) are refused; that is not a failure.
                let _ = m.handle_datagram(&t.payload, now);
            }
        }
        for (i, slot) in self.nodes.iter_mut().enumerate() {
            if let Some(m) = slot {
                let _ = m.handle_timeout(now);
                while let Some(t) = m.poll_transmit() {
                    let to = usize::from(t.to.port() - 7000);
                    let cut = !self.sides.is_empty() && self.sides.get(i) != self.sides.get(to);
                    if !cut {
                        self.in_flight.push_back(t);
                    }
                }
                while let Some(e) = m.poll_event() {
                    self.events.push((now, i, e));
                }
            }
        }
    }

    /// Steps until `done` holds (returns the time it took) or `limit` passes (panics).
    fn run_until(&mut self, limit: Duration, done: impl Fn(&Self) -> bool) -> Duration {
        let start = self.now;
        while !done(self) {
            assert!(
                self.now - start < limit,
                "not done after {limit:?}; events: {:#?}",
                self.events
            );
            self.step();
        }
        self.now - start
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }
}

#[test]
fn members_find_each_other_through_one_seed() {
    let c = Cluster::converged(4);
    for i in 0..4 {
        assert!(
            c.nodes[i]
                .as_ref()
                .unwrap()
                .members()
                .iter()
                .all(|m| m.state == MemberState::Alive)
        );
    }
}

#[test]
fn a_stopped_member_is_declared_down_within_two_seconds() {
    for n in [3, 5] {
        let mut c = Cluster::converged(n);
        c.run_for(Duration::from_secs(2));
        c.nodes[n - 1] = None;
        let gone = name(n - 1);
        let took = c.run_until(Duration::from_secs(10), |c| {
            (0..n - 1).all(|i| !c.live(i).contains(&gone))
        });
        assert!(
            took <= Duration::from_secs(2),
            "{n} nodes: detection took {took:?}"
        );
        let down = c.nodes[0]
            .as_ref()
            .unwrap()
            .members()
            .into_iter()
            .find(|m| m.identity.node == gone)
            .unwrap();
        assert_eq!(down.state, MemberState::Down);
        assert!(
            c.events
                .iter()
                .any(|(_, i, e)| *i == 0 && matches!(e, MemberEvent::Down(id) if id.node == gone))
        );
    }
}

#[test]
fn a_restarted_member_rejoins_with_a_new_incarnation() {
    let mut c = Cluster::converged(3);
    c.nodes[2] = None;
    c.run_until(Duration::from_secs(10), |c| !c.live(0).contains(&name(2)));
    // The restart is a new life: same name and address, larger incarnation.
    c.nodes[2] = Some(member(2, 2));
    let now = c.now;
    c.node(2).join([addr(0)], now).unwrap();
    c.run_until(Duration::from_secs(5), |c| {
        (0..3).all(|i| c.live(i).len() == 3)
    });
    let seen = c.nodes[1]
        .as_ref()
        .unwrap()
        .members()
        .into_iter()
        .find(|m| m.identity.node == name(2))
        .unwrap();
    assert_eq!(
        (seen.identity.incarnation, seen.state),
        (2, MemberState::Alive)
    );
}

#[test]
fn a_quick_restart_supersedes_the_old_life_at_once() {
    let mut c = Cluster::converged(3);
    // Restarted before anyone noticed it was gone.
    c.nodes[2] = Some(member(2, 5));
    let now = c.now;
    c.node(2).join([addr(1)], now).unwrap();
    c.run_until(Duration::from_secs(3), |c| {
        c.nodes[0]
            .as_ref()
            .unwrap()
            .members()
            .iter()
            .any(|m| m.identity.node == name(2) && m.identity.incarnation == 5)
    });
    assert_eq!(c.live(0).len(), 3);
    assert!(c.events.iter().any(|(_, _, e)| matches!(e, MemberEvent::Restarted { old, new } if old.incarnation == 1 && new.incarnation == 5)));
}

#[test]
fn a_leaving_member_is_down_before_any_probe_could_tell() {
    let mut c = Cluster::converged(4);
    let now = c.now;
    c.node(3).leave(now).unwrap();
    let took = c.run_until(Duration::from_secs(5), |c| {
        (0..3).all(|i| !c.live(i).contains(&name(3)))
    });
    assert!(
        took < MembershipConfig::default().suspect_to_down_after,
        "leave took {took:?}"
    );
}

#[test]
fn ring_versions_reach_every_member() {
    let mut c = Cluster::converged(5);
    let announcement = RingAnnouncement {
        epoch: 7,
        from: name(0),
        grpc_addr: "127.0.0.1:50000".into(),
    };
    c.node(0).announce_ring(&announcement).unwrap();
    let heard = |c: &Cluster, i: usize| {
        c.events
            .iter()
            .any(|(_, j, e)| *j == i && *e == MemberEvent::RingEpoch(announcement.clone()))
    };
    c.run_until(Duration::from_secs(3), |c| (1..5).all(|i| heard(c, i)));
    assert!(!heard(&c, 0), "the announcer does not hear its own news");
    assert_eq!(c.nodes[4].as_ref().unwrap().latest_announced_epoch(), 7);
}

#[test]
fn garbage_is_refused_without_harm() {
    let mut c = Cluster::converged(3);
    let now = c.now;
    for junk in [&b""[..], b"\x00\x01\x02", &[0xff; 2000]] {
        assert!(c.node(0).handle_datagram(junk, now).is_err());
    }
    c.in_flight.push_back(Transmit {
        to: addr(1),
        payload: Bytes::from_static(b"nope"),
    });
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.live(0).len(), 3);
}

#[test]
fn an_isolated_member_keeps_asking_its_seeds() {
    let mut c = Cluster {
        now: Duration::ZERO,
        nodes: vec![None, Some(member(1, 1))],
        in_flight: VecDeque::new(),
        events: Vec::new(),
        sides: Vec::new(),
    };
    c.node(1).join([addr(0), addr(1)], Duration::ZERO).unwrap();
    c.run_for(Duration::from_secs(3));
    // The seed comes up late; the joiner's retries find it.
    c.nodes[0] = Some(member(0, 1));
    c.run_until(Duration::from_secs(3), |c| {
        c.live(0).len() == 2 && c.live(1).len() == 2
    });
}

#[test]
fn a_member_can_introduce_itself_to_an_outsider() {
    let mut c = Cluster::converged(3);
    // n3 runs alone (no seeds); the cluster learns its address elsewhere and contacts it.
    c.nodes.push(Some(member(3, 1)));
    let now = c.now;
    c.node(0).contact([addr(3)], now).unwrap();
    c.run_until(Duration::from_secs(3), |c| {
        (0..4).all(|i| c.live(i).len() == 4)
    });
}

#[test]
fn a_partition_heals_into_one_cluster() {
    let mut c = Cluster::converged(4);
    // {n0, n1} | {n2, n3}: each side declares the other down.
    c.sides = vec![0, 0, 1, 1];
    let small = |c: &Cluster, i: usize| c.live(i).len() == 2;
    c.run_until(Duration::from_secs(10), |c| (0..4).all(|i| small(c, i)));
    assert!(c.live(0).contains(&name(1)) && c.live(2).contains(&name(3)));
    // Heal: the periodic join requests to down members bring both sides back together.
    c.sides.clear();
    let took = c.run_until(Duration::from_secs(20), |c| {
        (0..4).all(|i| c.live(i).len() == 4)
    });
    assert!(
        took <= MembershipConfig::default().announce_down_every * 3,
        "healing took {took:?}"
    );
}
