#!/usr/bin/env bash
# bench/v2.sh — issue 14's figures for language version 2 (spec section 9),
# all measured in this one run (the machine is shared: only ratios within a
# run mean anything): causal attention beside causal + rotary, Shaw relative
# embeddings (M = 64, and unclipped as in Music Transformer), learned sinks,
# and the single-core FMA peak (bench/fma_peak.c, as bench/run.sh).
#
#   bench/v2.sh [--backend NAME] [--quick] [--build DIR] [--reps N] [--rounds N]
#
# One thread, B = 1, H = 8, D = 128, L = 4096 (--quick: L = 1024).  Prints a
# markdown table: time per call, GFLOP/s counting 4 * D * kept pairs, the
# fraction of the FMA peak, and the issue's ratios.  The Music Transformer
# row runs --reps 1 (its table is Lq x Lk per head: slow); --reps N sets the
# others' (default: attnc bench's own, at least 3 calls or one second).
# The variants run in turn, --rounds times (default 2; Music Transformer
# once), and each keeps its fastest round's median: another program's burst
# on the shared machine slows one round, not the figure.
set -u
cd "$(dirname "$0")/.."
backend=llvm quick=0 build=build reps=() rounds=2
while [ $# -gt 0 ]; do
  case $1 in
    --backend) backend=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --build) build=$2; shift 2 ;;
    --reps) reps=(--reps "$2"); shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: bench/v2.sh [--backend NAME] [--quick] [--build DIR] [--reps N] [--rounds N]" >&2; exit 2 ;;
  esac
done
cmake --build "$build" --target attnc bench_fma_peak -j"$(nproc)" >/dev/null || exit 1
attnc=$build/attnc
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
L=4096 D=128
[ $quick = 1 ] && L=1024

# the variants, each causal (Shaw's and the sinks' figures compare with causal alone)
cat >"$work/v2.attn" <<'EOF'
attention causal_only { use causal; }
attention causal_rotary { use causal; rotary(base = 500000.0); }
attention shaw_m64 {
    use causal;
    param M : int = 64;
    tensor E : float[2 * M + 1, D];
    bias dot(Q, E[clamp(kv - q, -M, M) + M]) / sqrt(float(D));
}
attention music_unclipped {
    use causal;
    tensor E : float[Lk, D];
    bias dot(Q, E[q - kv]) / sqrt(float(D));
}
attention causal_sinks { tensor S : float[H]; use causal; sink S[h]; }
EOF

peak=$("$build/bench_fma_peak" | awk '{print $1}')
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores; $(date -u '+%F %H:%M UTC')"
echo "single-core FMA peak: $peak GFLOP/s"

# bench_one VARIANT [ARGS...] -> "ms gflops" ("- -" when it fails)
bench_one() {
  local variant=$1
  shift
  timeout 900 "$attnc" bench "$work/v2.attn" --variant "$variant" --shape "B=1,H=8,Lq=$L,Lk=$L,D=$D,Dv=$D" \
    --backend "$backend" --threads 1 "$@" >"$work/out" 2>&1 || { echo "- -"; return; }
  awk '/^time\/call/ {ms=$2} /^GFLOP/ {g=$2} END {print ms, g}' "$work/out"
}

variants="causal_only causal_rotary shaw_m64 music_unclipped causal_sinks"
declare -A T G
for round in $(seq "$rounds"); do
  for variant in $variants; do
    if [ "$variant" = music_unclipped ]; then
      [ "$round" = 1 ] || continue
      read -r ms g < <(bench_one "$variant" --reps 1)
    else
      read -r ms g < <(bench_one "$variant" "${reps[@]}")
    fi
    if [ -z "${T[$variant]:-}" ] || [ "${T[$variant]}" = - ] ||
      { [ "$ms" != - ] && awk -v a="$ms" -v b="${T[$variant]}" 'BEGIN { exit !(a < b) }'; }; then
      T[$variant]=$ms
      G[$variant]=$g
    fi
  done
done
echo
echo "backend $backend, one thread, B=1 H=8 L=$L D=$D, f32; the fastest of $rounds rounds"
echo "| variant | ms/call | GFLOP/s | % of peak |"
echo "|---|---|---|---|"
for variant in $variants; do
  pct=$(awk -v g="${G[$variant]}" -v p="$peak" 'BEGIN { if (g == "-") print "-"; else printf "%.1f", 100 * g / p }')
  echo "| $variant | ${T[$variant]} | ${G[$variant]} | $pct |"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
echo
echo "| figure | value | target |"
echo "|---|---|---|"
echo "| causal + rotary / causal time | $(ratio "${T[causal_rotary]}" "${T[causal_only]}") | <= 1.10 |"
echo "| Shaw M=64, fraction of FMA peak | $(ratio "${G[shaw_m64]}" "$peak") | >= 0.40 |"
echo "| Shaw unclipped (Music Transformer), fraction of FMA peak | $(ratio "${G[music_unclipped]}" "$peak") | >= 0.40 |"
echo "| causal + sinks / causal time | $(ratio "${T[causal_sinks]}" "${T[causal_only]}") | <= 1.03 |"
