# mana-personas recipes. `just --list` shows them.

# The whole pipeline on the embedded sandbox.
demo:
    cargo run --quiet -- demo

# The test suite (what CI runs).
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
