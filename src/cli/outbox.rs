//! `mana-personas outbox list | retry ID | retry --all-dead | drop ID`: the
//! operator's hands on the outbox, so a batch the platform refused (dead) is
//! never rows lost without a word: it can be seen, sent again once the cause
//! is fixed, or given up on purpose.
//!
//! `list` and `drop` only touch `state.db` (SQLite serialises them with a
//! running daemon). `retry` makes the entries pending again and posts them
//! at once when it can take the state directory's lock; when a daemon (or a
//! tick) holds it, that process posts them at its next tick instead — two
//! processes never post from one outbox.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{stdin_is_terminal, table};
use super::{EXIT_FAILED, EXIT_OK, GlobalArgs, UsageError};
use crate::exit::UNDELIVERED;
use crate::state::State;
use crate::state::lock::{LockError, StateLock};
use crate::state::outbox::Listed;

#[derive(Debug, Subcommand)]
pub enum OutboxCmd {
    /// Every queued batch, pending and dead: id, persona, tick, kind, rows,
    /// attempts, state and the last error.
    List(ListArgs),
    /// Make a dead batch (ID, with its tick's other dead batch) or every
    /// dead batch (--all-dead) pending again with fresh attempts, and post
    /// it now.
    Retry(RetryArgs),
    /// Give up one batch: delete it from the outbox (asks first).
    Drop(DropArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The batch's id (the first column of `outbox list`).
    #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
    pub id: Option<i64>,
    /// Every dead batch.
    #[arg(long)]
    pub all_dead: bool,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DropArgs {
    /// The batch's id (the first column of `outbox list`).
    pub id: i64,
    /// Do not ask (required when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl OutboxCmd {
    /// Whether stdout is reserved for JSON.
    pub fn json(&self) -> bool {
        match self {
            OutboxCmd::List(a) => a.json,
            OutboxCmd::Retry(a) => a.json,
            OutboxCmd::Drop(a) => a.json,
        }
    }
}

/// Last errors are cut to this many characters in the table (`--json` has
/// them whole, as stored: redacted and at most one error body long).
const ERROR_CHARS: usize = 80;

pub async fn run(g: &GlobalArgs, cmd: OutboxCmd) -> anyhow::Result<u8> {
    let cfg = g.load_config(|_| {})?;
    match cmd {
        OutboxCmd::List(a) => list(&State::open(&cfg.state_dir)?, a.json),
        OutboxCmd::Drop(a) => drop_one(&State::open(&cfg.state_dir)?, a),
        OutboxCmd::Retry(a) => retry(&cfg, a).await,
    }
}

fn list(state: &State, json: bool) -> anyhow::Result<u8> {
    let all = state.outbox_list()?;
    if json {
        let dead = all.iter().filter(|e| e.dead).count();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "entries": all,
                "pending": all.len() - dead,
                "dead": dead,
            }))?
        );
        return Ok(EXIT_OK);
    }
    if all.is_empty() {
        println!("the outbox is empty: every batch reached the platform");
        return Ok(EXIT_OK);
    }
    let rows = all
        .iter()
        .map(|e| {
            vec![
                e.id.to_string(),
                e.persona.clone(),
                e.tick_id.clone(),
                e.kind.clone(),
                e.rows.to_string(),
                e.attempts.to_string(),
                if e.dead { "dead" } else { "pending" }.to_string(),
                e.last_error
                    .as_deref()
                    .map(|s| crate::http::cut(s, ERROR_CHARS))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "id",
                "persona",
                "tick",
                "kind",
                "rows",
                "attempts",
                "state",
                "last error"
            ],
            rows
        )
    );
    Ok(EXIT_OK)
}

fn drop_one(state: &State, a: DropArgs) -> anyhow::Result<u8> {
    let Some(e) = state.outbox_entry(a.id)? else {
        anyhow::bail!("outbox drop {}: no such batch (see `outbox list`)", a.id);
    };
    if !a.yes {
        if !stdin_is_terminal() {
            return Err(UsageError(
                "refusing to drop a batch without confirmation: stdin is not a terminal; pass --yes"
                    .into(),
            )
            .into());
        }
        print!(
            "Drop batch {} ({} {} rows of {}, tick {})? Its rows will never reach the platform. [y/N] ",
            e.id, e.rows, e.kind, e.persona, e.tick_id
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("aborted: nothing dropped");
            return Ok(EXIT_FAILED);
        }
    }
    let Some(gone) = state.drop_entry(a.id)? else {
        anyhow::bail!("outbox drop {}: the batch was gone already", a.id);
    };
    tracing::warn!(outbox_id = gone.id, persona = %gone.persona, tick = %gone.tick_id, kind = %gone.kind, rows = gone.rows, "batch dropped by the operator");
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "dropped": gone }))?
        );
    } else {
        println!(
            "dropped batch {}: {} {} rows of {} (tick {})",
            gone.id, gone.rows, gone.kind, gone.persona, gone.tick_id
        );
    }
    Ok(EXIT_OK)
}

async fn retry(cfg: &crate::config::Config, a: RetryArgs) -> anyhow::Result<u8> {
    let state = State::open(&cfg.state_dir)?;
    let revived = match a.id {
        Some(id) => state.revive(id)?,
        None => state.revive_all_dead()?,
    };
    if let Some(id) = a.id
        && revived.is_empty()
    {
        anyhow::bail!("outbox retry {id}: no such batch (see `outbox list`)");
    }
    let before: Vec<Listed> = state
        .outbox_list()?
        .into_iter()
        .filter(|e| revived.contains(&e.id))
        .collect();
    // Posting takes the state directory, like a tick: never two posters.
    let lock = match StateLock::acquire(&cfg.state_dir, "outbox retry") {
        Ok(l) => Some(l),
        Err(LockError::Held { holder, .. }) => {
            let msg = format!(
                "{} batches are pending again; {holder} holds the state directory and posts them at its next tick",
                revived.len()
            );
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "revived": revived, "posted": false, "delivered": 0,
                        "stillPending": revived.len(), "dead": 0, "note": msg,
                    }))?
                );
            } else {
                println!("{msg}");
            }
            return Ok(if revived.is_empty() {
                EXIT_OK
            } else {
                UNDELIVERED
            });
        }
        Err(e) => return Err(e.into()),
    };
    let internal = crate::runner::clients::internal(cfg)?;
    let metrics = crate::metrics::Metrics::new();
    let post = crate::runner::delivery::Poster {
        internal: &internal,
        state: &state,
        metrics: &metrics,
    };
    let mut personas: Vec<&str> = before.iter().map(|e| e.persona_id.as_str()).collect();
    personas.sort_unstable();
    personas.dedup();
    let mut key_refused = None;
    for p in personas {
        let rep = post.drain(Some(p)).await;
        if let Some(e) = rep.key_refused {
            key_refused = Some(e);
            break;
        }
    }
    drop(lock);
    let now = state.outbox_list()?;
    let still: Vec<&Listed> = now.iter().filter(|e| revived.contains(&e.id)).collect();
    let pending = still.iter().filter(|e| !e.dead).count();
    let dead = still.iter().filter(|e| e.dead).count();
    if let Some(error) = key_refused {
        return Err(crate::runner::delivery::KeyRefused {
            status: error.status().unwrap_or(401),
            error,
            pending: state.outbox_counts().map_or(0, |(pending, _)| pending),
        }
        .into());
    }
    let delivered_revived = revived.len() - still.len();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "revived": revived, "posted": true, "delivered": delivered_revived,
                "stillPending": pending, "dead": dead,
            }))?
        );
    } else {
        println!(
            "{} batches retried: {} delivered, {} still pending, {} dead again",
            revived.len(),
            delivered_revived,
            pending,
            dead
        );
        for e in &still {
            println!(
                "  {} {} {}: {}",
                e.id,
                e.persona,
                e.kind,
                e.last_error
                    .as_deref()
                    .map(|s| crate::http::cut(s, ERROR_CHARS))
                    .unwrap_or_default()
            );
        }
    }
    Ok(if still.is_empty() {
        EXIT_OK
    } else {
        UNDELIVERED
    })
}
