//! Signals: SIGTERM/SIGINT stop (first: drain, second: abort), SIGHUP reloads.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::scheduler::Command;
use crate::shutdown::Shutdown;

/// Installs the handlers (before READY, so no signal is lost) and forwards
/// them. Fails only if the runtime cannot register a handler.
pub fn spawn(stop: Shutdown, commands: mpsc::Sender<Command>) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration and prompts");
                    let _ = commands.send(Command::Reload).await;
                    continue;
                }
            };
            if stop.is_draining() {
                tracing::warn!(
                    signal = name,
                    "second stop signal: cancelling the personas in flight now"
                );
                stop.abort();
                return;
            }
            tracing::info!(
                signal = name,
                "stopping: no new personas; the ones in flight may finish"
            );
            stop.drain();
        }
    });
    Ok(())
}
