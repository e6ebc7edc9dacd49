//! Logging setup: human format on a terminal, JSON for journald/Loki.
//! Logs go to stderr so stdout stays the command's output. Retry lines
//! ([`crate::http::RETRY_TARGET`]) are at info even where the rest is at
//! warn: a command waiting on a dead endpoint says so. `-q` silences them.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use super::{GlobalArgs, LogFormat};

pub fn init(g: &GlobalArgs) {
    let default = if g.quiet {
        "error"
    } else if g.verbose > 1 {
        "debug"
    } else if g.verbose == 1 {
        "info"
    } else {
        g.default_log_level()
    };
    let retries = if g.quiet {
        String::new()
    } else {
        format!(",{}=info", crate::http::RETRY_TARGET)
    };
    let filter = EnvFilter::try_from_env("MANA_PERSONAS_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{default}{retries},hyper=warn,reqwest=warn,rmcp=warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match g.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder
            .with_ansi(super::output::color_allowed(
                std::io::stderr().is_terminal(),
            ))
            .with_target(false)
            .compact()
            .try_init(),
    };
}
