//! What the LLM would bill, from the sandbox's record of every request
//! (`llm_requests`, where the sandbox simulates Anthropic's prompt cache with
//! the model's minimum cacheable prefix): the share of main-turn input tokens
//! from turn 2 on that is read from the cache (at a tenth of the price), the
//! tokens of a persona tick by kind, and what a persona tick costs at a
//! Sonnet-class model's list prices.

use mana_sandbox::Sandbox;
use serde_json::{Value, json};

/// A Sonnet-class model's list prices (claude-sonnet-4-5, USD per million
/// tokens): input 3, output 15; cache writes 1.25× and reads 0.1× input.
const SONNET_INPUT_USD_PER_MTOK: f64 = 3.0;
const SONNET_OUTPUT_USD_PER_MTOK: f64 = 15.0;

/// The cache share and the per-persona-tick tokens of everything the sandbox
/// answered, for `persona_ticks` ticks.
pub fn report(sb: &Sandbox, persona_ticks: usize) -> anyhow::Result<Value> {
    let (prefix, body, n, read2, input2): (i64, i64, i64, i64, i64) = sb.db().call(|c| {
        c.query_row(
            "SELECT COALESCE(SUM(cached_prefix_bytes), 0), COALESCE(SUM(body_bytes), 0), COUNT(*),
                    COALESCE(SUM(cache_read), 0),
                    COALESCE(SUM(input_tokens + cache_read + cache_write), 0)
             FROM llm_requests WHERE kind = 'main' AND turn >= 2 AND status = 200",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
    })?;
    let per_kind: Vec<(String, i64, i64, i64, i64, i64, i64)> = sb.db().call(|c| {
        let mut st = c.prepare(
            "SELECT kind, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read),
                    SUM(cache_write), SUM(body_bytes)
             FROM llm_requests WHERE status = 200 GROUP BY kind ORDER BY kind",
        )?;
        st.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?
        .collect()
    })?;
    let t = persona_ticks.max(1) as f64;
    let mut kinds = serde_json::Map::new();
    let mut all = [0f64; 5];
    for (kind, reqs, input, output, read, write, bytes) in per_kind {
        let v = [reqs, input, output, read, write].map(|x| x as f64 / t);
        for (a, x) in all.iter_mut().zip(v) {
            *a += x;
        }
        kinds.insert(
            kind,
            json!({"requests": v[0], "input": v[1], "output": v[2], "cacheRead": v[3],
                   "cacheWrite": v[4], "bodyBytes": bytes as f64 / t}),
        );
    }
    // Input billed as if uncached, and as billed with the cache (read 0.1×,
    // write 1.25× the base input price), both in base-input-token units.
    let uncached = all[1] + all[3] + all[4];
    let billed = all[1] + 0.1 * all[3] + 1.25 * all[4];
    let cents =
        (billed * SONNET_INPUT_USD_PER_MTOK + all[2] * SONNET_OUTPUT_USD_PER_MTOK) / 1e6 * 100.0;
    Ok(json!({
        "mainTurn2PlusRequests": n,
        "mainTurn2PlusBodyBytes": body,
        "mainTurn2PlusCachedPrefixBytes": prefix,
        "cachedPrefixShare": prefix as f64 / body.max(1) as f64,
        "mainTurn2PlusInputTokens": input2,
        "mainTurn2PlusCacheReadTokens": read2,
        "cachedTokenShare": read2 as f64 / input2.max(1) as f64,
        "centsPerPersonaTick": cents,
        "perPersonaTick": {
            "byKind": kinds,
            "all": {"requests": all[0], "input": all[1], "output": all[2], "cacheRead": all[3], "cacheWrite": all[4]},
            "inputTokensIfUncached": uncached,
            "inputTokenUnitsBilled": billed,
        },
    }))
}
