//! Policies: Envoy-style domains and descriptors, loaded from TOML, hot-reloaded, overridable.

mod file;
mod live;
mod model;
mod window;

pub use file::{DEFAULT_ALGORITHM, PolicyError, parse_policy};
pub use live::{Override, Policies};
pub use model::{DescriptorRule, Domain, Matched, PolicySet, Rule, ValueMatch};
pub use window::{format_window, parse_window};

/// The policy used when none is configured: works out of the box for Envoy (`domain = "envoy"`),
/// for the tower layer's remote backend and for quick trials (`domain = "default"`).
pub const DEFAULT_POLICY: &str = include_str!("default_policy.toml");
