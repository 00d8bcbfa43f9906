#!/usr/bin/env bash
# Run the desktop app's end-to-end test: tauri-driver + WebKitWebDriver drive the real webview, under
# Xvfb when there is no display (the test starts one). Installs what is missing first: system packages
# via scripts/setup.sh, tauri-driver via cargo. Screenshots land in target/e2e-screenshots/.
# `scripts/e2e.sh --install-only` only installs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v tauri-driver >/dev/null 2>&1; then
  echo "e2e: installing tauri-driver"
  cargo install tauri-driver --version '^2' --locked
fi
[ "${1:-}" = "--install-only" ] && exit 0
# The same targets as scripts/test.sh builds (so the same features and no rebuild), filtered by name.
cargo test --workspace --locked --all-targets e2e_app_ -- --nocapture
