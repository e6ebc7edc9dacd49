//! The persona catalog: load, validate (every problem at once), list.
//! (Validation filled in by the catalog work.)

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How often a persona is due. Also decides how long run memory keeps a
/// zero-action persona from running again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cadence {
    #[default]
    Daily,
    Weekdays,
    Hourly,
}

impl Cadence {
    pub fn as_str(&self) -> &'static str {
        match self {
            Cadence::Daily => "daily",
            Cadence::Weekdays => "weekdays",
            Cadence::Hourly => "hourly",
        }
    }

    pub fn parse(s: &str) -> Option<Cadence> {
        match s {
            "daily" => Some(Cadence::Daily),
            "weekdays" => Some(Cadence::Weekdays),
            "hourly" => Some(Cadence::Hourly),
            _ => None,
        }
    }

    /// The nominal period (weekdays counts as daily).
    pub fn period(&self) -> Duration {
        match self {
            Cadence::Hourly => Duration::from_secs(3600),
            Cadence::Daily | Cadence::Weekdays => Duration::from_secs(24 * 3600),
        }
    }
}

/// One validated persona descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Persona {
    pub name: String,
    pub email: String,
    pub archetype: String,
    pub system_prompt: String,
    pub module_mix: BTreeMap<String, f64>,
    pub tick_cadence: Cadence,
}

// TEMPORARY stubs until the catalog work lands (replaced on merge).
pub struct Catalog {
    pub personas: Vec<Persona>,
    pub warnings: Vec<String>,
}
#[derive(Debug, thiserror::Error)]
#[error("catalog error")]
pub struct CatalogError;
pub fn load(_p: &std::path::Path) -> Result<Catalog, CatalogError> {
    todo!()
}
impl Persona {
    pub fn preferred_modules(&self) -> Vec<String> {
        todo!()
    }
}
