//! What kind of failure a failed tool call was, from the text of its action
//! row (the platform's wording, see the contract's MCP section, or ours for
//! failures on the way) — so the report can tell "the model sends bad
//! arguments" from "the platform is down".

use serde::{Deserialize, Serialize};

/// The error classes of a failed tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The platform refused the arguments (`MCP error -32602: …`, including
    /// an unknown tool name), or they were not a JSON object.
    Validation,
    /// The tool ran and failed (`Tool X failed: …`).
    Handler,
    /// Not allowed: the platform's policy gate, a rate limit, or our own
    /// deny list ("refused locally").
    Policy,
    /// Timeout, 5xx, a dropped connection, or cancelled in flight.
    Transport,
    /// 401 / 403: the session or the token was not accepted.
    Auth,
    /// None of the above.
    Other,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 6] = [
        ErrorClass::Validation,
        ErrorClass::Handler,
        ErrorClass::Policy,
        ErrorClass::Transport,
        ErrorClass::Auth,
        ErrorClass::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Validation => "validation",
            ErrorClass::Handler => "handler",
            ErrorClass::Policy => "policy",
            ErrorClass::Transport => "transport",
            ErrorClass::Auth => "auth",
            ErrorClass::Other => "other",
        }
    }
}

/// Classifies a failed call by its error text (never panics).
pub fn classify(text: &str) -> ErrorClass {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let has = |s: &str| lower.contains(s);
    // The platform's tool results first: their wording is fixed.
    if t.starts_with("MCP error -32602") || t.starts_with("arguments must be a JSON object") {
        return ErrorClass::Validation;
    }
    if has("not allowed")
        || has("rate-limit")
        || has("rate limit")
        || has("refused locally")
        || has("http 429")
    {
        return ErrorClass::Policy;
    }
    if t.starts_with("Tool ") && has(" failed:") {
        return ErrorClass::Handler;
    }
    if has("http 401") || has("http 403") || has("invalid token") || has("unauthorized") {
        return ErrorClass::Auth;
    }
    if has("timed out")
        || has("timeout")
        || has("cancelled")
        || has("connection")
        || has("dropped")
        || has("http 5")
        || has("error sending request")
        || has("session not found")
    {
        return ErrorClass::Transport;
    }
    ErrorClass::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platforms_wordings() {
        // From the real mana-mcp answers (contract, MCP section).
        let cases = [
            (
                "MCP error -32602: Input validation error: Invalid arguments for tool todo.create: Required at title",
                ErrorClass::Validation,
            ),
            (
                "MCP error -32602: Input validation error: Invalid arguments for tool mood.log: Number must be less than or equal to 10 at level",
                ErrorClass::Validation,
            ),
            (
                "MCP error -32602: Tool nope.nope not found",
                ErrorClass::Validation,
            ),
            (
                "Tool todo.create failed: relation \"tasks\" does not exist",
                ErrorClass::Handler,
            ),
            (
                "Tool todo.delete not allowed: rate-limit-exceeded",
                ErrorClass::Policy,
            ),
            (
                "Tool todo.delete not allowed: destructive",
                ErrorClass::Policy,
            ),
            (
                "refused locally: todo.delete is on TOOLS_DENY",
                ErrorClass::Policy,
            ),
            (
                "MCP tools/call at /mcp: HTTP 401: {\"error\":\"Invalid token: Invalid Compact JWS\"}",
                ErrorClass::Auth,
            ),
            (
                "MCP tools/call at /mcp: HTTP 403: {\"error\":\"Session belongs to a different user\"}",
                ErrorClass::Auth,
            ),
            ("MCP tools/call: timed out after 60s", ErrorClass::Transport),
            (
                "MCP tools/call at /mcp: HTTP 502: bad gateway",
                ErrorClass::Transport,
            ),
            (
                "MCP tools/call at /mcp: HTTP 429: {\"error\":\"Too many requests\"}",
                ErrorClass::Policy,
            ),
            (
                "cancelled while in flight: the persona's deadline passed or the runner shut down",
                ErrorClass::Transport,
            ),
            (
                "MCP tools/call at /mcp: error sending request for url",
                ErrorClass::Transport,
            ),
            (
                "arguments must be a JSON object, got \"x\"",
                ErrorClass::Validation,
            ),
            ("something odd", ErrorClass::Other),
        ];
        for (text, want) in cases {
            assert_eq!(classify(text), want, "{text}");
        }
    }
}
