#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine and run every test. This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all -- --check 2>/dev/null || echo "note: cargo fmt reports unformatted code (or rustfmt is missing)"
cargo test --workspace --locked --all-targets
