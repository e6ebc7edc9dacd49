//! The sandbox's command line, shared by its own binary (`mana-sandbox`, for
//! the platform's CI) and the product's `mana-personas sandbox` command, so
//! both take the same flags and print the same banner.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::{DEV_ADMIN_JWT, DEV_SERVICE_KEY, OrgsBearer, Sandbox, SandboxOptions};

/// Secret files are tiny; a larger one is a wrong path (e.g. `/dev/zero`).
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, Args)]
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
    /// apps/api's request budget per window on the admin and internal routes,
    /// like the platform's (200/min); 0 switches it off.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub api_rate_limit: u32,
    /// The budget's window in seconds (the platform: 60).
    #[arg(long, default_value_t = 60, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub api_rate_window: u64,
    /// Enforce mana-mcp's policy gate: at most 30 calls per 60 s per tool per user.
    #[arg(long)]
    pub mcp_policy_gate: bool,
    /// Lifetime of the JWT (`accessToken`) a login hands out: `2s`, `15m`, `1h`.
    #[arg(long, default_value = "15m", value_name = "DURATION", value_parser = parse_duration)]
    pub jwt_ttl: std::time::Duration,
    /// Which bearer the organization list accepts: the session token (mana-auth's
    /// bearer plugin) or only the JWT (a gateway that exchanges it).
    #[arg(long, value_enum, default_value_t = OrgsBearer::Session)]
    pub orgs_bearer: OrgsBearer,
    /// Share (0–1) of the scripted LLM's tool calls sent with one invalid argument.
    #[arg(long, default_value_t = 0.1, value_name = "SHARE", value_parser = share)]
    pub llm_invalid_args_share: f64,
}

/// `500ms`, `2s`, `15m`, `1h`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with ms, s, m or h"))?;
    let ms = match unit {
        "ms" => n,
        "" | "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Ok(std::time::Duration::from_millis(ms))
}

/// A share: a number from 0 to 1.
fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?} is not a share from 0 to 1")),
    }
}

/// Reads a secret file: trimmed, non-empty, bounded.
fn read_secret(path: &Path, flag: &str) -> anyhow::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("{flag}: cannot read {}: {e}", path.display()))?;
    let mut text = String::new();
    f.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| anyhow::anyhow!("{flag}: cannot read {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_SECRET_FILE_BYTES {
        anyhow::bail!(
            "{flag}: {} is larger than {MAX_SECRET_FILE_BYTES} bytes; is it the right file?",
            path.display()
        );
    }
    let t = text.trim();
    if t.is_empty() {
        anyhow::bail!("{flag}: {} is empty", path.display());
    }
    Ok(t.to_string())
}

impl SandboxArgs {
    /// The options these flags describe.
    // The struct update stays: options without a flag keep their defaults.
    #[allow(clippy::needless_update)]
    pub fn options(&self) -> anyhow::Result<SandboxOptions> {
        let secret = |file: &Option<PathBuf>, flag: &str, dev: &str| match file {
            Some(p) => read_secret(p, flag),
            None => Ok(dev.to_string()),
        };
        Ok(SandboxOptions {
            port: self.port,
            db_path: (!self.ephemeral).then(|| self.db.clone()),
            admin_jwt: secret(&self.admin_jwt_file, "--admin-jwt-file", DEV_ADMIN_JWT)?,
            service_key: secret(
                &self.service_key_file,
                "--service-key-file",
                DEV_SERVICE_KEY,
            )?,
            seed: self.seed,
            llm_latency_ms: self.llm_latency_ms,
            api_rate_limit: self.api_rate_limit,
            api_rate_window: std::time::Duration::from_secs(self.api_rate_window),
            mcp_policy_gate: self.mcp_policy_gate,
            jwt_ttl: self.jwt_ttl,
            orgs_bearer: self.orgs_bearer,
            llm_invalid_args_share: self.llm_invalid_args_share,
            ..SandboxOptions::default()
        })
    }
}

/// Serves until Ctrl-C, after printing where and how to point a runner here.
/// `banner` names the program in the first line ("mana-personas sandbox"),
/// which scripts read the URL from.
pub async fn serve(a: &SandboxArgs, banner: &str) -> anyhow::Result<()> {
    let sb = Sandbox::start(a.options()?).await?;
    println!("{banner} listening on {}", sb.url());
    println!(
        "  mana-auth, apps/api, mana-mcp ({}/mcp) and the LLM all answer there.",
        sb.url()
    );
    match sb.state.opts.api_rate_limit {
        0 => println!("  apps/api request budget: off (--api-rate-limit 0)"),
        n => println!(
            "  apps/api request budget: {n} per {} s, like the platform (--api-rate-limit 0 switches it off)",
            sb.state.opts.api_rate_window.as_secs()
        ),
    }
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
    Ok(())
}
