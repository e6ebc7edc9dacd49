//! Shared setup of the tick-engine tests: a sandbox on loopback, personas
//! seeded through the real admin endpoint (the recipe of `demo`), a `Config`
//! that points every URL at the sandbox, and a `Runner` built from it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mana_personas::catalog;
use mana_personas::config::{Config, Overrides};
use mana_personas::platform::admin::{AdminClient, UpsertPersona};
use mana_personas::runner::Runner;
use mana_personas::runner::tick::{self, TickOptions, TickSummary};
use mana_personas::shutdown::Shutdown;
use mana_sandbox::{DEV_ADMIN_JWT, DEV_SERVICE_KEY, Sandbox, SandboxOptions};
use secrecy::{ExposeSecret, SecretString};

/// Our catalog, as `demo` seeds it.
pub const CATALOG: &str = include_str!("../../catalog.json");

/// One persona to seed.
#[derive(Clone)]
pub struct Seed {
    pub email: String,
    pub system_prompt: String,
    pub module_mix: BTreeMap<String, f64>,
    pub cadence: String,
}

impl Seed {
    /// A daily persona with a todo/notes mix and `directive` in its prompt.
    pub fn daily(email: &str, directive: &str) -> Seed {
        Seed {
            email: email.to_string(),
            system_prompt: format!("You are a test persona who keeps a tidy day. {directive}"),
            module_mix: [("todo".to_string(), 0.6), ("notes".to_string(), 0.4)]
                .into_iter()
                .collect(),
            cadence: "daily".to_string(),
        }
    }
}

/// Every persona of catalog.json.
pub fn catalog_seeds() -> Vec<Seed> {
    let c = catalog::parse(CATALOG, Path::new("catalog.json")).expect("catalog.json parses");
    c.personas
        .iter()
        .map(|p| Seed {
            email: p.email.clone(),
            system_prompt: p.system_prompt.clone(),
            module_mix: p.module_mix.clone(),
            cadence: p.tick_cadence.as_str().to_string(),
        })
        .collect()
}

pub async fn sandbox(db_path: Option<PathBuf>) -> Sandbox {
    Sandbox::start(SandboxOptions {
        db_path,
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts")
}

/// A config pointing every URL at `url`, state in `state_dir`; `extra` are
/// further `(key, value)` settings.
pub fn config(url: &str, state_dir: &Path, extra: &[(&'static str, &str)]) -> Config {
    let mut flags: Vec<(&'static str, String, &'static str)> = vec![
        ("auth_url", url.to_string(), "test"),
        ("api_url", url.to_string(), "test"),
        ("mcp_url", url.to_string(), "test"),
        ("anthropic_base_url", url.to_string(), "test"),
        ("openai_base_url", format!("{url}/v1"), "test"),
        ("llm_provider", "anthropic".to_string(), "test"),
        ("anthropic_api_key", "k".to_string(), "test"),
        ("openai_api_key", "k".to_string(), "test"),
        ("service_key", DEV_SERVICE_KEY.to_string(), "test"),
        ("admin_jwt", DEV_ADMIN_JWT.to_string(), "test"),
        ("production", "false".to_string(), "test"),
        ("state_dir", state_dir.display().to_string(), "test"),
    ];
    for (k, v) in extra {
        flags.push((k, v.to_string(), "test"));
    }
    Config::load_with(
        &Overrides {
            config_path: None,
            flags,
        },
        &|_| None,
    )
    .expect("test config loads")
}

/// Seeds `seeds` through the admin endpoint; returns (email → userId).
pub async fn seed(cfg: &Config, seeds: &[Seed]) -> BTreeMap<String, String> {
    let admin = AdminClient::new(
        reqwest::Client::new(),
        &cfg.api_url,
        &cfg.admin_prefix,
        SecretString::from(DEV_ADMIN_JWT),
        mana_personas::http::RetryPolicy::default(),
    );
    let mut ids = BTreeMap::new();
    for s in seeds {
        let pw = mana_personas::password::derive(&cfg.seed_secret, &s.email, false)
            .expect("password derives");
        let name = s.email.split('@').next().unwrap_or("x").to_string();
        let r = admin
            .upsert(
                &UpsertPersona {
                    email: s.email.clone(),
                    name: Some(name),
                    password: pw.expose_secret().to_string(),
                    archetype: "test".to_string(),
                    system_prompt: s.system_prompt.clone(),
                    module_mix: s.module_mix.clone(),
                    tick_cadence: Some(s.cadence.clone()),
                },
                |_| {},
            )
            .await
            .expect("seed upsert");
        ids.insert(s.email.clone(), r.user_id);
    }
    ids
}

pub fn runner(cfg: &Config) -> Runner {
    Runner::from_config(cfg).expect("runner builds")
}

/// `(tool_name, input_hash, result, error_message)` of one persona's rows.
pub type ActionDbRow = (String, Option<String>, String, Option<String>, String);

/// Action rows of a persona: (tool, hash, result, error, tick).
pub fn actions_of(sb: &Sandbox, user_id: &str) -> Vec<ActionDbRow> {
    sb.db()
        .call(|c| {
            let mut st = c.prepare(
                "SELECT tool_name, input_hash, result, error_message, tick_id FROM persona_actions WHERE persona_id = ?1 ORDER BY id",
            )?;
            st
                .query_map([user_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("query actions")
}

/// Feedback rows of a persona: (tick, module, rating, notes).
pub fn feedback_of(sb: &Sandbox, user_id: &str) -> Vec<(String, String, i64, Option<String>)> {
    sb.db()
        .call(|c| {
            let mut st = c.prepare(
                "SELECT tick_id, module, rating, notes FROM persona_feedback WHERE persona_id = ?1 ORDER BY module",
            )?;
            st
                .query_map([user_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("query feedback")
}

/// The binary with a clean environment pointing every URL at `url` (the
/// sandbox's LLM too), logs at warn, state in `home/state`, stdin closed,
/// then `args`.
pub fn binary(url: &str, home: &Path, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_mana-personas"));
    c.env_clear()
        .current_dir(home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("xdg-state"))
        .env("MANA_AUTH_URL", url)
        .env("MANA_API_URL", url)
        .env("MANA_MCP_URL", url)
        .env("ANTHROPIC_BASE_URL", url)
        .env("ANTHROPIC_API_KEY", "k")
        .env("LLM_PROVIDER", "anthropic")
        .env("MANA_SERVICE_KEY", DEV_SERVICE_KEY)
        .env("MANA_PERSONAS_LOG", "warn")
        .args(["--state-dir", &home.join("state").display().to_string()])
        .args(args)
        .stdin(std::process::Stdio::null());
    c
}

/// One whole tick of `r` in process, with the default options.
pub async fn run_once(r: &Runner) -> TickSummary {
    try_run_once(r).await.expect("the tick runs")
}

/// [`run_once`] for a test that expects the tick itself to fail.
pub async fn try_run_once(r: &Runner) -> Result<TickSummary, tick::TickError> {
    tick::run_once(
        r,
        &TickOptions::default(),
        &Shutdown::new(),
        &|_| {},
        &|_| {},
    )
    .await
}

/// Runs the command to the end off the async runtime (the sandbox keeps serving).
pub async fn output(mut c: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || c.output().expect("the binary runs"))
        .await
        .unwrap()
}

/// stdout as one JSON value (panics with both streams if it is not).
pub fn json_stdout(o: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is one JSON object ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// Requests the sandbox has seen on endpoints whose name contains `needle`.
pub fn requests_seen(sb: &Sandbox, needle: &str) -> u64 {
    sb.faults()
        .stats()
        .iter()
        .filter(|s| s.endpoint.contains(needle))
        .map(|s| s.requests)
        .sum()
}
