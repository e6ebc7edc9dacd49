//! `trace`: one persona tick (or a persona's last N) as a readable story,
//! from the ledger alone (read-only).

use clap::Args;
use serde_json::json;

use super::{EXIT_FAILED, EXIT_OK, GlobalArgs};
use crate::report::trace;
use crate::state::summary;

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// A persona's email (its last ticks) or a tick id.
    #[arg(value_name = "EMAIL|TICK_ID")]
    pub target: String,
    /// With an email: how many of its latest ticks, newest first.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub last: usize,
    /// The transcript and summary as JSON (an array, one object per tick).
    #[arg(long)]
    pub json: bool,
}

pub fn run(g: &GlobalArgs, a: TraceArgs) -> anyhow::Result<u8> {
    let dir = g.load_config(|_| {})?.state_dir;
    let ticks = if a.target.contains('@') {
        summary::recent_ticks(&dir, &a.target, a.last.max(1))?
    } else {
        vec![a.target.clone()]
    };
    let mut found = 0;
    let mut out = Vec::new();
    for tick in &ticks {
        let (transcript, sum) = summary::read_tick(&dir, tick)?;
        if transcript.is_some() || sum.is_some() {
            found += 1;
        }
        if a.json {
            out.push(json!({
                "tickId": tick,
                "pruned": transcript.is_none(),
                "summary": sum,
                "transcript": transcript,
            }));
        } else {
            println!("{}", trace::story(tick, transcript.as_ref(), sum.as_ref()));
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    if found == 0 {
        eprintln!(
            "{}: no persona tick of {} in the ledger",
            dir.join("state.db").display(),
            a.target
        );
        return Ok(EXIT_FAILED);
    }
    Ok(EXIT_OK)
}
