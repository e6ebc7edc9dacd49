//! The command line: one small module per command, each a short function that
//! loads what it needs, calls the library, and prints.

pub mod admin;
pub mod catalog;
pub mod completions;
pub mod config;
pub mod conformance;
pub mod daemon;
#[cfg(feature = "sandbox")]
pub mod demo;
pub mod doctor;
pub mod logging;
pub mod login;
pub mod outbox;
pub mod output;
pub mod password;
pub mod pause;
pub mod report;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod seed;
pub mod tick;
pub mod trace;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, Overrides};

#[derive(Debug, Parser)]
#[command(
    name = "mana-personas",
    version,
    about = "Keeps the Mana platform exercised by LLM-played personas",
    long_about = "Keeps the Mana platform exercised by LLM-played personas: seeds the persona \
catalog, runs persona ticks through the product's MCP tools, and ships a loopback sandbox \
of the platform and the LLM.\n\nSecrets come from the environment (MANA_SERVICE_KEY, \
MANA_ADMIN_JWT, PERSONA_SEED_SECRET, ANTHROPIC_API_KEY, …), from *_FILE variables, or \
from the config file; run `mana-personas config` to see every setting and its source."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Options every command takes, shown under their own heading in `--help`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Configuration file (default: ./mana-personas.toml, then
    /// $XDG_CONFIG_HOME/mana-personas/config.toml, then /etc/mana-personas/config.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Production mode: refuse to start without real secrets.
    #[arg(long, global = true)]
    pub production: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// More logs (-v info, -vv debug). MANA_PERSONAS_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only the answer and errors: no progress bar, no per-item lines, logs
    /// at error level.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// State directory (outbox, run memory, ledger).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[arg(skip)]
    pub long_running: bool,
}

impl GlobalArgs {
    pub fn default_log_level(&self) -> &'static str {
        if self.long_running { "info" } else { "warn" }
    }

    /// Overrides common to every command.
    pub fn overrides(&self) -> Overrides {
        let mut ov = Overrides {
            config_path: self.config.clone(),
            flags: Vec::new(),
        };
        if self.production {
            ov.set("production", Some("true"), "--production");
        }
        ov.set(
            "state_dir",
            self.state_dir.as_ref().map(|p| p.display().to_string()),
            "--state-dir",
        );
        ov
    }

    pub fn load_config(&self, extra: impl FnOnce(&mut Overrides)) -> anyhow::Result<Config> {
        let mut ov = self.overrides();
        extra(&mut ov);
        Ok(Config::load(&ov)?)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a deployment step by step: configuration, sign-in, MCP, keys, budget, LLM.
    Doctor(doctor::DoctorArgs),
    /// Print the derived password of each EMAIL, one per line.
    Password(password::PasswordArgs),
    /// Check or list a persona catalog.
    #[command(subcommand)]
    Catalog(catalog::CatalogCmd),
    /// Create or update every catalog persona on the platform (idempotent).
    Seed(seed::SeedArgs),
    /// List the personas the platform has.
    List(admin::ListArgs),
    /// Show one persona (by user id or email) with its recent actions and ratings.
    Show(admin::ShowArgs),
    /// Delete personas from the platform (asks first).
    Cleanup(admin::CleanupArgs),
    /// Log in as a persona and print its user id and personal space.
    Login(login::LoginArgs),
    /// Print the effective configuration and where each value came from.
    Config(config::ConfigArgs),
    /// Serve the loopback stand-in of the platform and the LLM.
    #[cfg(feature = "sandbox")]
    Sandbox(sandbox::SandboxArgs),
    /// Run due personas through the product: `--once`, or on the interval.
    Tick(tick::TickArgs),
    /// The whole pipeline on the embedded sandbox: seed, one tick, a table.
    #[cfg(feature = "sandbox")]
    Demo(demo::DemoArgs),
    /// Run as a service: ticks on the interval, /health, /metrics, systemd.
    Daemon(daemon::DaemonArgs),
    /// Pause the daemon: no new tick starts (the state directory's switch).
    Pause(pause::PauseArgs),
    /// Resume a paused daemon (also lifts RUNNER_PAUSED).
    Resume(pause::PauseArgs),
    /// What did the personas think? Ratings, trends, module mix, health and
    /// cost from the ledgers.
    Report(report::ReportArgs),
    /// One persona tick as a readable story, from the ledger.
    Trace(trace::TraceArgs),
    /// Batches waiting in the outbox or refused for good (dead): list,
    /// retry, drop.
    #[command(subcommand)]
    Outbox(outbox::OutboxCmd),
    /// Check a deployment (or the sandbox) against the platform contract.
    Conformance(conformance::ConformanceArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff) to stdout.
    Man,
}

impl Command {
    /// Whether stdout is reserved for JSON (`--json`): then a fatal error is
    /// a JSON object on stdout too, so a script always gets JSON.
    ///
    /// Every command that reports a result has `--json`. Not here: the
    /// long-running servers (`daemon`, `sandbox`: their output is logs,
    /// `--log-format json`), `completions` and `man` (their output is the
    /// artefact), and `pause`/`resume` (one line and the exit code).
    pub fn json(&self) -> bool {
        match self {
            Command::Doctor(a) => a.json,
            Command::Password(a) => a.json,
            Command::Catalog(catalog::CatalogCmd::List { json, .. }) => *json,
            Command::Catalog(catalog::CatalogCmd::Check { json, .. }) => *json,
            Command::Seed(a) => a.json,
            Command::Cleanup(a) => a.json,
            Command::List(a) => a.json,
            Command::Show(a) => a.json,
            Command::Login(a) => a.json,
            Command::Config(a) => a.json,
            Command::Tick(a) => a.json,
            Command::Trace(a) => a.json,
            Command::Report(a) => a.format == crate::report::Format::Json && a.out.is_none(),
            Command::Outbox(c) => c.json(),
            Command::Pause(a) | Command::Resume(a) => a.json,
            Command::Conformance(a) => a.json,
            #[cfg(feature = "sandbox")]
            Command::Demo(a) => a.json,
            _ => false,
        }
    }

    /// Long-running commands log at info by default; one-shot commands at warn.
    pub fn is_long_running(&self) -> bool {
        #[cfg(feature = "sandbox")]
        if matches!(self, Command::Sandbox(_)) {
            return true;
        }
        matches!(self, Command::Daemon(_)) || matches!(self, Command::Tick(t) if !t.once)
    }
}

/// Runs the command; `Ok` carries the exit code.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    let g = &cli.global;
    match cli.command {
        Command::Doctor(a) => doctor::run(g, a).await,
        Command::Password(a) => password::run(g, a),
        Command::Catalog(c) => catalog::run(g, c).await,
        Command::Seed(a) => seed::run(g, a).await,
        Command::List(a) => admin::list(g, a).await,
        Command::Show(a) => admin::show(g, a).await,
        Command::Cleanup(a) => admin::cleanup(g, a).await,
        Command::Login(a) => login::run(g, a).await,
        Command::Config(a) => config::run(g, a),
        #[cfg(feature = "sandbox")]
        Command::Sandbox(a) => sandbox::run(g, a).await,
        Command::Tick(a) => tick::run(g, a).await,
        #[cfg(feature = "sandbox")]
        Command::Demo(a) => demo::run(g, a).await,
        Command::Daemon(a) => daemon::run(g, a).await,
        Command::Pause(a) => pause::run(g, a, crate::daemon::pause::Switch::Paused).await,
        Command::Resume(a) => pause::run(g, a, crate::daemon::pause::Switch::Running).await,
        Command::Report(a) => report::run(g, a),
        Command::Trace(a) => trace::run(g, a),
        Command::Outbox(c) => outbox::run(g, c).await,
        Command::Conformance(a) => conformance::run(g, a).await,
        Command::Completions(a) => completions::completions(a),
        Command::Man => completions::man(),
    }
}

// The exit-code table and error rendering live in `crate::exit`, below the
// command line and the daemon alike; these names keep the commands short.
pub use crate::exit::{
    CONFIG as EXIT_CONFIG, FAILED as EXIT_FAILED, OK as EXIT_OK, UsageError,
    code_of as exit_code_of, render as render_error,
};
