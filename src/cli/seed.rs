//! `seed`: create or update every catalog persona through the admin endpoint.
//! Idempotent (the platform upserts by email); transient failures are retried
//! with backoff, 4xx are not.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::output::{Reporter, quiet};
use super::{EXIT_FAILED, EXIT_OK, GlobalArgs, LogFormat, UsageError};
use crate::config::{Need, read_secret_file};
use crate::http::join;
use crate::platform::admin::{AdminClient, EXPIRED_JWT_HINT, UpsertPersona, is_jwt_refused};
use crate::runner::clients;

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The catalog to seed.
    #[arg(long, default_value = "catalog.json", value_name = "PATH")]
    pub catalog: PathBuf,
    /// apps/api base URL (overrides MANA_API_URL).
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// Legacy alias of --api (the admin endpoints used to live on mana-auth).
    #[arg(long, value_name = "URL", conflicts_with = "api")]
    pub auth: Option<String>,
    /// File holding the admin JWT (else MANA_ADMIN_JWT).
    #[arg(long, value_name = "PATH")]
    pub jwt_file: Option<PathBuf>,
    /// The admin JWT itself. Visible in the process list: prefer --jwt-file or MANA_ADMIN_JWT.
    #[arg(
        long,
        value_name = "JWT",
        conflicts_with = "jwt_file",
        hide_default_value = true
    )]
    pub jwt: Option<String>,
    /// Say what would be sent; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only these personas (repeatable).
    #[arg(long, value_name = "EMAIL", num_args = 1..)]
    pub only: Vec<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Print one JSON report on stdout (per-persona lines go to stderr).
    #[arg(long)]
    pub json: bool,
}

/// Resolves the admin JWT from `--jwt-file`, `--jwt` (with a warning) or config.
pub fn admin_jwt(
    jwt_file: &Option<PathBuf>,
    jwt: &Option<String>,
) -> anyhow::Result<Option<SecretString>> {
    if let Some(p) = jwt_file {
        let v = read_secret_file(p).map_err(|m| UsageError(format!("--jwt-file: {m}")))?;
        return Ok(Some(SecretString::from(v)));
    }
    if let Some(j) = jwt {
        eprintln!(
            "warning: --jwt puts the admin JWT in the process list; prefer --jwt-file PATH or MANA_ADMIN_JWT"
        );
        return Ok(Some(SecretString::from(j.clone())));
    }
    Ok(None)
}

pub async fn run(g: &GlobalArgs, a: SeedArgs) -> anyhow::Result<u8> {
    let cfg = g.load_config(|ov| {
        ov.set("api_url", a.api.clone(), "--api");
        ov.set("api_url", a.auth.clone(), "--auth");
    })?;
    cfg.require(&[Need::SeedSecret])?;
    let catalog = super::catalog::load_for(&a.catalog)?;
    if !a.only.is_empty() {
        let unknown: Vec<_> = a
            .only
            .iter()
            .filter(|e| catalog.by_email(e).is_none())
            .collect();
        if !unknown.is_empty() {
            let list: Vec<_> = unknown.iter().map(|s| s.as_str()).collect();
            return Err(UsageError(format!(
                "--only: not in {}: {}",
                a.catalog.display(),
                list.join(", ")
            ))
            .into());
        }
    }
    let mut personas = catalog.personas;
    if !a.only.is_empty() {
        personas.retain(|p| a.only.iter().any(|e| e.eq_ignore_ascii_case(&p.email)));
    }
    // Printed: without the userinfo a URL may carry.
    let endpoint = crate::http::redact_url(&join(cfg.platform_api_base(), &cfg.admin_prefix));
    if a.dry_run {
        if a.json {
            let rows = personas
                .iter()
                .map(|p| SeedRow {
                    email: p.email.clone(),
                    status: SeedStatus::WouldSeed,
                    user_id: None,
                    error: None,
                })
                .collect();
            print_json(&endpoint, true, rows, None)?;
            return Ok(EXIT_OK);
        }
        for p in &personas {
            println!(
                "would upsert {} ({}, {}, {} modules) via POST {endpoint}",
                p.email,
                p.archetype,
                p.tick_cadence.as_str(),
                p.module_mix.len()
            );
        }
        println!("dry run: {} personas, nothing sent", personas.len());
        return Ok(EXIT_OK);
    }
    let admin = with_flag_file(
        clients::admin(&cfg, admin_jwt(&a.jwt_file, &a.jwt)?)?,
        &a.jwt_file,
    );
    let reporter = Reporter::new(personas.len(), a.json);
    let retry_note = reporter.notices();
    let log_json = g.log_format == LogFormat::Json;
    admin.budget().on_wait(reporter.notices());
    // Set when the admin JWT is refused for good: the rest is not tried, and
    // the summary says which personas were done.
    let refused = AtomicBool::new(false);
    let mut results: Vec<SeedRow> = futures::stream::iter(personas.iter())
        .map(|p| {
            let admin = &admin;
            let reporter = &reporter;
            let cfg = &cfg;
            let refused = &refused;
            let retry_note = &retry_note;
            async move {
                if refused.load(Ordering::SeqCst) {
                    return SeedRow::not_tried(&p.email, None);
                }
                let password =
                    match crate::password::derive(&cfg.seed_secret, &p.email, cfg.production) {
                        Ok(pw) => pw,
                        Err(e) => {
                            reporter.line(&format!("✗ {} — {e}", p.email));
                            return SeedRow::failed(&p.email, e.to_string());
                        }
                    };
                let body = UpsertPersona {
                    email: p.email.clone(),
                    name: Some(p.name.clone()),
                    password: password.expose_secret().to_string(),
                    archetype: p.archetype.clone(),
                    system_prompt: p.system_prompt.clone(),
                    module_mix: p.module_mix.clone(),
                    tick_cadence: Some(p.tick_cadence.as_str().to_string()),
                };
                let r = admin
                    .upsert(&body, |n| {
                        // Like every retry line: stderr, at info, gone
                        // under -q; here with the persona it is for.
                        if log_json {
                            tracing::info!(target: crate::http::RETRY_TARGET, persona = %p.email, "{n}");
                        } else if !quiet() {
                            retry_note(&format!("  ↻ {}: {n}", p.email));
                        }
                    })
                    .await;
                reporter.inc();
                match r {
                    Ok(resp) => {
                        reporter.line(&format!("✓ {} ({})", p.email, resp.user_id));
                        SeedRow {
                            email: p.email.clone(),
                            status: SeedStatus::Seeded,
                            user_id: Some(resp.user_id),
                            error: None,
                        }
                    }
                    Err(e) if is_jwt_refused(&e) => {
                        refused.store(true, Ordering::SeqCst);
                        reporter.line(&format!("✗ {} — {e}", p.email));
                        SeedRow::not_tried(&p.email, Some(e.to_string()))
                    }
                    Err(e) => {
                        reporter.line(&format!("✗ {} — {e}", p.email));
                        SeedRow::failed(&p.email, e.to_string())
                    }
                }
            }
        })
        .buffer_unordered(a.concurrency as usize)
        .collect()
        .await;
    reporter.finish();
    // Finished in any order; reported in catalog order.
    let position: std::collections::HashMap<&str, usize> = personas
        .iter()
        .enumerate()
        .map(|(i, p)| (p.email.as_str(), i))
        .collect();
    results.sort_by_key(|r| position.get(r.email.as_str()).copied());
    let stopped = refused.load(Ordering::SeqCst);
    let failed = results
        .iter()
        .filter(|r| r.status == SeedStatus::Failed)
        .count();
    let code = if stopped || failed > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    };
    if a.json {
        print_json(
            &endpoint,
            false,
            results,
            stopped.then_some(EXPIRED_JWT_HINT),
        )?;
        return Ok(code);
    }
    let done = emails(&results, SeedStatus::Seeded);
    println!(
        "seeded {} of {} personas via {endpoint}{}",
        done.len(),
        results.len(),
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
    if stopped {
        let not_done = emails(&results, SeedStatus::NotTried);
        let list = |v: &[&str]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        println!("stopped: {EXPIRED_JWT_HINT}");
        println!("  done ({}): {}", done.len(), list(&done));
        println!("  not done ({}): {}", not_done.len(), list(&not_done));
        println!(
            "  seeding is idempotent: run the same command again (or with --only for the ones not done)"
        );
    }
    Ok(code)
}

/// How one persona's upsert ended (`status` in `seed --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
enum SeedStatus {
    Seeded,
    Failed,
    /// Not sent, or refused for the admin JWT: to do again with a fresh one.
    NotTried,
    /// `--dry-run`: would be sent.
    WouldSeed,
}

/// One persona of `seed --json`; also what the text summary is counted from.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SeedRow {
    email: String,
    status: SeedStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl SeedRow {
    fn failed(email: &str, error: String) -> SeedRow {
        SeedRow {
            email: email.to_string(),
            status: SeedStatus::Failed,
            user_id: None,
            error: Some(error),
        }
    }

    fn not_tried(email: &str, error: Option<String>) -> SeedRow {
        SeedRow {
            email: email.to_string(),
            status: SeedStatus::NotTried,
            user_id: None,
            error,
        }
    }
}

/// The emails of the rows that ended in `status`, in catalog order.
fn emails(rows: &[SeedRow], status: SeedStatus) -> Vec<&str> {
    rows.iter()
        .filter(|r| r.status == status)
        .map(|r| r.email.as_str())
        .collect()
}

/// `seed --json`: the counts a script checks, then every persona. Keys are
/// stable (README, "JSON output").
fn print_json(
    endpoint: &str,
    dry_run: bool,
    personas: Vec<SeedRow>,
    stopped: Option<&str>,
) -> anyhow::Result<()> {
    let count = |s| personas.iter().filter(|r| r.status == s).count();
    let v = serde_json::json!({
        "endpoint": endpoint,
        "dryRun": dry_run,
        "total": personas.len(),
        "seeded": count(SeedStatus::Seeded),
        "failed": count(SeedStatus::Failed),
        "notTried": count(SeedStatus::NotTried),
        "stopped": stopped,
        "personas": personas,
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// A client whose JWT came from `--jwt-file` re-reads that file on a 401.
pub fn with_flag_file(admin: AdminClient, jwt_file: &Option<PathBuf>) -> AdminClient {
    match jwt_file {
        Some(p) => admin.with_jwt_file(Some(p.clone())),
        None => admin,
    }
}
