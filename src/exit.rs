//! Exit codes and the one-line rendering of an error: what every command and
//! the daemon report to the shell, defined once, below both (the daemon must
//! not depend on the command line).
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success: everything attempted succeeded |
//! | 1 | the operation failed: a persona, a request, a refusal, a missing persona |
//! | 2 | configuration or usage error: nothing was attempted |
//! | 3 | the work ran but rows are still undelivered: pending in the outbox (the next run posts them), dead in the outbox (`outbox retry`/`drop`), or held in memory because the outbox could not be written |
//! | 4 | another process holds the state directory |

/// Success.
pub const OK: u8 = 0;
/// The operation failed: a persona, a request, a refusal.
pub const FAILED: u8 = 1;
/// Configuration or usage error: nothing was attempted.
pub const CONFIG: u8 = 2;
/// The tick ran, but some batches did not reach the platform (pending or
/// dead in the outbox, or held in memory on a full disk); a cron job or CI
/// must see that this was not a clean run.
pub const UNDELIVERED: u8 = 3;
/// Another process holds the state directory's lock.
pub const LOCKED: u8 = 4;

/// A usage error found by a command (not by clap): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Configuration and usage problems exit 2; a state directory held by
/// another process 4; everything else 1.
pub fn code_of(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| {
        matches!(
            c.downcast_ref::<crate::state::lock::LockError>(),
            Some(crate::state::lock::LockError::Held { .. })
        )
    }) {
        return LOCKED;
    }
    let config = e.chain().any(|c| {
        c.downcast_ref::<crate::config::ConfigError>().is_some()
            || c.downcast_ref::<UsageError>().is_some()
            || c.downcast_ref::<crate::catalog::CatalogError>().is_some()
            || c.downcast_ref::<crate::password::PasswordError>().is_some()
            || matches!(
                c.downcast_ref::<crate::platform::auth::SignInError>(),
                Some(crate::platform::auth::SignInError::Password(_))
            )
            || c.downcast_ref::<crate::runner::prompts::PromptError>()
                .is_some()
    });
    if config { CONFIG } else { FAILED }
}

/// The error and its causes on one line, each cause once (wrappers that repeat
/// their source's text are skipped).
pub fn render(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}
