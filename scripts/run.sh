#!/usr/bin/env bash
# The main job: set up, build, index a folder and search it.
#   scripts/run.sh [FOLDER] [QUERY]
#   scripts/run.sh --app       the desktop app instead (under Xvfb when there is no display)
# Without arguments it indexes the bundled shape images with the bundled tiny CLIP model (works
# offline). With a FOLDER it uses the real default model (openai/clip-vit-base-patch32, fetched once
# into the Hugging Face cache) unless SHOEBOX_CLIP_MODEL names another hub id or local folder.
# The library goes to SHOEBOX_LIBRARY (default: ./target/demo-library for the bundled demo, else the
# platform data dir, ~/.local/share/shoebox).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

if [ "${1:-}" = "--app" ]; then
  cargo build --release --locked -p shoebox-app
  # The bundled tiny models unless the environment names others: works offline.
  export SHOEBOX_CLIP_MODEL="${SHOEBOX_CLIP_MODEL:-$PWD/tests/fixtures/models/clip-dev}"
  export SHOEBOX_CAPTION_MODEL="${SHOEBOX_CAPTION_MODEL:-$PWD/tests/fixtures/models/blip-dev}"
  export SHOEBOX_LIBRARY="${SHOEBOX_LIBRARY:-$PWD/target/demo-library}"
  if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    echo "no display: running the app under Xvfb (Ctrl-C to stop)"
    exec xvfb-run -a -s "-screen 0 1280x800x24" ./target/release/shoebox-app
  fi
  exec ./target/release/shoebox-app
fi

cargo build --release --locked
bin=./target/release/shoebox

if [ $# -eq 0 ]; then
  folder=tests/fixtures/data/dev
  query="a photo of a red circle"
  export SHOEBOX_CLIP_MODEL="${SHOEBOX_CLIP_MODEL:-$PWD/tests/fixtures/models/clip-dev}"
  export SHOEBOX_LIBRARY="${SHOEBOX_LIBRARY:-$PWD/target/demo-library}"
else
  folder="$1"
  query="${2:-a photo of a dog}"
fi

"$bin" add "$folder"
"$bin" index
"$bin" status
echo
echo "search: $query"
"$bin" search "$query" --limit 10
