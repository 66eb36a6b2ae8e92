#!/usr/bin/env bash
# GPU check kit, device side (issue 7's GPU target: R1 training on webgpu at batch 512 reaches at
# least 25% of PyTorch CUDA's samples/s on the same machine in the same run). Run from the repo
# root as the device command, with `.gpukit` (bench/gpu/make_kit.sh) and `.gl` carried; see
# bench/gpu/README.md. The GPU machine has no Deno, no node_modules and no internet, so ours runs
# as .gpukit/r1.bundle.js (bench/training.ts bundled) on .gpukit/deno.xz (this repo's Deno).
#
# Measurements alternate ours / PyTorch, most important first (clip 512, kme 512, then 128), each
# under `timeout` and all under one time budget, so a hung or slow webgpu run cannot eat the
# lease. Every measurement becomes a JSON line in $OUT/gpu_check.jsonl (./gpu_check.jsonl when
# OUT is unset); a table and a "summary" line close the run.
#
# Environment (defaults in brackets): KME_GPU_CHECK_SIMS ["clip kme"], KME_GPU_CHECK_BATCHES
# ["512 128"], KME_GPU_CHECK_WARMUP [3], KME_GPU_CHECK_WINDOWS [3], KME_GPU_CHECK_STEPS [5],
# KME_GPU_CHECK_PEER_STEPS [4 x STEPS on CUDA, STEPS on cpu], KME_GPU_CHECK_PEER_THREADS [2],
# KME_GPU_CHECK_TIMEOUT [150 s per measurement], KME_GPU_CHECK_BUDGET [360 s from the start: no
# measurement starts after it], KME_GPU_CHECK_UNPACK_GL [1 = unpack .gl/*.deb into / when
# present], KME_GPU_CHECK_PYTHON [python3, else /usr/bin/python3: the first that imports torch].
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD

SIMS=${KME_GPU_CHECK_SIMS:-clip kme}
BATCHES=${KME_GPU_CHECK_BATCHES:-512 128}
WARMUP=${KME_GPU_CHECK_WARMUP:-3}
WINDOWS=${KME_GPU_CHECK_WINDOWS:-3}
STEPS=${KME_GPU_CHECK_STEPS:-5}
PEER_THREADS=${KME_GPU_CHECK_PEER_THREADS:-2}
TIMEOUT=${KME_GPU_CHECK_TIMEOUT:-150}
BUDGET=${KME_GPU_CHECK_BUDGET:-360}
OUTDIR=${OUT:-$ROOT}
JSONL=$OUTDIR/gpu_check.jsonl
TMP=$(mktemp -d /tmp/kme-gpu-check.XXXXXX)
mkdir -p "$OUTDIR" && : >"$JSONL"
echo "== GPU check kit: $(date -u +%FT%TZ) on $(uname -m); results -> $JSONL"

# ---- Vulkan loader (the device README's recipe): the image may lack libvulkan.so.1.
if [ "${KME_GPU_CHECK_UNPACK_GL:-1}" = 1 ] && compgen -G ".gl/*.deb" >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    echo "unpacked $(ls .gl/*.deb | wc -l) debs from .gl into /"
  else
    echo "not root: .gl not unpacked"
  fi
else
  echo "no .gl debs (or KME_GPU_CHECK_UNPACK_GL=0): using the machine's own Vulkan loader, if any"
fi
echo "libvulkan: $(ldconfig -p 2>/dev/null | grep -o 'libvulkan.so.1 .*' | head -1 || true)"
# The NVIDIA ICD may sit only under the driver's mount; the loader does not look there itself.
NV_ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$NV_ICD" ] &&
  ! grep -lqs nvidia /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json \
    /usr/local/share/vulkan/icd.d/*.json; then
  export VK_DRIVER_FILES=$NV_ICD VK_ICD_FILENAMES=$NV_ICD
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  echo "VK_DRIVER_FILES=$NV_ICD"
fi

# ---- Deno from the kit (no Deno on the GPU machine); xz may be missing, Python's lzma is not.
DENO=$TMP/deno
if [ ! -f .gpukit/deno.xz ] || [ ! -f .gpukit/r1.bundle.js ]; then
  echo "missing .gpukit/deno.xz or .gpukit/r1.bundle.js: run bash bench/gpu/make_kit.sh here and" \
    "carry .gpukit" >&2
  exit 2
fi
if command -v xz >/dev/null; then
  xz -dc .gpukit/deno.xz >"$DENO"
else
  python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' \
    .gpukit/deno.xz "$DENO"
fi
chmod +x "$DENO"
export DENO_DIR=$TMP/deno_dir DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1 NO_COLOR=1
"$DENO" --version >"$TMP/deno_version" 2>&1 || {
  echo "the kit's deno does not run:" >&2
  cat "$TMP/deno_version" >&2
  exit 2
}
echo "deno: $(head -1 "$TMP/deno_version")"
echo "kit: $(tr '\n' ' ' <.gpukit/MANIFEST 2>/dev/null)"
if [ -f .gpukit/sources.txt ]; then
  now=$(tr '\n' '\0' <.gpukit/sources.txt | xargs -0 sha256sum 2>/dev/null | sha256sum | cut -c1-16)
  if grep -q "^sources: $now\$" .gpukit/MANIFEST; then
    echo "sources: the carried tree is what the kit was built from ($now)"
  else
    echo "sources: MISMATCH ($now here): the kit is stale; rebuild it (bash bench/gpu/make_kit.sh)"
  fi
fi

# ---- Python with PyTorch, and where the peer runs.
PY=""
for p in ${KME_GPU_CHECK_PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && timeout -k 5 60 "$p" -c "import torch" 2>/dev/null; then
    PY=$p
    break
  fi
done
if [ -z "$PY" ]; then
  echo "no python3 with torch found: the peer cannot run" >&2
  PY=python3
fi
if timeout -k 5 60 "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
  2>/dev/null; then
  PEER_DEVICE=cuda
  PEER_STEPS=${KME_GPU_CHECK_PEER_STEPS:-$((4 * STEPS))} # a CUDA step is cheap: steadier windows
else
  PEER_DEVICE=cpu
  PEER_STEPS=${KME_GPU_CHECK_PEER_STEPS:-$STEPS}
  echo "torch.cuda.is_available() is false: the peer falls back to --device cpu (no GPU target)"
fi

# ---- The machine: GPU, and the WebGPU adapter our code will get.
if command -v nvidia-smi >/dev/null; then
  timeout -k 5 30 nvidia-smi -L >"$TMP/nvidia_smi" 2>&1
else
  echo "nvidia-smi not found" >"$TMP/nvidia_smi"
fi
cat "$TMP/nvidia_smi"
timeout -k 5 60 "$DENO" run --allow-all --no-config --no-lock bench/gpu/adapter.ts \
  >"$TMP/adapter" 2>&1
echo "webgpu adapter: $(cut -c1-400 "$TMP/adapter")"
timeout -k 5 60 "$PY" bench/gpu/kit.py env --adapter "$TMP/adapter" --nvidia-smi "$TMP/nvidia_smi" \
  --manifest .gpukit/MANIFEST --deno-version "$TMP/deno_version" --peer-device "$PEER_DEVICE" \
  >>"$JSONL"

# ---- Measurements.
measure() { # who sim batch
  local who=$1 sim=$2 batch=$3 left t rc t0 t1
  left=$((BUDGET - SECONDS))
  if [ "$left" -lt 20 ]; then
    "$PY" bench/gpu/kit.py record --who "$who" --sim "$sim" --batch "$batch" --rc -1 \
      --seconds 0 --timeout 0 | tee -a "$JSONL"
    return
  fi
  t=$((left < TIMEOUT ? left : TIMEOUT))
  t0=$(date +%s.%N)
  if [ "$who" = ours ]; then
    timeout -k 5 "$t" "$DENO" run --allow-all --no-config --no-lock --quiet .gpukit/r1.bundle.js \
      run webgpu "$sim" 0 "$WARMUP" "$WINDOWS" "$STEPS" "" "$batch" >"$TMP/out" 2>"$TMP/err"
  else
    PYTHONDONTWRITEBYTECODE=1 timeout -k 5 "$t" "$PY" bench/peers/r1_torch.py \
      --device "$PEER_DEVICE" --batch "$batch" --similarity "$sim" --threads "$PEER_THREADS" \
      --warmup "$WARMUP" --windows "$WINDOWS" --steps-per-window "$PEER_STEPS" \
      >"$TMP/out" 2>"$TMP/err"
  fi
  rc=$?
  t1=$(date +%s.%N)
  "$PY" bench/gpu/kit.py record --who "$who" --sim "$sim" --batch "$batch" --rc "$rc" \
    --seconds "$(echo "$t1 - $t0" | awk '{print $1 - $3}')" --timeout "$t" \
    --stdout "$TMP/out" --stderr "$TMP/err" | tee -a "$JSONL" | cut -c1-300
}

echo "== measuring: sims [$SIMS], batches [$BATCHES]; ours warmup $WARMUP, $WINDOWS x $STEPS" \
  "steps; peer ($PEER_DEVICE) $WINDOWS x $PEER_STEPS; timeout ${TIMEOUT}s each, budget ${BUDGET}s"
for batch in $BATCHES; do
  for sim in $SIMS; do
    measure ours "$sim" "$batch"
    measure peer "$sim" "$batch"
  done
done

echo "== result ($SECONDS s in all)"
"$PY" bench/gpu/kit.py table "$JSONL" --reference .gpukit/reference.jsonl
rm -rf "$TMP"
