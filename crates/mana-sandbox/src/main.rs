//! `mana-sandbox`: the platform twin on its own, for the platform's CI and for
//! anyone who wants the stand-in without the runner. Same flags and banner as
//! `mana-personas sandbox`.

use std::process::ExitCode;

use clap::Parser;
use mana_sandbox::cli::{SandboxArgs, serve};

#[derive(Parser)]
#[command(
    name = "mana-sandbox",
    version,
    about = "A loopback twin of the Mana platform (mana-auth, apps/api personas, mana-mcp) and of the LLM APIs"
)]
struct Cli {
    #[command(flatten)]
    args: SandboxArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match serve(&cli.args, "mana-sandbox").await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
