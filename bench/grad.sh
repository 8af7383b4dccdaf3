#!/usr/bin/env bash
# bench/grad.sh — the backward pass (issue 12's figures), all measured in
# this one run (the machine is shared: only ratios within a run mean anything).
#
#   bench/grad.sh [--backend NAME] [--quick] [--build DIR] [--rounds N]
#
# Causal and dense, D = 64 and 128, L = 1024, 4096 (and 16384 without
# --quick), B = 1, H = 8, one thread: forward and backward time per call,
# backward GFLOP/s counting 10 * D * kept pairs (attnc bench --grad), as a
# fraction of the single-core FMA peak measured here (goal >= 0.50), and
# backward / forward time (goal <= 3), and the backward run's peak RSS (the
# whole process: inputs, outputs and the pass's buffers; goal O(L)); each
# time the least of --rounds (default 2) runs taking turns.  With PyTorch
# importable by $ATTNC_TORCH_PYTHON (a virtual environment's python; never needed to
# build or test), its CPU SDPA backward on the same shapes in the same run,
# and attnc's speed-up over it (goal >= 1.5).
set -u
cd "$(dirname "$0")/.."
backend="" quick=0 build=build rounds=2
while [ $# -gt 0 ]; do
  case $1 in
    --backend) backend=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --build) build=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: bench/grad.sh [--backend NAME] [--quick] [--build DIR] [--rounds N]" >&2; exit 2 ;;
  esac
done
cmake --build "$build" --target attnc bench_fma_peak -j"$(nproc)" >/dev/null || exit 1
attnc=$build/attnc
backend_flag=()
[ -n "$backend" ] && backend_flag=(--backend "$backend")
py=${ATTNC_TORCH_PYTHON:-}
if [ -n "$py" ] && ! "$py" -c 'import torch' 2>/dev/null; then py=""; fi

# the best of 5 (the machine is shared: a slow one is someone else's load)
peak=$(for _ in 1 2 3 4 5; do "$build/bench_fma_peak"; done | awk '$1 > p {p = $1} END {print p}')
echo "date: $(date -u "+%Y-%m-%d %H:%M UTC")"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
echo "single-core FMA peak: $peak GFLOP/s"
[ -z "$py" ] && echo "PyTorch: not measured (set ATTNC_TORCH_PYTHON to a python that imports torch)"

lengths="1024 4096 16384"
[ $quick = 1 ] && lengths="1024 4096"

# bench_one VARIANT L D [--grad] -> "ms gflops backend rss_mib"
bench_one() {
  local variant=$1 L=$2 D=$3
  shift 3
  timeout 1200 "$attnc" bench "bench/variants/$variant.attn" --shape "B=1,H=8,Lq=$L,Lk=$L,D=$D" --threads 1 \
    "${backend_flag[@]}" "$@" 2>&1 | awk '/^time\/call/ {ms=$2} /^GFLOP/ {g=$2} /^backward pass, backend|^backend/ {b=$2 == "pass," ? $4 : $2; gsub(",", "", b)}
      /^peak RSS/ {r=$3} END {if (ms == "") print "- - - -"; else print ms, g, b, (r == "" ? "-" : r)}'
}

# least LINE1 LINE2 -> the bench_one line with the smaller ms (either may be empty or "-")
least() {
  printf '%s\n%s\n' "$1" "$2" | awk 'NF && $1 != "-" && (b == "" || $1 + 0 < m) {b = $0; m = $1 + 0}
    END {print (b == "" ? "- - - -" : b)}'
}

# torch_backward L D CAUSAL -> ms of SDPA's backward (median of 5)
torch_backward() {
  [ -z "$py" ] && { echo "-"; return; }
  "$py" - "$1" "$2" "$3" <<'PY'
import sys, time, torch
L, D, causal = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
torch.set_num_threads(1)
q, k, v = (torch.randn(1, 8, L, D, requires_grad=True) for _ in range(3))
times = []
for _ in range(6):
    o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    g = torch.randn_like(o)
    t = time.perf_counter(); o.backward(g); times.append(time.perf_counter() - t)
    q.grad = k.grad = v.grad = None
print("%.3f" % (sorted(times[1:])[2] * 1e3))
PY
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
echo
echo "| variant | D | L | forward ms | backward ms | backward / forward | backward GFLOP/s | of FMA peak | backward peak RSS MiB | SDPA backward ms | SDPA / attnc |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for D in 64 128; do
  for L in $lengths; do
    for variant in dense causal; do
      # the least time of each over the rounds, forward and backward runs taking
      # turns: other jobs on the machine only ever slow a run down, and a long
      # backward run (seconds a call at L = 16384) must not be set against a
      # forward run timed in a quieter minute
      fbest="" bbest=""
      for _ in $(seq "$rounds"); do
        fbest=$(least "$fbest" "$(bench_one "$variant" "$L" "$D")")
        bbest=$(least "$bbest" "$(bench_one "$variant" "$L" "$D" --grad)")
      done
      read -r fms _ _ _ <<<"$fbest"
      read -r bms bg used rss <<<"$bbest"
      tms=$(torch_backward "$L" "$D" $([ $variant = causal ] && echo 1 || echo 0))
      echo "| $variant ($used) | $D | $L | $fms | $bms | $(ratio "$bms" "$fms") | $bg | $(ratio "$bg" "$peak") | $rss | $tms | $(ratio "$tms" "$bms") |"
    done
  done
done
