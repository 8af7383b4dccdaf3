#!/usr/bin/env bash
# bench/decode.sh — decode (one new query row per head against a long KV
# cache) against the memory bandwidth of this machine, both measured in this
# one run (the machine is shared: only ratios within a run mean anything).
#
#   bench/decode.sh [--backend NAME] [--quick] [--build DIR]
#
# B = 1, H = 32, Hkv = 8, D = 128 (Llama-3-8B's attention), Lq = 1, a causal
# mask aligned bottom-right (the new token sees the whole cache), Lk = 4096
# and 32768, K and V as f32, f16 and bf16, 1 and 2 threads; B = 8 (batched
# decode) and Lq = 16 (speculative verification) at Lk = 4096.  K,V GB/s is
# the bytes of K and V one call reads, over its time; "of triad" compares it
# with bench/triad.c's STREAM-like triad at the same thread count.  Then a
# paged KV cache against the same cache stored contiguously (below).
# --quick: Lk = 4096 only.
set -u
cd "$(dirname "$0")/.."
backend="" quick=0 build=build
while [ $# -gt 0 ]; do
  case $1 in
    --backend) backend=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: bench/decode.sh [--backend NAME] [--quick] [--build DIR]" >&2; exit 2 ;;
  esac
done
cmake --build "$build" --target attnc bench_triad -j"$(nproc)" >/dev/null || exit 1
attnc=$build/attnc
backend_flag=()
[ -n "$backend" ] && backend_flag=(--backend "$backend")
spec=examples/causal.attn
variant=causal_bottom_right_aligned

declare -A TRIAD
for t in 1 2; do TRIAD[$t]=$("$build/bench_triad" "$t" 256); done
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
echo "triad: ${TRIAD[1]} GB/s (1 thread), ${TRIAD[2]} GB/s (2 threads)"

# one B Lq Lk DTYPE THREADS [EXTRA...] -> "ms kv_gbs"
one() {
  "$attnc" bench "$spec" --variant "$variant" --shape "B=$1,H=32,Hkv=8,Lq=$2,Lk=$3,D=128,Dv=128" \
    --dtype "$4" --threads "$5" "${backend_flag[@]}" "${@:6}" 2>&1 |
    awk '/^time\/call/ {ms=$2} /^K,V read/ {g=$3} END {if (ms == "") print "- -"; else print ms, g}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

lengths="4096 32768"
[ $quick = 1 ] && lengths="4096"
echo
echo "| B | Lq | Lk | K,V | threads | ms/call | K,V GB/s | of triad | 2-thread speed-up |"
echo "|---|---|---|---|---|---|---|---|---|"
for Lk in $lengths; do
  for dt in f32 f16 bf16; do
    read -r ms1 g1 < <(one 1 1 "$Lk" "$dt" 1)
    read -r ms2 g2 < <(one 1 1 "$Lk" "$dt" 2)
    echo "| 1 | 1 | $Lk | $dt | 1 | $ms1 | $g1 | $(ratio "$g1" "${TRIAD[1]}") | |"
    echo "| 1 | 1 | $Lk | $dt | 2 | $ms2 | $g2 | $(ratio "$g2" "${TRIAD[2]}") | $(ratio "$ms1" "$ms2") |"
  done
done
for shape in "8 1" "1 16"; do
  read -r B Lq <<<"$shape"
  read -r ms1 g1 < <(one "$B" "$Lq" 4096 f32 1)
  read -r ms2 g2 < <(one "$B" "$Lq" 4096 f32 2)
  echo "| $B | $Lq | 4096 | f32 | 1 | $ms1 | $g1 | $(ratio "$g1" "${TRIAD[1]}") | |"
  echo "| $B | $Lq | 4096 | f32 | 2 | $ms2 | $g2 | $(ratio "$g2" "${TRIAD[2]}") | $(ratio "$ms1" "$ms2") |"
done

# a paged KV cache (pages of 64 rows, in reverse order) against the same
# rows stored contiguously in the same order of dimensions: head-major pages
# ([pages, Hkv, 64, D], --page-layout hnd) against [B, Hkv, Lk, D] (bhld), on
# 1 and 2 threads, and pages of 16 rows (vLLM's default block size: read in
# kv tiles of 16 keys); vLLM's pages ([pages, 64, Hkv, D]) against [B, Lk, Hkv, D]
# (blhd), 1 thread: a head's rows are Hkv * D elements apart there, which
# decode reads about 2x slower even in chunks (docs/decode.md)
echo
echo "| Lk | K,V | threads | layout | ms/call | K,V GB/s | of triad | paged / contiguous |"
echo "|---|---|---|---|---|---|---|---|"
for Lk in $lengths; do
  for dt in f32 f16 bf16; do
    for t in 1 2; do
      read -r msc gc < <(one 1 1 "$Lk" "$dt" "$t")
      read -r msp gp < <(one 1 1 "$Lk" "$dt" "$t" --paged 64 --page-layout hnd)
      read -r mss gs < <(one 1 1 "$Lk" "$dt" "$t" --paged 16 --page-layout hnd)
      echo "| $Lk | $dt | $t | contiguous \`[B, Hkv, Lk, D]\` | $msc | $gc | $(ratio "$gc" "${TRIAD[$t]}") | |"
      echo "| $Lk | $dt | $t | paged \`[pages, Hkv, 64, D]\` | $msp | $gp | $(ratio "$gp" "${TRIAD[$t]}") | $(ratio "$msp" "$msc") |"
      echo "| $Lk | $dt | $t | paged \`[pages, Hkv, 16, D]\` | $mss | $gs | $(ratio "$gs" "${TRIAD[$t]}") | $(ratio "$mss" "$msc") |"
    done
    read -r msc gc < <(one 1 1 "$Lk" "$dt" 1 --layout blhd)
    read -r msp gp < <(one 1 1 "$Lk" "$dt" 1 --paged 64 --page-layout nhd)
    echo "| $Lk | $dt | 1 | contiguous \`[B, Lk, Hkv, D]\` | $msc | $gc | $(ratio "$gc" "${TRIAD[1]}") | |"
    echo "| $Lk | $dt | 1 | paged \`[pages, 64, Hkv, D]\` | $msp | $gp | $(ratio "$gp" "${TRIAD[1]}") | $(ratio "$msp" "$msc") |"
  done
done
