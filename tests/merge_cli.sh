#!/usr/bin/env bash
# tests/merge_cli.sh ATTNC NPYRAND NPYCLOSE — `attnc merge` (issue 11, item 5;
# docs/merge.md): two `attnc run`s of a spec over keys [0, s) and [s, Lk)
# (a param-bounded mask keeps the keys' absolute positions), merged, give
# what one run over all keys gives — softmax (some rows fully masked) and a
# `weight` attention, with and without LSEs, s = 0 and Lk (an empty part);
# shapes that do not match are exit 3, bad command lines exit 2, and no
# error leaves an output file behind or changes one that was there.
set -u
ATTNC=$1
NPYRAND=$2
NPYCLOSE=$3
# shellcheck source=tests/expect.sh
. "$(dirname "$0")/expect.sh"

# Lq = 13 > Lk = 11 bottom-right aligned: rows 0 and 1 see no key at all
cat >parts.attn <<'A'
attention full { use causal_bottom_right; use alibi; }
attention part { use full; param lo : int; param hi : int; mask kv >= lo && kv < hi; }
attention wfull { use causal_bottom_right; weight sigmoid(score); }
attention wpart { use wfull; param lo : int; param hi : int; mask kv >= lo && kv < hi; }
A
"$NPYRAND" q.npy f4 1,4,13,8 --seed 1
"$NPYRAND" k.npy f4 1,2,11,8 --seed 2
"$NPYRAND" v.npy f4 1,2,11,6 --seed 3
qkv=(--q q.npy --k k.npy --v v.npy)

# merged KIND BACKEND S TOL: parts [0, S) and [S, 11) merged against one call (BACKEND "": the default)
merged() {
    local v=$1 s=$3 tol=$4 flag="" b=()
    [ "$v" = w ] && flag=--weight
    [ -n "$2" ] && b=(--backend "$2")
    expect 0 'O \[1, 4, 13, 6\]' "$ATTNC" run parts.attn --variant ${v}full "${qkv[@]}" "${b[@]}" -o full.npy --lse full_lse.npy
    expect 0 'O \[1, 4, 13, 6\]' "$ATTNC" run parts.attn --variant ${v}part "${qkv[@]}" "${b[@]}" --param lo=0 --param hi="$s" -o o1.npy --lse l1.npy
    expect 0 'O \[1, 4, 13, 6\]' "$ATTNC" run parts.attn --variant ${v}part "${qkv[@]}" "${b[@]}" --param lo="$s" --param hi=11 -o o2.npy --lse l2.npy
    expect 0 'merge \((softmax|weight)\): O \[1, 4, 13, 6\] -> o.npy, LSE -> lse.npy' \
        "$ATTNC" merge --o1 o1.npy --lse1 l1.npy --o2 o2.npy --lse2 l2.npy -o o.npy --lse lse.npy $flag
    close o.npy full.npy "$tol" "${v}part on ${2:-default} split at $s: O"
    close lse.npy full_lse.npy "$tol" "${v}part on ${2:-default} split at $s: LSE"
}
for s in 0 1 4 10 11; do
    merged "" interp $s 1e-5
    merged w interp $s 1e-5
done
merged "" "" 4 1e-4 # the fastest backend of the build
merged w "" 6 1e-4
# a weight merge of O alone
expect 0 'merge \(weight\): O \[1, 4, 13, 6\] -> o.npy$' "$ATTNC" merge --weight --o1 o1.npy --o2 o2.npy -o o.npy
close o.npy full.npy 1e-4 "weight merge without LSEs"
# O files of another rank: [rows, Dv] and [Dv]
"$NPYRAND" a.npy f4 5,3 --seed 5
"$NPYRAND" b.npy f4 5,3 --seed 6
"$NPYRAND" la.npy f4 5 --seed 7
"$NPYRAND" a1.npy f4 3 --seed 5
"$NPYRAND" la1.npy f4 scalar --seed 7
expect 0 'O \[5, 3\]' "$ATTNC" merge --o1 a.npy --lse1 la.npy --o2 b.npy --lse2 la.npy -o o.npy --lse lse.npy
expect 0 'O \[3\]' "$ATTNC" merge --o1 a1.npy --lse1 la1.npy --o2 a1.npy --lse2 la1.npy -o o.npy --lse lse.npy
close o.npy a1.npy 0 "merging a row with itself gives the row"
rm -f o.npy lse.npy

# shapes that do not match, bad inputs: exit 3, nothing written, an old file untouched
"$NPYRAND" o_bad.npy f4 1,4,13,5
"$NPYRAND" l_bad.npy f4 1,4,12
"$NPYRAND" oi.npy i4 1,4,13,6
bad=(--o1 o1.npy --lse1 l1.npy -o o.npy --lse lse.npy)
expect 3 'O2 \(o_bad.npy\) shape \[1, 4, 13, 5\] does not match O1 \[1, 4, 13, 6\]' "$ATTNC" merge "${bad[@]}" --o2 o_bad.npy --lse2 l2.npy
expect 3 'LSE2 \(l_bad.npy\) shape \[1, 4, 12\] does not match O1 without its last dimension, \[1, 4, 13\]' \
    "$ATTNC" merge "${bad[@]}" --o2 o2.npy --lse2 l_bad.npy
expect 3 'LSE2 \(o2.npy\) shape \[1, 4, 13, 6\] does not match' "$ATTNC" merge "${bad[@]}" --o2 o2.npy --lse2 o2.npy
expect 3 "O2 \(oi.npy\) must be float32" "$ATTNC" merge "${bad[@]}" --o2 oi.npy --lse2 l2.npy
expect 3 "O2: missing.npy: cannot open" "$ATTNC" merge "${bad[@]}" --o2 missing.npy --lse2 l2.npy
expect 3 'must have at least one dimension' "$ATTNC" merge --o1 la1.npy --lse1 la1.npy --o2 la1.npy --lse2 la1.npy -o o.npy
absent o.npy lse.npy
mkdir adir
expect 3 'adir' "$ATTNC" merge --o1 o1.npy --lse1 l1.npy --o2 o2.npy --lse2 l2.npy -o o.npy --lse adir
absent o.npy
printf 'old' >old.npy
expect 3 'does not match' "$ATTNC" merge "${bad[@]/o.npy/old.npy}" --o2 o_bad.npy --lse2 l2.npy
[ "$(cat old.npy)" = old ] && passes=$((passes + 1)) || { echo "FAIL: a failed merge changed old.npy"; fails=$((fails + 1)); }

# bad command lines: exit 2, nothing written
ok=(--o1 o1.npy --lse1 l1.npy --o2 o2.npy --lse2 l2.npy)
expect 2 "unknown option '--q' for 'merge'" "$ATTNC" merge "${ok[@]}" -o o.npy --q q.npy
expect 2 'merge needs --o1, --o2 and -o' "$ATTNC" merge "${ok[@]}"
expect 2 'merge needs --lse1 and --lse2' "$ATTNC" merge --o1 o1.npy --o2 o2.npy -o o.npy
expect 2 'give --lse1 and --lse2 both, or neither' "$ATTNC" merge --weight --o1 o1.npy --lse1 l1.npy --o2 o2.npy -o o.npy
expect 2 '--lse needs --lse1 and --lse2' "$ATTNC" merge --weight --o1 o1.npy --o2 o2.npy -o o.npy --lse lse.npy
expect 2 "unexpected argument 'parts.attn' \(merge takes no FILE\)" "$ATTNC" merge parts.attn "${ok[@]}" -o o.npy
expect 2 "option '--o2' needs a value" "$ATTNC" merge --o1 o1.npy -o o.npy --o2
absent o.npy lse.npy
expect 0 'attnc merge --o1' "$ATTNC" --help

echo "merge_cli: $passes passed, $fails failed"
[ "$fails" = 0 ]
