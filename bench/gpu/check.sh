#!/usr/bin/env bash
# GPU check kit, device side (issue 13): ours on webgpu against PyTorch CUDA, in one device call
# of about 5 minutes. Run from the repo root as the device command, with `.gpukit`
# (bench/gpu/make_kit.sh) and `.gl` carried; see bench/gpu/README.md. The GPU machine has no
# Deno, no node_modules and no internet, so ours runs as .gpukit/*.bundle.js (bench/training.ts,
# bench/gpu_profile.ts bundled) on .gpukit/deno.xz (this repo's Deno).
#
# In order, most important first, each under `timeout` and all under one time budget, so that a
# hung or slow webgpu run cannot eat the lease:
#   1. the step profile (bench/gpu_profile.ts) of R1 clip and kme at batch 512;
#   2. round 1: ours then PyTorch (--device cuda) on the same work, for each case:batch (R1 at
#      512, C1 at 256) and similarity (clip, kme);
#   3. reference checks: a one-step webgpu run at each (case, similarity, batch) of
#      .gpukit/reference.jsonl that no speed run covers (C1's wasm reference is at batch 32
#      when batch 256 took too long where the kit was built);
#   4. round 2 (and further rounds): ours, PyTorch again (A B A B).
# Every measurement becomes a JSON line in $OUT/gpu_check.jsonl (./gpu_check.jsonl when OUT is
# unset), each profile a line there plus its JSON file; the table (ratios, first losses against
# wasm's, targets: R1 and C1 >= 25% of PyTorch CUDA, coco.yaml's 20000 steps < 2 h at C1's
# speed) and a "summary" line close the run.
#
# Environment (defaults in brackets): KME_GPU_CHECK_CASES ["r1:512 c1:256": case:batch],
# KME_GPU_CHECK_SIMS ["clip kme"], KME_GPU_CHECK_ROUNDS [2], KME_GPU_CHECK_WARMUP [2],
# KME_GPU_CHECK_WINDOWS [3], KME_GPU_CHECK_STEPS [4], KME_GPU_CHECK_PEER_WARMUP [5 on CUDA],
# KME_GPU_CHECK_PEER_STEPS [5 x STEPS on CUDA, STEPS on cpu], KME_GPU_CHECK_PEER_THREADS [2],
# KME_GPU_CHECK_TIMEOUT [100 s per measurement], KME_GPU_CHECK_BUDGET [285 s from the start:
# nothing runs past it, and nothing starts with under 20 s left], KME_GPU_CHECK_PROFILE ["r1:512"
# : case:batch list to profile for each similarity; "" = none], KME_GPU_CHECK_PROFILE_STEPS [3],
# KME_GPU_CHECK_PROFILE_TIMEOUT [50 s each], KME_GPU_CHECK_REFCHECK [1 = step 3],
# KME_GPU_CHECK_UNPACK_GL [1 = unpack .gl/*.deb into / when present], KME_GPU_CHECK_PYTHON
# [python3, else /usr/bin/python3: the first that imports torch].
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD

CASES=${KME_GPU_CHECK_CASES:-r1:512 c1:256}
SIMS=${KME_GPU_CHECK_SIMS:-clip kme}
ROUNDS=${KME_GPU_CHECK_ROUNDS:-2}
WARMUP=${KME_GPU_CHECK_WARMUP:-2}
WINDOWS=${KME_GPU_CHECK_WINDOWS:-3}
STEPS=${KME_GPU_CHECK_STEPS:-4}
PEER_THREADS=${KME_GPU_CHECK_PEER_THREADS:-2}
TIMEOUT=${KME_GPU_CHECK_TIMEOUT:-100}
BUDGET=${KME_GPU_CHECK_BUDGET:-285}
PROFILE=${KME_GPU_CHECK_PROFILE-r1:512}
PROFILE_STEPS=${KME_GPU_CHECK_PROFILE_STEPS:-3}
PROFILE_TIMEOUT=${KME_GPU_CHECK_PROFILE_TIMEOUT:-50}
REFCHECK=${KME_GPU_CHECK_REFCHECK:-1}
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
  PEER_STEPS=${KME_GPU_CHECK_PEER_STEPS:-$((5 * STEPS))} # a CUDA step is cheap: steadier windows
  PEER_WARMUP=${KME_GPU_CHECK_PEER_WARMUP:-5}
else
  PEER_DEVICE=cpu
  PEER_STEPS=${KME_GPU_CHECK_PEER_STEPS:-$STEPS}
  PEER_WARMUP=${KME_GPU_CHECK_PEER_WARMUP:-$WARMUP}
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
seconds_since() { echo "$1 $(date +%s.%N)" | awk '{printf "%.2f", $2 - $1}'; }
# The time a run may take now: its own limit, cut to what the budget has left; 0 = do not start.
allowance() { # limit
  local left=$((BUDGET - SECONDS))
  if [ "$left" -lt 20 ]; then echo 0; else echo $((left < $1 ? left : $1)); fi
}

profile() { # case batch sim
  local kase=$1 batch=$2 sim=$3 t rc t0 json
  json=$OUTDIR/gpu_profile_${kase}_${sim}_${batch}.json
  t=$(allowance "$PROFILE_TIMEOUT")
  t0=$(date +%s.%N)
  : >"$TMP/out"
  if [ ! -f .gpukit/gpu_profile.bundle.js ]; then
    echo "no .gpukit/gpu_profile.bundle.js (bench/gpu_profile.ts was absent or did not bundle)" \
      >"$TMP/err"
    rc=-2
  elif [ "$t" = 0 ]; then
    rc=-1
  else
    timeout -k 5 "$t" "$DENO" run --allow-all --no-config --no-lock --quiet \
      .gpukit/gpu_profile.bundle.js --case "$kase" --sim "$sim" --batch "$batch" \
      --steps "$PROFILE_STEPS" --json "$json" >"$TMP/out" 2>"$TMP/err"
    rc=$?
  fi
  sed 's/^/  | /' "$TMP/out" | head -40
  "$PY" bench/gpu/kit.py profile --case "$kase" --sim "$sim" --batch "$batch" --rc "$rc" \
    --seconds "$(seconds_since "$t0")" --timeout "$t" --json "$json" --stdout "$TMP/out" \
    --stderr "$TMP/err" | tee -a "$JSONL" | cut -c1-300
}

measure() { # who case sim batch [purpose]
  local who=$1 kase=$2 sim=$3 batch=$4 purpose=${5:-speed} t rc t0
  t=$(allowance "$TIMEOUT")
  t0=$(date +%s.%N)
  if [ "$t" = 0 ]; then
    rc=-1
  elif [ "$purpose" = refcheck ]; then # one step, read back: its loss against wasm's
    timeout -k 5 "$t" "$DENO" run --allow-all --no-config --no-lock --quiet .gpukit/r1.bundle.js \
      run webgpu "$sim" 0 1 0 0 "" "$batch" "$kase" >"$TMP/out" 2>"$TMP/err"
    rc=$?
  elif [ "$who" = ours ]; then
    timeout -k 5 "$t" "$DENO" run --allow-all --no-config --no-lock --quiet .gpukit/r1.bundle.js \
      run webgpu "$sim" 0 "$WARMUP" "$WINDOWS" "$STEPS" "" "$batch" "$kase" \
      >"$TMP/out" 2>"$TMP/err"
    rc=$?
  else
    PYTHONDONTWRITEBYTECODE=1 timeout -k 5 "$t" "$PY" bench/peers/r1_torch.py --case "$kase" \
      --device "$PEER_DEVICE" --batch "$batch" --similarity "$sim" --threads "$PEER_THREADS" \
      --warmup "$PEER_WARMUP" --windows "$WINDOWS" --steps-per-window "$PEER_STEPS" \
      >"$TMP/out" 2>"$TMP/err"
    rc=$?
  fi
  "$PY" bench/gpu/kit.py record --who "$who" --purpose "$purpose" --case "$kase" --sim "$sim" \
    --batch "$batch" --rc "$rc" --seconds "$(seconds_since "$t0")" --timeout "$t" \
    --stdout "$TMP/out" --stderr "$TMP/err" | tee -a "$JSONL" | cut -c1-300
}

round() { # n
  echo "== round $1 of $ROUNDS ($SECONDS s)"
  for cb in $CASES; do
    for sim in $SIMS; do
      measure ours "${cb%%:*}" "$sim" "${cb##*:}"
      measure peer "${cb%%:*}" "$sim" "${cb##*:}"
    done
  done
}

echo "== plan: profile [$PROFILE] x [$SIMS] ($PROFILE_STEPS steps, ${PROFILE_TIMEOUT}s each);" \
  "cases [$CASES] x sims [$SIMS] x $ROUNDS rounds, ours warmup $WARMUP, $WINDOWS x $STEPS" \
  "steps; peer ($PEER_DEVICE) warmup $PEER_WARMUP, $WINDOWS x $PEER_STEPS; timeout ${TIMEOUT}s" \
  "each, budget ${BUDGET}s"
for cb in $PROFILE; do
  for sim in $SIMS; do
    echo "== profile ${cb%%:*} $sim ${cb##*:} ($SECONDS s)"
    profile "${cb%%:*}" "${cb##*:}" "$sim"
  done
done
round 1
if [ "$REFCHECK" = 1 ]; then
  "$PY" bench/gpu/kit.py refchecks --reference .gpukit/reference.jsonl --measured "$CASES" \
    >"$TMP/refchecks"
  mapfile -t checks <"$TMP/refchecks"
  for c in "${checks[@]}"; do
    read -r kase sim batch <<<"$c"
    echo "== reference check: $kase $sim at batch $batch, one webgpu step ($SECONDS s)"
    measure ours "$kase" "$sim" "$batch" refcheck
  done
fi
for ((r = 2; r <= ROUNDS; r++)); do round "$r"; done

echo "== result ($SECONDS s in all)"
"$PY" bench/gpu/kit.py table "$JSONL" --reference .gpukit/reference.jsonl
rm -rf "$TMP"
