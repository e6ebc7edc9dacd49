#!/usr/bin/env bash
# The declared MSRV must be true: no locked dependency may need a newer rustc
# than `rust-version` says (rusqlite 0.41 made 1.88 false). The toolchain
# itself cannot be downloaded here (no network beyond the package
# registries), so this checks every locked package's own declaration; when a
# toolchain of that version is installed, it also builds with it.
set -euo pipefail
cargo metadata --format-version 1 --locked | python3 -c '
import json, sys
m = json.load(sys.stdin)
def ver(s): return (tuple(int(x) for x in s.split(".")) + (0, 0))[:3]
ours = {p["name"]: p["rust_version"] for p in m["packages"] if p["source"] is None}
msrv = max(ver(v) for v in ours.values())
used = {n["id"] for n in m["resolve"]["nodes"]}
over = [(p["name"], p["version"], p["rust_version"]) for p in m["packages"]
        if p["id"] in used and p.get("rust_version") and ver(p["rust_version"]) > msrv]
if any(v != ours["mana-personas"] for v in ours.values()):
    sys.exit(f"msrv: the workspace crates disagree: {ours}")
if over:
    sys.exit("msrv: declared rust-version %s, but these locked packages need more: %s"
             % (ours["mana-personas"], ", ".join(f"{n} {v} (rust {r})" for n, v, r in over)))
print("msrv: rust-version", ours["mana-personas"], "covers every locked dependency")
'
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -1)
if rustup toolchain list 2>/dev/null | grep -q "^$msrv"; then
  cargo "+$msrv" check --workspace --all-targets --locked
else
  echo "msrv: toolchain $msrv is not installed here; checked the declarations only"
fi
