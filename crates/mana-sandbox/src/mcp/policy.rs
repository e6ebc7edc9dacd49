//! The platform's policy gate, when a deployment enforces it: at most 30
//! calls per 60 s per tool per user, else the tool result
//! `Tool X not allowed: rate-limit-exceeded`. Off by default, like a
//! deployment without it (`SandboxOptions::mcp_policy_gate`).
//!
//! It sits where mana-mcp has it, inside the tool handler: an unknown tool or
//! arguments that fail validation never reach it and never count.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Calls allowed per tool and user within [`WINDOW`].
pub const LIMIT: usize = 30;
pub const WINDOW: Duration = Duration::from_secs(60);

/// (user, tool) → the times of its admitted calls within the window.
type Calls = HashMap<(String, String), VecDeque<Instant>>;

/// Sliding-window counters, shared by every session of the sandbox.
#[derive(Clone, Default)]
pub struct PolicyGate {
    calls: Arc<Mutex<Calls>>,
}

impl PolicyGate {
    /// Records a call of `tool` by `user` now, or refuses it with the
    /// platform's text. A refused call does not count.
    pub fn admit(&self, user: &str, tool: &str) -> Result<(), String> {
        self.admit_at(user, tool, Instant::now())
    }

    fn admit_at(&self, user: &str, tool: &str, now: Instant) -> Result<(), String> {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let seen = calls
            .entry((user.to_string(), tool.to_string()))
            .or_default();
        while seen
            .front()
            .is_some_and(|&t| now.duration_since(t) >= WINDOW)
        {
            seen.pop_front();
        }
        if seen.len() >= LIMIT {
            return Err(format!("Tool {tool} not allowed: rate-limit-exceeded"));
        }
        seen.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_per_minute_per_tool_per_user() {
        let gate = PolicyGate::default();
        let t0 = Instant::now();
        for _ in 0..LIMIT {
            gate.admit_at("u1", "todo.list", t0).unwrap();
        }
        assert_eq!(
            gate.admit_at("u1", "todo.list", t0 + Duration::from_secs(59))
                .unwrap_err(),
            "Tool todo.list not allowed: rate-limit-exceeded"
        );
        // Another tool, another user: their own budgets.
        gate.admit_at("u1", "todo.create", t0).unwrap();
        gate.admit_at("u2", "todo.list", t0).unwrap();
        // A minute after the first calls, room again.
        gate.admit_at("u1", "todo.list", t0 + WINDOW).unwrap();
    }
}
