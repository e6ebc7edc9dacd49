//! Start-up time of short commands, measured by hyperfine (Debian package
//! `hyperfine`): `--shell=none` so no shell start-up is counted, 3 warm-up
//! runs, then `RUNS` timed ones; we keep its median, mean and spread.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

/// Timed runs per command (the requirement says at least 20).
pub const RUNS: u32 = 40;

/// Runs hyperfine on `commands` (`(label, argv)`) in `dir`; `None` when
/// hyperfine is not installed.
pub fn measure(dir: &Path, bin: &Path, commands: &[(&str, Vec<String>)]) -> anyhow::Result<Value> {
    if Command::new("hyperfine").arg("--version").output().is_err() {
        anyhow::bail!("hyperfine is not installed (apt-get install -y hyperfine)");
    }
    let export = dir.join("hyperfine.json");
    let mut c = Command::new("hyperfine");
    c.current_dir(dir)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .args(["--shell=none", "--warmup", "3", "--runs", &RUNS.to_string()])
        .args(["--style", "basic", "--export-json"])
        .arg(&export);
    for (label, argv) in commands {
        let line = std::iter::once(bin.display().to_string())
            .chain(argv.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        c.args(["--command-name", label, &line]);
    }
    let out = c.output()?;
    anyhow::ensure!(
        out.status.success(),
        "hyperfine failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&export)?)?;
    let ms = |x: &Value| x.as_f64().unwrap_or(f64::NAN) * 1000.0;
    let results: Vec<Value> = v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            json!({
                "command": r["command"], "runs": r["times"].as_array().map_or(0, Vec::len),
                "medianMs": ms(&r["median"]), "meanMs": ms(&r["mean"]), "stddevMs": ms(&r["stddev"]),
                "minMs": ms(&r["min"]), "maxMs": ms(&r["max"]),
                "userMs": ms(&r["user"]), "systemMs": ms(&r["system"]),
            })
        })
        .collect();
    Ok(
        json!({ "tool": String::from_utf8_lossy(&Command::new("hyperfine").arg("--version").output()?.stdout).trim(), "results": results }),
    )
}
