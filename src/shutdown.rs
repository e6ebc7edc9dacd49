//! Shutdown is a type: two phases, so a stop never loses a persona's work.
//!
//! 1. **Drain** (SIGTERM/SIGINT/Ctrl-C): no new tick, no new persona; the ones
//!    in flight go on.
//! 2. **Abort** (the grace period passed, or a second signal): in-flight
//!    personas stop where they are; what they produced goes to the outbox and
//!    is posted by the next tick or start.
//!
//! Cloning shares the state; every clone sees the same phases.

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    drain: CancellationToken,
    abort: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Phase 1: start nothing new.
    pub fn drain(&self) {
        self.drain.cancel();
    }

    /// Phase 2: cancel in-flight work (implies phase 1).
    pub fn abort(&self) {
        self.drain.cancel();
        self.abort.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.drain.is_cancelled()
    }

    pub fn is_aborted(&self) -> bool {
        self.abort.is_cancelled()
    }

    /// Resolves when phase 1 begins.
    pub async fn draining(&self) {
        self.drain.cancelled().await
    }

    /// Resolves when phase 2 begins.
    pub async fn aborted(&self) {
        self.abort.cancelled().await
    }

    /// The abort phase as a token, for work that only knows tokens.
    pub fn abort_token(&self) -> &CancellationToken {
        &self.abort
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abort_implies_drain_and_clones_share_state() {
        let s = Shutdown::new();
        let c = s.clone();
        assert!(!c.is_draining() && !c.is_aborted());
        s.drain();
        assert!(c.is_draining() && !c.is_aborted());
        s.abort();
        assert!(c.is_aborted());
        let t = Shutdown::new();
        t.abort();
        assert!(t.is_draining());
    }
}
