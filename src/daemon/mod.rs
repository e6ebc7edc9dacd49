//! The long-running side: `daemon` (scheduler + HTTP + systemd) and `tick`
//! without `--once` (the same scheduler in the foreground, nothing else).
//!
//! Life of the process: build the runner → bind the listener → install the
//! signal handlers → READY → the [`scheduler`] loop until a stop signal →
//! STOPPING → the tick in flight gets the grace period, then is aborted (its
//! rows go to the outbox) → exit 0.

pub mod address;
pub mod http;
pub mod pause;
pub mod report;
pub mod scheduler;
pub mod shared;
pub mod signals;
pub mod systemd;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::runner::Runner;
use crate::runner::tick::TickOptions;
use crate::shutdown::Shutdown;
use scheduler::{Reloader, Scheduler};
use shared::{Live, Shared};
use systemd::Notifier;

/// After the grace period the aborted personas only queue their rows; this
/// bounds that last step (an outbox write per persona) all the same.
const AFTER_ABORT: Duration = Duration::from_secs(10);

/// How the loop is run.
pub struct DaemonOptions {
    pub tick: TickOptions,
    /// Serve `/health`, `/metrics`, … here (the `daemon` command); `None` for
    /// the foreground `tick` loop.
    pub listen: Option<String>,
    /// Speak systemd's notify protocol.
    pub systemd: bool,
    /// SIGHUP: how to build the configuration again.
    pub reload: Reloader,
}

/// Why the daemon could not start (exit 1; configuration problems surface
/// earlier as `ConfigError`, exit 2).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Runs until SIGTERM/SIGINT; `Ok` is the exit code (0 after a clean stop).
pub async fn run(cfg: Config, opts: DaemonOptions) -> anyhow::Result<u8> {
    // One process per state directory, for the process's life (a reload
    // keeps the directory it started with locked; see `state::lock`).
    let what = if opts.listen.is_some() {
        "daemon"
    } else {
        "tick"
    };
    let _lock = crate::state::lock::StateLock::acquire(&cfg.state_dir, what)?;
    let (runner, cfg) = Runner::build(cfg).await?;
    let runner = Arc::new(runner);
    let live = Live::from_config(&cfg, opts.tick.concurrency);
    let grace = live.grace;
    let shared = Arc::new(Shared::new(
        runner.clone(),
        live.clone(),
        pause::path(&cfg.state_dir),
    ));
    // The outbox gauges from the start (off the runtime, like every state call).
    crate::runner::tick::outbox_now(&runner).await;
    let stop = Shutdown::new();
    let notifier = Notifier::new(opts.systemd);
    let (tx, rx) = mpsc::channel(16);

    // Handlers first: a SIGHUP or SIGTERM that arrives once /health answers
    // must not find the default action (terminate) still in place.
    signals::spawn(stop.clone(), tx.clone()).map_err(DaemonError::Signals)?;
    let server_stop = CancellationToken::new();
    let server = match &opts.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::Listen {
                    addr: addr.clone(),
                    source,
                })?;
            let local = listener.local_addr().ok();
            let app = http::router(shared.clone(), tx.clone())
                .into_make_service_with_connect_info::<SocketAddr>();
            let until = server_stop.clone();
            let task = tokio::spawn(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { until.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "the HTTP server stopped");
                }
            });
            Some((task, local))
        }
        None => None,
    };

    let listening = server
        .as_ref()
        .and_then(|(_, a)| *a)
        .map(|a| format!("http://{a}"))
        .unwrap_or_else(|| "no HTTP".into());
    if server.is_some()
        && let Err(e) = address::write(&cfg.state_dir, &listening)
    {
        tracing::warn!(error = %e, "cannot record the listen address; `pause` will ask the configured one");
    }
    tracing::info!(
        listen = %listening,
        tick_interval_ms = live.tick_interval.as_millis() as u64,
        concurrency = live.concurrency,
        grace_ms = grace.as_millis() as u64,
        state_dir = %cfg.state_dir.display(),
        "ready"
    );
    notifier.ready(&format!(
        "ready; tick every {} s, {} in flight at most",
        live.tick_interval.as_secs(),
        live.concurrency
    ));

    let concurrency_flag = opts.tick.concurrency;
    let sched = Scheduler {
        shared: shared.clone(),
        opts: opts.tick,
        stop: stop.clone(),
        notifier: notifier.clone(),
        reload: opts.reload,
        concurrency_flag,
    };
    let in_flight = sched.run(rx).await;

    shared.set_stopping();
    notifier.stopping();
    if let Some(mut task) = in_flight {
        tracing::info!(
            personas_in_flight = shared.metrics.in_flight(),
            grace_ms = grace.as_millis() as u64,
            "waiting for the tick in flight"
        );
        let done = tokio::select! {
            res = &mut task => Some(res),
            _ = tokio::time::sleep(grace) => {
                tracing::warn!(
                    personas_in_flight = shared.metrics.in_flight(),
                    "grace period over: cancelling; their rows stay in the outbox for the next start"
                );
                stop.abort();
                None
            }
            _ = stop.aborted() => None,
        };
        let done = match done {
            Some(res) => Some(res),
            None => tokio::time::timeout(AFTER_ABORT, &mut task).await.ok(),
        };
        match done {
            Some(res) => sched.finished(res),
            None => tracing::error!(
                "the tick did not end after cancelling; exiting anyway (queued rows are safe)"
            ),
        }
    }
    server_stop.cancel();
    if let Some((task, _)) = server {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    address::remove(&cfg.state_dir);
    let (pending, _) = crate::runner::tick::outbox_now(&shared.runner()).await;
    let unsaved = shared.runner().unsaved.rows();
    if unsaved > 0 {
        tracing::error!(
            rows = unsaved,
            "stopping with rows the outbox could not take (disk full) and the platform did not take: they were held in memory only; the tool-call journal brings back the actions it could record at the next start, the rest (and the ratings) are lost"
        );
    }
    tracing::info!(outbox_pending = pending, "stopped");
    Ok(crate::exit::OK)
}
