//! What did the personas think? The ledger's summaries turned into answers:
//! per module ratings over time, errors and latency, trends, module-mix
//! adherence, health and cost — for `mana-personas report` and the daemon's
//! `/report` and `/report.json`.
//!
//! One file per concern: [`model`] aggregates (and reads the shards,
//! read-only), [`trends`] flags, [`stats`] the arithmetic, and one renderer
//! per format.

pub mod model;
pub mod render_html;
pub mod render_json;
pub mod render_md;
pub mod render_table;
pub mod stats;
pub mod trace;
pub mod trends;

use clap::ValueEnum;

pub use model::{Query, Report, load};

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Format {
    Table,
    Md,
    Json,
    Html,
}

/// Renders `r` in `f`.
pub fn render(r: &Report, f: Format) -> String {
    match f {
        Format::Table => render_table::render(r),
        Format::Md => render_md::render(r),
        Format::Json => render_json::render(r),
        Format::Html => render_html::render(r),
    }
}
