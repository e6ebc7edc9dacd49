//! `mana-personas`: the binary. Reads as a table of contents; the work is in
//! `mana_personas::cli`, one short function per command.
//!
//! Exit codes (`mana_personas::exit`): 0 success; 1 the operation failed (a
//! persona, a request); 2 configuration or usage error (nothing was
//! attempted); 3 rows still undelivered; 4 another process holds the state
//! directory.

use std::process::ExitCode;

use clap::Parser;
use mana_personas::cli::{self, Cli};

fn main() -> ExitCode {
    restore_sigpipe();
    let mut cli = Cli::parse();
    cli.global.long_running = cli.command.is_long_running();
    cli::logging::init(&cli.global);
    cli::output::set_quiet(cli.global.quiet);
    let runtime = match runtime_for(&cli.command) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(cli::EXIT_FAILED);
        }
    };
    let json = cli.command.json();
    let log_format = cli.global.log_format;
    let code = match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let code = cli::exit_code_of(&e);
            report_fatal(&cli::render_error(&e), code, json, log_format);
            code
        }
    };
    // A state.db call still on the blocking pool (a stop while another
    // process held the lock) may be a tick's rows going into the outbox: it
    // gets one busy timeout to finish; dropping the runtime would wait for
    // it without bound.
    runtime
        .shutdown_timeout(mana_personas::state::BUSY_TIMEOUT + std::time::Duration::from_secs(1));
    ExitCode::from(code)
}

/// A fatal error, where the operator's tools look for it: one JSON object on
/// stdout under `--json` (a script parsing stdout gets JSON either way), a
/// JSON log line on stderr under `--log-format json`, else `error: …`.
fn report_fatal(message: &str, code: u8, json: bool, log_format: cli::LogFormat) {
    if json {
        println!(
            "{}",
            serde_json::json!({"error": message, "exitCode": code})
        );
    }
    match log_format {
        cli::LogFormat::Json => tracing::error!(exit_code = code, "{message}"),
        cli::LogFormat::Human => eprintln!("error: {message}"),
    }
}

/// `tick` and `daemon` run on one thread: its pool is a stream polled inside one task, so
/// worker threads only ran the connections' tasks and the I/O driver, and
/// every response became a cross-thread wake-up (futex, context switch). On
/// one thread a persona-tick costs ~half the CPU (BENCHMARKS.md, overhead),
/// and one core carries far more personas than the platform or the LLM will.
fn runtime_for(command: &cli::Command) -> std::io::Result<tokio::runtime::Runtime> {
    match command {
        cli::Command::Tick(_) | cli::Command::Daemon(_) => {
            tokio::runtime::Builder::new_current_thread()
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build()
}

/// `mana-personas list | head` must end quietly, like any Unix tool, instead of
/// panicking on a closed pipe: restore the default SIGPIPE action Rust ignores.
fn restore_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
