# mana-personas recipes. `just --list` shows them.

# The whole pipeline on the embedded sandbox: seed, one tick, a table.
demo:
    cargo run --quiet -- demo

# The test suite (both crates), as the README gives it.
test:
    cargo test

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# The platform CI's smoke check: sandbox, seed, one tick, rows in the database.
smoke:
    cargo build --quiet
    .ci/smoke.sh

# The benchmarks of BENCHMARKS.md on the `cargo build --release` binary (`just bench memory`: one).
bench *SCENARIOS:
    @command -v hyperfine >/dev/null 2>&1 || { if [ "$(id -u)" = 0 ]; then apt-get install -y hyperfine; else sudo apt-get install -y hyperfine; fi; }
    cargo build --release
    mkdir -p "${CARGO_TARGET_DIR:-target}/bench-bin"
    cp "${CARGO_TARGET_DIR:-target}/release/mana-personas" "${CARGO_TARGET_DIR:-target}/bench-bin/"
    MANA_PERSONAS_BIN="${CARGO_TARGET_DIR:-target}/bench-bin/mana-personas" cargo bench --bench runner -- {{SCENARIOS}}

# cargo-fuzz (`cargo install cargo-fuzz`) with RUSTC_BOOTSTRAP=1 so stable rustc
# takes the sanitizer flags, for fuzzing only. New inputs go to fuzz/generated/
# (ignored); the committed seeds in fuzz/corpus/ are only read; crashes land in
# fuzz/artifacts/.
# Fuzz every target FUZZ_SECONDS (default 600) each, or one: `just fuzz rating 60`.
fuzz target="" seconds=env("FUZZ_SECONDS", "600"):
    #!/usr/bin/env bash
    set -euo pipefail
    cd fuzz
    targets="{{target}}"
    if [ -z "$targets" ]; then targets="$(cargo fuzz list)"; fi
    for t in $targets; do
        mkdir -p "generated/$t"
        echo "== fuzz $t for {{seconds}} s"
        RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz run "$t" "generated/$t" "corpus/$t" -- \
            -max_total_time={{seconds}} -rss_limit_mb=2048 -dict="dict/$t.dict" -print_final_stats=1
    done
