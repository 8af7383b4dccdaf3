#!/usr/bin/env bash
# Toeplitz hoisting (docs/toeplitz.md): the attentions of
# tests/toeplitz/toeplitz.attn on every backend against the interpreter, on
# shapes that stress the diagonal tables' indexing: Lq < Lk and Lq > Lk, odd
# lengths, several q and kv tiles, GQA, decode (Lq = 1 and 3, where heads
# would otherwise be packed), D and Dv multiples of 16 (cuda-emu's tensor-core
# kernel, also with f16 storage); and the runtime errors of tables: an index
# out of range only at masked distances is no error, one at kept distances
# is the interpreter's error on every backend.
# usage: toeplitz.sh ATTNC BACKENDS   (BACKENDS: comma list after interp, e.g. refplan,llvm,tcc)
set -u
spec=$(dirname "$0")/toeplitz/toeplitz.attn
. "$(dirname "$0")/diff_checks.sh" "$@"
shapes=(
    "B=2,H=4,Hkv=2,Lq=37,Lk=53,D=16,Dv=8"
    "B=1,H=3,Hkv=1,Lq=131,Lk=67,D=8,Dv=8"
    "B=1,H=2,Hkv=2,Lq=70,Lk=150,D=8,Dv=4"
    "B=2,H=8,Hkv=2,Lq=1,Lk=77,D=16,Dv=16"
    "B=1,H=4,Hkv=1,Lq=3,Lk=129,D=8,Dv=8"
    "B=1,H=2,Hkv=1,Lq=100,Lk=130,D=32,Dv=16"
)
for v in t5 skewed scored weighted fault_masked; do
    for s in "${shapes[@]}"; do
        for threads in 1 2; do
            diff_ok "$want" "$v --shape $s --threads $threads" "$spec" --variant "$v" --shape "$s" \
                --threads "$threads" --backends "interp,$backends"
        done
    done
    diff_ok "$want" "$v --dtype f16" "$spec" --variant "$v" --shape "${shapes[5]}" --dtype f16 --backends "interp,$backends"
done
# an index out of range at kept distances: every backend reports the
# interpreter's error (the kernels find it through the fault table)
for b in "${blist[@]}"; do
    for s in "${shapes[@]}"; do
        bench_fails "is out of range \[0, 5) in dimension 1 of tensor 'table'" "fault_kept on $b --shape $s" \
            "$spec" --variant fault_kept --shape "$s" --backend "$b" --threads 1 --reps 1
    done
done
[ "$fail" -eq 0 ] && echo "toeplitz: all ok"
exit "$fail"
