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

# Benchmarks (see BENCHMARKS.md once they exist).
bench:
    @echo "benchmarks arrive with the proof issue; nothing to run yet"
