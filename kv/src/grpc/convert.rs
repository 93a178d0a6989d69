//! Protobuf <-> node types. prost types stop here; the node speaks its own.

use std::time::Duration;

use super::pb;
use crate::error::KvError;
use crate::model::{KeyRange, WriteMode};
use crate::node::{
    DeleteOutcome, NodeStats, Put, PutOutcome, Quorum, QuorumMode, Scan, ScanPage, Value, Versioned,
};

/// Request quorum; absent means all defaults.
pub(crate) fn quorum(q: Option<pb::Quorum>) -> Result<Quorum, KvError> {
    let Some(q) = q else {
        return Ok(Quorum::default());
    };
    let mode = match pb::QuorumMode::try_from(q.mode) {
        Ok(pb::QuorumMode::Unspecified | pb::QuorumMode::Sloppy) => QuorumMode::Sloppy,
        Ok(pb::QuorumMode::Strict) => QuorumMode::Strict,
        Err(_) => {
            return Err(KvError::InvalidArgument(format!(
                "unknown quorum mode {}",
                q.mode
            )));
        }
    };
    Ok(Quorum {
        n: q.n,
        r: q.r,
        w: q.w,
        mode,
    })
}

/// Write mode; unspecified means the namespace default.
fn mode(m: i32) -> Result<Option<WriteMode>, KvError> {
    match pb::WriteMode::try_from(m) {
        Ok(pb::WriteMode::Unspecified) => Ok(None),
        Ok(pb::WriteMode::Causal) => Ok(Some(WriteMode::Causal)),
        Ok(pb::WriteMode::LastWriteWins) => Ok(Some(WriteMode::LastWriteWins)),
        Err(_) => Err(KvError::InvalidArgument(format!("unknown write mode {m}"))),
    }
}

/// TTL in milliseconds; 0 means none.
fn ttl(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// A put request.
pub(crate) fn put(r: pb::PutRequest) -> Result<Put, KvError> {
    Ok(Put {
        key: r.key,
        value: r.value,
        context: r.context,
        ttl: ttl(r.ttl_ms),
        mode: mode(r.mode)?,
        quorum: quorum(r.quorum)?,
        return_body: r.return_body,
    })
}

/// A batch item.
pub(crate) fn batch_item(r: pb::BatchPutItem) -> Result<Put, KvError> {
    Ok(Put {
        key: r.key,
        value: r.value,
        context: r.context,
        ttl: ttl(r.ttl_ms),
        mode: mode(r.mode)?,
        quorum: Quorum::default(),
        return_body: false,
    })
}

/// A scan request.
pub(crate) fn scan(r: pb::ScanRequest) -> Result<Scan, KvError> {
    let range = match r.bounds {
        None => KeyRange::all(),
        Some(pb::scan_request::Bounds::Prefix(p)) => KeyRange::prefix(&p),
        Some(pb::scan_request::Bounds::Range(pb::KeyRange { start, end })) => {
            if !end.is_empty() && start >= end {
                return Err(KvError::InvalidArgument(
                    "range start must be below range end (or leave end empty)".to_owned(),
                ));
            }
            KeyRange::half_open(&start, &end)
        }
    };
    Ok(Scan {
        range,
        cursor: r.cursor,
        page_size: r.page_size as usize,
        keys_only: r.keys_only,
    })
}

/// One sibling.
fn sibling(v: Value) -> pb::Sibling {
    pb::Sibling {
        value: v.bytes,
        written_at_ms: v.written_at.as_millis(),
        expires_at_ms: v.expires_at.map_or(0, |t| t.as_millis()),
    }
}

/// A read result.
pub(crate) fn get_response(v: Versioned) -> pb::GetResponse {
    pb::GetResponse {
        found: v.found(),
        key: v.key,
        siblings: v.values.into_iter().map(sibling).collect(),
        context: v.context,
    }
}

/// A put result.
pub(crate) fn put_response(o: PutOutcome) -> pb::PutResponse {
    pb::PutResponse {
        context: o.context,
        sibling_count: u32::try_from(o.sibling_count).unwrap_or(u32::MAX),
        siblings: o.values.into_iter().map(sibling).collect(),
    }
}

/// A batch item's result.
pub(crate) fn batch_result(r: Result<PutOutcome, KvError>) -> pb::BatchPutResult {
    use pb::batch_put_result::Outcome;
    pb::BatchPutResult {
        outcome: Some(match r {
            Ok(o) => Outcome::Ok(put_response(o)),
            Err(e) => Outcome::Error(pb::ItemError {
                code: e.code() as i32,
                message: e.to_string(),
            }),
        }),
    }
}

/// A delete result.
pub(crate) fn delete_response(o: DeleteOutcome) -> pb::DeleteResponse {
    pb::DeleteResponse {
        context: o.context,
        remaining_siblings: u32::try_from(o.remaining_siblings).unwrap_or(u32::MAX),
    }
}

/// A scan page.
pub(crate) fn scan_response(p: ScanPage) -> pb::ScanResponse {
    pb::ScanResponse {
        entries: p
            .entries
            .into_iter()
            .map(|v| pb::ScanEntry {
                key: v.key,
                siblings: v.values.into_iter().map(sibling).collect(),
                context: v.context,
            })
            .collect(),
        next_cursor: p.next_cursor,
    }
}

/// Node counters.
pub(crate) fn stats_response(s: NodeStats) -> pb::StatsResponse {
    let w = s.writer;
    pb::StatsResponse {
        node_id: s.node_id,
        actor_id: s.actor,
        keys: s.data.rows,
        tombstones: s.data.tombstones,
        siblings: s.data.siblings,
        expiring: s.data.expiring,
        data_bytes: s.data.data_bytes,
        disk_bytes: s.data.disk_bytes,
        durability: s.durability.to_owned(),
        writer: Some(pb::WriterStats {
            queue_depth: w.queue_depth,
            commits: w.commits,
            requests: w.requests,
            ops: w.ops,
            batch_histogram: w.batch_histogram.to_vec(),
            max_batch: w.max_batch,
            mean_batch: w.mean_batch(),
            mean_commit_us: if w.commits == 0 {
                0.0
            } else {
                w.commit_micros as f64 / w.commits as f64
            },
            mean_sync_us: if w.commits == 0 {
                0.0
            } else {
                w.sync_micros as f64 / w.commits as f64
            },
        }),
        uptime_seconds: s.uptime.as_secs(),
    }
}
