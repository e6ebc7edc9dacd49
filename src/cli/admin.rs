//! `list`, `show`, `cleanup`: what the platform holds, through the admin API.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::output::{stdin_is_terminal, table};
use super::seed::{admin_jwt, with_flag_file};
use super::{EXIT_FAILED, EXIT_OK, GlobalArgs, UsageError};
use crate::http::HttpError;
use crate::platform::admin::{AdminClient, EXPIRED_JWT_HINT, PersonaSummary, is_jwt_refused};
use crate::runner::clients;

/// Options every admin command shares.
#[derive(Debug, Args)]
pub struct AdminOpts {
    /// apps/api base URL (overrides MANA_API_URL).
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// File holding the admin JWT (else MANA_ADMIN_JWT).
    #[arg(long, value_name = "PATH")]
    pub jwt_file: Option<PathBuf>,
}

impl AdminOpts {
    fn client(&self, g: &GlobalArgs) -> anyhow::Result<AdminClient> {
        let cfg = g.load_config(|ov| ov.set("api_url", self.api.clone(), "--api"))?;
        Ok(with_flag_file(
            clients::admin(&cfg, admin_jwt(&self.jwt_file, &None)?)?,
            &self.jwt_file,
        ))
    }
}

/// An admin call's error, with what to do about a refused JWT.
fn explain(e: HttpError) -> anyhow::Error {
    if is_jwt_refused(&e) {
        anyhow::anyhow!("{e}\n{EXPIRED_JWT_HINT}")
    } else {
        e.into()
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub admin: AdminOpts,
    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// User id or email.
    pub target: String,
    #[command(flatten)]
    pub admin: AdminOpts,
    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    #[command(flatten)]
    pub admin: AdminOpts,
    /// Catalog used to mark personas that are not in it.
    #[arg(long, default_value = "catalog.json", value_name = "PATH")]
    pub catalog: PathBuf,
    /// Delete only personas that are not in the catalog.
    #[arg(long)]
    pub orphans: bool,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask (required when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Print one JSON report on stdout (the plan and the question go to stderr).
    #[arg(long)]
    pub json: bool,
}

fn rows(personas: &[PersonaSummary]) -> Vec<Vec<String>> {
    personas
        .iter()
        .map(|p| {
            vec![
                p.email.clone(),
                p.archetype.clone(),
                p.tick_cadence.clone().unwrap_or_else(|| "daily".into()),
                p.last_active_at.clone().unwrap_or_else(|| "never".into()),
                p.actions7d.to_string(),
            ]
        })
        .collect()
}

const HEADER: [&str; 5] = ["email", "archetype", "cadence", "last active", "actions 7d"];

pub async fn list(g: &GlobalArgs, a: ListArgs) -> anyhow::Result<u8> {
    let personas = a.admin.client(g)?.list().await.map_err(explain)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&personas)?);
    } else {
        println!("{}", table(&HEADER, rows(&personas)));
        println!("{} personas", personas.len());
    }
    Ok(EXIT_OK)
}

pub async fn show(g: &GlobalArgs, a: ShowArgs) -> anyhow::Result<u8> {
    let admin = a.admin.client(g)?;
    let id = if a.target.contains('@') {
        let all = admin.list().await.map_err(explain)?;
        match all.iter().find(|p| p.email.eq_ignore_ascii_case(&a.target)) {
            Some(p) => p.user_id.clone(),
            None => {
                // Not a usage error: the command was right, the platform
                // has no such persona (exit 1, like any failed lookup).
                anyhow::bail!("no persona with email {} on the platform", a.target);
            }
        }
    } else {
        a.target.clone()
    };
    let d = admin.show(&id).await.map_err(explain)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(EXIT_OK);
    }
    let p = &d.persona;
    let s = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    // apps/api's detail has no `name` (the older mana-auth layout had one).
    let name = s("name");
    let name = if name.is_empty() { name } else { name + " " };
    println!("{name}<{}>  {}", s("email"), s("userId"));
    println!(
        "archetype: {}   cadence: {}   last active: {}",
        s("archetype"),
        s("tickCadence"),
        p.get("lastActiveAt")
            .and_then(|v| v.as_str())
            .unwrap_or("never")
    );
    if let Some(m) = p.get("moduleMix") {
        println!("modules: {m}");
    }
    let actions: Vec<Vec<String>> = d
        .recent_actions
        .iter()
        .map(|a| {
            let f = |k: &str| {
                a.get(k)
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .unwrap_or_default()
            };
            vec![
                f("createdAt"),
                f("toolName"),
                f("result"),
                f("latencyMs"),
                f("errorMessage"),
            ]
        })
        .collect();
    println!("\nrecent actions ({}):", actions.len());
    println!(
        "{}",
        table(&["at", "tool", "result", "ms", "error"], actions)
    );
    let fb: Vec<Vec<String>> = d
        .feedback_by_module
        .iter()
        .map(|f| {
            let g = |k: &str| {
                f.get(k)
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .unwrap_or_default()
            };
            // The platform's `avgRating` is `count()` under that name (a
            // bug of the platform, see the contract): the number of ratings,
            // never to be shown as an average.
            vec![g("module"), g("avgRating")]
        })
        .collect();
    println!("\nfeedback by module:");
    println!("{}", table(&["module", "ratings (count)"], fb));
    Ok(EXIT_OK)
}

pub async fn cleanup(g: &GlobalArgs, a: CleanupArgs) -> anyhow::Result<u8> {
    let admin = a.admin.client(g)?;
    // `--orphans` decides by the catalog, so it must exist: a missing one
    // would make every persona an orphan. Without it the catalog only marks.
    let catalog = if a.orphans || a.catalog.exists() {
        Some(super::catalog::load_for(&a.catalog)?)
    } else {
        None
    };
    let in_catalog = |email: &str| {
        catalog
            .as_ref()
            .is_some_and(|c| c.by_email(email).is_some())
    };
    let all = admin.list().await.map_err(explain)?;
    let mut rows: Vec<CleanupRow> = all
        .iter()
        .filter(|p| !a.orphans || !in_catalog(&p.email))
        .map(|p| CleanupRow {
            email: p.email.clone(),
            user_id: p.user_id.clone(),
            in_catalog: in_catalog(&p.email),
            status: CleanupStatus::WouldDelete,
            warning: None,
            error: None,
        })
        .collect();
    // Under --json stdout is the report alone; the plan and the question
    // go to stderr.
    let say = |s: &str| {
        if a.json {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    };
    let report = |rows: &[CleanupRow], outcome: &str, stopped: Option<&str>| {
        if a.json {
            print_cleanup_json(all.len(), a.dry_run, outcome, rows, stopped)
        } else {
            Ok(())
        }
    };
    if rows.is_empty() {
        say(&format!(
            "nothing to delete ({} personas on the platform)",
            all.len()
        ));
        report(&rows, "nothingToDelete", None)?;
        return Ok(EXIT_OK);
    }
    say(&format!(
        "will delete {} personas and everything they own:",
        rows.len()
    ));
    for r in &rows {
        let mark = if r.in_catalog {
            ""
        } else {
            "  [not in catalog]"
        };
        say(&format!("  {} ({}){mark}", r.email, r.user_id));
    }
    if a.dry_run {
        say("dry run: nothing deleted");
        report(&rows, "dryRun", None)?;
        return Ok(EXIT_OK);
    }
    if !a.yes {
        if !stdin_is_terminal() {
            return Err(UsageError(
                "refusing to delete without confirmation: stdin is not a terminal; pass --yes"
                    .into(),
            )
            .into());
        }
        let question = format!("Delete these {} personas? [y/N] ", rows.len());
        if a.json {
            eprint!("{question}");
            std::io::stderr().flush()?;
        } else {
            print!("{question}");
            std::io::stdout().flush()?;
        }
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            say("aborted: nothing deleted");
            for r in &mut rows {
                r.status = CleanupStatus::NotDeleted;
            }
            report(&rows, "aborted", None)?;
            return Ok(EXIT_FAILED);
        }
    }
    let mut failed = 0;
    for i in 0..rows.len() {
        match admin.delete(&rows[i].user_id).await {
            Ok(resp) => {
                let r = &mut rows[i];
                r.status = CleanupStatus::Deleted;
                match &resp.warning {
                    Some(w) => say(&format!("✓ {} deleted (warning: {w})", r.email)),
                    None => say(&format!("✓ {} deleted", r.email)),
                }
                r.warning = resp.warning;
            }
            Err(e) if is_jwt_refused(&e) => {
                say(&format!("✗ {} — {e}", rows[i].email));
                rows[i].error = Some(e.to_string());
                for r in &mut rows[i..] {
                    r.status = CleanupStatus::NotDeleted;
                }
                let deleted: Vec<&str> = rows[..i]
                    .iter()
                    .filter(|r| r.status == CleanupStatus::Deleted)
                    .map(|r| r.email.as_str())
                    .collect();
                let rest: Vec<&str> = rows[i..].iter().map(|r| r.email.as_str()).collect();
                say(&format!("stopped: {EXPIRED_JWT_HINT}"));
                say(&format!(
                    "  deleted ({}): {}",
                    deleted.len(),
                    deleted.join(", ")
                ));
                say(&format!(
                    "  not deleted ({}): {}",
                    rest.len(),
                    rest.join(", ")
                ));
                report(&rows, "stopped", Some(EXPIRED_JWT_HINT))?;
                return Ok(EXIT_FAILED);
            }
            Err(e) => {
                failed += 1;
                say(&format!("✗ {} — {e}", rows[i].email));
                rows[i].status = CleanupStatus::Failed;
                rows[i].error = Some(e.to_string());
            }
        }
    }
    say(&format!(
        "deleted {} of {} personas",
        rows.len() - failed,
        rows.len()
    ));
    report(&rows, "done", None)?;
    Ok(if failed > 0 { EXIT_FAILED } else { EXIT_OK })
}

/// What became of one persona (`status` in `cleanup --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
enum CleanupStatus {
    /// Planned (`--dry-run`, or the run stopped before asking).
    WouldDelete,
    Deleted,
    Failed,
    /// Not sent: the operator said no, or the admin JWT was refused first.
    NotDeleted,
}

/// One persona of `cleanup --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CleanupRow {
    email: String,
    user_id: String,
    in_catalog: bool,
    status: CleanupStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `cleanup --json`: the counts a script checks, how the run ended, then
/// every persona it concerned. Keys are stable (README, "JSON output").
fn print_cleanup_json(
    on_platform: usize,
    dry_run: bool,
    outcome: &str,
    rows: &[CleanupRow],
    stopped: Option<&str>,
) -> anyhow::Result<()> {
    let count = |s| rows.iter().filter(|r| r.status == s).count();
    let v = serde_json::json!({
        "onPlatform": on_platform,
        "dryRun": dry_run,
        "outcome": outcome,
        "planned": rows.len(),
        "deleted": count(CleanupStatus::Deleted),
        "failed": count(CleanupStatus::Failed),
        "notDeleted": count(CleanupStatus::NotDeleted),
        "stopped": stopped,
        "personas": rows,
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
