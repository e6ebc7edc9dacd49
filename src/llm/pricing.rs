//! What a persona tick's tokens cost: a price table per model, in US dollars
//! per million tokens (input, 5-minute cache write, cache read, output).
//!
//! Why a table here and not in the report: the ledger stores each tick's cost
//! with the model it used, so a report over a year of ticks stays true when
//! prices or the configured model change later.
//!
//! Defaults are Anthropic's list prices (anthropic.com/pricing, as quoted in
//! docs.rs/synaps `pricing` and docs.rs/cogito-claude, Nov 2025): Sonnet-class
//! $3 / $15, Haiku 4.5 $1 / $5, Haiku 3.5 $0.80 / $4, Opus 4.5 and later
//! $5 / $25, Opus 4 / 4.1 $15 / $75; a 5-minute cache write costs 1.25× input,
//! a cache read 0.1× input. OpenAI's gpt-4o-mini: $0.15 / $0.60, cached input
//! $0.075. `LLM_PRICES` adds or overrides entries
//! (`MODEL_PREFIX=INPUT/OUTPUT[;...]`, the cache prices then derived the same
//! way). An unknown model has no price: its ticks report tokens only.

use super::Usage;

/// Prices of one model, US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub cache_write: f64,
    pub cache_read: f64,
    pub output: f64,
}

impl Price {
    /// A price with Anthropic's cache multipliers (write 1.25×, read 0.1×).
    pub const fn anthropic(input: f64, output: f64) -> Price {
        Price {
            input,
            cache_write: input * 1.25,
            cache_read: input * 0.1,
            output,
        }
    }

    /// The cost of `t` in US dollars.
    pub fn cost(&self, t: Usage) -> f64 {
        (t.input as f64 * self.input
            + t.cache_write as f64 * self.cache_write
            + t.cache_read as f64 * self.cache_read
            + t.output as f64 * self.output)
            / 1_000_000.0
    }
}

/// Built-in prices: the first entry whose prefix starts the model id wins,
/// so the more specific prefixes come first.
const DEFAULTS: &[(&str, Price)] = &[
    ("claude-opus-4-0", Price::anthropic(15.0, 75.0)),
    ("claude-opus-4-1", Price::anthropic(15.0, 75.0)),
    ("claude-opus-4-2025", Price::anthropic(15.0, 75.0)),
    ("claude-3-opus", Price::anthropic(15.0, 75.0)),
    ("claude-opus", Price::anthropic(5.0, 25.0)),
    ("claude-sonnet", Price::anthropic(3.0, 15.0)),
    ("claude-3-7-sonnet", Price::anthropic(3.0, 15.0)),
    ("claude-3-5-sonnet", Price::anthropic(3.0, 15.0)),
    ("claude-haiku-4", Price::anthropic(1.0, 5.0)),
    ("claude-3-5-haiku", Price::anthropic(0.8, 4.0)),
    ("claude-3-haiku", Price::anthropic(0.25, 1.25)),
    (
        "gpt-4o-mini",
        Price {
            input: 0.15,
            cache_write: 0.15,
            cache_read: 0.075,
            output: 0.6,
        },
    ),
];

/// The price table: configured entries first, then the defaults.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    configured: Vec<(String, Price)>,
}

impl PriceTable {
    /// Parses `LLM_PRICES` (`claude-x=3/15;my-model=1.5/6`); empty means
    /// the defaults only. Errors name the entry.
    pub fn parse(text: &str) -> Result<PriceTable, String> {
        let mut configured = Vec::new();
        for entry in text
            .split([';', ','])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let bad = || {
                format!(
                    "LLM_PRICES entry `{entry}`: expected MODEL_PREFIX=INPUT/OUTPUT (US$ per million tokens)"
                )
            };
            let (model, prices) = entry.split_once('=').ok_or_else(bad)?;
            let (i, o) = prices.split_once('/').ok_or_else(bad)?;
            let num = |s: &str| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
            };
            let (Some(i), Some(o)) = (num(i), num(o)) else {
                return Err(bad());
            };
            configured.push((model.trim().to_string(), Price::anthropic(i, o)));
        }
        Ok(PriceTable { configured })
    }

    /// The price of `model`, if known.
    pub fn price(&self, model: &str) -> Option<Price> {
        self.configured
            .iter()
            .map(|(m, p)| (m.as_str(), *p))
            .chain(DEFAULTS.iter().copied())
            .find(|(prefix, _)| model.starts_with(prefix))
            .map(|(_, p)| p)
    }

    /// The cost of `t` on `model`, or `None` for a model without a price.
    pub fn cost(&self, model: &str, t: Usage) -> Option<f64> {
        self.price(model).map(|p| p.cost(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(input: u64, output: u64, cache_read: u64, cache_write: u64) -> Usage {
        Usage {
            input,
            output,
            cache_read,
            cache_write,
        }
    }

    #[test]
    fn list_prices_of_the_known_models() {
        let t = PriceTable::default();
        let m = tokens(1_000_000, 1_000_000, 1_000_000, 1_000_000);
        // Sonnet: 3 + 15 + 0.3 + 3.75
        assert!((t.cost("claude-sonnet-4-5", m).unwrap() - 22.05).abs() < 1e-9);
        // Haiku 4.5: 1 + 5 + 0.1 + 1.25
        assert!((t.cost("claude-haiku-4-5-20251001", m).unwrap() - 7.35).abs() < 1e-9);
        // Opus 4.5: 5 + 25 + 0.5 + 6.25; Opus 4.1: 15 + 75 + 1.5 + 18.75
        assert!((t.cost("claude-opus-4-5", m).unwrap() - 36.75).abs() < 1e-9);
        assert!((t.cost("claude-opus-4-1-20250805", m).unwrap() - 110.25).abs() < 1e-9);
        assert_eq!(t.cost("claude-sandbox", m), None);
    }

    #[test]
    fn configured_prices_come_first_and_bad_entries_are_named() {
        let t = PriceTable::parse("claude-sandbox=2/10; claude-sonnet=1/1").unwrap();
        let m = tokens(500_000, 100_000, 0, 0);
        assert!((t.cost("claude-sandbox", m).unwrap() - 2.0).abs() < 1e-9);
        assert!((t.cost("claude-sonnet-4-5", m).unwrap() - 0.6).abs() < 1e-9);
        let e = PriceTable::parse("claude-x=3").unwrap_err();
        assert!(e.contains("claude-x=3"), "{e}");
    }
}
