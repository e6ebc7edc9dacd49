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

use super::{EXIT_FAILED, EXIT_OK, GlobalArgs};
use crate::config::{Config, Need};
use crate::daemon::address;
use crate::daemon::http::SERVICE_KEY_HEADER;
use crate::daemon::pause::{self, Switch};
use crate::http::HttpError;

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The daemon's address (default: the configured `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
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
    match pause::write(&file, switch, "mana-personas CLI") {
        Ok(()) => println!("switch set to {word} in {}", file.display()),
        Err(e) => {
            eprintln!(
                "cannot write {}: {e}; asking {which} instead",
                file.display()
            );
            control(&http, &base, &cfg, switch).await?;
        }
    }
    // Did the daemon take it? It reads the switch every second.
    for _ in 0..30 {
        match daemon_paused(&http, &base).await {
            Some(paused) if paused == want => {
                println!("{which} is {word}");
                return Ok(EXIT_OK);
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            None => {
                match (&a.listen, &recorded) {
                    (None, None) => println!(
                        "no daemon has recorded an address in {} and none answers at {}; \
                         the switch applies to the daemon of this state directory when it starts",
                        cfg.state_dir.display(),
                        cfg.listen
                    ),
                    _ => println!(
                        "{which} does not answer; the switch in {} applies when the daemon of \
                         this state directory runs again",
                        cfg.state_dir.display()
                    ),
                }
                return Ok(EXIT_OK);
            }
        }
    }
    eprintln!(
        "{which} still reports paused = {}: does it use the state directory {}?",
        !want,
        cfg.state_dir.display()
    );
    Ok(EXIT_FAILED)
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
    let resp = http
        .post(&url)
        .header(SERVICE_KEY_HEADER, key.expose_secret())
        .send()
        .await
        .map_err(|e| HttpError::from_reqwest("POST", &url, &e))?;
    if !resp.status().is_success() {
        return Err(crate::http::status_error("POST", &url, resp).await.into());
    }
    Ok(())
}
