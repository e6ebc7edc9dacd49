//! `tick --once`: one tick from cron or CI; `tick` without `--once` repeats it
//! on the interval in the foreground until Ctrl-C.

use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::output::Reporter;
use super::{EXIT_FAILED, EXIT_OK, GlobalArgs};
use crate::config::Config;
use crate::runner::Runner;
use crate::runner::persona::{Delivery, PersonaReport, RunOutcome};
use crate::runner::tick::{self, Shard, TickOptions, TickSummary};

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
    /// Ignore run memory (zero-action wait, failure backoff).
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
        }
    }
}

pub async fn run(g: &GlobalArgs, a: TickArgs) -> anyhow::Result<u8> {
    let cfg = g.load_config(|ov| {
        ov.set(
            "prompts_dir",
            a.prompts.as_ref().map(|p| p.display().to_string()),
            "--prompts",
        )
    })?;
    let runner = Runner::from_config(&cfg)?;
    if a.once {
        let summary = once(&runner, &a.options(), a.json, &CancellationToken::new()).await?;
        return Ok(exit_code(&summary));
    }
    foreground_loop(&cfg, &runner, &a).await
}

/// One tick with progress, lines and summary.
pub async fn once(
    r: &Runner,
    opts: &TickOptions,
    json: bool,
    cancel: &CancellationToken,
) -> anyhow::Result<TickSummary> {
    let reporter = std::sync::OnceLock::<Reporter>::new();
    let summary = tick::run_once(
        r,
        opts,
        cancel,
        &|n| {
            let _ = reporter.set(Reporter::new(n, json));
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

/// 0 when every attempted persona succeeded, 1 when any failed.
pub fn exit_code(s: &TickSummary) -> u8 {
    if s.failed.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

async fn foreground_loop(cfg: &Config, runner: &Runner, a: &TickArgs) -> anyhow::Result<u8> {
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("stopping: finishing the personas in flight (Ctrl-C again to abort)");
        stop.cancel();
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(130);
    });
    let mut interval = tokio::time::interval(cfg.tick_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = cancel.cancelled() => return Ok(EXIT_OK),
        }
        if let Err(e) = once(runner, &a.options(), a.json, &cancel).await {
            eprintln!("tick failed: {}", super::render_error(&e));
        }
        if cancel.is_cancelled() {
            return Ok(EXIT_OK);
        }
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
    if s.outbox_delivered > 0 || s.outbox_pending > 0 {
        println!(
            "  outbox: {} earlier batches delivered, {} still pending",
            s.outbox_delivered, s.outbox_pending
        );
    }
}
