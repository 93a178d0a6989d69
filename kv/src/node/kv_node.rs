//! [`KvNode`]: the async shell over a [`Storage`] that serves client requests.
//!
//! It validates input, decodes contexts, stamps time from the injected clock, submits work to the
//! store and turns the outcome into replies. It never blocks the runtime: storage work runs on the
//! store's own threads and comes back through oneshot channels; admission is bounded with
//! semaphores so a flood of requests queues instead of growing memory without bound.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::config::NodeConfig;
use super::quorum::Quorum;
use super::types::{DeleteOutcome, NodeStats, Put, PutOutcome, Value, Versioned};
use crate::clock::Clock;
use crate::error::KvError;
use crate::model::{
    LocalWrite, Object, Resolved, Timestamp, VersionVector, WriteMode, decode_context,
    encode_context,
};
use crate::storage::{Applied, OpResult, Storage, StorageExt, WriteOp, WriteRequest};

/// Shared state of a node.
struct Inner<S> {
    /// The store.
    storage: S,
    /// Settings.
    config: NodeConfig,
    /// Wall-clock time for writes and expiry.
    clock: Arc<dyn Clock>,
    /// Admission for writes.
    writes: Semaphore,
    /// Admission for reads.
    reads: Semaphore,
    /// For uptime.
    started: Instant,
}

/// A single KV node: the API every transport (gRPC, in-process, simulation) calls.
///
/// Cheap to clone; clones share the node.
pub struct KvNode<S> {
    /// The node.
    inner: Arc<Inner<S>>,
}

impl<S> Clone for KvNode<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for KvNode<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvNode")
            .field("node_id", &self.inner.config.node_id)
            .finish_non_exhaustive()
    }
}

/// Records a request's outcome and latency.
pub(super) async fn observe<T>(
    op: &'static str,
    f: impl Future<Output = Result<T, KvError>>,
) -> Result<T, KvError> {
    let start = Instant::now();
    let r = f.await;
    let outcome = match &r {
        Ok(_) => "ok",
        Err(e) => code_label(e.code()),
    };
    metrics::counter!("kv_requests_total", "op" => op, "outcome" => outcome).increment(1);
    metrics::histogram!("kv_request_seconds", "op" => op).record(start.elapsed().as_secs_f64());
    r
}

/// A low-cardinality label for a gRPC code.
fn code_label(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::InvalidArgument => "invalid_argument",
        tonic::Code::FailedPrecondition => "failed_precondition",
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::DataLoss => "data_loss",
        tonic::Code::ResourceExhausted => "resource_exhausted",
        _ => "internal",
    }
}

/// The values a read at `now` shows.
fn visible(object: &Object, now: Timestamp) -> Vec<Value> {
    object.visible(now).into_iter().map(Value::from).collect()
}

/// The single outcome of a one-operation request.
fn single(results: Vec<OpResult>) -> Result<Applied, KvError> {
    results.into_iter().next().unwrap_or(Err(KvError::Closed))
}

impl<S: Storage> KvNode<S> {
    /// A node over `storage`.
    ///
    /// # Errors
    /// [`KvError::Config`] if `config` is invalid.
    pub fn new(storage: S, config: NodeConfig, clock: Arc<dyn Clock>) -> Result<Self, KvError> {
        config.validate().map_err(KvError::Config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                writes: Semaphore::new(config.max_in_flight_writes),
                reads: Semaphore::new(config.max_in_flight_reads),
                storage,
                config,
                clock,
                started: Instant::now(),
            }),
        })
    }

    /// The store.
    pub fn storage(&self) -> &S {
        &self.inner.storage
    }

    /// The settings.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// The current time on the node's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// Reads one key.
    ///
    /// # Errors
    /// Invalid key or quorum, storage failures.
    pub async fn get(&self, key: Bytes, quorum: Quorum) -> Result<Versioned, KvError> {
        observe("get", async {
            self.inner.config.limits.check_key(&key)?;
            quorum.resolve(self.inner.config.quorum)?;
            let _permit = self
                .inner
                .reads
                .acquire()
                .await
                .map_err(|_| KvError::Closed)?;
            let k = key.clone();
            let stored = self.inner.storage.read(move |view| view.get(&k)).await?;
            Ok(self.versioned(key, stored.as_ref(), false))
        })
        .await
    }

    /// Writes one key.
    ///
    /// # Errors
    /// Invalid input (INVALID_ARGUMENT), too many siblings (FAILED_PRECONDITION), storage
    /// failures.
    pub async fn put(&self, put: Put) -> Result<PutOutcome, KvError> {
        observe("put", async {
            put.quorum.resolve(self.inner.config.quorum)?;
            let now = self.now();
            let return_body = put.return_body;
            let (key, op) = self.put_op(put, now)?;
            let _permit = self
                .inner
                .writes
                .acquire()
                .await
                .map_err(|_| KvError::Closed)?;
            let results = self
                .inner
                .storage
                .write(self.request(now, vec![op]))
                .await?;
            self.put_outcome(&key, single(results)?, now, return_body)
        })
        .await
    }

    /// Deletes what `context` saw of `key` (everything, if `context` is empty).
    ///
    /// # Errors
    /// Invalid key, context or quorum, storage failures.
    pub async fn delete(
        &self,
        key: Bytes,
        context: Bytes,
        quorum: Quorum,
    ) -> Result<DeleteOutcome, KvError> {
        observe("delete", async {
            self.inner.config.limits.check_key(&key)?;
            quorum.resolve(self.inner.config.quorum)?;
            let context = decode_context(&key, &context)?;
            let now = self.now();
            let op = WriteOp::Local {
                key: key.clone(),
                write: LocalWrite::Delete { context },
            };
            let _permit = self
                .inner
                .writes
                .acquire()
                .await
                .map_err(|_| KvError::Closed)?;
            let results = self
                .inner
                .storage
                .write(self.request(now, vec![op]))
                .await?;
            match single(results)? {
                Applied::Written(Resolved { object, .. }) => Ok(DeleteOutcome {
                    context: Bytes::from(encode_context(&key, object.context())),
                    remaining_siblings: object.visible(now).len(),
                }),
                other => Err(unexpected(&other)),
            }
        })
        .await
    }

    /// Counters of the node and its store.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn stats(&self) -> Result<NodeStats, KvError> {
        let data = self.inner.storage.read(|view| view.stats()).await?;
        Ok(NodeStats {
            node_id: self.inner.config.node_id.clone(),
            actor: self.inner.storage.actor().to_string(),
            data,
            writer: self.inner.storage.writer_stats(),
            uptime: self.inner.started.elapsed(),
            durability: self.inner.storage.durability(),
        })
    }

    /// Stops the store: queued writes are committed and synced first. Requests after this fail
    /// with UNAVAILABLE.
    pub async fn close(&self) {
        self.inner.writes.close();
        self.inner.reads.close();
        let inner = Arc::clone(&self.inner);
        if tokio::task::spawn_blocking(move || inner.storage.close())
            .await
            .is_err()
        {
            tracing::error!("closing the store panicked");
        }
    }

    /// Waits for a read admission slot.
    pub(super) async fn read_permit(&self) -> Result<SemaphorePermit<'_>, KvError> {
        self.inner
            .reads
            .acquire()
            .await
            .map_err(|_| KvError::Closed)
    }

    /// Waits for a write admission slot.
    pub(super) async fn write_permit(&self) -> Result<SemaphorePermit<'_>, KvError> {
        self.inner
            .writes
            .acquire()
            .await
            .map_err(|_| KvError::Closed)
    }

    /// A write request stamped with `now` and the node's sibling limits.
    pub(super) fn request(&self, now: Timestamp, ops: Vec<WriteOp>) -> WriteRequest {
        WriteRequest {
            now,
            siblings: self.inner.config.limits.siblings,
            ops,
        }
    }

    /// Submits maintenance work.
    pub(crate) async fn submit(
        &self,
        now: Timestamp,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<OpResult>, KvError> {
        self.inner.storage.write(self.request(now, ops)).await
    }

    /// Validates a put and turns it into a storage operation.
    pub(super) fn put_op(&self, put: Put, now: Timestamp) -> Result<(Bytes, WriteOp), KvError> {
        let limits = &self.inner.config.limits;
        limits.check_key(&put.key)?;
        limits.check_value(&put.value)?;
        let context: Option<VersionVector> = decode_context(&put.key, &put.context)?;
        let expires_at = match put.ttl {
            Some(ttl) if ttl.is_zero() => {
                return Err(KvError::InvalidArgument(
                    "ttl must be positive (omit it for no expiry)".to_owned(),
                ));
            }
            Some(ttl) => Some(now.saturating_add(ttl)),
            None => None,
        };
        let mode = put.mode.unwrap_or_else(|| self.namespace_mode(&put.key));
        let op = WriteOp::Local {
            key: put.key.clone(),
            write: LocalWrite::Put {
                value: put.value,
                context,
                expires_at,
                mode,
            },
        };
        Ok((put.key, op))
    }

    /// The write mode of a key's namespace.
    fn namespace_mode(&self, key: &[u8]) -> WriteMode {
        if self
            .inner
            .config
            .lww_prefixes
            .iter()
            .any(|p| key.starts_with(p))
        {
            WriteMode::LastWriteWins
        } else {
            WriteMode::Causal
        }
    }

    /// Builds a put's reply, warning about sibling growth.
    pub(super) fn put_outcome(
        &self,
        key: &Bytes,
        applied: Applied,
        now: Timestamp,
        return_body: bool,
    ) -> Result<PutOutcome, KvError> {
        let Applied::Written(resolved) = applied else {
            return Err(unexpected(&applied));
        };
        let count = resolved.object.siblings().len();
        if resolved.warn_siblings {
            metrics::counter!("kv_sibling_warnings_total").increment(1);
            tracing::warn!(key = %String::from_utf8_lossy(key), siblings = count, "key is accumulating siblings; clients should write back with the context they read");
        }
        Ok(PutOutcome {
            context: Bytes::from(encode_context(key, resolved.object.context())),
            sibling_count: count,
            values: if return_body {
                visible(&resolved.object, now)
            } else {
                Vec::new()
            },
        })
    }

    /// A read reply for a key: its visible values at the node's `now` and its context token
    /// (a cluster coordinator builds its reply from a merged object with it).
    pub fn versioned(&self, key: Bytes, object: Option<&Object>, keys_only: bool) -> Versioned {
        match object {
            None => Versioned {
                key,
                values: Vec::new(),
                context: Bytes::new(),
            },
            Some(o) => Versioned {
                context: Bytes::from(encode_context(&key, o.context())),
                values: if keys_only {
                    Vec::new()
                } else {
                    visible(o, self.now())
                },
                key,
            },
        }
    }

    /// Time since the node started.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
}

/// A storage outcome that does not fit the operation (a bug, reported rather than panicking).
fn unexpected(applied: &Applied) -> KvError {
    KvError::Internal(format!("unexpected storage outcome {applied:?}"))
}
