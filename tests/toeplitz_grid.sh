#!/usr/bin/env bash
# Grid tables (docs/toeplitz.md, "Grid tables"): the attentions of
# tests/toeplitz/grid.attn, whose terms depend on (q, kv) only through their
# cells' row and column offsets, on every backend against the interpreter, on
# grids the block-order plan runs (Lq = Lk, blocks dividing the grid): GQA,
# D not a power of two, grids wider than tall and taller than wide, q tiles
# of 16, 32 and 64 rows (kv tiles of 16; and 16 x 32, whose kv blocks are too
# wide for grid tables: the terms per element), threads 1 and 2; that the
# plans have grid tables; and the runtime errors of tables: an index out of
# range only at masked offsets is no error, one at kept offsets is the
# interpreter's error on every backend.  Grid tables are llvm's and refplan's:
# tcc and cuda-emu compute these terms per element (checked all the same).
# usage: toeplitz_grid.sh ATTNC BACKENDS   (BACKENDS: comma list after interp, e.g. refplan,llvm,tcc)
set -u
spec=$(dirname "$0")/toeplitz/grid.attn
. "$(dirname "$0")/diff_checks.sh" "$@"
variants="nat_rpb swin_rpb skewed scored weighted fault_masked"
for v in $variants fault_kept; do
    if ! "$attnc" emit --target ir "$spec" --variant "$v" 2>&1 | grep -q '^  grid tables: [1-9]'; then
        echo "FAIL: $v: no grid tables in the block-order plan"
        fail=1
    fi
done
shapes=(
    "B=2,H=4,Hkv=2,Lq=64,Lk=64,D=16,Dv=8 --param width=8"
    "B=1,H=3,Hkv=1,Lq=96,Lk=96,D=8,Dv=8 --param width=12"
    "B=1,H=2,Hkv=2,Lq=256,Lk=256,D=12,Dv=4 --param width=16"
    "B=1,H=2,Hkv=1,Lq=128,Lk=128,D=8,Dv=8 --param width=8"
)
# each (variant, shape) under two of the runs, in turn (every run meets every variant and every shape)
runs=("--threads 1" "--tile 64x16 --threads 2" "--tile 32x16 --threads 1" "--threads 2" "--tile 16x32 --threads 1")
vi=0
for v in $variants; do
    si=0
    for s in "${shapes[@]}"; do
        for k in 0 1; do
            run=${runs[$(( (vi + si + 2 * k) % ${#runs[@]} ))]}
            # shellcheck disable=SC2086 # the shape's and run's words are separate arguments
            diff_ok "$want" "$v --shape $s $run" "$spec" --variant "$v" --shape $s $run --backends "interp,$backends"
        done
        si=$((si + 1))
    done
    vi=$((vi + 1))
done
# an index out of range at kept offsets: every backend reports the
# interpreter's error (the kernels find it through the fault's grid table)
for b in "${blist[@]}"; do
    for s in "${shapes[@]}"; do
        # shellcheck disable=SC2086
        bench_fails "is out of range \[0, 3) in dimension 1 of tensor 'table'" "fault_kept on $b --shape $s" \
            "$spec" --variant fault_kept --shape $s --backend "$b" --threads 1 --reps 1
    done
done
[ "$fail" -eq 0 ] && echo "toeplitz_grid: all ok"
exit "$fail"
