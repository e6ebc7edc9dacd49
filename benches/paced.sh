#!/usr/bin/env bash
# The paced run: persona-ticks per minute a tick delivers against apps/api's
# 200 requests/min budget, on the sandbox with the platform's limiter and
# window (`--api-rate-limit 200`, 60 s). Budget-bound, so it takes minutes.
#
#   cargo build --release && benches/paced.sh [PERSONAS] [CONCURRENCY]
#
# Writes benches/results/paced.json. Needs python3 and curl.
set -euo pipefail
N=${1:-300}
C=${2:-16}
BIN=${MANA_PERSONAS_BIN:-target/release/mana-personas}
[ -n "${CARGO_TARGET_DIR:-}" ] && [ -z "${MANA_PERSONAS_BIN:-}" ] && BIN=$CARGO_TARGET_DIR/release/mana-personas
work=$(mktemp -d)
trap 'kill $SB 2>/dev/null || true; rm -rf "$work"' EXIT

"$BIN" sandbox --ephemeral --port 0 --api-rate-limit 200 >"$work/sandbox.out" 2>&1 &
SB=$!
for _ in $(seq 100); do grep -q "listening on" "$work/sandbox.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/.* listening on //p' "$work/sandbox.out" | head -1)
python3 - "$N" >"$work/catalog.json" <<'PY'
import json, sys
n = int(sys.argv[1])
print(json.dumps({"personas": [{
    "name": f"Paced {i}", "email": f"persona.paced{i:04d}@mana.test", "archetype": "solo-dev",
    "systemPrompt": "Du bist eine Testperson, die ihren Tag ordentlich plant.",
    "moduleMix": {"todo": 0.7, "notes": 0.3}, "tickCadence": "daily"} for i in range(n)]}))
PY
export MANA_AUTH_URL=$URL MANA_API_URL=$URL MANA_MCP_URL=$URL ANTHROPIC_BASE_URL=$URL
export MANA_ADMIN_JWT=sandbox-admin-jwt MANA_SERVICE_KEY=sandbox-service-key ANTHROPIC_API_KEY=sandbox-llm-key
export STATE_DIRECTORY=$work/state
"$BIN" seed --catalog "$work/catalog.json" --concurrency 8 >"$work/seed.out" 2>&1
# Start the tick on a fresh window, so the seed's requests do not count.
sleep 61
t0=$(date +%s.%N)
"$BIN" tick --once --json --concurrency "$C" >"$work/tick.json" 2>"$work/tick.err"
t1=$(date +%s.%N)
curl -s "$URL/__sandbox/ratelimit" >"$work/limit.json"
python3 - "$N" "$C" "$t0" "$t1" "$work/tick.json" "$work/limit.json" "$work/seed.out" <<'PY'
import json, sys
n, c, t0, t1 = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
tick = json.load(open(sys.argv[5])); limit = json.load(open(sys.argv[6]))
minutes = (t1 - t0) / 60
requests = 1 + 2 * tick["ran"]          # the due list, actions + feedback each
# Fixed 60 s windows: a run of R requests needs ceil(R/200) windows, the last
# one only partly, so the budget allows R requests in (ceil(R/200)-1) minutes
# plus the moments the last window's requests take.
import math
allowed_per_min = 200 / 2.0              # persona-ticks/min at 2 requests each
delivered = tick["ok"] / minutes
out = {
    "personas": n, "concurrency": c, "wallSeconds": round(t1 - t0, 1),
    "ran": tick["ran"], "ok": tick["ok"], "failed": len(tick["failed"]),
    "outboxPending": tick["outboxPending"], "apiWaits": tick.get("apiWaits"),
    "apiRateLimited": tick.get("apiRateLimited"),
    "tickRequests": requests, "windowsNeeded": math.ceil(requests / 200),
    "personaTicksPerMinute": round(delivered, 1),
    "budgetAllowsPerMinute": allowed_per_min,
    "shareOfBudget": round(delivered / allowed_per_min, 3),
    "sandbox429Share": round(limit["limited"] / max(limit["requests"], 1), 4),
    "sandbox": limit,
}
print(json.dumps(out, indent=2))
PY
