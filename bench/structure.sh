#!/usr/bin/env bash
# bench/structure.sh — issue 15's figures (structure-aware code): the
# variants the papers are about beside dense and causal attention, each
# measured with this build AND a baseline build in turn, in this one run (the
# machine is shared: only ratios within a run mean anything).
#
#   bench/structure.sh [--build DIR] [--base DIR] [--backend NAME] [--quick] [--rounds N]
#
# --base DIR: a build of the commit before (e.g. a `git worktree` of it built
# with the same flags); without it only this build's column is printed.
# One thread, B = 1, H = 8, D = 128, L = 4096 (natten2d also at L = 16384,
# its time ratio being one of the issue's figures; --quick skips that row);
# and natten2d with NAT's relative position bias (`nat_rpb`: what a 2-D
# table costs over the neighbourhood alone, docs/toeplitz.md "Grid tables").
# Each (variant, build) pair runs --rounds times (default 2) alternating
# base and new; each keeps its fastest round's median.  Prints a markdown
# table: ms per call, the fraction of the single-core FMA peak counting
# 4 * D * kept pairs, and new / base time.
set -u
cd "$(dirname "$0")/.."
build=build base="" backend=llvm quick=0 rounds=2
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: bench/structure.sh [--build DIR] [--base DIR] [--backend NAME] [--quick] [--rounds N]" >&2
       exit 2 ;;
  esac
done
cmake --build "$build" --target attnc npyrand bench_fma_peak -j"$(nproc)" >/dev/null || exit 1
[ -z "$base" ] || [ -x "$base/attnc" ] || { echo "bench/structure.sh: no $base/attnc" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
D=128

# the T5 variant as the issue measures it (examples/relative_bias_1d.attn's t5_relative)
cat >"$work/t5.attn" <<'EOF'
attention t5 {
    param buckets  : int = 32;
    param max_dist : int = 128;
    tensor table   : float[H, buckets];
    let rel   = kv - q;
    let half  = buckets / 2;
    let exact = half / 2;
    let big   = exact + int(log(float(max(abs(rel), 1)) / float(exact))
                        / log(float(max_dist) / float(exact)) * float(half - exact));
    let bucket = (rel > 0 ? half : 0)
               + (abs(rel) < exact ? abs(rel) : min(big, half - 1));
    bias table[h, bucket];
}
EOF

peak=$("$build/bench_fma_peak" | awk '{print $1}')
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores; $(date -u '+%F %H:%M UTC'); load $(cut -d' ' -f1 /proc/loadavg)"
echo "single-core FMA peak: $peak GFLOP/s; backend $backend; new: $build${base:+, base: $base}"

# bench_one ATTNC VARIANT L -> "ms gflops" ("- -" when it fails)
bench_one() {
  local attnc=$1 variant=$2 L=$3 file extra=()
  file=bench/variants/$variant.attn
  case $variant in
    t5) file=$work/t5.attn ;;
    natten2d) extra=(--param width=$(awk -v l="$L" 'BEGIN { print int(sqrt(l) + 0.5) }')) ;;
    nat_rpb)
      file=examples/relative_bias_2d.attn
      [ -f "$work/rpb.npy" ] || "$build/npyrand" "$work/rpb.npy" f4 8,13,13 --seed 7
      extra=(--variant nat_rpb --param kernel=7 --param width=$(awk -v l="$L" 'BEGIN { print int(sqrt(l) + 0.5) }')
             --tensor rpb="$work/rpb.npy") ;;
    document)
      [ -f "$work/doc$L.npy" ] || "$build/npyrand" "$work/doc$L.npy" i4 "$L" --range 0,$((L / 512)) --sorted --seed 7
      extra=(--tensor doc="$work/doc$L.npy") ;;
  esac
  timeout 900 "$attnc" bench "$file" --shape "B=1,H=8,Lq=$L,Lk=$L,D=$D" --threads 1 --backend "$backend" \
    "${extra[@]}" >"$work/out" 2>&1 || { echo "- -"; return; }
  awk '/^time\/call/ {ms=$2} /^GFLOP/ {g=$2} END {print ms, g}' "$work/out"
}

# best OLD NEW -> the smaller of two "ms gflops" pairs (by ms)
best() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
  if (x[1] == "-" || (y[1] != "-" && y[1] + 0 < x[1] + 0)) print b; else print a }'; }
frac() { awk -v g="$1" -v p="$peak" 'BEGIN { if (g == "-") print "-"; else printf "%.2f", g / p }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

rows="dense:4096 causal:4096 softcap:4096 window256:4096 document:4096 t5:4096 causal_alibi:4096 natten2d:4096 nat_rpb:4096"
[ $quick = 1 ] || rows="$rows natten2d:16384"
declare -A N B
for row in $rows; do
  variant=${row%%:*} L=${row##*:}
  n="- -" b="- -"
  for ((r = 0; r < rounds; r++)); do
    [ -z "$base" ] || b=$(best "$b" "$(bench_one "$base/attnc" "$variant" "$L")")
    n=$(best "$n" "$(bench_one "$build/attnc" "$variant" "$L")")
  done
  N[$row]=$n B[$row]=$b
done

echo
echo "| variant | L | base ms | base % peak | new ms | new % peak | new / base time |"
echo "|---|---|---|---|---|---|---|"
for row in $rows; do
  read -r nm ng <<<"${N[$row]}"
  read -r bm bg <<<"${B[$row]}"
  echo "| ${row%%:*} | ${row##*:} | $bm | $(frac "$bg") | $nm | $(frac "$ng") | $(ratio "$nm" "$bm") |"
done

echo
echo "| figure (new build) | value | goal |"
echo "|---|---|---|"
g() { read -r _ x <<<"${N[$1]}"; echo "$x"; }
t() { read -r x _ <<<"${N[$1]}"; echo "$x"; }
echo "| T5 relative bias, fraction of peak | $(frac "$(g t5:4096)") | >= 0.65 |"
echo "| softcap / dense, fraction of peak (same mask: none) | $(ratio "$(g softcap:4096)" "$(g dense:4096)") | >= 0.90 |"
echo "| window 256, fraction of peak | $(frac "$(g window256:4096)") | >= 0.70 |"
echo "| document, fraction of peak | $(frac "$(g document:4096)") | >= 0.70 |"
echo "| natten2d 7x7 L = 4096, fraction of peak | $(frac "$(g natten2d:4096)") | >= 0.25 |"
echo "| nat_rpb / natten2d time (a 2-D table's cost) | $(ratio "$(t nat_rpb:4096)" "$(t natten2d:4096)") | (no goal) |"
[ $quick = 1 ] ||
  echo "| natten2d time(16384) / time(4096) | $(ratio "$(t natten2d:16384)" "$(t natten2d:4096)") | <= 4.4 |"
