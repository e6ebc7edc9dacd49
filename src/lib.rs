//! mana-personas: keeps the Mana platform exercised by LLM-played personas.
//!
//! The crate is a pipeline of small leaves bridged by the runner:
//! `config` → `password` / `catalog` → `platform` (auth, admin, internal) →
//! `mcp` + `llm` → `runner` (one persona tick, the pool) → `state` (outbox,
//! run memory, ledger). The loopback stand-in for the platform and the LLM is
//! its own crate, `mana-sandbox`; only the `sandbox` and `demo` commands use it. See ARCHITECTURE.md.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod daemon;
pub mod doctor;
pub mod exit;
pub mod http;
pub mod llm;
pub mod mcp;
pub mod metrics;
pub mod password;
pub mod platform;
pub mod redact;
pub mod report;
pub mod runner;
pub mod shutdown;
pub mod sse;
pub mod state;
