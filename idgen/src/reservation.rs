//! Starting a generator with restart safety: the persisted high-water mark, reserved ahead of the
//! clock and renewed by a background thread, and the final mark written at shutdown.
//!
//! The invariant: no ID is issued at a tick at or above the last *persisted* mark. At start the
//! previous run's mark becomes the floor, so a restart with the clock set back cannot reissue.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::Duration,
};

use crate::{
    Clock, Error, GeneratorConfig, IdGenerator, Result,
    core::{ClockPolicy, Generator},
    generator::Shared,
    metrics,
    store::MarkStore,
    ticker::Ticker,
    worker::check_worker,
};

/// Commands to the renewer thread.
enum Command {
    /// Renew now and report the result (tests, operators).
    Renew(mpsc::SyncSender<Result<u64>>),
    /// Stop and hand the store back.
    Stop,
}

/// Owns a running generator's renewer thread; shut it down to persist the final mark.
///
/// Dropping it without [`shutdown`](Self::shutdown) still seals the generator and persists the
/// mark (logging any error), so a panic unwinding through `main` does not lose restart safety.
#[derive(Debug)]
pub struct IdGenHandle<C: Clock> {
    /// The generator, cloned out by [`generator`](Self::generator).
    generator: IdGenerator<C>,
    /// Commands to the renewer; `None` once shut down.
    commands: Option<mpsc::Sender<Command>>,
    /// The renewer thread, which returns the store when it stops.
    thread: Option<JoinHandle<Box<dyn MarkStore>>>,
    /// The tick wake-up thread (real-time clocks only).
    ticker: Option<JoinHandle<()>>,
}

/// Starts a generator for `worker`: loads the previous mark, persists a new reservation, and spawns
/// the renewer thread. Blocking (it writes the store): call it before the runtime starts or from
/// `spawn_blocking`.
///
/// # Errors
/// An invalid configuration, an out-of-range worker, or a store failure. Nothing is issued then.
pub fn start<C: Clock, S: MarkStore>(
    config: GeneratorConfig,
    worker: u64,
    clock: C,
    mut store: S,
) -> Result<IdGenHandle<C>> {
    config.validate()?;
    let layout = config.layout.clone();
    check_worker(worker, &layout)?;

    let previous = store.load(worker)?;
    let now = clock.now_ms();
    let lease = config.lease_ms;
    let reserved = previous.unwrap_or(0).max(now).saturating_add(lease);
    store.save(worker, reserved)?;

    // Nothing below the previous mark, and nothing before this start (so an idle run's final
    // mark is its start time, not the epoch).
    let floor = layout
        .tick_ceil(previous.unwrap_or(0))
        .max(layout.tick_of(now).unwrap_or(0));
    let policy = ClockPolicy {
        backward_tolerance: config.backward_tolerance(),
        restart_grace: config.lease() + config.backward_tolerance(),
    };
    let core = Generator::new(
        layout.clone(),
        worker,
        policy,
        floor,
        layout.tick_ceil(reserved),
    )?;

    if let Some(prev) = previous.filter(|&p| p > now) {
        tracing::warn!(
            ahead_ms = prev - now,
            "the previous run's high-water mark is ahead of the clock; IDs wait until it passes"
        );
    }
    let eol = layout.end_of_life();
    tracing::info!(
        worker,
        layout = %layout.name,
        end_of_life = ?eol,
        previous_mark_ms = ?previous,
        reserved_ms = reserved,
        "idgen generator started"
    );
    if let Some(eol) = eol {
        ::metrics::gauge!(metrics::END_OF_LIFE).set(eol.timestamp() as f64);
        if eol - chrono::Utc::now() < chrono::Duration::days(5 * 365) {
            tracing::warn!(%eol, "the layout's end of life is less than five years away");
        }
    }
    ::metrics::gauge!(metrics::HIGH_WATER_MARK).set(reserved as f64);

    let shared = Arc::new(Shared {
        core,
        clock,
        config,
        mark_ms: AtomicU64::new(reserved),
        ticker: Ticker::default(),
    });
    let (tx, rx) = mpsc::channel();
    let renewer = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("idgen-renewer".into())
        .spawn(move || renew_loop(&renewer, Box::new(store), &rx))?;
    let ticker = if C::REAL_TIME {
        let shared = Arc::clone(&shared);
        Some(
            std::thread::Builder::new()
                .name("idgen-ticker".into())
                .spawn(move || shared.ticker.run(&shared.clock))?,
        )
    } else {
        None
    };
    Ok(IdGenHandle {
        generator: IdGenerator { shared },
        commands: Some(tx),
        thread: Some(thread),
        ticker,
    })
}

/// Renews every quarter lease until told to stop; returns the store for the final write.
fn renew_loop<C: Clock>(
    shared: &Shared<C>,
    mut store: Box<dyn MarkStore>,
    commands: &mpsc::Receiver<Command>,
) -> Box<dyn MarkStore> {
    let period = Duration::from_millis((shared.config.lease_ms / 4).max(10));
    loop {
        match commands.recv_timeout(period) {
            Ok(Command::Renew(reply)) => {
                let _ = reply.send(renew(shared, store.as_mut(), true));
            }
            Ok(Command::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return store,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = renew(shared, store.as_mut(), false) {
                    ::metrics::counter!(metrics::MARK_ERRORS).increment(1);
                    tracing::error!(error = %e, "cannot persist the high-water mark; IDs will wait");
                }
            }
        }
    }
}

/// Moves the reservation to `now + lease` once less than half a lease is left (or always, if
/// `force`). The limit is raised only after the store says the mark is durable.
fn renew<C: Clock>(shared: &Shared<C>, store: &mut dyn MarkStore, force: bool) -> Result<u64> {
    let core = &shared.core;
    if core.is_sealed() {
        return Err(Error::Shutdown);
    }
    let now = shared.clock.now_ms();
    let mark = shared.mark_ms.load(Ordering::Acquire);
    let lease = shared.config.lease_ms;
    let last_issued_ms = core.layout().tick_start_ms(core.last_tick());
    if last_issued_ms > now + shared.config.backward_tolerance_ms {
        tracing::warn!(
            behind_ms = last_issued_ms - now,
            "the clock is behind the last issued tick beyond tolerance; IDs are refused until it catches up"
        );
    }
    if !force && mark.saturating_sub(now) >= lease / 2 {
        return Ok(mark);
    }
    let new_mark = now.saturating_add(lease).max(mark);
    store.save(core.worker(), new_mark)?;
    shared.mark_ms.store(new_mark, Ordering::Release);
    core.raise_limit(core.layout().tick_ceil(new_mark));
    ::metrics::gauge!(metrics::HIGH_WATER_MARK).set(new_mark as f64);
    Ok(new_mark)
}

impl<C: Clock> IdGenHandle<C> {
    /// A clone of the running generator.
    pub fn generator(&self) -> IdGenerator<C> {
        self.generator.clone()
    }

    /// Renews the reservation now (to `now + lease`), waiting until it is durable; returns the
    /// new mark. The background thread does this by itself; tests and tools call it to be exact.
    ///
    /// # Errors
    /// [`Error::Shutdown`] after shutdown, or the store's error.
    pub fn renew_now(&self) -> Result<u64> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.commands
            .as_ref()
            .ok_or(Error::Shutdown)?
            .send(Command::Renew(reply))
            .map_err(|_| Error::Shutdown)?;
        answer.recv().map_err(|_| Error::Shutdown)?
    }

    /// Seals the generator, stops the renewer and persists the exact mark (one tick past the last
    /// issued), so a quick restart need not wait out the lease. Blocking; returns the mark.
    ///
    /// # Errors
    /// The store's error (the reservation already persisted still protects the next run).
    pub fn shutdown(mut self) -> Result<u64> {
        self.stop()
    }

    /// [`shutdown`](Self::shutdown) on the blocking pool, for async callers.
    ///
    /// # Errors
    /// As [`shutdown`](Self::shutdown).
    pub async fn shutdown_async(self) -> Result<u64> {
        tokio::task::spawn_blocking(move || self.shutdown())
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }

    /// Stops the renewer without sealing or writing the final mark, as a crash (`kill -9`) would.
    ///
    /// For restart tests and chaos drills: the reservation already persisted is all the next run
    /// gets, which is exactly the case restart safety must cover. The generator keeps issuing
    /// until its reservation runs out, so drop every clone before starting the next run.
    pub fn simulate_crash(mut self) {
        if let (Some(commands), Some(thread)) = (self.commands.take(), self.thread.take()) {
            let _ = commands.send(Command::Stop);
            let _ = thread.join();
        }
        self.stop_ticker();
    }

    fn stop_ticker(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            self.generator.shared.ticker.stop();
            let _ = ticker.join();
        }
    }

    fn stop(&mut self) -> Result<u64> {
        let (Some(commands), Some(thread)) = (self.commands.take(), self.thread.take()) else {
            return Err(Error::Shutdown);
        };
        let _ = commands.send(Command::Stop);
        self.stop_ticker();
        let mut store = thread
            .join()
            .map_err(|_| Error::Io(std::io::Error::other("the renewer thread panicked")))?;
        let shared = &self.generator.shared;
        let last = shared.core.seal();
        let mark = shared.core.layout().tick_start_ms(last + 1);
        store.save(shared.core.worker(), mark)?;
        shared.mark_ms.store(mark, Ordering::Release);
        tracing::info!(
            mark_ms = mark,
            "idgen generator sealed; final high-water mark persisted"
        );
        Ok(mark)
    }
}

impl<C: Clock> Drop for IdGenHandle<C> {
    fn drop(&mut self) {
        if self.thread.is_some()
            && let Err(e) = self.stop()
        {
            tracing::error!(error = %e, "persisting the final high-water mark failed");
        }
    }
}
