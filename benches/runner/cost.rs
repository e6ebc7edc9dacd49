//! What the LLM would bill, from the sandbox's record of every request
//! (`llm_requests`, where the sandbox simulates Anthropic's prompt cache with
//! the model's minimum cacheable prefix): the share of main-turn input tokens
//! from turn 2 on that is read from the cache (at a tenth of the price), the
//! tokens of a persona tick by kind, and what a persona tick costs at a
//! Sonnet-class model's list prices.

use mana_personas::llm::Usage;
use mana_personas::llm::pricing::{Price, PriceTable};
use mana_sandbox::Sandbox;
use serde_json::{Value, json};

/// The model family whose list prices the headline figure uses (the
/// product's own price table: input 3, output 15 US$ per million tokens;
/// cache writes 1.25× and reads 0.1× input).
const SONNET: &str = "claude-sonnet";

/// The cache share and the per-persona-tick tokens of everything the
/// sandboxes answered, for `persona_ticks` ticks in all. Several sandboxes
/// are several deployments: each has its own prompt cache.
pub fn report(sbs: &[&Sandbox], persona_ticks: usize) -> anyhow::Result<Value> {
    // [cached prefix bytes, body bytes, requests, cache reads, all input
    // tokens] of the main turns from turn 2 on.
    let mut turn2 = [0i64; 5];
    // kind → [requests, input, output, cache read, cache write, body bytes]
    let mut per_kind: std::collections::BTreeMap<String, [i64; 6]> = Default::default();
    // Tool calls that reached the MCP server: a shorter day costs less per
    // tick but does less, so the price of one call is reported too.
    let mut tool_calls = 0i64;
    for sb in sbs {
        tool_calls += sb
            .db()
            .call(|c| c.query_row("SELECT COUNT(*) FROM mcp_calls", [], |r| r.get::<_, i64>(0)))?;
        let t: [i64; 5] = sb.db().call(|c| {
            c.query_row(
                "SELECT COALESCE(SUM(cached_prefix_bytes), 0), COALESCE(SUM(body_bytes), 0), COUNT(*),
                        COALESCE(SUM(cache_read), 0),
                        COALESCE(SUM(input_tokens + cache_read + cache_write), 0)
                 FROM llm_requests WHERE kind = 'main' AND turn >= 2 AND status = 200",
                [],
                |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?]),
            )
        })?;
        for (a, x) in turn2.iter_mut().zip(t) {
            *a += x;
        }
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
    let mut total = Usage::default();
    let mut requests = 0;
    for (kind, [reqs, input, output, read, write, bytes]) in per_kind {
        let usage = Usage {
            input: input as u64,
            output: output as u64,
            cache_read: read as u64,
            cache_write: write as u64,
        };
        total.add(usage);
        requests += reqs;
        kinds.insert(kind, per_tick(usage, reqs, t, Some(bytes)));
    }
    let prices = PriceTable::default();
    let sonnet = prices.price(SONNET).expect("the table prices Sonnet");
    // Input billed as if uncached, and as billed with the cache, both in
    // base-input-token units.
    let uncached = (total.input + total.cache_read + total.cache_write) as f64 / t;
    let billed = (total.input as f64
        + total.cache_read as f64 * sonnet.cache_read / sonnet.input
        + total.cache_write as f64 * sonnet.cache_write / sonnet.input)
        / t;
    let cents = |p: Price| p.cost(total) / t * 100.0;
    // The model the runner asked for (`LLM_MODEL`, passed through by
    // child.rs) at its own list prices: its minimum cacheable prefix shaped
    // the tokens above, so only its own prices make sense of them.
    let model = std::env::var("LLM_MODEL")
        .unwrap_or_else(|_| mana_personas::llm::anthropic::DEFAULT_MODEL.to_string());
    let [prefix, body, n, read2, input2] = turn2;
    Ok(json!({
        "mainTurn2PlusRequests": n,
        "mainTurn2PlusBodyBytes": body,
        "mainTurn2PlusCachedPrefixBytes": prefix,
        "cachedPrefixShare": prefix as f64 / body.max(1) as f64,
        "mainTurn2PlusInputTokens": input2,
        "mainTurn2PlusCacheReadTokens": read2,
        "cachedTokenShare": read2 as f64 / input2.max(1) as f64,
        "centsPerPersonaTick": cents(sonnet),
        "model": model,
        "centsPerPersonaTickAtTheModelsPrices": prices.price(&model).map(cents),
        "toolCallsPerPersonaTick": tool_calls as f64 / t,
        "centsPerToolCall": sonnet.cost(total) * 100.0 / tool_calls.max(1) as f64,
        "perPersonaTick": {
            "byKind": kinds,
            "all": per_tick(total, requests, t, None),
            "inputTokensIfUncached": uncached,
            "inputTokenUnitsBilled": billed,
        },
    }))
}

/// Tokens (and request bytes) per persona-tick.
fn per_tick(u: Usage, requests: i64, t: f64, body_bytes: Option<i64>) -> Value {
    let mut v = json!({"requests": requests as f64 / t, "input": u.input as f64 / t,
        "output": u.output as f64 / t, "cacheRead": u.cache_read as f64 / t,
        "cacheWrite": u.cache_write as f64 / t});
    if let Some(b) = body_bytes {
        v["bodyBytes"] = json!(b as f64 / t);
    }
    v
}
