//! `daemon`: the scheduler loop as a service — HTTP health and metrics,
//! systemd notify and watchdog, pause switch, graceful stop, SIGHUP reload.

use std::path::PathBuf;

use clap::Args;

use super::GlobalArgs;
use crate::daemon::{self, DaemonOptions};
use crate::runner::tick::{Shard, TickOptions};

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Address for /health, /metrics, diag and control (default
    /// MANA_PERSONAS_LISTEN, or 127.0.0.1:$PORT, or 127.0.0.1:3070).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Personas in flight at once (default PERSONA_CONCURRENCY).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: Option<u16>,
    /// Run only personas whose stable hash of userId mod N is K.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Prompt templates directory (layout of personas/).
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    /// On SIGTERM, how long in-flight personas may finish (default
    /// SHUTDOWN_GRACE_MS, 30000).
    #[arg(long, value_name = "MS")]
    pub grace_ms: Option<u64>,
}

pub async fn run(g: &GlobalArgs, a: DaemonArgs) -> anyhow::Result<u8> {
    let reload = super::tick::reloader(g, a.prompts.clone(), a.listen.clone(), a.grace_ms);
    let cfg = reload()?;
    let listen = cfg.listen.clone();
    daemon::run(
        cfg,
        DaemonOptions {
            tick: TickOptions {
                shard: a.shard,
                concurrency: a.concurrency.map(usize::from),
                ..TickOptions::default()
            },
            listen: Some(listen),
            systemd: true,
            reload,
        },
    )
    .await
}
