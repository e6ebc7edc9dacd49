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

/// The cache share and the per-persona-tick tokens of everything the
/// sandboxes answered, for `persona_ticks` ticks in all. Several sandboxes
/// are several deployments: each has its own prompt cache.
pub fn report(sbs: &[&Sandbox], persona_ticks: usize) -> anyhow::Result<Value> {
    let (mut prefix, mut body, mut n, mut read2, mut input2) = (0i64, 0i64, 0i64, 0i64, 0i64);
    // kind → [requests, input, output, cache read, cache write, body bytes]
    let mut per_kind: std::collections::BTreeMap<String, [i64; 6]> = Default::default();
    for sb in sbs {
        let t: (i64, i64, i64, i64, i64) = sb.db().call(|c| {
            c.query_row(
                "SELECT COALESCE(SUM(cached_prefix_bytes), 0), COALESCE(SUM(body_bytes), 0), COUNT(*),
                        COALESCE(SUM(cache_read), 0),
                        COALESCE(SUM(input_tokens + cache_read + cache_write), 0)
                 FROM llm_requests WHERE kind = 'main' AND turn >= 2 AND status = 200",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
        })?;
        prefix += t.0;
        body += t.1;
        n += t.2;
        read2 += t.3;
        input2 += t.4;
        let rows: Vec<(String, [i64; 6])> = sb.db().call(|c| {
            let mut st = c.prepare(
                "SELECT kind, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read),
                        SUM(cache_write), SUM(body_bytes)
                 FROM llm_requests WHERE status = 200 GROUP BY kind ORDER BY kind",
            )?;
            st.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    [
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ],
                ))
            })?
            .collect()
        })?;
        for (kind, v) in rows {
            let sum = per_kind.entry(kind).or_default();
            for (a, x) in sum.iter_mut().zip(v) {
                *a += x;
            }
        }
    }
    let t = persona_ticks.max(1) as f64;
    let mut kinds = serde_json::Map::new();
    let mut all = [0f64; 5];
    for (kind, [reqs, input, output, read, write, bytes]) in per_kind {
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
    // The model the runner asked for (`LLM_MODEL`, passed through by
    // child.rs) at its own list prices: its minimum cacheable prefix shaped
    // the tokens above, so only its own prices make sense of them.
    let model = std::env::var("LLM_MODEL")
        .unwrap_or_else(|_| mana_personas::llm::anthropic::DEFAULT_MODEL.to_string());
    let at_model = mana_personas::llm::pricing::PriceTable::default()
        .price(&model)
        .map(|p| {
            (all[1] * p.input + all[3] * p.cache_read + all[4] * p.cache_write + all[2] * p.output)
                / 1e6
                * 100.0
        });
    Ok(json!({
        "mainTurn2PlusRequests": n,
        "mainTurn2PlusBodyBytes": body,
        "mainTurn2PlusCachedPrefixBytes": prefix,
        "cachedPrefixShare": prefix as f64 / body.max(1) as f64,
        "mainTurn2PlusInputTokens": input2,
        "mainTurn2PlusCacheReadTokens": read2,
        "cachedTokenShare": read2 as f64 / input2.max(1) as f64,
        "centsPerPersonaTick": cents,
        "model": model,
        "centsPerPersonaTickAtTheModelsPrices": at_model,
        "perPersonaTick": {
            "byKind": kinds,
            "all": {"requests": all[0], "input": all[1], "output": all[2], "cacheRead": all[3], "cacheWrite": all[4]},
            "inputTokensIfUncached": uncached,
            "inputTokenUnitsBilled": billed,
        },
    }))
}
