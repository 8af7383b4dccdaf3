#!/usr/bin/env bash
# tests/layouts_cli.sh ATTNC NPYRAND NPYCONV — `--dtype` and `--layout` of
# run, diff and bench (shared/spec/interfaces.md section 4.2), Python-free:
#   --layout blhd on transposed copies of the inputs gives, transposed back,
#     the very bytes bhld gives (interp and refplan; f32, f16, bf16);
#   --dtype f16 / bf16 on '<f4' files gives the very bytes it gives on the
#     files npyconv rounded with base/half.h (the command line rounds '<f4'
#     inputs itself, with the same header); '<f2' files are read as
#     f16, and widened exactly for --dtype f32;
#   O is rounded to the dtype (rounding it again changes nothing) but
#     written '<f4'; LSE stays [B, H, Lq];
#   hostile: '<f2' with --dtype bf16, unknown values, shapes that do not fit
#     the layout, a '<f2' --tensor.
set -u
ATTNC=$1
NPYRAND=$2
NPYCONV=$3
# shellcheck source=tests/expect.sh
. "$(dirname "$0")/expect.sh"

# the bias depends on h and on q - kv: a swap of H and L shows
cat >hb.attn <<'A'
attention hb { mask kv <= q + 2; bias -0.25 * float(h + 1) * float(abs(q - kv)); }
A
cat >win.attn <<'A'
attention win { tensor slope : float[H]; bias -slope[h] * float(abs(q - kv)); }
A
"$NPYRAND" q.npy f4 2,4,9,8 --seed 1
"$NPYRAND" k.npy f4 2,2,11,8 --seed 2
"$NPYRAND" v.npy f4 2,2,11,6 --seed 3
"$NPYRAND" slope.npy f4 4 --seed 4
for t in q k v; do
    "$NPYCONV" $t.npy ${t}T.npy --swap12     # [B, L, H, D]
    "$NPYCONV" $t.npy ${t}16.npy --f2        # '<f2'
    "$NPYCONV" ${t}16.npy ${t}16w.npy        # the same values, '<f4'
    "$NPYCONV" $t.npy ${t}b.npy --bf16       # bf16 values, '<f4'
    "$NPYCONV" ${t}T.npy ${t}T16.npy --f2    # [B, L, H, D] '<f2'
done
"$NPYCONV" slope.npy slope16.npy --f2

# same FILE1 FILE2 WHAT: identical bytes
same() {
    if cmp -s "$1" "$2"; then passes=$((passes + 1)); else
        echo "FAIL: $3 ($1 and $2 differ)"
        fails=$((fails + 1))
    fi
}
differ() {
    if cmp -s "$1" "$2"; then
        echo "FAIL: $3 ($1 and $2 are identical)"
        fails=$((fails + 1))
    else passes=$((passes + 1)); fi
}

run=(run hb.attn)
for b in interp refplan; do
    for dt in f32 f16 bf16; do
        expect 0 'O \[2, 4, 9, 6\]' "$ATTNC" "${run[@]}" --q q.npy --k k.npy --v v.npy -o o_$b$dt.npy --lse l_$b$dt.npy --backend $b --dtype $dt
        expect 0 'O \[2, 9, 4, 6\]' "$ATTNC" "${run[@]}" --q qT.npy --k kT.npy --v vT.npy -o oT_$b$dt.npy --lse lT_$b$dt.npy --backend $b --dtype $dt --layout blhd
        "$NPYCONV" oT_$b$dt.npy oTT_$b$dt.npy --swap12
        same o_$b$dt.npy oTT_$b$dt.npy "$b --dtype $dt: blhd on transposed inputs, transposed back, is bhld's O"
        same l_$b$dt.npy lT_$b$dt.npy "$b --dtype $dt: blhd's LSE is bhld's ([B, H, Lq] in both)"
    done
    # f16: '<f4' files rounded by the command line = files rounded by half.h = '<f2' files
    expect 0 'O \[2, 4, 9, 6\]' "$ATTNC" "${run[@]}" --q q16.npy --k k16.npy --v v16.npy -o o16_$b.npy --backend $b --dtype f16
    same o_${b}f16.npy o16_$b.npy "$b --dtype f16: '<f4' inputs rounded by attnc give the O of '<f2' inputs"
    expect 0 'O \[2, 9, 4, 6\]' "$ATTNC" "${run[@]}" --q qT16.npy --k kT16.npy --v vT16.npy -o oT16_$b.npy --backend $b --dtype f16 --layout blhd
    same oT_${b}f16.npy oT16_$b.npy "$b --dtype f16 --layout blhd: '<f2' inputs"
    # bf16: rounding already-rounded values changes nothing
    expect 0 'O \[' "$ATTNC" "${run[@]}" --q qb.npy --k kb.npy --v vb.npy -o ob_$b.npy --backend $b --dtype bf16
    same o_${b}bf16.npy ob_$b.npy "$b --dtype bf16: '<f4' inputs rounded by attnc give the O of inputs rounded by half.h"
    # '<f2' with --dtype f32: widened exactly
    expect 0 'O \[' "$ATTNC" "${run[@]}" --q q16.npy --k k16.npy --v v16.npy -o o16f32_$b.npy --backend $b
    expect 0 'O \[' "$ATTNC" "${run[@]}" --q q16w.npy --k k16w.npy --v v16w.npy -o o16w_$b.npy --backend $b
    same o16f32_$b.npy o16w_$b.npy "$b --dtype f32: '<f2' inputs are widened exactly"
    # O is rounded to the dtype, and the dtype matters
    "$NPYCONV" o_${b}f16.npy r16.npy --f2 && "$NPYCONV" r16.npy r16w.npy
    same o_${b}f16.npy r16w.npy "$b --dtype f16: O holds f16 values"
    "$NPYCONV" o_${b}bf16.npy rb.npy --bf16
    same o_${b}bf16.npy rb.npy "$b --dtype bf16: O holds bf16 values"
    differ o_${b}f32.npy o_${b}f16.npy "$b: --dtype f16 changes O"
    differ o_${b}f16.npy o_${b}bf16.npy "$b: --dtype bf16 is not f16"
    differ o_${b}f32.npy o16w_$b.npy "$b: rounded inputs change O"
done
[ "$(stat -c %s oT_interpf32.npy)" = $((128 + 4 * 2 * 9 * 4 * 6)) ] || { echo "FAIL: O is not '<f4'"; fails=$((fails + 1)); }
[ "$(stat -c %s oT_interpf16.npy)" = $((128 + 4 * 2 * 9 * 4 * 6)) ] || { echo "FAIL: f16 O is not written '<f4'"; fails=$((fails + 1)); }

# tensors stay float32: a '<f2' --tensor is refused, the '<f4' one works with any dtype and layout
expect 0 'O \[2, 9, 4, 6\]' "$ATTNC" run win.attn --q qT16.npy --k kT.npy --v vT.npy -o ow.npy --tensor slope=slope.npy --backend refplan --dtype f16 --layout blhd
expect 3 "'<f2' is not supported" "$ATTNC" run win.attn --q q.npy --k k.npy --v v.npy -o ow.npy --tensor slope=slope16.npy --backend interp

# hostile
expect 2 "Q \(q16.npy\) is f16 \('<f2'\): --dtype bf16 takes '<f4' files only" "$ATTNC" "${run[@]}" --q q16.npy --k k.npy --v v.npy -o bad.npy --backend interp --dtype bf16
expect 2 "V \(v16.npy\) is f16" "$ATTNC" "${run[@]}" --q q.npy --k k.npy --v v16.npy -o bad.npy --backend interp --dtype bf16
expect 2 "--dtype 'f64': expected f32, f16 or bf16" "$ATTNC" "${run[@]}" --q q.npy --k k.npy --v v.npy -o bad.npy --dtype f64
expect 2 "--dtype 'F16': expected f32, f16 or bf16" "$ATTNC" diff hb.attn --dtype F16
expect 2 "--layout 'bhdl': expected bhld or blhd" "$ATTNC" bench hb.attn --shape B=1 --layout bhdl
expect 2 "--layout '': expected bhld or blhd" "$ATTNC" "${run[@]}" --q q.npy --k k.npy --v v.npy -o bad.npy --layout ''
expect 2 "option '--dtype' needs a value" "$ATTNC" "${run[@]}" --q q.npy --k k.npy --v v.npy -o bad.npy --dtype
# emit takes --dtype for the tensor-core kernel's CUDA text only (docs/cuda.md)
expect 2 "emit: --dtype and --head-dim go with --target cuda" "$ATTNC" emit hb.attn --target ir --dtype f16
# bhld files read as blhd: H = 9 query heads over Hkv = 11
expect 3 "H = 9 is not a multiple of Hkv = 11" "$ATTNC" "${run[@]}" --q q.npy --k k.npy --v v.npy -o bad.npy --backend interp --layout blhd
# K [B, L, H, D] with V [B, H, L, D]
expect 3 "V shape \[2, 2, 11, _\] does not match K \[2, 11, 2, _\]" "$ATTNC" "${run[@]}" --q qT.npy --k kT.npy --v v.npy -o bad.npy --backend interp --layout blhd
expect 3 "must have 4 dimensions \[B, L, heads, D\]" "$ATTNC" "${run[@]}" --q slope.npy --k kT.npy --v vT.npy -o bad.npy --backend interp --layout blhd
head -c 200 q16.npy >trunc16.npy
expect 3 "truncated: expected 1152 bytes of data, found 72 .*<f2" "$ATTNC" "${run[@]}" --q trunc16.npy --k k.npy --v v.npy -o bad.npy --backend interp --dtype f16
[ ! -e bad.npy ] || { echo "FAIL: a failed run left bad.npy"; fails=$((fails + 1)); }

# diff: every backend against the interpreter on the same rounded inputs; backends without
# layouts yet say so on a line of their own, and refplan takes them all
for dt in f16 bf16; do
    expect 0 'refplan +[0-9.e+-]+ +[0-9.e+-]+ +[0-9.e+-]+ +[0-9.e+-]+ +ok' "$ATTNC" diff hb.attn --shape B=2,H=4,Hkv=2,Lq=33,Lk=40,D=16,Dv=8 --dtype $dt --layout blhd --threads 2
    if grep -q FAIL out.txt; then echo "FAIL: diff --dtype $dt --layout blhd"; cat out.txt; fails=$((fails + 1)); fi
done
expect 0 'refplan .* ok' "$ATTNC" diff hb.attn --shape B=1,H=2,Lq=20,D=8 --backends refplan --layout blhd
# bench reports time as before, naming the storage
expect 0 'bf16 blhd' "$ATTNC" bench hb.attn --shape B=1,H=2,Lq=64,D=16 --backend refplan --reps 1 --dtype bf16 --layout blhd
expect 0 'time/call' "$ATTNC" bench hb.attn --shape B=1,H=2,Lq=64,D=16 --backend interp --reps 1 --dtype f16

echo "layouts_cli: $passes passed, $fails failed"
[ "$fails" = 0 ]
