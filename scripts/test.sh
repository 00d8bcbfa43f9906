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
# Everything but the desktop app's end-to-end test, which runs on its own below.
# (Benchmarks are only compiled here: `cargo bench` runs them; timing has no place in tests.)
cargo test --workspace --locked --lib --bins --tests --examples -- --skip e2e_app_
cargo test --workspace --locked --all-targets --no-run
# The app through its real webview (tauri-driver, WebKitWebDriver, Xvfb); with CI set it fails
# instead of skipping when those are missing.
scripts/e2e.sh
