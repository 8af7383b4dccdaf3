#!/usr/bin/env bash
# tests/grad_cli.sh ATTNC NPYRAND NPYCLOSE NPYCONV — `attnc grad`, `diff
# --grad` and `bench --grad` (shared/spec/interfaces.md 4.1), Python-free:
#   grad writes dQ, dK, dV with Q's, K's, V's shapes and each --dtensor with
#     its tensor's shape; without --backend it picks a backend that has a
#     backward pass, and gives what --backend interp gives;
#   --layout blhd on transposed copies of the inputs gives, transposed back,
#     what bhld gives; --dtype bf16 runs on the rounded inputs;
#   dLSE changes the gradients;
#   diff --grad compares the backends that have a backward pass (and says
#     which have none); bench --grad reports 10 * D * kept pairs;
#   language v2 (a rotary, dots of rows, a sink): grad and diff --grad;
#   hostile: missing flags, unknown or int tensors, shapes that do not fit,
#     a backend without a backward pass, an unwritable output — each with
#     its exit status and no output file left behind.
# The values themselves are checked against finite differences by
# tests/test_grad_interp.c; this script checks the command line around them.
set -u
ATTNC=$1
NPYRAND=$2
NPYCLOSE=$3
NPYCONV=$4
# shellcheck source=tests/expect.sh
. "$(dirname "$0")/expect.sh"

cat >rel.attn <<'A'
attention rel {
    param max_dist : int = 4;
    tensor table : float[H, 2 * max_dist + 1];
    tensor pos : int[Lk];
    mask kv <= q + 2;
    bias table[h, clamp(kv - q, -max_dist, max_dist) + max_dist] + 0.1 * float(pos[kv]);
}
A
"$NPYRAND" q.npy f4 2,4,9,8 --seed 1
"$NPYRAND" k.npy f4 2,2,11,8 --seed 2
"$NPYRAND" v.npy f4 2,2,11,6 --seed 3
"$NPYRAND" do.npy f4 2,4,9,6 --seed 4
"$NPYRAND" dlse.npy f4 2,4,9 --seed 5
"$NPYRAND" table.npy f4 4,9 --seed 6
"$NPYRAND" pos.npy i4 11 --seed 7 --range 0,5
in=(--q q.npy --k k.npy --v v.npy --tensor table=table.npy --tensor pos=pos.npy)
outs=(--dq dq.npy --dk dk.npy --dv dv.npy)

# shapes, and the default backend against interp
expect 0 'rel: dQ -> dq.npy, dK -> dk.npy, dV -> dv.npy and tensor gradients \(backend ' \
    "$ATTNC" grad rel.attn "${in[@]}" --do do.npy --dlse dlse.npy "${outs[@]}" --dtensor table=dt.npy
close dq.npy q.npy 1e30 "dQ has Q's shape"
close dk.npy k.npy 1e30 "dK has K's shape"
close dv.npy v.npy 1e30 "dV has V's shape"
close dt.npy table.npy 1e30 "dtable has table's shape"
for f in dq dk dv dt; do cp $f.npy ${f}_default.npy; done
expect 0 '\(backend interp\)' "$ATTNC" grad rel.attn "${in[@]}" --do do.npy --dlse dlse.npy "${outs[@]}" \
    --dtensor table=dt.npy --backend interp
for f in dq dk dv dt; do close $f.npy ${f}_default.npy 1e-5 "grad: default backend vs interp ($f)"; done

# dLSE matters; without it the gradients are those of sum(O * dO) alone
expect 0 'dQ -> dq.npy' "$ATTNC" grad rel.attn "${in[@]}" --do do.npy "${outs[@]}" --backend interp
if "$NPYCLOSE" dq.npy dq_default.npy 1e-6 >/dev/null 2>&1; then
    echo "FAIL: dQ without --dlse equals dQ with it"; fails=$((fails + 1))
else passes=$((passes + 1)); fi

# --layout blhd on transposed inputs, transposed back
for f in q k v do; do "$NPYCONV" $f.npy ${f}_t.npy --swap12; done
expect 0 'dQ -> dq_t.npy' "$ATTNC" grad rel.attn --q q_t.npy --k k_t.npy --v v_t.npy --tensor table=table.npy \
    --tensor pos=pos.npy --do do_t.npy --dlse dlse.npy --dq dq_t.npy --dk dk_t.npy --dv dv_t.npy \
    --dtensor table=dt_t.npy --layout blhd --backend interp
for f in dq dk dv; do
    "$NPYCONV" ${f}_t.npy ${f}_back.npy --swap12
    close ${f}_back.npy ${f}_default.npy 1e-6 "grad --layout blhd ($f)"
done
close dt_t.npy dt_default.npy 1e-6 "grad --layout blhd (table)"

# --dtype bf16: the inputs rounded, the gradients near the f32 ones
expect 0 'dQ -> dq.npy' "$ATTNC" grad rel.attn "${in[@]}" --do do.npy --dlse dlse.npy "${outs[@]}" --dtype bf16 --backend interp
close dq.npy dq_default.npy 0.1 "grad --dtype bf16 (dQ near f32's)"

# diff --grad and bench --grad
expect 0 'backend +dQ max err' "$ATTNC" diff rel.attn --grad --shape B=1,H=2,Lq=7,Lk=9,D=4,Dv=3
expect 2 "backend 'cuda-emu' has no backward pass yet|unknown backend|not available" \
    "$ATTNC" diff rel.attn --grad --backends cuda-emu --shape B=1,H=2,Lq=7,Lk=9,D=4,Dv=3
expect 0 'GFLOP/s .*\(10 \* D \* kept pairs per call\)' \
    "$ATTNC" bench rel.attn --grad --backend interp --shape B=1,H=2,Lq=7,Lk=9,D=4,Dv=3 --reps 2
expect 0 'backward pass, backend interp' \
    "$ATTNC" bench rel.attn --grad --backend interp --shape B=1,H=2,Lq=7,Lk=9,D=4,Dv=3 --reps 2

# language v2 (issue 14): a rotary, dots of rows and a sink; the default backend gives what interp gives
cat >v2.attn <<'A'
attention v2 {
    tensor E : float[2 * Lk, D];
    tensor sinks : float[H];
    use causal;
    rotary(base = 100.0, dims = 4);
    bias dot(Q, E[kv - q + Lk]) + 0.5 * dot(K, E[kv]);
    sink sinks[h];
}
A
"$NPYRAND" e.npy f4 22,8 --seed 8
"$NPYRAND" sinks.npy f4 4 --seed 9
v2in=(--q q.npy --k k.npy --v v.npy --tensor E=e.npy --tensor sinks=sinks.npy --do do.npy --dlse dlse.npy)
expect 0 'v2: dQ -> dq.npy, dK -> dk.npy, dV -> dv.npy and tensor gradients' \
    "$ATTNC" grad v2.attn "${v2in[@]}" "${outs[@]}" --dtensor E=de.npy --dtensor sinks=ds.npy
for f in dq dk dv de ds; do cp $f.npy ${f}_v2.npy; done
expect 0 '\(backend interp\)' "$ATTNC" grad v2.attn "${v2in[@]}" "${outs[@]}" --dtensor E=de.npy \
    --dtensor sinks=ds.npy --backend interp
for f in dq dk dv de ds; do close $f.npy ${f}_v2.npy 1e-5 "grad v2: default backend vs interp ($f)"; done
expect 0 'backend +dQ max err' "$ATTNC" diff v2.attn --grad --shape B=1,H=2,Lq=7,Lk=9,D=6,Dv=3
rm -f de.npy ds.npy

# hostile: nothing written
rm -f dq.npy dk.npy dv.npy dt.npy
expect 2 'grad needs --q, --k, --v, --do, --dq, --dk and --dv' "$ATTNC" grad rel.attn "${in[@]}" --do do.npy --dq dq.npy
expect 2 "--dtensor: 'nosuch' is not a tensor" "$ATTNC" grad rel.attn "${in[@]}" --do do.npy "${outs[@]}" --dtensor nosuch=dt.npy
expect 2 "tensor 'pos' holds ints: it has no gradient" "$ATTNC" grad rel.attn "${in[@]}" --do do.npy "${outs[@]}" --dtensor pos=dt.npy
expect 2 '--dtensor .*expected NAME=FILE' "$ATTNC" grad rel.attn "${in[@]}" --do do.npy "${outs[@]}" --dtensor table
expect 3 'dO must be float32 .*\[2, 4, 9, 6\]' "$ATTNC" grad rel.attn "${in[@]}" --do q.npy "${outs[@]}"
expect 3 'dLSE must be float32 .*\[2, 4, 9\]' "$ATTNC" grad rel.attn "${in[@]}" --do do.npy --dlse do.npy "${outs[@]}"
expect 3 'dO: .*' "$ATTNC" grad rel.attn "${in[@]}" --do missing.npy "${outs[@]}"
expect 3 'nodir' "$ATTNC" grad rel.attn "${in[@]}" --do do.npy --dq dq.npy --dk dk.npy --dv nodir/dv.npy
expect 2 "backend 'cuda-emu' has no backward pass yet|unknown backend|not available" \
    "$ATTNC" grad rel.attn "${in[@]}" --do do.npy "${outs[@]}" --backend cuda-emu
expect 2 "unknown option '--grad' for 'run'" "$ATTNC" run rel.attn "${in[@]}" -o o.npy --grad
expect 2 'bench --grad: --paged does not apply' "$ATTNC" bench rel.attn --grad --paged 16 --shape B=1,H=2,Lq=7,D=4
absent dq.npy dk.npy dv.npy dt.npy o.npy

echo "grad_cli: $passes passed, $fails failed"
[ "$fails" = 0 ]
