#!/usr/bin/env bash
# The smoke recipe: sandbox on a free port, seed the catalog, one tick, then
# check that every due persona ran, the outbox is empty, and the sandbox
# database holds exactly the rows the runner reported posting. Exits non-zero
# with a clear message on any shortfall.
set -euo pipefail
# Ask cargo where it builds (CARGO_TARGET_DIR, a workspace's target, a config
# file): a hard-coded target/debug breaks whenever any of them is set.
if [ -z "${MANA_PERSONAS_BIN:-}" ]; then
  target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  bin="$target_dir/debug/mana-personas"
else
  bin=$MANA_PERSONAS_BIN
fi
[ -x "$bin" ] || cargo build --quiet --bin mana-personas
work=$(mktemp -d)
trap 'kill "$sandbox_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin" sandbox --port 0 --db "$work/sandbox.db" >"$work/sandbox.log" 2>&1 &
sandbox_pid=$!
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's/^mana-personas sandbox listening on \(http[^ ]*\).*/\1/p' "$work/sandbox.log" | head -1)
  [ -n "$url" ] && break
  kill -0 "$sandbox_pid" 2>/dev/null || { echo "smoke: the sandbox exited:"; cat "$work/sandbox.log"; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "smoke: the sandbox did not start within 10 s"; cat "$work/sandbox.log"; exit 1; }

export MANA_AUTH_URL=$url MANA_API_URL=$url MANA_MCP_URL=$url ANTHROPIC_BASE_URL=$url
export MANA_ADMIN_JWT=sandbox-admin-jwt MANA_SERVICE_KEY=sandbox-service-key ANTHROPIC_API_KEY=sandbox-llm-key
export XDG_CONFIG_HOME="$work/config" STATE_DIRECTORY="$work/state"

"$bin" seed --catalog catalog.json
"$bin" tick --once --json >"$work/summary.json" || { echo "smoke: tick --once failed:"; cat "$work/summary.json"; exit 1; }

python3 - "$work/sandbox.db" "$work/summary.json" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
summary = json.load(open(sys.argv[2]))
problems = []
if summary["ran"] == 0:
    problems.append("the tick ran no persona")
if summary["ran"] != summary["due"]:
    problems.append(f"{summary['due']} personas were due but only {summary['ran']} ran")
if summary["outboxPending"] != 0:
    problems.append(f"{summary['outboxPending']} batches still wait in the outbox")
# The database must hold exactly what the runner says it posted.
(actions,) = db.execute("select count(*) from persona_actions").fetchone()
(feedback,) = db.execute("select count(*) from persona_feedback").fetchone()
if actions != summary["actions"]:
    problems.append(f"the runner reported {summary['actions']} actions, the database has {actions}")
if feedback != summary["ratings"]:
    problems.append(f"the runner reported {summary['ratings']} ratings, the database has {feedback}")
for (email, a, f) in db.execute("""
    select p.email,
           (select count(*) from persona_actions a where a.persona_id = p.user_id),
           (select count(*) from persona_feedback f where f.persona_id = p.user_id)
    from personas p order by p.email"""):
    if a > 0 and f == 0:
        problems.append(f"{email}: {a} action rows but no feedback rows")
not_run = summary["due"] - summary["ran"]
print(f"smoke: {summary['ran']} personas ran, {summary['actions']} actions, {summary['ratings']} ratings, "
      f"{len(summary['failed'])} failed, {not_run} due but skipped")
if summary["failed"]:
    problems += [f"{f['persona']}: {f['error']}" for f in summary["failed"]]
if problems:
    print("smoke: FAILED\n  " + "\n  ".join(problems))
    sys.exit(1)
print("smoke: ok")
PY
