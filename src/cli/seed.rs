//! `seed`: create or update every catalog persona through the admin endpoint.
//! Idempotent (the platform upserts by email); transient failures are retried
//! with backoff, 4xx are not.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};

use super::output::Reporter;
use super::{EXIT_FAILED, EXIT_OK, GlobalArgs, UsageError};
use crate::config::{Need, read_secret_file};
use crate::http::join;
use crate::platform::admin::{AdminClient, EXPIRED_JWT_HINT, UpsertPersona, is_jwt_refused};
use crate::platform::clients;

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
    let reporter = Reporter::new(personas.len(), false);
    admin.budget().on_wait(reporter.notices());
    // Set when the admin JWT is refused for good: the rest is not tried, and
    // the summary says which personas were done.
    let refused = AtomicBool::new(false);
    let results: Vec<Seeded> = futures::stream::iter(personas.iter())
        .map(|p| {
            let admin = &admin;
            let reporter = &reporter;
            let cfg = &cfg;
            let refused = &refused;
            async move {
                if refused.load(Ordering::SeqCst) {
                    return Seeded::NotTried(p.email.clone());
                }
                let password =
                    match crate::password::derive(&cfg.seed_secret, &p.email, cfg.production) {
                        Ok(pw) => pw,
                        Err(e) => {
                            reporter.line(&format!("✗ {} — {e}", p.email));
                            return Seeded::Failed;
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
                    .upsert(&body, |e, d| {
                        reporter.line(&format!(
                            "  ↻ {}: {e}; retrying in {:.1}s",
                            p.email,
                            d.as_secs_f64()
                        ))
                    })
                    .await;
                reporter.inc();
                match r {
                    Ok(resp) => {
                        reporter.line(&format!("✓ {} ({})", p.email, resp.user_id));
                        Seeded::Done(p.email.clone())
                    }
                    Err(e) if is_jwt_refused(&e) => {
                        refused.store(true, Ordering::SeqCst);
                        reporter.line(&format!("✗ {} — {e}", p.email));
                        Seeded::NotTried(p.email.clone())
                    }
                    Err(e) => {
                        reporter.line(&format!("✗ {} — {e}", p.email));
                        Seeded::Failed
                    }
                }
            }
        })
        .buffer_unordered(a.concurrency as usize)
        .collect()
        .await;
    reporter.finish();
    let done: Vec<&str> = results.iter().filter_map(Seeded::done).collect();
    let failed = results
        .iter()
        .filter(|r| matches!(r, Seeded::Failed))
        .count();
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
    if refused.load(Ordering::SeqCst) {
        let not_done: Vec<&str> = results
            .iter()
            .filter_map(|r| match r {
                Seeded::NotTried(e) => Some(e.as_str()),
                _ => None,
            })
            .collect();
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
        return Ok(EXIT_FAILED);
    }
    Ok(if failed > 0 { EXIT_FAILED } else { EXIT_OK })
}

/// How one persona's upsert ended.
enum Seeded {
    Done(String),
    Failed,
    /// Not sent, or refused for the admin JWT: to do again with a fresh one.
    NotTried(String),
}

impl Seeded {
    fn done(&self) -> Option<&str> {
        match self {
            Seeded::Done(e) => Some(e),
            _ => None,
        }
    }
}

/// A client whose JWT came from `--jwt-file` re-reads that file on a 401.
pub fn with_flag_file(admin: AdminClient, jwt_file: &Option<PathBuf>) -> AdminClient {
    match jwt_file {
        Some(p) => admin.with_jwt_file(Some(p.clone())),
        None => admin,
    }
}
