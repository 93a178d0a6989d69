//! The cluster map on disk: a node that restarts (or a whole cluster that does) comes back with
//! the ring its last changes made, not the bootstrap member list.
//!
//! One JSON file (the map's validated serde form), replaced atomically: written to a temporary
//! file, synced, renamed over the old one, so a crash leaves either the old or the new map.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::cluster::topology::ClusterMap;
use crate::error::KvError;

/// Reads the saved map at `path`; `Ok(None)` if there is none yet.
///
/// # Errors
/// [`KvError::Io`] if the file cannot be read; [`KvError::Config`] naming the file if it does
/// not hold a valid map.
pub fn load(path: &Path) -> Result<Option<ClusterMap>, KvError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        KvError::Config(format!(
            "saved cluster map {} does not validate ({e}); move it away to start from the \
             configured members and the peers' announcements",
            path.display()
        ))
    })
}

/// Writes `map` to `path` atomically (temporary file, fsync, rename, directory fsync).
///
/// # Errors
/// [`KvError::Io`] for filesystem failures.
pub fn save(path: &Path, map: &ClusterMap) -> Result<(), KvError> {
    let json = serde_json::to_vec(map)
        .map_err(|e| KvError::Internal(format!("cluster map to JSON: {e}")))?;
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Saves maps in epoch order from any thread: a slower save of an older map never overwrites a
/// newer one.
#[derive(Debug)]
pub(crate) struct MapFile {
    /// The JSON file (its `.tmp` sibling is the write in progress).
    path: PathBuf,
    /// Epoch of the map on disk.
    saved: Mutex<u64>,
}

impl MapFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            saved: Mutex::new(0),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Saves `map` unless a map at least as new is on disk already. Blocking: call it from
    /// `spawn_blocking`.
    pub(crate) fn save_if_newer(&self, map: &ClusterMap) -> Result<(), KvError> {
        let mut saved = self.saved.lock().unwrap_or_else(PoisonError::into_inner);
        if map.epoch() <= *saved {
            return Ok(());
        }
        save(&self.path, map)?;
        *saved = map.epoch();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ringkit_hashring::RingConfig;

    use super::*;
    use crate::cluster::topology::Member;

    fn map() -> ClusterMap {
        let members = ["a", "b"]
            .map(|n| Member::new(n, format!("{n}:1")))
            .to_vec();
        ClusterMap::bootstrap(RingConfig::for_cluster_size(2), members)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn round_trips_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("cluster-map.json");
        assert_eq!(load(&path).ok(), Some(None));
        let first = map();
        let file = MapFile::new(path.clone());
        file.save_if_newer(&first).unwrap_or_else(|e| panic!("{e}"));
        let newer = ClusterMap::new(
            first
                .ring()
                .with_members(first.ring().nodes().iter().cloned())
                .unwrap_or_else(|e| panic!("{e}")),
            first.members().cloned().collect(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        file.save_if_newer(&newer).unwrap_or_else(|e| panic!("{e}"));
        file.save_if_newer(&first).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            load(&path).ok().flatten().map(|m| m.epoch()),
            Some(newer.epoch())
        );
        std::fs::write(&path, b"{not a map").unwrap_or_else(|e| panic!("{e}"));
        let err = load(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("does not validate"), "{err}");
    }
}
