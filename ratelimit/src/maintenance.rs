//! The background duties of a node: sweeping idle keys, reloading the policy file, publishing
//! the key count. One task, stopped through its handle.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::limiter::RateLimiter;
use crate::metrics;

/// How often each duty runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceConfig {
    /// Idle-key sweep period (the sweep loses nothing: swept keys are as good as fresh).
    pub sweep_interval: Duration,
    /// Policy-file check period; `None` disables hot reload.
    pub reload_interval: Option<Duration>,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            sweep_interval: Duration::from_secs(10),
            reload_interval: Some(Duration::from_secs(2)),
        }
    }
}

/// Stops the maintenance task.
#[derive(Debug)]
pub struct MaintenanceHandle {
    /// Dropping or sending stops the loop.
    stop: oneshot::Sender<()>,
    /// The task.
    task: JoinHandle<()>,
}

impl MaintenanceHandle {
    /// Stops the task and waits for it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Spawns the maintenance task of `limiter` (call inside a tokio runtime).
pub fn spawn_maintenance(limiter: RateLimiter, config: MaintenanceConfig) -> MaintenanceHandle {
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut sweep = tokio::time::interval(config.sweep_interval);
        let mut reload = tokio::time::interval(config.reload_interval.unwrap_or(Duration::MAX / 4));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                _ = sweep.tick() => {
                    let local = limiter.counter().local();
                    let evicted = local.store.evict_idle(local.clock.now());
                    let keys = local.store.len();
                    metrics::record_keys(keys);
                    tracing::debug!(evicted, keys, "idle keys swept");
                }
                _ = reload.tick(), if config.reload_interval.is_some() => {
                    match limiter.policies().reload() {
                        Ok(true) => tracing::info!(file = ?limiter.policies().file(), "policy reloaded"),
                        Ok(false) => {}
                        Err(e) => tracing::error!(error = %e, "policy file rejected; the previous policy stays in force"),
                    }
                }
            }
        }
    });
    MaintenanceHandle { stop, task }
}
