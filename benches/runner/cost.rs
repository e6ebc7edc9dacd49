//! What the LLM would bill, from the sandbox's record of every request
//! (`llm_requests`): how much of each main-turn request from turn 2 on sits
//! before the last `cache_control` breakpoint (and so is read from the prompt
//! cache at a tenth of the price), and the tokens of a persona tick by kind.

use mana_sandbox::Sandbox;
use serde_json::{Value, json};

/// The cache share and the per-persona-tick tokens of everything the sandbox
/// answered, for `persona_ticks` ticks.
pub fn report(sb: &Sandbox, persona_ticks: usize) -> anyhow::Result<Value> {
    let (prefix, body, n): (i64, i64, i64) = sb.db().call(|c| {
        c.query_row(
            "SELECT COALESCE(SUM(cached_prefix_bytes), 0), COALESCE(SUM(body_bytes), 0), COUNT(*)
             FROM llm_requests WHERE kind = 'main' AND turn >= 2 AND status = 200",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
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
    Ok(json!({
        "mainTurn2PlusRequests": n,
        "mainTurn2PlusBodyBytes": body,
        "mainTurn2PlusCachedPrefixBytes": prefix,
        "cachedPrefixShare": prefix as f64 / body.max(1) as f64,
        "perPersonaTick": {
            "byKind": kinds,
            "all": {"requests": all[0], "input": all[1], "output": all[2], "cacheRead": all[3], "cacheWrite": all[4]},
            "inputTokensIfUncached": uncached,
            "inputTokenUnitsBilled": billed,
        },
    }))
}
