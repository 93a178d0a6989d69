//! Configuration as plain data: `Default`, presets through [`Layout`], and `validate()`.
//!
//! Parsing flags, environment and files happens in `src/bin/idgen-server.rs`; this module only
//! says what the values mean. Every duration is in milliseconds so TOML stays plain integers.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{Error, Layout, Result, worker::WorkerConfig};

/// How one generator behaves: layout, clock tolerance and the high-water mark reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    /// The bit layout; `Layout::classic()` unless a preset or custom layout is given.
    pub layout: Layout,
    /// Backward clock steps up to this are absorbed (issue on the last tick, then wait); larger
    /// steps are refused. 10 ms covers the jitter of a VM clock and NTP's small corrections, while a
    /// leap-second step (1 s) or a mis-set clock is refused loudly.
    pub backward_tolerance_ms: u64,
    /// How far ahead of the clock the persisted high-water mark is reserved. A crash loses at most
    /// this much of the future; a restart within it waits for the mark rather than reissuing.
    pub lease_ms: u64,
    /// The longest the async API waits for a tick, a restart mark or a late reservation before it
    /// gives up with [`Error::Unavailable`].
    pub max_wait_ms: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            layout: Layout::classic(),
            backward_tolerance_ms: 10,
            lease_ms: 3_000,
            max_wait_ms: 5_000,
        }
    }
}

impl GeneratorConfig {
    /// A default configuration on another layout.
    pub fn with_layout(layout: Layout) -> Self {
        Self {
            layout,
            ..Self::default()
        }
    }

    /// Checks the layout and that the durations make sense together.
    ///
    /// # Errors
    /// [`Error::InvalidLayout`] or [`Error::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<()> {
        self.layout.validate()?;
        if self.lease_ms < 4 * self.layout.tick_ms || self.lease_ms < 100 {
            return Err(Error::InvalidConfig(format!(
                "lease_ms = {} is too short: it must be at least 100 ms and 4 ticks, or the mark is rewritten constantly",
                self.lease_ms
            )));
        }
        if self.max_wait_ms < 2 * self.layout.tick_ms {
            return Err(Error::InvalidConfig(format!(
                "max_wait_ms = {} must be at least two ticks ({} ms)",
                self.max_wait_ms,
                2 * self.layout.tick_ms
            )));
        }
        Ok(())
    }

    /// [`backward_tolerance_ms`](Self::backward_tolerance_ms) as a `Duration`.
    pub fn backward_tolerance(&self) -> Duration {
        Duration::from_millis(self.backward_tolerance_ms)
    }

    /// [`lease_ms`](Self::lease_ms) as a `Duration`.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// [`max_wait_ms`](Self::max_wait_ms) as a `Duration`.
    pub fn max_wait(&self) -> Duration {
        Duration::from_millis(self.max_wait_ms)
    }
}

/// Everything `idgen-server` needs; the TOML file has this shape.
///
/// ```toml
/// listen = "127.0.0.1:50051"
/// metrics_listen = "127.0.0.1:50052"
/// data_dir = "./data/idgen"
///
/// [generator]
/// backward_tolerance_ms = 10
/// [generator.layout]
/// name = "sonyflake"   # a preset's fields can also be given one by one
///
/// [worker]
/// ordinal = "idgen-3"  # or: id = 3
/// offset = 0
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// gRPC listen address. Loopback by default: exposing it is a deliberate choice.
    pub listen: SocketAddr,
    /// Prometheus scrape address; `None` turns the endpoint off.
    pub metrics_listen: Option<SocketAddr>,
    /// Where the high-water mark database (`idgen.sqlite3`) lives.
    pub data_dir: PathBuf,
    /// Generator behaviour.
    pub generator: GeneratorConfig,
    /// Where the worker id comes from.
    pub worker: WorkerConfig,
}

/// The default gRPC port.
pub const DEFAULT_PORT: u16 = 50051;
/// The default Prometheus port.
pub const DEFAULT_METRICS_PORT: u16 = 50052;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], DEFAULT_METRICS_PORT))),
            data_dir: PathBuf::from("./data/idgen"),
            generator: GeneratorConfig::default(),
            worker: WorkerConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Parses a TOML document; unknown keys are errors so typos do not pass silently.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] with the parser's message.
    pub fn from_toml(text: &str) -> Result<Self> {
        let mut raw: toml::Table =
            toml::from_str(text).map_err(|e| Error::InvalidConfig(e.to_string()))?;
        // `[generator.layout] name = "sonyflake"` alone selects the preset; other keys override it.
        if let Some(layout) = raw
            .get_mut("generator")
            .and_then(|g| g.get_mut("layout"))
            .and_then(|l| l.as_table_mut())
            && let Some(name) = layout.get("name").and_then(|n| n.as_str())
        {
            let preset = Layout::preset(name)?;
            let mut base =
                toml::Table::try_from(preset).map_err(|e| Error::InvalidConfig(e.to_string()))?;
            base.extend(std::mem::take(layout));
            *layout = base;
        }
        raw.try_into()
            .map_err(|e: toml::de::Error| Error::InvalidConfig(e.to_string()))
    }

    /// Validates the generator configuration and the worker settings.
    ///
    /// # Errors
    /// As [`GeneratorConfig::validate`] and [`WorkerConfig::validate`].
    pub fn validate(&self) -> Result<()> {
        self.generator.validate()?;
        self.worker.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_selects_presets_and_overrides_fields() {
        let cfg = ServerConfig::from_toml(
            "listen = \"127.0.0.1:6000\"\n[generator.layout]\nname = \"sonyflake\"\ntick_ms = 20\n[worker]\nid = 7\n",
        )
        .unwrap();
        assert_eq!(cfg.listen.port(), 6000);
        assert_eq!(cfg.generator.layout.worker_bits, 16);
        assert_eq!(cfg.generator.layout.tick_ms, 20);
        assert_eq!(cfg.worker.id, Some(7));
        cfg.validate().unwrap();
        assert_eq!(
            ServerConfig::from_toml("").unwrap(),
            ServerConfig::default()
        );
    }

    #[test]
    fn toml_refuses_typos_and_bad_values() {
        assert!(ServerConfig::from_toml("listn = \"x\"").is_err());
        assert!(ServerConfig::from_toml("[generator.layout]\nname = \"leaf\"").is_err());
        let cfg = ServerConfig::from_toml("[generator]\nlease_ms = 1").unwrap();
        assert!(cfg.validate().unwrap_err().to_string().contains("lease_ms"));
    }
}
