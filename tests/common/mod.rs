//! Helpers shared by the integration tests that run the `mana-personas` binary
//! the way an operator would: in an isolated shell (its own temp directory as
//! working directory, HOME and XDG dirs; no inherited environment), against a
//! real sandbox over loopback.
//!
//! Every run is recorded in a transcript, so a test can assert afterwards that
//! no secret ever reached stdout or stderr across everything it ran.
//!
//! Each test binary compiles this module separately and uses a different part
//! of it, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tempfile::TempDir;

/// A seed secret nobody would type by accident, so finding it in output is
/// proof of a leak and not a coincidence.
pub const TEST_SEED_SECRET: &str = "seed-SECRET-7f3c2a91-do-not-print";

/// Our own catalog (14 personas), as shipped with the crate.
pub fn catalog_json() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog.json")
}

/// The emails of a catalog file, in file order (read with serde_json, not with
/// our loader, so a loader bug cannot hide in both sides of an assertion).
pub fn catalog_emails(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read catalog");
    let v: serde_json::Value = serde_json::from_str(&text).expect("catalog is JSON");
    v["personas"]
        .as_array()
        .expect("personas array")
        .iter()
        .map(|p| p["email"].as_str().expect("email").to_string())
        .collect()
}

/// What one run of the binary produced.
#[derive(Debug, Clone)]
pub struct Out {
    /// The exit code (`-1` if killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// stdout and stderr together, for "the operator sees X somewhere".
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Panics with both streams shown unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code {} (wanted {code})\n--- stdout:\n{}\n--- stderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// The lines of stdout that start with `prefix` (after leading spaces).
    pub fn lines_starting(&self, prefix: &str) -> Vec<&str> {
        self.all_lines()
            .filter(|l| l.trim_start().starts_with(prefix))
            .collect()
    }

    fn all_lines(&self) -> impl Iterator<Item = &str> {
        self.stdout.lines().chain(self.stderr.lines())
    }
}

/// An isolated operator shell: the binary sees only the variables set here.
pub struct Shell {
    /// Working directory, HOME, XDG_CONFIG_HOME and XDG_STATE_HOME.
    pub dir: TempDir,
    env: Vec<(String, String)>,
    transcript: Mutex<String>,
}

impl Shell {
    /// A shell with only PATH, HOME and the XDG dirs set (all in a fresh temp
    /// dir, so no operator config file on this machine is picked up).
    pub fn new() -> Shell {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        let env = vec![
            (
                "PATH".to_string(),
                std::env::var("PATH").unwrap_or_default(),
            ),
            ("HOME".to_string(), d.clone()),
            ("XDG_CONFIG_HOME".to_string(), d.clone()),
            ("XDG_STATE_HOME".to_string(), d),
        ];
        Shell {
            dir,
            env,
            transcript: Mutex::new(String::new()),
        }
    }

    /// A shell pointed at a sandbox at `url` (auth, API and MCP on one port).
    pub fn against(url: &str, admin_jwt: &str, service_key: &str, seed_secret: &str) -> Shell {
        let mut sh = Shell::new();
        for k in ["MANA_AUTH_URL", "MANA_API_URL", "MANA_MCP_URL"] {
            sh.set(k, url);
        }
        sh.set("MANA_ADMIN_JWT", admin_jwt);
        sh.set("MANA_SERVICE_KEY", service_key);
        sh.set("PERSONA_SEED_SECRET", seed_secret);
        sh
    }

    /// Sets (or replaces) a variable for every later run.
    pub fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// A path inside the shell's directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The command, ready to run: isolated environment, temp dir as cwd.
    pub fn command(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_mana-personas"));
        cmd.env_clear()
            .current_dir(self.dir.path())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .timeout(std::time::Duration::from_secs(60));
        cmd
    }

    /// Runs `args` on a blocking thread (so an in-process sandbox on the same
    /// runtime keeps serving) and records the output in the transcript.
    /// stdin is a pipe (never a terminal); `tweak` may add stdin or env.
    pub async fn run_with(
        &self,
        args: &[&str],
        tweak: impl FnOnce(&mut assert_cmd::Command),
    ) -> Out {
        let mut cmd = self.command(args);
        tweak(&mut cmd);
        let output = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("join")
            .expect("spawn mana-personas");
        self.record(args, output)
    }

    /// [`Shell::run_with`] without changes.
    pub async fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, |_| {}).await
    }

    /// Runs synchronously (for tests without a runtime).
    pub fn run_blocking(&self, args: &[&str]) -> Out {
        let output = self.command(args).output().expect("spawn mana-personas");
        self.record(args, output)
    }

    fn record(&self, args: &[&str], output: std::process::Output) -> Out {
        let out = Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        let mut t = self.transcript.lock().unwrap();
        t.push_str(&format!(
            "$ mana-personas {}\n{}\n{}\n",
            args.join(" "),
            out.stdout,
            out.stderr
        ));
        out
    }

    /// Everything every run of this shell printed, with the command lines.
    pub fn transcript(&self) -> String {
        self.transcript.lock().unwrap().clone()
    }
}

impl Default for Shell {
    fn default() -> Self {
        Shell::new()
    }
}

/// The first `n` lines of `s` (for failure messages that stay readable).
pub fn cut_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let mut out = lines[..lines.len().min(n)].join("\n");
    if lines.len() > n {
        out.push_str(&format!("\n… ({} more lines)", lines.len() - n));
    }
    out
}
