//! `tick --once`: one tick from cron or CI; `tick` without `--once` repeats it
//! on the interval in the foreground until Ctrl-C.

use std::path::PathBuf;

use clap::Args;

use super::GlobalArgs;
use super::output::Reporter;
use crate::daemon::{self, DaemonOptions};
use crate::platform::internal::DuePersona;
use crate::runner::Runner;
use crate::runner::delivery::Delivery;
use crate::runner::persona::{PersonaReport, RunOutcome};
use crate::runner::tick::{self, Shard, TickOptions, TickSummary};
use crate::shutdown::Shutdown;

#[derive(Debug, Args)]
pub struct TickArgs {
    /// Run one tick and exit (for cron, CI, Kubernetes CronJobs).
    #[arg(long)]
    pub once: bool,
    /// Print only the JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Only these personas (repeatable); overrides run memory.
    #[arg(long = "persona", value_name = "EMAIL")]
    pub personas: Vec<String>,
    /// Ignore run memory (zero-action wait, failure backoff); with --persona,
    /// run those personas even when the platform does not list them as due
    /// (reads their descriptors with the admin JWT).
    #[arg(long)]
    pub force: bool,
    /// Personas in flight at once (default PERSONA_CONCURRENCY).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: Option<u16>,
    /// Run only personas whose stable hash of userId mod N is K.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Run at most N personas this tick.
    #[arg(long, value_name = "N")]
    pub max_personas: Option<usize>,
    /// Prompt templates directory (layout of personas/).
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
}

impl TickArgs {
    pub fn options(&self) -> TickOptions {
        TickOptions {
            personas: self.personas.clone(),
            force: self.force,
            shard: self.shard,
            max_personas: self.max_personas,
            concurrency: self.concurrency.map(usize::from),
            forced: Vec::new(),
        }
    }
}

/// `--persona X --force`: each named persona's descriptor from the admin API,
/// so it runs whether or not the platform lists it as due. A persona the
/// platform does not have is an error (exit 1) before anything runs.
async fn forced_personas(
    cfg: &crate::config::Config,
    emails: &[String],
) -> anyhow::Result<Vec<DuePersona>> {
    let admin = crate::runner::clients::admin(cfg, None).map_err(|e| {
        e.context("--persona with --force runs personas that are not due, and reads their descriptors with the admin JWT")
    })?;
    let all = admin.list().await?;
    let mut out = Vec::with_capacity(emails.len());
    for email in emails {
        let Some(found) = all.iter().find(|p| p.email.eq_ignore_ascii_case(email)) else {
            anyhow::bail!("--persona {email}: the platform has no such persona");
        };
        let detail = admin.show(&found.user_id).await?;
        let mut p: DuePersona = serde_json::from_value(detail.persona.clone()).map_err(|e| {
            anyhow::anyhow!("--persona {email}: the admin detail is not a persona descriptor: {e}")
        })?;
        // The detail may name the id differently; the list's is authoritative.
        p.user_id = found.user_id.clone();
        out.push(p);
    }
    Ok(out)
}

pub async fn run(g: &GlobalArgs, a: TickArgs) -> anyhow::Result<u8> {
    let reload = reloader(g, a.prompts.clone(), None, None);
    let cfg = reload()?;
    if !a.once {
        // The daemon's loop in the foreground: no HTTP, no systemd.
        return daemon::run(
            cfg,
            DaemonOptions {
                tick: a.options(),
                listen: None,
                systemd: false,
                reload,
            },
        )
        .await;
    }
    // Held until the process exits: a second tick or a daemon on the same
    // state directory would run every persona a second time.
    let _lock = crate::state::lock::StateLock::acquire(&cfg.state_dir, "tick --once")?;
    let (runner, cfg) = Runner::build(cfg).await?;
    let stop = Shutdown::new();
    let on_ctrl_c = stop.clone();
    // Ctrl-C, or SIGTERM from a CronJob's deadline: queue what the personas
    // in flight produced, then exit; the next run posts it.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("interrupted: cancelling the personas in flight; their rows stay in the outbox");
        on_ctrl_c.abort();
    });
    let mut opts = a.options();
    if a.force && !a.personas.is_empty() {
        opts.forced = forced_personas(&cfg, &a.personas).await?;
    }
    let summary = once(&runner, &opts, a.json, &stop).await?;
    Ok(exit_code(&summary))
}

/// How `tick` and `daemon` load their configuration, at start and again on
/// SIGHUP: the same file, environment and flags every time.
pub fn reloader(
    g: &GlobalArgs,
    prompts: Option<PathBuf>,
    listen: Option<String>,
    grace_ms: Option<u64>,
) -> daemon::scheduler::Reloader {
    let base = g.overrides();
    Box::new(move || {
        let mut ov = base.clone();
        ov.set(
            "prompts_dir",
            prompts.as_ref().map(|p| p.display().to_string()),
            "--prompts",
        );
        ov.set("listen", listen.clone(), "--listen");
        ov.set("shutdown_grace_ms", grace_ms, "--grace-ms");
        Ok(crate::config::Config::load(&ov)?)
    })
}

/// One tick with progress, lines and summary.
pub async fn once(
    r: &Runner,
    opts: &TickOptions,
    json: bool,
    stop: &Shutdown,
) -> anyhow::Result<TickSummary> {
    let reporter = std::sync::OnceLock::<Reporter>::new();
    let budget = r.internal.budget();
    budget.on_wait(|s: &str| eprintln!("{s}"));
    let summary = tick::run_once(
        r,
        opts,
        stop,
        &|n| {
            let rp = Reporter::new(n, json);
            budget.on_wait(rp.notices());
            let _ = reporter.set(rp);
        },
        &|rep| {
            if let Some(rp) = reporter.get() {
                rp.inc();
                rp.line(&line(rep));
            }
        },
    )
    .await?;
    if let Some(rp) = reporter.get() {
        rp.finish();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(summary)
}

/// 0 when every attempted persona succeeded and every batch reached the
/// platform; 1 when any persona failed or a stop ended the tick before the
/// due list was read (a service key refused on a queued batch is an `Err`,
/// also 1); 3 when none failed but rows did not reach the platform: batches
/// still in the outbox (the next run posts them), dead batches (until the
/// operator retries or drops them: `mana-personas outbox`), or batches the
/// outbox could not take (disk full), which exist only in this process's
/// memory and are lost when it exits. A cron job or CI must see each.
pub fn exit_code(s: &TickSummary) -> u8 {
    if !s.failed.is_empty() || s.interrupted {
        crate::exit::FAILED
    } else if s.outbox_pending > 0 || s.outbox_dead > 0 || s.unsaved_batches > 0 {
        crate::exit::UNDELIVERED
    } else {
        crate::exit::OK
    }
}

fn human_tokens(n: u64) -> String {
    if n >= 1000 {
        format!("{:.1}k", n as f64 / 1000.0)
    } else {
        n.to_string()
    }
}

/// `✓ email — 6 calls over 3 modules, 1 error, 3 ratings, 2.4k tokens, 41 s`.
pub fn line(r: &PersonaReport) -> String {
    let secs = r.duration_ms as f64 / 1000.0;
    let delivery = match &r.delivery {
        Delivery::Queued(e) => format!("; rows queued in the outbox ({e})"),
        Delivery::Unsaved(e) => format!("; {e}"),
        _ => String::new(),
    };
    match r.outcome {
        RunOutcome::Ok => format!(
            "✓ {} — {} calls over {} modules, {} error{}, {} ratings, {} tokens, {:.1} s{delivery}",
            r.email,
            r.actions,
            r.modules.len(),
            r.action_errors,
            if r.action_errors == 1 { "" } else { "s" },
            r.ratings,
            human_tokens(r.tokens.total()),
            secs
        ),
        RunOutcome::ZeroActions => format!(
            "○ {} — no tool call, nothing posted; not rerun before its cadence ({} tokens, {:.1} s)",
            r.email,
            human_tokens(r.tokens.total()),
            secs
        ),
        RunOutcome::Failed => format!(
            "✗ {} — {}{}",
            r.email,
            r.error.as_deref().unwrap_or("failed"),
            if r.actions > 0 {
                format!(" ({} calls kept{delivery})", r.actions)
            } else {
                String::new()
            }
        ),
    }
}

fn print_summary(s: &TickSummary) {
    println!(
        "tick: {} due, {} ran, {} ok, {} failed, {} skipped; {} actions ({} errors), {} ratings; tokens in {} / out {} / cache read {} / cache write {}; {:.1} s",
        s.due,
        s.ran,
        s.ok,
        s.failed.len(),
        s.skipped.len(),
        s.actions,
        s.action_errors,
        s.ratings,
        s.tokens.input,
        s.tokens.output,
        s.tokens.cache_read,
        s.tokens.cache_write,
        s.duration_ms as f64 / 1000.0
    );
    for sk in &s.skipped {
        println!("  skipped {}: {}", sk.persona, sk.reason);
    }
    if s.api_waits > 0 || s.api_rate_limited > 0 {
        println!(
            "  platform request budget: waited {} time{}, {} answer{} 429",
            s.api_waits,
            if s.api_waits == 1 { "" } else { "s" },
            s.api_rate_limited,
            if s.api_rate_limited == 1 { "" } else { "s" },
        );
    }
    if s.outbox_delivered > 0 || s.outbox_pending > 0 || s.outbox_dead > 0 {
        println!(
            "  outbox: {} earlier batches delivered, {} still pending, {} dead",
            s.outbox_delivered, s.outbox_pending, s.outbox_dead
        );
    }
    if s.outbox_dead > 0 {
        println!(
            "  {} batches were refused for good and are kept as dead: `mana-personas outbox list` shows them, `outbox retry ID|--all-dead` resends, `outbox drop ID` gives one up",
            s.outbox_dead
        );
    }
    if s.unsaved_batches > 0 {
        println!(
            "  {} batches could not be written to the outbox and did not reach the platform: they are in memory only and are LOST when this process exits",
            s.unsaved_batches
        );
    }
    if s.interrupted {
        println!("  interrupted before the due list was read: no persona ran");
    }
    if exit_code(s) == crate::exit::UNDELIVERED {
        if s.outbox_pending > 0 {
            println!(
                "  not a clean run (exit 3): {} batches did not reach the platform yet; the next tick posts them first",
                s.outbox_pending
            );
        } else {
            println!("  not a clean run (exit 3): rows did not reach the platform");
        }
    }
}
