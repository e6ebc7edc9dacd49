//! `conformance --against auth=URL,api=URL,mcp=URL[,llm=URL]`: the contract
//! checks against a deployment, one line per check as it ends, or one JSON
//! report with `--json`. Exit 0 only if every check passed.

use clap::Args;
use secrecy::SecretString;

use super::{EXIT_FAILED, EXIT_OK, GlobalArgs, UsageError};
use crate::config::Need;
use crate::conformance::{self, CheckResult, Settings, Status, Targets};

#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// The deployment: `auth=URL,api=URL,mcp=URL` and optionally `,llm=URL`
    /// (the LLM API's base URL, as ANTHROPIC_BASE_URL / OPENAI_BASE_URL).
    #[arg(long, value_name = "auth=URL,api=URL,mcp=URL[,llm=URL]")]
    pub against: String,
    /// Print one JSON report on stdout instead of lines.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(g: &GlobalArgs, a: ConformanceArgs) -> anyhow::Result<u8> {
    let targets: Targets = a
        .against
        .parse()
        .map_err(|e| UsageError(format!("--against: {e}")))?;
    let cfg = g.load_config(|_| {})?;
    cfg.require(&[Need::AdminJwt, Need::ServiceKey, Need::SeedSecret])?;
    if targets.llm.is_some() {
        cfg.require(&[Need::LlmKey])?;
    }
    let settings = Settings {
        admin_jwt: cfg.admin_jwt.clone().expect("checked by require"),
        service_key: cfg.service_key.clone().expect("checked by require"),
        seed_secret: cfg.seed_secret.clone(),
        production: cfg.production,
        admin_prefix: cfg.admin_prefix.clone(),
        internal_prefix: cfg.internal_prefix.clone(),
        llm_provider: cfg.llm_provider,
        llm_key: cfg
            .llm_key()
            .cloned()
            .or_else(|| Some(SecretString::from(String::new()))),
        llm_model: cfg.llm_model.clone(),
    };
    let live = !a.json && !g.quiet;
    let report = conformance::run(targets, settings, move |r| {
        if live {
            print!("{}", line(r));
        }
    })
    .await;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if g.quiet {
            for r in report.checks.iter().filter(|r| r.status != Status::Pass) {
                print!("{}", line(r));
            }
        }
        println!(
            "{} passed, {} failed, {} skipped (persona {})",
            report.passed, report.failed, report.skipped, report.persona
        );
    }
    Ok(if report.ok { EXIT_OK } else { EXIT_FAILED })
}

/// `✓ name  12 ms  detail`, `✗ name  12 ms` with what was expected and what
/// came on the next lines, `- name  skipped: reason`.
fn line(r: &CheckResult) -> String {
    match r.status {
        Status::Pass => format!(
            "✓ {:<30} {:>6} ms  {}\n",
            r.name,
            r.ms,
            r.detail.as_deref().unwrap_or_default()
        ),
        Status::Fail => format!(
            "✗ {:<30} {:>6} ms\n    expected: {}\n    got:      {}\n",
            r.name,
            r.ms,
            r.expected.as_deref().unwrap_or_default(),
            r.got.as_deref().unwrap_or_default()
        ),
        Status::Skip => format!(
            "- {:<30} skipped: {}\n",
            r.name,
            r.reason.as_deref().unwrap_or_default()
        ),
    }
}
