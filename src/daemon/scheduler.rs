//! The scheduler loop: a tick every interval, never two at once, the pause
//! switch, reloads, `/diag/tick`, and the systemd watchdog.
//!
//! The loop itself never waits on a tick: each tick runs in its own task, so
//! the loop stays free to notice overlaps, signals and the watchdog. If the
//! loop hangs, the watchdog pings stop and systemd restarts the service —
//! which is why the pings come from here and not from a timer of their own.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::pause;
use super::shared::{LastTick, Live, Shared};
use super::systemd::Notifier;
use crate::config::Config;
use crate::metrics::SkipReason;
use crate::runner::Runner;
use crate::runner::persona::PersonaReport;
use crate::runner::tick::{self, TickError, TickOptions, TickSummary};
use crate::shutdown::Shutdown;

/// Requests to the scheduler from the HTTP endpoints and signal handlers.
pub enum Command {
    /// SIGHUP: reload the configuration file and prompts.
    Reload,
    /// `/diag/tick`: start a tick now; the answer says why not if not.
    TickNow(oneshot::Sender<Result<(), &'static str>>),
    /// `/control/pause|resume` changed the switch: apply it now and answer
    /// with the resulting state.
    Refresh(oneshot::Sender<bool>),
}

/// Builds a fresh configuration (the same file, environment and flags as at
/// start) for a reload.
pub type Reloader = Box<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

/// Everything the loop needs.
pub struct Scheduler {
    pub shared: Arc<Shared>,
    pub opts: TickOptions,
    pub stop: Shutdown,
    pub notifier: Notifier,
    pub reload: Reloader,
    /// `--concurrency` from the command line, kept across reloads.
    pub concurrency_flag: Option<usize>,
}

/// A tick running in its own task: when it started, and how it ended.
pub type TickTask = JoinHandle<(
    chrono::DateTime<chrono::Utc>,
    Result<TickSummary, TickError>,
)>;

/// The first tick comes shortly after start, jittered so a fleet restarted
/// together does not hit the platform in the same second.
fn first_delay(interval: Duration) -> Duration {
    let cap = (interval / 10).min(Duration::from_secs(2));
    if cap.is_zero() {
        return Duration::ZERO;
    }
    rand::rng().random_range(Duration::ZERO..=cap)
}

impl Scheduler {
    /// Runs until the shutdown drains; returns the tick still in flight, for
    /// the caller to give its grace period.
    pub async fn run(&self, mut commands: mpsc::Receiver<Command>) -> Option<TickTask> {
        let mut interval = self.shared.live().tick_interval;
        let mut next = Instant::now() + first_delay(interval);
        let mut current: Option<TickTask> = None;
        let mut poll = tokio::time::interval(Duration::from_secs(1));
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let watchdog_every = self.notifier.watchdog_every();
        let mut watchdog =
            tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
        watchdog.set_missed_tick_behavior(MissedTickBehavior::Delay);
        self.refresh_pause();

        loop {
            tokio::select! {
                biased;
                _ = self.stop.draining() => return current,
                res = async { current.as_mut().expect("guarded").await }, if current.is_some() => {
                    current = None;
                    self.finished(res);
                }
                _ = watchdog.tick(), if watchdog_every.is_some() => self.notifier.watchdog(),
                // Disabled (never a busy loop) if every sender is gone.
                Some(cmd) = commands.recv() => match cmd {
                    Command::Reload => {
                        if let Some(new) = self.reload().await
                            && new != interval
                        {
                            interval = new;
                            next = Instant::now() + interval;
                        }
                    }
                    Command::TickNow(reply) => {
                        let answer = if self.shared.is_paused() {
                            Err("the runner is paused")
                        } else if current.is_some() {
                            Err("a tick is running")
                        } else {
                            current = Some(self.start_tick("diag"));
                            Ok(())
                        };
                        let _ = reply.send(answer);
                    }
                    Command::Refresh(reply) => {
                        self.refresh_pause();
                        let _ = reply.send(self.shared.is_paused());
                    }
                },
                _ = poll.tick() => self.refresh_pause(),
                _ = tokio::time::sleep_until(next) => {
                    // Skip (never queue) missed slots: the next tick is one
                    // interval from now, not a burst to catch up.
                    next += interval;
                    if next <= Instant::now() {
                        next = Instant::now() + interval;
                    }
                    if self.shared.is_paused() {
                        self.shared.metrics.tick_skipped(SkipReason::Paused);
                    } else if current.is_some() {
                        self.shared.metrics.tick_skipped(SkipReason::Overlap);
                        tracing::info!(
                            skipped_so_far = self.shared.metrics.overlaps(),
                            in_flight = self.shared.metrics.in_flight(),
                            "tick skipped: the previous tick is still running"
                        );
                    } else {
                        current = Some(self.start_tick("interval"));
                    }
                }
            }
        }
    }

    fn start_tick(&self, trigger: &'static str) -> TickTask {
        let runner = self.shared.runner();
        let live = self.shared.live();
        let mut opts = self.opts.clone();
        opts.concurrency = Some(live.concurrency);
        let stop = self.stop.clone();
        self.shared.metrics.tick_started();
        tracing::info!(trigger, concurrency = live.concurrency, "tick started");
        tokio::spawn(async move {
            let started_at = chrono::Utc::now();
            let res = tick::run_once(
                &runner,
                &opts,
                &stop,
                &|_: usize| {},
                &|_: &PersonaReport| {},
            )
            .await;
            (started_at, res)
        })
    }

    /// Records a tick's end: metrics, `/health`, the log and systemd's STATUS.
    pub fn finished(
        &self,
        res: Result<
            (
                chrono::DateTime<chrono::Utc>,
                Result<TickSummary, TickError>,
            ),
            tokio::task::JoinError,
        >,
    ) {
        let m = &self.shared.metrics;
        let (started_at, res) = match res {
            Ok(r) => r,
            Err(e) => {
                // A panic in a tick is a bug; the loop survives it.
                m.tick_failed();
                tracing::error!(error = %e, "tick task ended abnormally");
                return;
            }
        };
        let took = (chrono::Utc::now() - started_at)
            .to_std()
            .unwrap_or_default();
        match res {
            Ok(s) => {
                m.tick_finished(took, chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
                let status = format!(
                    "last tick {}: {} due, {} ok, {} failed, {} skipped, {} actions; outbox {}",
                    started_at.format("%H:%M:%S"),
                    s.due,
                    s.ok,
                    s.failed.len(),
                    s.skipped.len(),
                    s.actions,
                    s.outbox_pending
                );
                tracing::info!(
                    due = s.due,
                    ran = s.ran,
                    ok = s.ok,
                    failed = s.failed.len(),
                    skipped = s.skipped.len(),
                    actions = s.actions,
                    ratings = s.ratings,
                    tokens_in = s.tokens.input,
                    tokens_out = s.tokens.output,
                    cache_read = s.tokens.cache_read,
                    cache_write = s.tokens.cache_write,
                    outbox_delivered = s.outbox_delivered,
                    outbox_pending = s.outbox_pending,
                    duration_ms = s.duration_ms,
                    "tick finished"
                );
                self.notifier.status(&status);
                self.shared.record_tick(LastTick {
                    started_at,
                    duration_ms: s.duration_ms,
                    due: s.due,
                    ok: s.ok,
                    failed: s.failed.len(),
                    error: None,
                });
            }
            Err(e) => {
                m.tick_failed();
                match &e {
                    // An operator's error (a rotated service key): it will
                    // not heal by itself, so it is logged as an error.
                    TickError::KeyRefused(_) => {
                        tracing::error!(error = %e, duration_ms = took.as_millis() as u64, "tick failed")
                    }
                    TickError::Due(_) | TickError::State(_) => {
                        tracing::warn!(error = %e, duration_ms = took.as_millis() as u64, "tick failed")
                    }
                }
                self.notifier
                    .status(&format!("last tick {}: {e}", started_at.format("%H:%M:%S")));
                self.shared.record_tick(LastTick {
                    started_at,
                    duration_ms: took.as_millis() as u64,
                    due: 0,
                    ok: 0,
                    failed: 0,
                    error: Some(e.to_string()),
                });
            }
        }
    }

    /// Reads the pause switch and applies it; logs only changes.
    fn refresh_pause(&self) {
        let live = self.shared.live();
        let switch = match pause::read(&self.shared.pause_file) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the pause switch; keeping the current state");
                return;
            }
        };
        let paused = pause::effective(switch, live.configured_paused);
        if self.shared.set_paused(paused) {
            let by = match switch {
                Some(_) => format!("{}", self.shared.pause_file.display()),
                None => "RUNNER_PAUSED".to_string(),
            };
            if paused {
                tracing::info!(by, "paused: no tick starts until resumed");
                self.notifier.status("paused");
            } else {
                tracing::info!(by, "resumed");
                self.notifier.status("running");
            }
        }
    }

    /// SIGHUP: a new configuration and prompts, or the old ones and a reason.
    /// Returns the new tick interval when the reload took. The runner is
    /// built off the runtime (it opens `state.db`): the loop waits for it,
    /// the HTTP side and a running tick do not. Rows held in memory (the
    /// outbox could not take them) carry over to the new runner.
    async fn reload(&self) -> Option<Duration> {
        let built = match (self.reload)() {
            Ok(cfg) => Runner::build(cfg).await.map(|(runner, cfg)| {
                let runner = runner
                    .with_metrics(self.shared.metrics.clone())
                    .with_unsaved(self.shared.runner().unsaved.clone());
                (cfg, runner)
            }),
            Err(e) => Err(e),
        };
        match built {
            Ok((cfg, runner)) => {
                let live = Live::from_config(&cfg, self.concurrency_flag);
                let interval = live.tick_interval;
                tracing::info!(
                    tick_interval_ms = interval.as_millis() as u64,
                    concurrency = live.concurrency,
                    "configuration and prompts reloaded; the next tick uses them"
                );
                self.shared.replace(Arc::new(runner), live);
                self.refresh_pause();
                Some(interval)
            }
            Err(e) => {
                tracing::error!(
                    error = %crate::exit::render(&e),
                    "reload failed; keeping the previous configuration"
                );
                None
            }
        }
    }
}
