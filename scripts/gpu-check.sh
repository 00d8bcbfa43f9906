#!/usr/bin/env bash
# Build Shoebox with CUDA on any Linux machine (no system CUDA needed) and, where an NVIDIA GPU is
# present, time it and check that CPU and GPU embeddings agree.
#
# NVIDIA's nvcc, runtime, cuBLAS and cuRAND ship as PyPI wheels (CUDA 13): they go into a venv
# (default /tmp/shoebox-cuda), whose nvidia/cu13 folder is the CUDA_ROOT candle's build reads.
#   scripts/gpu-check.sh              build, then bench and compare where a GPU is present
#   CUDA_COMPUTE_CAP=90 scripts/gpu-check.sh    target another GPU (default: the GPU's own, else 80)
# Needs python3-venv, a C++ compiler (scripts/setup.sh installs both) and PyPI access for the
# wheels (on a machine without network, run it once where there is and carry $VENV over).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${SHOEBOX_CUDA_VENV:-/tmp/shoebox-cuda}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# The CUDA 13 wheels carry nvcc itself (the -cu12 ones only ptxas), all under nvidia/cu13.
"$VENV/bin/pip" install -q nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cublas nvidia-curand \
  nvidia-cuda-cccl
ROOT=$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')
[ -x "$ROOT/bin/nvcc" ] || { echo "gpu-check: no nvcc in $ROOT/bin" >&2; exit 1; }
# candle's build looks for lib64/ and for unversioned library names.
[ -e "$ROOT/lib64" ] || ln -s lib "$ROOT/lib64"
for lib in cudart cublas cublasLt curand nvrtc; do
  f=$(ls "$ROOT/lib/lib$lib.so."* 2>/dev/null | head -n1 || true)
  if [ -n "$f" ] && [ ! -e "$ROOT/lib/lib$lib.so" ]; then ln -s "$(basename "$f")" "$ROOT/lib/lib$lib.so"; fi
done
export CUDA_ROOT="$ROOT" CUDA_PATH="$ROOT" NVCC="$ROOT/bin/nvcc"
# cudarc 0.19 (candle's CUDA bindings) knows toolkits up to 13.4 and links them at run time: newer
# wheels build against the 13.4 API.
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13040}
export PATH="$ROOT/bin:$PATH"
export LD_LIBRARY_PATH="$ROOT/lib64:${LD_LIBRARY_PATH:-}"
# The driver library (libcuda) comes with the NVIDIA driver, not with the wheels: link against an
# empty stub whose soname is the driver's, so the binary loads the real one where it runs.
# The stub defines every driver function cudarc (candle's bindings) declares.
STUBS="$VENV/stubs"
if [ ! -e "$STUBS/libcuda.so" ]; then
  cargo fetch --locked >/dev/null
  CUDARC_VERSION=$(grep -A1 '^name = "cudarc"' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
  CUDARC_SRC=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-"$CUDARC_VERSION" | head -n1)
  mkdir -p "$STUBS"
  grep -ohE '\bfn cu[A-Z][A-Za-z0-9_]*' "$CUDARC_SRC/src/driver/sys/mod.rs" | sort -u \
    | sed 's/^fn \(.*\)$/int \1(void) { return 999; }/' > "$STUBS/stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$STUBS/libcuda.so" "$STUBS/stub.c"
fi
export LIBRARY_PATH="$ROOT/lib64:$STUBS:${LIBRARY_PATH:-}"
"$NVCC" --version | tail -n1

HAS_GPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  HAS_GPU=1
  nvidia-smi -L
  if [ -z "${CUDA_COMPUTE_CAP:-}" ]; then
    CUDA_COMPUTE_CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d '.')
  fi
fi
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80}
echo "gpu-check: building with --features cuda (compute capability $CUDA_COMPUTE_CAP)"
cargo build --release --features cuda --bin shoebox

if [ "$HAS_GPU" = 0 ]; then
  echo "gpu-check: built; no NVIDIA GPU here, so nothing to time"
  exit 0
fi

# The bench on the GPU and on the CPU, same random-weight model.
OUT=${OUT:-target/gpu-check}
mkdir -p "$OUT"
for dev in cuda cpu; do
  ./target/release/shoebox bench --device "$dev" --random-weights clip-vit-b-32 --photos 32 \
    --vectors 10000 --json > "$OUT/bench-$dev.json"
done
# CPU and GPU embeddings of the same text and image through the CLIP fixture must agree.
MODEL=tests/fixtures/models/clip-dev
IMG=tests/fixtures/data/dev/dev_0000.jpg
for dev in cuda cpu; do
  ./target/release/shoebox --library "$OUT/lib-$dev" --device "$dev" --clip-model "$MODEL" \
    embed --text "a photo of a red circle" "$IMG" --json > "$OUT/embed-$dev.json"
done
python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
a = json.load(open(f"{out}/embed-cuda.json")); b = json.load(open(f"{out}/embed-cpu.json"))
worst = 1.0
for x, y in zip(a, b):
    cos = sum(p * q for p, q in zip(x["embedding"], y["embedding"]))
    worst = min(worst, cos)
    print(f"{x['kind']:5} {x['input'][:40]:40} cosine cpu/gpu {cos:.6f}")
print(f"gpu-check: worst cosine {worst:.6f}")
sys.exit(0 if worst >= 0.999 else 1)
EOF
python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
g = json.load(open(f"{out}/bench-cuda.json")); c = json.load(open(f"{out}/bench-cpu.json"))
print(f"image model: GPU {g['index']['model_img_s']:.1f} img/s, CPU {c['index']['model_img_s']:.1f} img/s "
      f"({g['index']['model_img_s'] / c['index']['model_img_s']:.1f}x)")
print(f"index end to end: GPU {g['index']['end_to_end_img_s']:.1f} img/s, CPU {c['index']['end_to_end_img_s']:.1f} img/s")
EOF
