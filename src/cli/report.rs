//! `report`: what the personas thought, from the ledgers (read-only).

use std::path::PathBuf;

use clap::Args;

use super::{EXIT_FAILED, EXIT_OK, GlobalArgs};
use crate::report::{self, Format, Query};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The window, ending now: days (`28d`) or weeks (`4w`).
    #[arg(long, default_value = "28d", value_name = "DAYS")]
    pub since: String,
    /// Only this persona.
    #[arg(long, value_name = "EMAIL")]
    pub persona: Option<String>,
    /// Only personas of this archetype.
    #[arg(long, value_name = "A")]
    pub archetype: Option<String>,
    /// table (terminal), md (CI job summary, chat), json (stable, versioned),
    /// html (one self-contained file with charts).
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// A state directory to read (repeatable, one per shard); default: the
    /// configured state directory.
    #[arg(long = "ledger", value_name = "DIR")]
    pub ledgers: Vec<PathBuf>,
}

pub fn run(g: &GlobalArgs, a: ReportArgs) -> anyhow::Result<u8> {
    let days = report::model::parse_since(&a.since).map_err(super::UsageError)?;
    let ledgers = if a.ledgers.is_empty() {
        vec![g.load_config(|_| {})?.state_dir]
    } else {
        a.ledgers
    };
    let q = Query {
        until: chrono::Utc::now(),
        days,
        persona: a.persona,
        archetype: a.archetype,
        ledgers,
    };
    let r = report::load(&q);
    for s in &r.shards {
        match &s.error {
            Some(e) => eprintln!("shard {}: cannot read: {e}", s.dir),
            None if !g.quiet => eprintln!("shard {}: {} persona-ticks", s.dir, s.persona_ticks),
            None => {}
        }
    }
    let text = report::render(&r, a.format);
    match &a.out {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(if r.shards.iter().all(|s| s.error.is_some()) {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}
