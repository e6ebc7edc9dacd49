//! systemd's notify protocol (Type=notify): READY once listening, STATUS after
//! each tick, WATCHDOG from the scheduler loop, STOPPING on shutdown.
//!
//! Why sd-notify: the protocol is a datagram to `$NOTIFY_SOCKET`; the crate
//! does that and nothing else. Without `$NOTIFY_SOCKET` every call is a no-op,
//! so the same binary runs under systemd, in a terminal and in tests.

use std::time::Duration;

use sd_notify::NotifyState;

/// Sends notifications when enabled (the `daemon` command); silent otherwise.
#[derive(Debug, Clone)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    pub fn new(enabled: bool) -> Notifier {
        Notifier { enabled }
    }

    fn send(&self, states: &[NotifyState]) {
        if self.enabled
            && let Err(e) = sd_notify::notify(states)
        {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A one-line summary `systemctl status` shows.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// How often to ping: half of `WatchdogSec`, or never when systemd did
    /// not ask for a watchdog.
    pub fn watchdog_every(&self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        sd_notify::watchdog_enabled().map(|d| d / 2)
    }
}
