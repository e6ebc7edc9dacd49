//! `sandbox`: serve the loopback stand-in until Ctrl-C, and tell the operator
//! how to point the runner at it.

use std::path::PathBuf;

use clap::Args;

use super::{EXIT_OK, GlobalArgs, UsageError};
use crate::config::read_secret_file;
use crate::sandbox::{DEV_ADMIN_JWT, DEV_SERVICE_KEY, Sandbox, SandboxOptions};

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// SQLite database (kept after exit, for `sqlite3`).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "mana-sandbox.db",
        conflicts_with = "ephemeral"
    )]
    pub db: PathBuf,
    /// Keep everything in memory.
    #[arg(long)]
    pub ephemeral: bool,
    /// File with the admin JWT the sandbox accepts (default: a well-known dev value).
    #[arg(long, value_name = "PATH")]
    pub admin_jwt_file: Option<PathBuf>,
    /// File with the service key the sandbox accepts (default: a well-known dev value).
    #[arg(long, value_name = "PATH")]
    pub service_key_file: Option<PathBuf>,
    /// Seed of the scripted LLM.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Added to every LLM response (benchmarks, overlap tests).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub llm_latency_ms: u64,
}

fn secret_from(file: &Option<PathBuf>, flag: &str, dev: &str) -> anyhow::Result<String> {
    match file {
        Some(p) => Ok(read_secret_file(p).map_err(|m| UsageError(format!("{flag}: {m}")))?),
        None => Ok(dev.to_string()),
    }
}

pub async fn run(_g: &GlobalArgs, a: SandboxArgs) -> anyhow::Result<u8> {
    let opts = SandboxOptions {
        port: a.port,
        db_path: (!a.ephemeral).then(|| a.db.clone()),
        admin_jwt: secret_from(&a.admin_jwt_file, "--admin-jwt-file", DEV_ADMIN_JWT)?,
        service_key: secret_from(&a.service_key_file, "--service-key-file", DEV_SERVICE_KEY)?,
        seed: a.seed,
        llm_latency_ms: a.llm_latency_ms,
    };
    let sb = Sandbox::start(opts).await?;
    println!("mana-personas sandbox listening on {}", sb.url());
    println!(
        "  mana-auth, apps/api, mana-mcp ({}/mcp) and the LLM all answer there.",
        sb.url()
    );
    match &sb.state.opts.db_path {
        Some(p) => println!(
            "  database: {} (sqlite3 {} 'select * from persona_actions')",
            p.display(),
            p.display()
        ),
        None => println!("  database: in memory (--ephemeral)"),
    }
    println!("\n# paste into the shell that runs mana-personas:");
    for l in sb.export_lines() {
        println!("{l}");
    }
    match &a.admin_jwt_file {
        Some(p) => println!("export MANA_ADMIN_JWT_FILE={}", p.display()),
        None => println!("export MANA_ADMIN_JWT={DEV_ADMIN_JWT}"),
    }
    match &a.service_key_file {
        Some(p) => println!("export MANA_SERVICE_KEY_FILE={}", p.display()),
        None => println!("export MANA_SERVICE_KEY={DEV_SERVICE_KEY}"),
    }
    println!("export ANTHROPIC_API_KEY=sandbox-llm-key");
    println!("\nCtrl-C stops the sandbox.");
    tokio::signal::ctrl_c().await?;
    sb.shutdown().await;
    Ok(EXIT_OK)
}
