#!/usr/bin/env bash
# bench/run.sh — attnc's kernels against a naive C baseline and the FMA peak,
# all measured in this one run (the machine is shared: only ratios within a
# run mean anything).
#
#   bench/run.sh [--backend NAME] [--quick] [--build DIR] [--dtype f32|f16|bf16] [--layout bhld|blhd]
#
# --dtype and --layout store Q, K, V and O that way (the kernels compute in
# float32 either way); run it once per setting and compare the tables.
# --quick stops at L = 4096 and skips D = 64.  Prints a markdown table:
# time per call, GFLOP/s (4 * D * kept pairs), fraction of the single-core
# FMA peak, and the ratios issue 4 asks for.
set -u
cd "$(dirname "$0")/.."
backend="" quick=0 build=build storage=()
while [ $# -gt 0 ]; do
  case $1 in
    --backend) backend=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --build) build=$2; shift 2 ;;
    --dtype|--layout) storage+=("$1" "$2"); shift 2 ;;
    *) echo "usage: bench/run.sh [--backend NAME] [--quick] [--build DIR] [--dtype T] [--layout L]" >&2; exit 2 ;;
  esac
done
cmake --build "$build" --target attnc npyrand bench_naive bench_fma_peak -j"$(nproc)" >/dev/null || exit 1
attnc=$build/attnc
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
backend_flag=()
[ -n "$backend" ] && backend_flag=(--backend "$backend")

peak=$("$build/bench_fma_peak" | awk '{print $1}')
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
echo "single-core FMA peak: $peak GFLOP/s"

lengths="1024 4096 16384"
dims="64 128"
[ $quick = 1 ] && lengths="1024 4096" && dims="128"

# bench_one VARIANT L D THREADS -> "ms gflops compile_ms peak_rss_mib"
bench_one() {
  local variant=$1 L=$2 D=$3 threads=$4 extra=()
  case $variant in
    natten2d) extra=(--param width=$(awk -v l="$L" 'BEGIN { print int(sqrt(l) + 0.5) }')) ;;
    document)
      "$build/npyrand" "$work/doc$L.npy" i4 "$L" --range 0,$((L / 512)) --sorted --seed 7
      extra=(--tensor doc="$work/doc$L.npy") ;;
  esac
  timeout 600 "$attnc" bench "bench/variants/$variant.attn" --shape "B=1,H=8,Lq=$L,Lk=$L,D=$D" \
    --threads "$threads" "${backend_flag[@]}" "${storage[@]}" "${extra[@]}" >"$work/out" 2>&1 ||
    { echo "- - - -"; return; }
  awk '/^time\/call/ {ms=$2} /^GFLOP/ {g=$2} /^compile/ {c=$2} /^peak RSS/ {m=$3} END {print ms, g, c, m}' "$work/out"
}

declare -A T G
echo
echo "storage: ${storage[*]:-f32 bhld}"
echo "| variant | D | L | ms/call (1 thread) | GFLOP/s | % of peak | compile ms | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|"
for D in $dims; do
  for L in $lengths; do
    for variant in dense causal causal_alibi window256 softcap natten2d document; do
      read -r ms g c m < <(bench_one "$variant" "$L" "$D" 1)
      T[$variant,$D,$L]=$ms
      G[$variant,$D,$L]=$g
      pct=$(awk -v g="$g" -v p="$peak" 'BEGIN { if (g == "-") print "-"; else printf "%.1f", 100 * g / p }')
      echo "| $variant | $D | $L | $ms | $g | $pct | $c | $m |"
    done
  done
done

echo
naive=$("$build/bench_naive" 1 8 4096 128 | awk '{print $1}')
two=$(bench_one dense 4096 128 2 | awk '{print $1}')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
echo "| figure | value | target |"
echo "|---|---|---|"
echo "| dense D=128 L=4096, fraction of FMA peak | $(ratio "${G[dense,128,4096]}" "$peak") | >= 0.50 |"
echo "| 2-thread speed-up, dense D=128 L=4096 | $(ratio "${T[dense,128,4096]}" "$two") | >= 1.8 |"
echo "| causal / dense time, D=128 L=4096 | $(ratio "${T[causal,128,4096]}" "${T[dense,128,4096]}") | <= 0.55 |"
echo "| naive C / attnc time, dense D=128 L=4096 | $(ratio "$naive" "${T[dense,128,4096]}") | >= 10 |"
if [ $quick = 0 ]; then
  echo "| window 256: time at 16384 / time at 4096, D=128 | $(ratio "${T[window256,128,16384]}" "${T[window256,128,4096]}") | <= 4.5 |"
  echo "| natten 7x7: time at 16384 / time at 4096, D=128 | $(ratio "${T[natten2d,128,16384]}" "${T[natten2d,128,4096]}") | <= 4.5 |"
fi
echo "| compile ms (cold), dense D=128 | ${T[dense,128,4096]:+$(bench_one dense 1024 128 1 | awk '{print $3}')} | < 150 |"
