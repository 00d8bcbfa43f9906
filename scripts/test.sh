#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine and run every test. This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
# The real all-MiniLM-L6-v2 (about 90 MB, cached) for the text-encoder parity tests.
if minilm="$(scripts/fetch-minilm.sh | tail -n 1)" && [ -n "$minilm" ]; then
  export SHOEBOX_MINILM_DIR="$minilm"
elif [ -n "${CI:-}" ]; then
  echo "test: could not fetch all-MiniLM-L6-v2 (scripts/fetch-minilm.sh), which CI needs" >&2
  exit 1
else
  echo "test: could not fetch all-MiniLM-L6-v2; the text-encoder tests will be skipped" >&2
fi
cargo fmt --all -- --check 2>/dev/null || echo "note: cargo fmt reports unformatted code (or rustfmt is missing)"
# The desktop app's end-to-end test drives the real webview through tauri-driver (installed here) and
# WebKitWebDriver under Xvfb (installed by setup.sh); with CI set it fails instead of skipping when
# those are missing. Screenshots land in target/e2e-screenshots/.
scripts/e2e.sh --install-only
# One build of every target with one feature set (separate invocations that select different targets
# can unify features differently and rebuild half the dependency tree), then every test, including
# the app end to end. Benchmarks run once each as tests (divan's test mode); `cargo bench` times them.
[ -n "${CI:-}" ] && export CARGO_INCREMENTAL=0
cargo test --workspace --locked --all-targets
