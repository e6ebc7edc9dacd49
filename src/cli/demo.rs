//! `demo`: the whole pipeline on one machine — start the sandbox in-process,
//! seed the catalog, run one tick of every persona, show what happened and
//! where the database is.

use std::path::PathBuf;

use clap::Args;
use secrecy::ExposeSecret;

use super::GlobalArgs;
use super::output::table;
use crate::catalog::{self, Catalog};
use crate::platform::admin::UpsertPersona;
use crate::runner::Runner;
use crate::runner::tick::TickOptions;
use mana_sandbox::{DEV_ADMIN_JWT, DEV_SERVICE_KEY, Sandbox, SandboxOptions};

/// Our catalog, compiled in, so `demo` works from any directory.
const BUILTIN_CATALOG: &str = include_str!("../../catalog.json");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Catalog to seed (default: ./catalog.json, else the built-in one).
    #[arg(long, value_name = "PATH")]
    pub catalog: Option<PathBuf>,
    /// Directory for the sandbox database and the runner's state, kept after
    /// the run (default: a new temp dir, removed at the end unless --keep).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep the default temp dir (sandbox database, runner state) after the run.
    #[arg(long)]
    pub keep: bool,
    /// Print only the tick's JSON summary on stdout (the rest goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Personas in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u16,
    /// Drive the personas through the OpenAI-compatible provider instead of Anthropic.
    #[arg(long)]
    pub openai: bool,
    /// Seed of the scripted LLM.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

fn load_catalog(path: &Option<PathBuf>) -> anyhow::Result<(Catalog, String)> {
    let local = PathBuf::from("catalog.json");
    match path {
        Some(p) => Ok((super::catalog::load_for(p)?, p.display().to_string())),
        None if local.is_file() => Ok((super::catalog::load_for(&local)?, "catalog.json".into())),
        None => Ok((
            catalog::parse(
                BUILTIN_CATALOG,
                std::path::Path::new("<built-in catalog.json>"),
            )?,
            "built-in catalog".into(),
        )),
    }
}

/// A line for the operator: stdout, or stderr when stdout carries `--json`.
macro_rules! say {
    ($json:expr, $($t:tt)*) => {
        if $json { eprintln!($($t)*) } else { println!($($t)*) }
    };
}

pub async fn run(g: &GlobalArgs, a: DemoArgs) -> anyhow::Result<u8> {
    let (catalog, source) = load_catalog(&a.catalog)?;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("mana-personas-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let db_path = dir.join("sandbox.db");
    let sb = Sandbox::start(SandboxOptions {
        db_path: Some(db_path.clone()),
        seed: a.seed,
        ..SandboxOptions::default()
    })
    .await?;
    let url = sb.url();
    say!(
        a.json,
        "sandbox: {url} (platform + MCP + scripted LLM on loopback)"
    );

    let cfg = g.load_config(|ov| {
        for key in ["auth_url", "api_url", "mcp_url", "anthropic_base_url"] {
            ov.set(key, Some(&url), "demo");
        }
        ov.set("openai_base_url", Some(format!("{url}/v1")), "demo");
        ov.set(
            "llm_provider",
            Some(if a.openai { "openai" } else { "anthropic" }),
            "demo",
        );
        ov.set("anthropic_api_key", Some("sandbox-llm-key"), "demo");
        ov.set("openai_api_key", Some("sandbox-llm-key"), "demo");
        ov.set("service_key", Some(DEV_SERVICE_KEY), "demo");
        ov.set("admin_jwt", Some(DEV_ADMIN_JWT), "demo");
        ov.set("production", Some("false"), "demo");
        ov.set(
            "admin_prefix",
            Some(crate::platform::admin::DEFAULT_PREFIX),
            "demo",
        );
        ov.set(
            "internal_prefix",
            Some(crate::platform::internal::DEFAULT_PREFIX),
            "demo",
        );
        ov.set("admin_on_auth", Some("false"), "demo");
        ov.set(
            "state_dir",
            Some(dir.join("state").display().to_string()),
            "demo",
        );
    })?;

    // Seed through the real admin endpoint.
    let admin = crate::runner::clients::admin(&cfg, None)?;
    for p in &catalog.personas {
        let pw = crate::password::derive(&cfg.seed_secret, &p.email, false)?;
        admin
            .upsert(
                &UpsertPersona {
                    email: p.email.clone(),
                    name: Some(p.name.clone()),
                    password: pw.expose_secret().to_string(),
                    archetype: p.archetype.clone(),
                    system_prompt: p.system_prompt.clone(),
                    module_mix: p.module_mix.clone(),
                    tick_cadence: Some(p.tick_cadence.as_str().to_string()),
                },
                crate::http::log_retry,
            )
            .await?;
    }
    say!(
        a.json,
        "seeded {} personas from {source}\n",
        catalog.personas.len()
    );

    let runner = Runner::from_config(&cfg)?;
    let opts = TickOptions {
        concurrency: Some(a.concurrency as usize),
        ..TickOptions::default()
    };
    let summary =
        super::tick::once(&runner, &opts, a.json, &crate::shutdown::Shutdown::new()).await?;

    let rows = summary
        .reports
        .iter()
        .map(|r| {
            vec![
                r.email.clone(),
                format!("{}/{}", r.actions - r.action_errors, r.action_errors),
                r.modules.join(", "),
                r.ratings.to_string(),
                r.tokens.total().to_string(),
                format!("{:.1} s", r.duration_ms as f64 / 1000.0),
            ]
        })
        .collect();
    say!(
        a.json,
        "\n{}",
        table(
            &[
                "persona",
                "actions ok/error",
                "modules",
                "ratings",
                "tokens",
                "time"
            ],
            rows
        )
    );
    // This run's rows only: a rerun with the same --dir finds the earlier
    // runs' rows in the same database.
    let ticks = summary
        .reports
        .iter()
        .map(|r| format!("'{}'", r.tick_id.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",");
    let count = |table: &str| {
        sb.db().count(&format!(
            "SELECT COUNT(*) FROM {table} WHERE tick_id IN ({ticks})"
        ))
    };
    let (actions, feedback) = (count("persona_actions"), count("persona_feedback"));
    if summary.ran == 0 {
        say!(
            a.json,
            "\nno persona was due in this run: they already ran in this --dir (daily cadence); \
             a new --dir starts afresh"
        );
    }
    say!(
        a.json,
        "\nthis run stored {actions} action rows and {feedback} feedback rows in the sandbox"
    );
    sb.shutdown().await;
    drop(runner);
    let kept = a.dir.is_some() || a.keep;
    if kept {
        say!(
            a.json,
            "  sqlite3 {} 'select tool_name, result, error_message from persona_actions'",
            db_path.display()
        );
        say!(
            a.json,
            "  runner state (outbox, run memory, ledger): {}",
            dir.join("state").display()
        );
        say!(
            a.json,
            "  kept in {} (remove with: rm -rf {})",
            dir.display(),
            dir.display()
        );
    } else {
        std::fs::remove_dir_all(&dir)?;
        say!(
            a.json,
            "  removed {} (--keep or --dir keeps it)",
            dir.display()
        );
    }
    Ok(super::tick::exit_code(&summary))
}
