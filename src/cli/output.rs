//! How commands talk to the operator: a progress bar on a terminal, one line per
//! item either way, and nothing on stdout but the answer when `--json` is set.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// `-q/--quiet`: no progress bar and no per-item lines; the answer (a
/// summary, a table, JSON) and errors still print. Set once at start.
static QUIET: AtomicBool = AtomicBool::new(false);

pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether terminal output may use colour: a terminal, and `NO_COLOR` unset
/// or empty (https://no-color.org).
pub fn color_allowed(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Per-item lines plus an optional progress bar.
pub struct Reporter {
    bar: Option<ProgressBar>,
    /// Lines go to stderr when stdout is reserved for JSON.
    lines_to_stderr: bool,
}

impl Reporter {
    /// A bar only when stderr is a terminal and there is more than one item.
    pub fn new(total: usize, lines_to_stderr: bool) -> Reporter {
        let bar = (std::io::stderr().is_terminal() && total > 1 && !quiet()).then(|| {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {elapsed} {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Reporter {
            bar,
            lines_to_stderr,
        }
    }

    /// Prints a line above the bar.
    pub fn line(&self, s: &str) {
        match (&self.bar, self.lines_to_stderr) {
            (Some(b), _) => b.suspend(|| self.print(s)),
            (None, _) => self.print(s),
        }
    }

    fn print(&self, s: &str) {
        if quiet() {
            return;
        }
        if self.lines_to_stderr {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }

    /// A printer of notices (the platform's budget waits) for code that
    /// outlives this borrow: always stderr, above the bar when there is one.
    pub fn notices(&self) -> impl Fn(&str) + Send + Sync + 'static {
        let bar = self.bar.clone();
        move |s: &str| match &bar {
            Some(b) => b.suspend(|| eprintln!("{s}")),
            None => eprintln!("{s}"),
        }
    }

    pub fn inc(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Whether stdin is a terminal (for confirmation prompts).
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// A compact table for terminals and logs.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}
