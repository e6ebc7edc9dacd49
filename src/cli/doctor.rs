//! `doctor`: the first-contact check of a deployment, one line per step (see
//! [`crate::doctor`]). Exit 0 only when every step passed.

use std::path::PathBuf;

use clap::Args;

use super::{EXIT_FAILED, EXIT_OK, GlobalArgs};
use crate::doctor::{self, Options, Status};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Sign in as this persona (default: the catalog's first, else the first due).
    #[arg(long, value_name = "EMAIL")]
    pub persona: Option<String>,
    /// Catalog whose first persona is used when --persona is not given.
    #[arg(long, value_name = "PATH")]
    pub catalog: Option<PathBuf>,
    /// Print only the JSON report on stdout.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(g: &GlobalArgs, a: DoctorArgs) -> anyhow::Result<u8> {
    let cfg = g.load_config(|_| {})?;
    let report = doctor::run(
        &cfg,
        &Options {
            persona: a.persona,
            catalog: a.catalog,
        },
    )
    .await;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for s in &report.steps {
            let mark = match s.status {
                Status::Ok => "✓",
                Status::Failed => "✗",
                Status::Skipped => "–",
            };
            println!("{mark} {:<22} {:>6} ms  {}", s.step, s.ms, s.detail);
            if let Some(fix) = &s.fix {
                println!("  {:<22}           fix: {fix}", "");
            }
        }
        let failed = report
            .steps
            .iter()
            .filter(|s| s.status != Status::Ok)
            .count();
        if report.ok {
            println!("doctor: all {} steps passed", report.steps.len());
        } else {
            println!(
                "doctor: {failed} of {} steps did not pass",
                report.steps.len()
            );
        }
    }
    Ok(if report.ok { EXIT_OK } else { EXIT_FAILED })
}
