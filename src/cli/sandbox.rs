//! `sandbox`: serve the loopback stand-in (the `mana-sandbox` crate) until
//! Ctrl-C, and tell the operator how to point the runner at it. The flags and
//! the banner are the sandbox crate's own, shared with its `mana-sandbox`
//! binary.

use super::{EXIT_OK, GlobalArgs, UsageError};

pub use mana_sandbox::cli::SandboxArgs;

pub async fn run(_g: &GlobalArgs, a: SandboxArgs) -> anyhow::Result<u8> {
    // A bad secret file is a usage error (exit 2), like every other bad flag.
    a.options().map_err(|e| UsageError(format!("{e:#}")))?;
    mana_sandbox::cli::serve(&a, "mana-personas sandbox").await?;
    Ok(EXIT_OK)
}
