#!/usr/bin/env bash
# GPU check kit, build side: run HERE (a machine with Deno, node_modules and internet) before a
# device call; bench/gpu/check.sh runs it there. Makes the git-ignored folders
#   .gpukit/  deno.xz (this Deno binary, xz: the GPU machine has none), r1.bundle.js
#             (bench/training.ts with every npm dependency inlined: no node_modules there),
#             gpu_profile.bundle.js (bench/gpu_profile.ts, when it exists), reference.jsonl
#             (wasm's first-step losses), MANIFEST (Deno version, commit, whether the tree was
#             dirty, checksums);
#   .gl/      the Vulkan/EGL loader debs of the device README's recipe (skipped when apt fails).
# The bundle is checked before it counts: copied alone into an empty folder and run there on the
# webgpu backend (a one-step batch-8 run), it must print a webgpu result.
# Rebuild after changing anything the bundle holds (bench/, stages/lib/): it is a snapshot.
# Deno: `deno` on PATH, else `npx -y deno@2.9.6` (the README's way).
# Environment: KME_GPU_KIT_SKIP_VERIFY=1 skips that check (it needs a WebGPU adapter here);
# KME_GPU_KIT_REF ["r1:512 c1:32"]: the references to compute, case:batch[:fallback batch]
# (with a fallback, a run that fails or passes KME_GPU_KIT_REF_TIMEOUT [200 s] is redone at the
# fallback batch); KME_GPU_KIT_REF_THREADS [2].
set -euo pipefail
cd "$(dirname "$0")/../.."
KIT=.gpukit
mkdir -p "$KIT"

# ---- Deno, compressed once per version (xz -6 of ~95 MB takes a minute on two cores).
if command -v deno >/dev/null; then
  DENO_BIN=$(readlink -f "$(command -v deno)")
else
  DENO_BIN=$(readlink -f "$(npx -y deno@2.9.6 eval 'console.log(Deno.execPath())' | tail -1)")
fi
VERSION=$("$DENO_BIN" --version | head -1)
if [ ! -f "$KIT/deno.xz" ] || [ "$(cat "$KIT/deno.version" 2>/dev/null)" != "$VERSION" ]; then
  echo "compressing $DENO_BIN ($VERSION)"
  xz -T2 -6 -c "$DENO_BIN" >"$KIT/deno.xz.tmp"
  mv "$KIT/deno.xz.tmp" "$KIT/deno.xz"
  echo "$VERSION" >"$KIT/deno.version"
else
  echo "deno.xz is current ($VERSION)"
fi

# ---- The bundle: bench/training.ts bundles as is (npm packages inlined; the wasm backend's
# binaries and the optional tfjs-node are not, but webgpu needs neither).
"$DENO_BIN" bundle --quiet --platform deno -o "$KIT/r1.bundle.js" bench/training.ts
# The step profile (check.sh runs it first); another engineer's file: absent is not fatal.
rm -f "$KIT/gpu_profile.bundle.js"
if [ -f bench/gpu_profile.ts ]; then
  if "$DENO_BIN" bundle --quiet --platform deno -o "$KIT/gpu_profile.bundle.js" \
    bench/gpu_profile.ts; then
    echo "bundled bench/gpu_profile.ts"
  else
    rm -f "$KIT/gpu_profile.bundle.js"
    echo "bench/gpu_profile.ts did not bundle: the kit records the profile as an error"
  fi
else
  echo "no bench/gpu_profile.ts: the kit records the profile as an error"
fi
if [ "${KME_GPU_KIT_SKIP_VERIFY:-0}" != 1 ]; then
  tmp=$(mktemp -d)
  cp "$KIT/r1.bundle.js" "$tmp/"
  out=$(cd "$tmp" && timeout 300 "$DENO_BIN" run --allow-all --no-config --no-lock --quiet \
    r1.bundle.js run webgpu clip 0 0 1 1 "" 8 | tail -1)
  rm -rf "$tmp"
  echo "bundle check (empty folder, no node_modules): ${out:0:300}"
  case $out in
  *'"backend":"webgpu"'*) ;;
  *)
    echo "the bundle did not give a webgpu result" >&2
    exit 1
    ;;
  esac
fi

# ---- Reference losses: the first step's loss on wasm here, per case, similarity and batch, for
# the device to compare with: a fast webgpu figure counts only if webgpu computes the same thing.
# (On llvmpipe, whose maxStorageBufferBindingSize is 128 MiB, kme at batch 512 gave a first
# loss 0.045 off wasm's while batch 256 agreed to 1e-6: the 8192 x 8192 f32 logits, 256 MiB,
# exceed that binding limit; the backend now refuses such a tensor, and a GPU's limit is larger,
# but the check says so.) C1's reference is at batch 32: its wasm step at batch 256 takes more
# than 6 minutes for kme on this 2-core machine (killed unfinished at 5:55, RSS 4.3 GB);
# check.sh then runs one webgpu step of C1 at batch 32 to compare. Kept while the bundle and
# KME_GPU_KIT_REF are unchanged.
REF_SPEC=${KME_GPU_KIT_REF:-r1:512 c1:32}
REF_TIMEOUT=${KME_GPU_KIT_REF_TIMEOUT:-200}
key="$(sha256sum "$KIT/r1.bundle.js" | cut -c1-16) $REF_SPEC"
reference() { # case sim batch: one wasm step; its JSON line on stdout (nothing on failure)
  local line
  line=$(timeout -k 5 "$REF_TIMEOUT" "$DENO_BIN" run --allow-all --quiet bench/training.ts \
    run wasm "$2" "${KME_GPU_KIT_REF_THREADS:-2}" 0 1 1 "" "$3" "$1" 2>/dev/null | tail -1) ||
    return 1
  case $line in *'"losses":['[0-9-]*) echo "$line" ;; *) return 1 ;; esac
}
if [ "$(cat "$KIT/reference.key" 2>/dev/null)" != "$key" ]; then
  : >"$KIT/reference.jsonl.tmp"
  for spec in $REF_SPEC; do
    IFS=: read -r kase batch fallback <<<"$spec"
    for sim in clip kme; do
      start=$SECONDS
      if reference "$kase" "$sim" "$batch" >>"$KIT/reference.jsonl.tmp"; then
        echo "reference $kase $sim $batch: $((SECONDS - start)) s"
      elif [ -n "$fallback" ]; then
        echo "reference $kase $sim $batch failed or passed ${REF_TIMEOUT} s: batch $fallback"
        reference "$kase" "$sim" "$fallback" >>"$KIT/reference.jsonl.tmp" ||
          echo "reference $kase $sim $fallback failed too: no reference for it" >&2
      else
        echo "reference $kase $sim $batch failed: no reference for it" >&2
      fi
    done
  done
  mv "$KIT/reference.jsonl.tmp" "$KIT/reference.jsonl"
  echo "$key" >"$KIT/reference.key"
fi
echo "reference first-step losses (wasm):"
sed 's/.*"similarity":"\([a-z]*\)","case":"\([a-z0-9]*\)","batch":\([0-9]*\).*"losses":\[\([^],]*\).*/  \2 \1 batch \3: \4/' \
  "$KIT/reference.jsonl"

git ls-files bench stages deno.json deno.lock | sort >"$KIT/sources.txt"
{
  echo "deno: $VERSION"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(
    [ -n "$(git status --porcelain -- bench stages 2>/dev/null)" ] && echo " + uncommitted changes"
  )"
  echo "built: $(date -u +%FT%TZ)"
  # check.sh recomputes this over the carried tree (which has no .git): a mismatch means the
  # bundle is not the code that travelled with it.
  echo "sources: $(tr '\n' '\0' <"$KIT/sources.txt" | xargs -0 sha256sum | sha256sum | cut -c1-16)"
  (cd "$KIT" && sha256sum deno.xz ./*.bundle.js | awk '{print "sha256 " $2 ": " substr($1, 1, 16)}')
} >"$KIT/MANIFEST"

# ---- Vulkan/EGL loaders (device README): amd64 debs, whatever this machine's architecture.
if [ -z "$(ls .gl/*.deb 2>/dev/null)" ]; then
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086 # $o is several options
  if apt-get $o update >/dev/null 2>&1 &&
    (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 \
      libgles2 >/dev/null 2>&1); then
    echo "downloaded $(ls .gl/*.deb | wc -l) debs into .gl"
  else
    echo "apt-get download failed: no .gl (check.sh then relies on the machine's own loader)"
  fi
else
  echo ".gl already holds $(ls .gl/*.deb | wc -l) debs"
fi

# ---- Sizes: the call's working tree (tracked + untracked-not-ignored + carried) must stay
# under 64 MiB.
cat "$KIT/MANIFEST"
du -ch "$KIT"/* .gl 2>/dev/null | sed 's/^/  /'
kit=$(du -cb "$KIT" .gl 2>/dev/null | tail -1 | cut -f1)
tree=$({
  git ls-files -z
  git ls-files -z --others --exclude-standard
} | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" {s += $1} END {print s + 0}')
echo "kit + .gl: $((kit / 1024)) KiB; working tree: $((tree / 1024)) KiB;" \
  "together $(((kit + tree) / 1048576)) MiB of 64"
if [ $((kit + tree)) -gt $((60 * 1048576)) ]; then
  echo "too close to the 64 MiB limit" >&2
  exit 1
fi
