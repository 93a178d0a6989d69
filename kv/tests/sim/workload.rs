//! The client workload: set adds, write-then-delete sequences, concurrent blind writers on
//! shared keys, and resolvers that read the siblings and write back a merge. Every write goes
//! into the [`History`] with what it had seen, so the checkers can judge the final state.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::client::{Clients, now_ms};
use super::history::{Event, History, Op, Outcome};

/// Picks the node a client sends a request for `key` to.
pub(crate) type Router = Rc<dyn Fn(&str, &mut StdRng) -> String>;

/// Shape of one client's workload.
#[derive(Clone, Debug)]
pub(crate) struct WorkloadConfig {
    /// Simulated time (since the run started) after which the client stops issuing requests.
    pub(crate) stop_at: Duration,
    /// Shared keys written by every client (more keys: less contention per key).
    pub(crate) sibling_keys: usize,
    /// Longest pause between two requests of a client, in milliseconds.
    pub(crate) max_think_ms: u64,
}

/// One client's run: its name (unique values are `<name>.<n>`), randomness and outputs.
pub(crate) struct Workload {
    /// The client host name.
    name: String,
    /// Seeded from the run's seed and the client's index.
    rng: StdRng,
    /// The nodes, over gRPC.
    clients: Clients,
    /// Where each request goes.
    router: Router,
    /// Where writes are recorded.
    history: History,
    /// Values written so far (makes values unique).
    seq: u64,
}

impl Workload {
    /// A client named `name` with its own seeded randomness.
    pub(crate) fn new(
        name: &str,
        seed: u64,
        clients: Clients,
        router: Router,
        history: History,
    ) -> Self {
        Self {
            name: name.to_owned(),
            rng: StdRng::seed_from_u64(seed),
            clients,
            router,
            history,
            seq: 0,
        }
    }

    /// Issues requests until `config.stop_at`.
    pub(crate) async fn run(mut self, config: WorkloadConfig) {
        let stop_ms = u64::try_from(config.stop_at.as_millis()).unwrap_or(u64::MAX);
        while now_ms() < stop_ms {
            let dice = self.rng.random_range(0..100u32);
            match dice {
                0..40 => {
                    let value = self.next_value();
                    let key = format!("set/{value}");
                    self.put(&key, &value, Bytes::new(), Vec::new()).await;
                }
                40..60 => self.write_then_delete().await,
                60..90 => {
                    let key = format!("sib/{}", self.rng.random_range(0..config.sibling_keys));
                    let value = self.next_value();
                    self.put(&key, &value, Bytes::new(), Vec::new()).await;
                }
                _ => {
                    let key = format!("sib/{}", self.rng.random_range(0..config.sibling_keys));
                    self.resolve(&key).await;
                }
            }
            let think = self.rng.random_range(1..=config.max_think_ms);
            tokio::time::sleep(Duration::from_millis(think)).await;
        }
    }

    fn next_value(&mut self) -> String {
        self.seq += 1;
        format!("{}.{}", self.name, self.seq)
    }

    fn node_for(&mut self, key: &str) -> String {
        (self.router)(key, &mut self.rng)
    }

    /// A put through a routed node; the new context if acknowledged.
    async fn put(
        &mut self,
        key: &str,
        value: &str,
        context: Bytes,
        seen: Vec<String>,
    ) -> Option<Bytes> {
        let node = self.node_for(key);
        let invoked_ms = now_ms();
        let result = self.clients.put(&node, key, value, context).await;
        self.record(
            node,
            Op::Put {
                key: key.to_owned(),
                value: value.to_owned(),
                seen,
            },
            result.as_ref().err(),
            invoked_ms,
        );
        result.ok()
    }

    /// A fresh key written once, maybe overwritten with the reply's context, then deleted with
    /// the last acknowledged context. The key is never written again.
    async fn write_then_delete(&mut self) {
        let first = self.next_value();
        let key = format!("del/{first}");
        let Some(mut context) = self.put(&key, &first, Bytes::new(), Vec::new()).await else {
            return;
        };
        let mut seen = vec![first];
        if self.rng.random_bool(0.5) {
            let second = self.next_value();
            // If unknown, delete with the older context: `second` may survive, legitimately.
            if let Some(c) = self.put(&key, &second, context.clone(), seen.clone()).await {
                context = c;
                seen.push(second);
            }
        }
        let node = self.node_for(&key);
        let invoked_ms = now_ms();
        let result = self.clients.delete(&node, &key, context).await;
        self.record(
            node,
            Op::Delete { key, seen },
            result.as_ref().err(),
            invoked_ms,
        );
    }

    /// Reads a shared key and, if it has values, writes one merged value with the context.
    async fn resolve(&mut self, key: &str) {
        let node = self.node_for(key);
        let Ok(read) = self.clients.get(&node, key).await else {
            return;
        };
        if read.values.is_empty() {
            return;
        }
        let value = self.next_value();
        self.put(key, &value, read.context, read.values).await;
    }

    fn record(&self, node: String, op: Op, error: Option<&String>, invoked_ms: u64) {
        self.history.record(Event {
            client: self.name.clone(),
            node,
            op,
            outcome: error.map_or(Outcome::Ok, |e| Outcome::Unknown(e.clone())),
            invoked_ms,
            completed_ms: now_ms(),
        });
    }
}
