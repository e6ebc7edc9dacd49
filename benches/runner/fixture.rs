//! The world a measured run happens in: a sandbox started in this process
//! (platform + MCP + scripted LLM on loopback) whose database holds exactly
//! the personas of the scenario.
//!
//! Why a template: seeding 1024 personas through the admin endpoint takes a
//! while on 2 cores, so it is done once, through the real admin API, into a
//! template database; every scenario then starts a fresh sandbox on its own
//! copy, trimmed to the personas it needs. Fresh copies also mean a fresh
//! `llm_requests` record and a cold prompt cache per scenario.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use mana_personas::catalog;
use mana_personas::platform::admin::{AdminClient, DEFAULT_PREFIX, UpsertPersona};
use mana_sandbox::{DEV_ADMIN_JWT, Sandbox, SandboxOptions};
use secrecy::{ExposeSecret, SecretString};

/// The directive every template persona carries: a uniform day of four tool
/// calls (5 main turns + 1 rating turn). Uniform days are legitimate for
/// measuring the runner: they take the variance of the model out of the
/// number, not the work.
pub const UNIFORM: &str = "[sandbox:tools=4]";

/// Our catalog: its prompts and module mixes make the template personas look
/// like the real ones (German, ~350 characters, 3–5 modules).
const CATALOG: &str = include_str!("../../catalog.json");

/// Seeds `n` personas through the admin endpoint of a sandbox writing to
/// `dir/template.db`, then checkpoints and stops it. Returns the file.
pub async fn template(dir: &Path, n: usize) -> anyhow::Result<PathBuf> {
    let path = dir.join("template.db");
    let sb = Sandbox::start(SandboxOptions {
        db_path: Some(path.clone()),
        // Seeding 1024 personas is not what is measured: no request budget.
        api_rate_limit: 0,
        ..SandboxOptions::default()
    })
    .await?;
    let cat = catalog::parse(CATALOG, Path::new("catalog.json"))?;
    // The client side of the budget off too: the process-wide pacer would
    // otherwise hold the seeding to 200 a minute (10 min for 2048).
    mana_personas::platform::budget::Budget::for_url(&sb.url()).configure(0);
    let admin = AdminClient::new(
        reqwest::Client::new(),
        &sb.url(),
        DEFAULT_PREFIX,
        SecretString::from(DEV_ADMIN_JWT),
        mana_personas::http::RetryPolicy::default(),
    );
    let secret = SecretString::from(mana_personas::password::DEV_FALLBACK_SECRET);
    let bodies: Vec<UpsertPersona> = (0..n)
        .map(|i| {
            let model = &cat.personas[i % cat.personas.len()];
            let email = email(i);
            let password = mana_personas::password::derive(&secret, &email, false)
                .expect("the dev secret derives");
            UpsertPersona {
                email,
                name: Some(format!("Bench {i:04}")),
                password: password.expose_secret().to_string(),
                archetype: model.archetype.clone(),
                system_prompt: format!(
                    "{} Heute heißt du Bench {i:04}. {UNIFORM}",
                    model.system_prompt
                ),
                module_mix: model.module_mix.clone(),
                tick_cadence: Some("daily".to_string()),
            }
        })
        .collect();
    let results: Vec<_> = futures::stream::iter(bodies.iter())
        .map(|b| admin.upsert(b, |_| {}))
        .buffer_unordered(8)
        .collect()
        .await;
    for r in results {
        r?;
    }
    sb.db()
        .call(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);"))?;
    sb.shutdown().await;
    Ok(path)
}

/// How many personas the catalog has: template personas `k·n .. (k+1)·n`
/// are each of its personas once (the template cycles through it).
pub fn catalog_size() -> anyhow::Result<usize> {
    Ok(catalog::parse(CATALOG, Path::new("catalog.json"))?
        .personas
        .len())
}

/// The email of template persona `i`; sorting by email is sorting by `i`.
pub fn email(i: usize) -> String {
    format!("bench.p{i:04}@mana.test")
}

/// What the scenario's sandbox looks like.
pub struct World {
    /// Personas kept from the template: the first ones by email after `skip`.
    pub personas: usize,
    /// Template personas passed over before the kept ones.
    pub skip: usize,
    /// Added to every LLM response.
    pub llm_latency_ms: u64,
    /// Replaces [`UNIFORM`] in every prompt (`""`: the scripted model's own,
    /// varied days: 3–8 calls, some in parallel, some invalid).
    pub directive: &'static str,
}

/// A running sandbox on a private copy of the template.
pub struct Fixture {
    pub sb: Sandbox,
}

/// Copies the template into `dir`, keeps `w.personas` of them, applies the
/// directive, and starts a sandbox on the copy.
pub async fn start(template: &Path, dir: &Path, w: &World) -> anyhow::Result<Fixture> {
    std::fs::create_dir_all(dir)?;
    let db_path = dir.join("sandbox.db");
    std::fs::copy(template, &db_path)?;
    {
        let c = rusqlite::Connection::open(&db_path)?;
        c.execute_batch("PRAGMA foreign_keys = ON;")?;
        let keep = w.personas as i64;
        c.execute(
            "DELETE FROM users WHERE id NOT IN
                (SELECT user_id FROM personas ORDER BY email LIMIT ?1 OFFSET ?2)",
            [keep, w.skip as i64],
        )?;
        c.execute(
            "UPDATE personas SET system_prompt = replace(system_prompt, ?1, ?2)",
            [UNIFORM, w.directive],
        )?;
        let n: i64 = c.query_row("SELECT COUNT(*) FROM personas", [], |r| r.get(0))?;
        anyhow::ensure!(
            n == keep,
            "template has {n} personas, scenario needs {keep}"
        );
    }
    let sb = Sandbox::start(SandboxOptions {
        db_path: Some(db_path.clone()),
        llm_latency_ms: w.llm_latency_ms,
        // These scenarios measure the runner, not the platform's 200/min
        // budget (the paced run in BENCHMARKS.md measures that): off.
        api_rate_limit: 0,
        ..SandboxOptions::default()
    })
    .await?;
    Ok(Fixture { sb })
}
