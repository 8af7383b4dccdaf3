#!/usr/bin/env bash
# bench/gpu.sh — issue 13's device run, one command on a GPU machine (the lent H200: docs/cuda.md):
# build attnc (Release), run the GPU tests, then bench/gpu_torch.py: a check of every setup on one
# small case, and attnc's `cuda` backend against PyTorch's SDPA (flash / cuDNN) and flex_attention
# (torch.compile) — dense, causal, ALiBi, softcap, sliding window, documents; D = 128, 64;
# L = 4096, 16384; bf16 — as a table of times, TFLOP/s and ratios.  Meant to finish in 8 minutes.
#
#   bench/gpu.sh [--quick] [--build DIR] [--no-build] [--no-tests] [--budget S] [--dry-run]
#   bench/gpu.sh --self-check [--build DIR]   # here, no GPU: the commands, and the torch side on the CPU
#   bench/gpu.sh --fetch-deps                 # here, before the run: .gpu-deps/ with flex, bison, m4, libtcc
#
# --quick: D = 128, L = 4096 only.  --budget S: the whole run's seconds (480); cells left when it is
# spent are printed as skipped.  Environment: ATTNC_GPU_TESTS, the ctest -R pattern ('cuda/gpu|cuda/rt');
# ATTNC_TORCH_PYTHON, the python with torch (python3); OUT, a folder for the logs and gpu_bench.json
# (the device tool brings it back).  What the machine lacks is said on one line each; a failing build
# or attnc still leaves the torch columns, with attnc's error line in its cells.
set -u
cd "$(dirname "$0")/.." || exit 2
quick=() build=build-gpu no_build=0 no_tests=0 budget=480 dry=0 self=0 fetch=0
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=(--quick); shift ;;
    --build) build=$2; shift 2 ;;
    --no-build) no_build=1; shift ;;
    --no-tests) no_tests=1; shift ;;
    --budget) budget=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --self-check) self=1; shift ;;
    --fetch-deps) fetch=1; shift ;;
    *) echo "usage: bench/gpu.sh [--quick] [--build DIR] [--no-build] [--no-tests] [--budget S] [--dry-run]" \
            "| --self-check [--build DIR] | --fetch-deps" >&2; exit 2 ;;
  esac
done
start=$(date +%s)
tests=${ATTNC_GPU_TESTS:-cuda/gpu|cuda/rt}
py=${ATTNC_TORCH_PYTHON:-python3}
out=${OUT:-}
deps=.gpu-deps # Debian packages carried to the machine (--fetch-deps), unpacked under /tmp when needed

# --fetch-deps: the build dependencies the CUDA image may lack, as .deb files to carry (`carry: [".gpu-deps"]`)
if [ $fetch = 1 ]; then
  exclude=$(git rev-parse --git-path info/exclude) || exit 1 # ignored, yet carried by name
  mkdir -p "$deps" "$(dirname "$exclude")" && { grep -qxF "/$deps/" "$exclude" 2>/dev/null || echo "/$deps/" >>"$exclude"; }
  (cd "$deps" && apt-get download flex bison m4 libtcc-dev) || exit 1
  ls -l "$deps"
  exit 0
fi

exec 3>&1 # the terminal, also where a command's output goes to a log
run() { # print the command; run it unless --dry-run
  echo "+ $*" >&3
  [ $dry = 1 ] || "$@"
}
dry_note=""
[ $dry = 1 ] && dry_note=" (dry run: nothing ran)"

# --self-check: no GPU; the torch side's CPU smoke run (the check at float32 against `attnc run` on this
# build's default backend, and a tiny table) and the dry run's commands
if [ $self = 1 ]; then
  python3 bench/gpu_torch.py --dry-run --attnc "$build/attnc" --quick >/dev/null || { echo "FAIL the dry run"; exit 1; }
  if ! "$py" -c 'import torch, numpy' 2>/dev/null; then
    echo "no python with torch and numpy ($py; set ATTNC_TORCH_PYTHON): the CPU smoke run skipped"; exit 77
  fi
  exec "$py" bench/gpu_torch.py --device cpu --self-check --attnc "$build/attnc"
fi

# ---- what the machine has -----------------------------------------------------------------
missing=()
have() { command -v "$1" >/dev/null 2>&1; }
cmake_args=(-DCMAKE_BUILD_TYPE=Release)
if { ! have flex || ! have bison || [ ! -e /usr/include/libtcc.h ]; } && ls "$deps"/*.deb >/dev/null 2>&1; then
  # the carried packages, unpacked aside (unpacking into / can break the image)
  root=/tmp/attnc-gpu-deps
  for f in "$deps"/*.deb; do run dpkg -x "$f" "$root"; done
  export PATH=$root/usr/bin:$PATH M4=$root/usr/bin/m4 BISON_PKGDATADIR=$root/usr/share/bison
  [ -e /usr/include/libtcc.h ] || cmake_args+=(-DATTNC_TCC_INCLUDE_DIR="$root/usr/include"
                                               -DATTNC_TCC_LIBRARY="$root/usr/lib/x86_64-linux-gnu/libtcc.a")
fi
for tool in cmake ctest cc flex bison nvcc nvidia-smi; do have "$tool" || missing+=("$tool"); done
[ -e /usr/include/libtcc.h ] || [ -n "${root:-}" ] || missing+=("libtcc (cuda-emu, and the GPU tests' registration)")
"$py" -c 'import torch, numpy' 2>/dev/null || missing+=("torch+numpy in $py")
[ ${#missing[@]} -gt 0 ] && echo "MISSING: ${missing[*]}  (flex, bison, libtcc: bench/gpu.sh --fetch-deps here, carry .gpu-deps)"
have nvidia-smi && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader
have nvcc && nvcc --version | tail -1
[ -n "$out" ] && mkdir -p "$out"
log() { if [ -n "$out" ]; then echo "$out/$1"; else echo "/tmp/attnc-gpu-$1"; fi; }

# ---- build ------------------------------------------------------------------------------------
attnc=$build/attnc
if [ $no_build = 0 ]; then
  if have cmake && have flex && have bison; then
    if ! run timeout 300 cmake -S . -B "$build" "${cmake_args[@]}" >"$(log build.log)" 2>&1 ||
       ! run timeout 300 cmake --build "$build" -j16 >>"$(log build.log)" 2>&1; then
      echo "BUILD FAILED (last lines of $(log build.log)):"; tail -15 "$(log build.log)"
      attnc=""
    else
      echo "build: ok in $(($(date +%s) - start)) s ($build, Release)$dry_note"
    fi
  else
    echo "build: skipped (missing cmake, flex or bison)"; attnc=""
  fi
fi
[ -n "$attnc" ] && [ $dry = 0 ] && [ ! -x "$attnc" ] && { echo "no $attnc: attnc's columns stay empty"; attnc=""; }

# ---- the GPU tests ----------------------------------------------------------------------------
if [ $no_tests = 0 ] && [ -n "$attnc" ] && have ctest; then
  run timeout 200 ctest --test-dir "$build" -R "$tests" -j8 --timeout 120 --output-on-failure >"$(log ctest.log)" 2>&1
  echo "ctest -R '$tests': exit $?$dry_note"
  [ $dry = 1 ] || grep -E "tests passed|tests failed|\*\*\*|Failed|Not Run|Skipped|No tests were found" "$(log ctest.log)" | head -20
fi

# ---- the table --------------------------------------------------------------------------------
left=$((budget - ($(date +%s) - start)))
echo "time so far: $(($(date +%s) - start)) s; the table gets ${left} s"
args=(--device cuda "${quick[@]}" --deadline-epoch $((start + budget - 5)) ${attnc:+--attnc "$attnc"} ${out:+--out "$out"})
if [ $dry = 1 ]; then
  echo "+ $py bench/gpu_torch.py ${args[*]}"
  exec python3 bench/gpu_torch.py --dry-run "${args[@]}"
fi
set -o pipefail
PYTHONUNBUFFERED=1 "$py" bench/gpu_torch.py "${args[@]}" 2>&1 | tee "$(log table.log)"
rc=$?
echo "bench/gpu.sh: done in $(($(date +%s) - start)) s (exit $rc)"
exit $rc
