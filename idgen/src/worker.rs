//! Where a generator's worker id comes from: configuration, a StatefulSet ordinal, or a source
//! such as a lease in the KV store.
//!
//! Two running generators with one worker id can issue the same ID, so every source is checked
//! against the layout and an out-of-range id stops the start instead of spilling into other bits.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Error, Layout, Result};

/// A source of worker ids, asked once at start.
///
/// Implement it for a lease (the KV crate's lease can) or a coordination service. The returned id
/// is checked against the layout by [`resolve_worker_id`].
#[async_trait]
pub trait WorkerIdSource: Send + Sync {
    /// The worker id this process should use.
    ///
    /// # Errors
    /// [`Error::WorkerId`] when none can be found.
    async fn worker_id(&self, layout: &Layout) -> Result<u64>;
}

/// A fixed id from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedWorkerId(pub u64);

#[async_trait]
impl WorkerIdSource for FixedWorkerId {
    async fn worker_id(&self, _layout: &Layout) -> Result<u64> {
        Ok(self.0)
    }
}

/// The ordinal at the end of a StatefulSet pod name (`idgen-3` gives 3) plus an offset, so that two
/// StatefulSets can share a layout with disjoint ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrdinalWorkerId {
    /// The pod or host name, e.g. from `HOSTNAME`.
    pub name: String,
    /// Added to the ordinal.
    pub offset: u64,
}

impl OrdinalWorkerId {
    /// The ordinal plus the offset.
    ///
    /// # Errors
    /// [`Error::WorkerId`] if the name does not end in `-<digits>` or the sum overflows.
    pub fn resolve(&self) -> Result<u64> {
        let digits = self
            .name
            .rsplit_once('-')
            .map(|(_, d)| d)
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                Error::WorkerId(format!(
                    "{:?} does not end in -<ordinal> (a StatefulSet pod name such as idgen-3)",
                    self.name
                ))
            })?;
        let ordinal: u64 = digits
            .parse()
            .map_err(|_| Error::WorkerId(format!("ordinal {digits:?} is too large")))?;
        ordinal
            .checked_add(self.offset)
            .ok_or_else(|| Error::WorkerId("ordinal + offset overflows".into()))
    }
}

#[async_trait]
impl WorkerIdSource for OrdinalWorkerId {
    async fn worker_id(&self, _layout: &Layout) -> Result<u64> {
        self.resolve()
    }
}

/// Asks `source` and checks the answer fits `layout`.
///
/// # Errors
/// The source's error, or [`Error::WorkerOutOfRange`].
pub async fn resolve_worker_id(source: &dyn WorkerIdSource, layout: &Layout) -> Result<u64> {
    let worker = source.worker_id(layout).await?;
    check_worker(worker, layout)?;
    Ok(worker)
}

/// Refuses a worker id that does not fit the layout's worker bits.
///
/// # Errors
/// [`Error::WorkerOutOfRange`].
pub fn check_worker(worker: u64, layout: &Layout) -> Result<()> {
    if worker > layout.max_worker() {
        return Err(Error::WorkerOutOfRange {
            worker,
            bits: layout.worker_bits,
            max: layout.max_worker(),
        });
    }
    Ok(())
}

/// The worker settings of a configuration file: an explicit id, or an ordinal name and offset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// An explicit worker id.
    pub id: Option<u64>,
    /// A StatefulSet pod name whose trailing ordinal is the id.
    pub ordinal: Option<String>,
    /// Added to the ordinal.
    pub offset: u64,
}

impl WorkerConfig {
    /// Refuses settings that contradict each other.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if both `id` and `ordinal` are set.
    pub fn validate(&self) -> Result<()> {
        if self.id.is_some() && self.ordinal.is_some() {
            return Err(Error::InvalidConfig(
                "worker: set either `id` or `ordinal`, not both".into(),
            ));
        }
        Ok(())
    }

    /// The source these settings describe; worker 0 when neither is set (a single local node).
    pub fn source(&self) -> Box<dyn WorkerIdSource> {
        match (&self.id, &self.ordinal) {
            (Some(id), _) => Box::new(FixedWorkerId(*id)),
            (None, Some(name)) => Box::new(OrdinalWorkerId {
                name: name.clone(),
                offset: self.offset,
            }),
            (None, None) => Box::new(FixedWorkerId(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordinal(name: &str, offset: u64) -> Result<u64> {
        OrdinalWorkerId {
            name: name.into(),
            offset,
        }
        .resolve()
    }

    #[test]
    fn statefulset_ordinals() {
        assert_eq!(ordinal("idgen-3", 0).unwrap(), 3);
        assert_eq!(ordinal("my-idgen-12", 100).unwrap(), 112);
        assert!(ordinal("idgen", 0).is_err());
        assert!(ordinal("idgen-", 0).is_err());
        assert!(ordinal("idgen-3a", 0).is_err());
        assert!(ordinal("idgen-99999999999999999999999", 0).is_err());
    }

    #[tokio::test]
    async fn out_of_range_ids_are_refused() {
        let layout = Layout::classic();
        assert_eq!(
            resolve_worker_id(&FixedWorkerId(1023), &layout)
                .await
                .unwrap(),
            1023
        );
        let err = resolve_worker_id(&FixedWorkerId(1024), &layout)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("0..=1023"), "{err}");
        let src = OrdinalWorkerId {
            name: "idgen-30".into(),
            offset: 1000,
        };
        assert!(resolve_worker_id(&src, &layout).await.is_err());
    }
}
