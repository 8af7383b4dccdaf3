#!/usr/bin/env bash
# tests/ragged_cli.sh ATTNC NPYRAND NPYCLOSE — `attnc run --q-start --k-start`
# (issue 11, ragged batches; docs/decode.md): four sequences of different
# lengths (one without query rows, one without keys) on the interpreter and
# the build's fastest backend agree; one sequence that is the whole file
# gives what a plain `run` of the same rows gives; bad offsets are exit 2,
# bad files exit 3, and no error leaves an output behind; `bench --paged`.
set -u
ATTNC=$1
NPYRAND=$2
NPYCLOSE=$3
# shellcheck source=tests/expect.sh
. "$(dirname "$0")/expect.sh"

# i4 FILE N...: a one-dimensional int32 .npy file holding N...
i4() {
    local out=$1 n=$(($# - 1)) header
    shift
    header="{'descr': '<i4', 'fortran_order': False, 'shape': ($n,), }"
    while [ $(((10 + ${#header} + 1) % 64)) != 0 ]; do header="$header "; done
    {
        printf '\x93NUMPY\x01\x00'
        printf "\\x$(printf %02x $(((${#header} + 1) % 256)))\\x$(printf %02x $(((${#header} + 1) / 256)))"
        printf '%s\n' "$header"
        for v in "$@"; do printf "\\x$(printf %02x $((v & 255)))\\x$(printf %02x $(((v >> 8) & 255)))\\x00\\x00"; done
    } >"$out"
}
cat >r.attn <<'A'
attention br { use causal_bottom_right; use alibi; }
A
"$NPYRAND" q.npy f4 11,4,8 --seed 1
"$NPYRAND" k.npy f4 20,2,8 --seed 2
"$NPYRAND" v.npy f4 20,2,6 --seed 3
i4 qs.npy 0 3 8 8 11
i4 ks.npy 0 5 12 20 20
r=(run r.attn --q q.npy --k k.npy --v v.npy --q-start qs.npy --k-start ks.npy)
expect 0 'br: 4 sequences, O \[11, 4, 6\]' "$ATTNC" "${r[@]}" --backend interp -o oi.npy --lse li.npy
expect 0 'br: 4 sequences, O \[11, 4, 6\]' "$ATTNC" "${r[@]}" --threads 3 -o o.npy --lse l.npy
close o.npy oi.npy 2e-3 "ragged O, default backend vs interpreter"
close l.npy li.npy 2e-3 "ragged LSE, default backend vs interpreter"
expect 0 'O \[11, 4, 6\]' "$ATTNC" "${r[@]}" --dtype bf16 -o ob.npy

# one sequence over every row = a plain run of the same bytes as [1, L, H, D]
"$NPYRAND" q1.npy f4 1,11,4,8 --seed 1
"$NPYRAND" k1.npy f4 1,20,2,8 --seed 2
"$NPYRAND" v1.npy f4 1,20,2,6 --seed 3
i4 qs1.npy 0 11
i4 ks1.npy 0 20
expect 0 'O \[11, 4, 6\]' "$ATTNC" run r.attn --q q.npy --k k.npy --v v.npy --q-start qs1.npy --k-start ks1.npy -o one.npy
expect 0 'O \[1, 11, 4, 6\]' "$ATTNC" run r.attn --q q1.npy --k k1.npy --v v1.npy --layout blhd -o plain.npy
if cmp -s <(tail -c 1056 one.npy) <(tail -c 1056 plain.npy); then passes=$((passes + 1)); else
    echo "FAIL: one sequence differs from a plain run of the same rows"; fails=$((fails + 1))
fi

# bad offsets and files: nothing written
i4 back.npy 0 5 3 8 11
i4 past.npy 0 5 12 20 21
i4 short.npy 0 5 12
expect 2 'q_start\[2\] = 3 is less than q_start\[1\] = 5' "$ATTNC" run r.attn --q q.npy --k k.npy --v v.npy --q-start back.npy --k-start ks.npy -o bad.npy --lse badl.npy
expect 2 'k_start\[4\] = 21 runs past the 20 rows of K' "$ATTNC" run r.attn --q q.npy --k k.npy --v v.npy --q-start qs.npy --k-start past.npy -o bad.npy
expect 3 'same number of entries' "$ATTNC" run r.attn --q q.npy --k k.npy --v v.npy --q-start qs.npy --k-start short.npy -o bad.npy
expect 3 'must be int32' "$ATTNC" run r.attn --q q.npy --k k.npy --v v.npy --q-start q.npy --k-start ks.npy -o bad.npy
expect 3 '3 dimensions \[rows, heads, D\]' "$ATTNC" run r.attn --q q1.npy --k k.npy --v v.npy --q-start qs.npy --k-start ks.npy -o bad.npy
expect 2 'go together' "$ATTNC" run r.attn --q q.npy --k k.npy --v v.npy --q-start qs.npy -o bad.npy
expect 2 'does not apply' "$ATTNC" "${r[@]}" --layout blhd -o bad.npy
absent bad.npy badl.npy

# bench --paged: K and V as pages read through a block table
expect 0 'K,V pages +16 rows \(6 pages' "$ATTNC" bench r.attn --shape B=2,H=4,Hkv=2,Lq=3,Lk=40,D=8,Dv=6 --paged 16 --reps 1
expect 0 'K,V pages +8 rows' "$ATTNC" bench r.attn --shape B=1,H=4,Hkv=2,Lq=1,Lk=40,D=8,Dv=6 --paged 8 --tile 64x8 --dtype bf16 --reps 1
expect 2 "--paged '0'" "$ATTNC" bench r.attn --shape B=1,H=4,Hkv=2,Lq=1,Lk=40,D=8,Dv=6 --paged 0
expect 2 'layout does not apply' "$ATTNC" bench r.attn --shape B=1,H=4,Hkv=2,Lq=1,Lk=40,D=8,Dv=6 --paged 8 --layout blhd
expect 0 'K,V pages +16 rows \(6 pages \[Hkv, rows, D\]' "$ATTNC" bench r.attn --shape B=2,H=4,Hkv=2,Lq=3,Lk=40,D=8,Dv=6 --paged 16 --page-layout hnd --reps 1
expect 2 "--page-layout 'hdn'" "$ATTNC" bench r.attn --shape B=1,H=4,Hkv=2,Lq=1,Lk=40,D=8,Dv=6 --paged 8 --page-layout hdn
expect 2 'page-layout goes with --paged' "$ATTNC" bench r.attn --shape B=1,H=4,Hkv=2,Lq=1,Lk=40,D=8,Dv=6 --page-layout hnd

echo "ragged_cli: $passes passed, $fails failed"
[ "$fails" = 0 ]
