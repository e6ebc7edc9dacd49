//! What the scheduler, the HTTP endpoints and the signal handlers share: the
//! current runner (swapped on reload), the live settings, the pause switch
//! and the record of the last tick.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::runner::Runner;

/// The settings a reload may change.
#[derive(Clone)]
pub struct Live {
    pub tick_interval: Duration,
    pub concurrency: usize,
    pub grace: Duration,
    pub production: bool,
    /// Configured `RUNNER_PAUSED` (the pause file wins over it).
    pub configured_paused: bool,
    pub service_key: Option<SecretString>,
}

impl Live {
    /// `concurrency` is the command's `--concurrency`, if given.
    pub fn from_config(cfg: &Config, concurrency: Option<usize>) -> Live {
        Live {
            tick_interval: cfg.tick_interval,
            concurrency: concurrency.unwrap_or(cfg.concurrency).max(1),
            grace: cfg.shutdown_grace,
            production: cfg.production,
            configured_paused: cfg.paused,
            service_key: cfg.service_key.clone(),
        }
    }
}

/// The last tick, as `/health` reports it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastTick {
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub due: usize,
    pub ok: usize,
    pub failed: usize,
    /// Set when the tick could not fetch the due list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct Shared {
    pub metrics: Arc<Metrics>,
    runner: RwLock<Arc<Runner>>,
    live: RwLock<Live>,
    paused: AtomicBool,
    stopping: AtomicBool,
    pub pause_file: PathBuf,
    last_tick: Mutex<Option<LastTick>>,
    /// Since when fetching the due list has failed (None: it works).
    due_failing_since: Mutex<Option<Instant>>,
    /// A `/health` read of the outbox count is on the blocking pool: later
    /// probes serve the last count instead of queueing more reads behind a
    /// locked `state.db`.
    pub outbox_read: AtomicBool,
    /// `/report`'s rendered pages, kept until the ledger changes.
    pub report_cache: super::report::Cache,
}

impl Shared {
    pub fn new(runner: Arc<Runner>, live: Live, pause_file: PathBuf) -> Shared {
        Shared {
            metrics: runner.metrics.clone(),
            runner: RwLock::new(runner),
            live: RwLock::new(live),
            paused: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            pause_file,
            last_tick: Mutex::new(None),
            due_failing_since: Mutex::new(None),
            outbox_read: AtomicBool::new(false),
            report_cache: Default::default(),
        }
    }

    pub fn runner(&self) -> Arc<Runner> {
        self.runner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn live(&self) -> Live {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// After a successful reload.
    pub fn replace(&self, runner: Arc<Runner>, live: Live) {
        *self.runner.write().unwrap_or_else(|p| p.into_inner()) = runner;
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = live;
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Sets the pause state; true when it changed.
    pub fn set_paused(&self, paused: bool) -> bool {
        self.metrics.set_paused(paused);
        self.paused.swap(paused, Ordering::SeqCst) != paused
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub fn last_tick(&self) -> Option<LastTick> {
        self.last_tick
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn record_tick(&self, t: LastTick) {
        let mut since = self
            .due_failing_since
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if t.error.is_some() {
            since.get_or_insert_with(Instant::now);
        } else {
            *since = None;
        }
        *self.last_tick.lock().unwrap_or_else(|p| p.into_inner()) = Some(t);
    }

    /// Unhealthy: every tick failed (the due list could not be fetched, the
    /// service key was refused, state.db stayed locked) for more than three
    /// intervals (one failure is a blip; three intervals is an outage).
    pub fn due_failing_too_long(&self) -> Option<Duration> {
        let since = *self
            .due_failing_since
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let limit = self.live().tick_interval * 3;
        since
            .map(|s| s.elapsed())
            .filter(|failing| *failing > limit)
    }
}
