//! Size limits on what clients may store, checked before anything touches storage.

use super::write::SiblingLimits;

/// Bounds on keys, values, siblings and request sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest key in bytes (default 1 KiB). Keys are indexed, so long keys cost on every write.
    pub max_key_bytes: usize,
    /// Largest value in bytes (default 1 MiB). Larger blobs belong in an object store.
    pub max_value_bytes: usize,
    /// Sibling warning and rejection thresholds.
    pub siblings: SiblingLimits,
    /// Most items in one BatchGet or BatchPut.
    pub max_batch_items: usize,
    /// Largest Scan page.
    pub max_page_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_bytes: 1024,
            max_value_bytes: 1024 * 1024,
            siblings: SiblingLimits::default(),
            max_batch_items: 1000,
            max_page_size: 1000,
        }
    }
}

/// A request that breaks a limit; the message names the limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Empty keys are refused: they cannot be told apart from "no key" in many clients.
    #[error("key must not be empty")]
    EmptyKey,
    /// The key is longer than the limit.
    #[error("key is {len} bytes, over the limit of {max} bytes")]
    KeyTooLarge {
        /// Length received.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The value is larger than the limit.
    #[error("value is {len} bytes, over the limit of {max} bytes")]
    ValueTooLarge {
        /// Length received.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A batch has too many items.
    #[error("batch has {len} items, over the limit of {max}")]
    BatchTooLarge {
        /// Items received.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A batch has no items.
    #[error("batch must contain at least one item")]
    EmptyBatch,
    /// A scan page size outside `1..=max`.
    #[error("page size {size} is out of range: use 1 to {max}")]
    PageSize {
        /// Size received.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
}

impl Limits {
    /// Checks a key.
    ///
    /// # Errors
    /// [`LimitError::EmptyKey`] or [`LimitError::KeyTooLarge`].
    pub fn check_key(&self, key: &[u8]) -> Result<(), LimitError> {
        if key.is_empty() {
            return Err(LimitError::EmptyKey);
        }
        if key.len() > self.max_key_bytes {
            return Err(LimitError::KeyTooLarge {
                len: key.len(),
                max: self.max_key_bytes,
            });
        }
        Ok(())
    }

    /// Checks a value.
    ///
    /// # Errors
    /// [`LimitError::ValueTooLarge`].
    pub fn check_value(&self, value: &[u8]) -> Result<(), LimitError> {
        if value.len() > self.max_value_bytes {
            return Err(LimitError::ValueTooLarge {
                len: value.len(),
                max: self.max_value_bytes,
            });
        }
        Ok(())
    }

    /// Checks a batch's item count.
    ///
    /// # Errors
    /// [`LimitError::EmptyBatch`] or [`LimitError::BatchTooLarge`].
    pub fn check_batch(&self, len: usize) -> Result<(), LimitError> {
        match len {
            0 => Err(LimitError::EmptyBatch),
            n if n > self.max_batch_items => Err(LimitError::BatchTooLarge {
                len: n,
                max: self.max_batch_items,
            }),
            _ => Ok(()),
        }
    }

    /// Checks a scan page size.
    ///
    /// # Errors
    /// [`LimitError::PageSize`] for 0 or more than the maximum.
    pub fn check_page_size(&self, size: usize) -> Result<(), LimitError> {
        if size == 0 || size > self.max_page_size {
            return Err(LimitError::PageSize {
                size,
                max: self.max_page_size,
            });
        }
        Ok(())
    }

    /// A config-time sanity check.
    ///
    /// # Errors
    /// A message naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        let nonzero = [
            ("max_key_bytes", self.max_key_bytes),
            ("max_value_bytes", self.max_value_bytes),
            ("max_siblings", self.siblings.max),
            ("max_batch_items", self.max_batch_items),
            ("max_page_size", self.max_page_size),
        ];
        if let Some((name, _)) = nonzero.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if self.siblings.warn > self.siblings.max {
            return Err(format!(
                "warn_siblings ({}) must not exceed max_siblings ({})",
                self.siblings.warn, self.siblings.max
            ));
        }
        if self.max_value_bytes > 64 * 1024 * 1024 {
            return Err("max_value_bytes must be at most 64 MiB".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_limit() {
        let l = Limits::default();
        let err = l.check_key(&[0; 1025]).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("key is 1025 bytes, over the limit of 1024 bytes")
        );
        assert!(l.check_value(&vec![0; 1 << 20]).is_ok());
        assert!(l.check_value(&vec![0; (1 << 20) + 1]).is_err());
        assert!(l.check_page_size(0).is_err() && l.check_page_size(1000).is_ok());
        assert!(l.validate().is_ok());
    }
}
