//! [`Policies`]: the policy in force, hot reloads from a file, and runtime overrides.
//!
//! Counters live in the keyed store, not in the policy, so swapping the policy keeps every
//! key's state: a reload that changes `100/m` to `200/m` lets existing keys continue with the
//! hits they already used. Only a change of algorithm restarts a key's counter.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::file::parse_policy;
use super::model::{Matched, PolicySet};
use crate::error::Error;

/// A runtime override: one exact descriptor path of one domain gets its own rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The domain.
    pub domain: String,
    /// The exact entries (key, value) a request descriptor must have.
    pub entries: Vec<(String, String)>,
    /// The rule and shadow flag to apply.
    pub matched: Matched,
}

/// What is in force: the parsed policy and the overrides (kept across reloads).
#[derive(Debug, Default)]
struct Live {
    /// From the file (or the built-in default).
    set: Arc<PolicySet>,
    /// Set through the admin API; they win over the file.
    overrides: Vec<Override>,
}

/// The policy in force, shared by the gRPC services; cheap to read on every request.
#[derive(Debug)]
pub struct Policies {
    /// Read on every check, written on reload or override.
    live: RwLock<Live>,
    /// The file to reload from, if any.
    file: Option<PathBuf>,
    /// Serialises reloads so two reloaders cannot interleave.
    reload_lock: Mutex<()>,
}

impl Policies {
    /// Policies fixed in code (no file to reload).
    pub fn new(set: PolicySet) -> Self {
        Policies {
            live: RwLock::new(Live {
                set: Arc::new(set),
                overrides: Vec::new(),
            }),
            file: None,
            reload_lock: Mutex::new(()),
        }
    }

    /// Loads `path`; later [`Policies::reload`] calls re-read it.
    ///
    /// # Errors
    /// [`Error::PolicyIo`] if unreadable, [`Error::Policy`] if invalid.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let set = read_file(&path)?;
        let mut p = Policies::new(set);
        p.file = Some(path);
        Ok(p)
    }

    /// Re-reads the file; swaps the policy in if the text changed and is valid. Returns whether
    /// a new policy is now in force.
    ///
    /// # Errors
    /// The read or validation error; the previous policy stays in force.
    pub fn reload(&self) -> Result<bool, Error> {
        let Some(path) = &self.file else {
            return Ok(false);
        };
        let _one_at_a_time = self
            .reload_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let text = std::fs::read_to_string(path).map_err(|source| Error::PolicyIo {
            path: path.display().to_string(),
            source,
        })?;
        if text == self.current().source_text {
            return Ok(false);
        }
        let set = parse_policy(&text, &path.display().to_string())?;
        self.replace(set);
        Ok(true)
    }

    /// Puts `set` in force (keeping overrides and all counters).
    pub fn replace(&self, set: PolicySet) {
        self.write().set = Arc::new(set);
    }

    /// The file-level policy in force.
    pub fn current(&self) -> Arc<PolicySet> {
        self.read().set.clone()
    }

    /// Resolves one descriptor of `domain`: an override for its exact entries first, then the
    /// policy tree. `Ok(None)`: the domain exists but no rule matches (not limited).
    ///
    /// # Errors
    /// [`Error::UnknownDomain`] if neither the policy nor an override defines the domain.
    pub fn resolve(
        &self,
        domain: &str,
        entries: &[(String, String)],
    ) -> Result<Option<Matched>, Error> {
        let live = self.read();
        if let Some(o) = live
            .overrides
            .iter()
            .find(|o| o.domain == domain && o.entries == entries)
        {
            return Ok(Some(o.matched));
        }
        match live.set.domains.get(domain) {
            Some(d) => Ok(d.resolve(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())))),
            None if live.overrides.iter().any(|o| o.domain == domain) => Ok(None),
            None => Err(Error::UnknownDomain {
                domain: domain.to_owned(),
                known: live.set.domain_list(),
            }),
        }
    }

    /// Sets (`Some`) or removes (`None`) the override for an exact descriptor path. Returns
    /// whether an override was there before.
    pub fn set_override(
        &self,
        domain: &str,
        entries: Vec<(String, String)>,
        matched: Option<Matched>,
    ) -> bool {
        let mut live = self.write();
        let before = live.overrides.len();
        live.overrides
            .retain(|o| !(o.domain == domain && o.entries == entries));
        let existed = live.overrides.len() != before;
        if let Some(matched) = matched {
            live.overrides.push(Override {
                domain: domain.to_owned(),
                entries,
                matched,
            });
        }
        existed
    }

    /// The overrides in force (of one domain, or all with `None`).
    pub fn overrides(&self, domain: Option<&str>) -> Vec<Override> {
        self.read()
            .overrides
            .iter()
            .filter(|o| domain.is_none_or(|d| d == o.domain))
            .cloned()
            .collect()
    }

    /// The file this policy reloads from.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Read access; a poisoned lock still holds a consistent policy (writes are single swaps).
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Live> {
        self.live.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Write access.
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Live> {
        self.live.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads and parses a policy file.
fn read_file(path: &Path) -> Result<PolicySet, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::PolicyIo {
        path: path.display().to_string(),
        source,
    })?;
    Ok(parse_policy(&text, &path.display().to_string())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::Rule;

    fn e(k: &str, v: &str) -> Vec<(String, String)> {
        vec![(k.to_owned(), v.to_owned())]
    }

    #[test]
    fn bad_reload_keeps_old_policy_and_overrides_survive_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let v1 = "[[domain]]\nname='d'\n[[domain.descriptor]]\nkey='k'\nrequests=5\nwindow='1s'\n";
        std::fs::write(&path, v1).unwrap();
        let p = Policies::from_file(&path).unwrap();
        assert!(p.resolve("d", &e("k", "x")).unwrap().is_some());
        p.set_override(
            "d",
            e("k", "vip"),
            Some(Matched {
                rule: Rule::Unlimited,
                shadow: false,
            }),
        );

        std::fs::write(&path, v1.replace("requests=5", "requests=0")).unwrap();
        let err = p.reload().unwrap_err();
        assert!(err.to_string().contains("line 5"), "{err}");
        assert!(
            p.resolve("d", &e("k", "x")).unwrap().is_some(),
            "old policy in force"
        );

        std::fs::write(&path, v1.replace("name='d'", "name='d2'")).unwrap();
        assert!(p.reload().unwrap());
        assert!(!p.reload().unwrap(), "unchanged text is not reloaded");
        let err = p.resolve("nope", &e("k", "x")).unwrap_err();
        assert!(err.to_string().contains("`d2`"), "{err}");
        assert_eq!(
            p.resolve("d", &e("k", "vip")).unwrap().map(|m| m.rule),
            Some(Rule::Unlimited),
            "override kept across reloads"
        );
    }
}
