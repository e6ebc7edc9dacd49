//! `pause` / `resume`: flip the daemon's pause switch without a restart.
//!
//! The switch is a file in the state directory, which the daemon reads every
//! second; if this user cannot write it (systemd's DynamicUser owns the state
//! directory), the daemon's loopback control endpoint is used with the
//! service key. Either way the command then asks `/health` whether the daemon
//! took it, and says so.

use std::time::Duration;

use clap::Args;
use secrecy::ExposeSecret;
use serde::Serialize;

use super::{EXIT_FAILED, EXIT_OK, GlobalArgs};
use crate::config::{Config, Need};
use crate::daemon::address;
use crate::daemon::pause::{self, Switch};
use crate::http::HttpError;

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The daemon's address (default: the configured `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Print what happened as one JSON object (the lines go to stderr).
    #[arg(long)]
    pub json: bool,
}

/// What `pause`/`resume` did, for `--json`: the switch, how it was set, and
/// what the daemon said.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Outcome {
    /// `paused` or `running`: what was asked.
    switch: &'static str,
    /// `file` (the state directory's switch) or `control` (the daemon's
    /// loopback endpoint, when the file could not be written).
    set_via: &'static str,
    file: String,
    /// Which daemon was asked, in words, and its address.
    daemon: String,
    url: String,
    /// Whether it answered `/health`, and what it reported.
    daemon_answered: bool,
    daemon_paused: Option<bool>,
    /// The daemon reports the state asked for.
    took: bool,
}

/// The command's lines: stdout normally, stderr under `--json` (where stdout
/// carries only the JSON object).
fn say(json: bool, line: &str) {
    if json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

pub async fn run(g: &GlobalArgs, a: PauseArgs, switch: Switch) -> anyhow::Result<u8> {
    let cfg = g.load_config(|ov| ov.set("listen", a.listen.clone(), "--listen"))?;
    let want = switch == Switch::Paused;
    let word = if want { "paused" } else { "running" };
    let file = pause::path(&cfg.state_dir);
    // Which daemon to ask: --listen if given, else the one that recorded
    // its address in this state directory, else the configured address.
    let recorded = address::read(&cfg.state_dir);
    let (base, which) = match (&a.listen, &recorded) {
        (Some(l), _) => (
            format!("http://{l}"),
            format!("the daemon at {l} (--listen)"),
        ),
        (None, Some(r)) => (
            r.url.clone(),
            format!(
                "the daemon of this state directory (pid {}, {})",
                r.pid, r.url
            ),
        ),
        (None, None) => (
            format!("http://{}", cfg.listen),
            format!("a daemon at the configured address {}", cfg.listen),
        ),
    };
    let http = crate::http::client(Duration::from_secs(2), Duration::from_secs(5));
    let mut out = Outcome {
        switch: word,
        set_via: "file",
        file: file.display().to_string(),
        daemon: which.clone(),
        url: base.clone(),
        daemon_answered: false,
        daemon_paused: None,
        took: false,
    };
    match pause::write(&file, switch, "mana-personas CLI") {
        Ok(()) => say(
            a.json,
            &format!("switch set to {word} in {}", file.display()),
        ),
        Err(e) => {
            eprintln!(
                "cannot write {}: {e}; asking {which} instead",
                file.display()
            );
            control(&http, &base, &cfg, switch).await?;
            out.set_via = "control";
        }
    }
    // Did the daemon take it? It reads the switch every second.
    let mut code = EXIT_FAILED;
    for _ in 0..30 {
        match daemon_paused(&http, &base).await {
            Some(paused) if paused == want => {
                (out.daemon_answered, out.daemon_paused, out.took) = (true, Some(paused), true);
                say(a.json, &format!("{which} is {word}"));
                code = EXIT_OK;
                break;
            }
            Some(paused) => {
                (out.daemon_answered, out.daemon_paused) = (true, Some(paused));
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            None => {
                let line = match (&a.listen, &recorded) {
                    (None, None) => format!(
                        "no daemon has recorded an address in {} and none answers at {}; \
                         the switch applies to the daemon of this state directory when it starts",
                        cfg.state_dir.display(),
                        cfg.listen
                    ),
                    _ => format!(
                        "{which} does not answer; the switch in {} applies when the daemon of \
                         this state directory runs again",
                        cfg.state_dir.display()
                    ),
                };
                say(a.json, &line);
                code = EXIT_OK;
                break;
            }
        }
    }
    if code == EXIT_FAILED {
        eprintln!(
            "{which} still reports paused = {}: does it use the state directory {}?",
            !want,
            cfg.state_dir.display()
        );
    }
    if a.json {
        println!("{}", serde_json::to_string(&out).expect("serialisable"));
    }
    Ok(code)
}

async fn daemon_paused(http: &reqwest::Client, base: &str) -> Option<bool> {
    let v: serde_json::Value = http
        .get(format!("{base}/health"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["paused"].as_bool()
}

async fn control(
    http: &reqwest::Client,
    base: &str,
    cfg: &Config,
    switch: Switch,
) -> anyhow::Result<()> {
    cfg.require(&[Need::ServiceKey])?;
    let Some(key) = cfg.service_key.as_ref() else {
        unreachable!("required above")
    };
    let path = match switch {
        Switch::Paused => "/control/pause",
        Switch::Running => "/control/resume",
    };
    let url = format!("{base}{path}");
    // Sensitive, like every sender of the key (never in a Debug of the request).
    let resp = crate::platform::internal::with_service_key(http.post(&url), key.expose_secret())
        .send()
        .await
        .map_err(|e| HttpError::from_reqwest("POST", &url, &e))?;
    if !resp.status().is_success() {
        return Err(crate::http::status_error("POST", &url, resp).await.into());
    }
    Ok(())
}
