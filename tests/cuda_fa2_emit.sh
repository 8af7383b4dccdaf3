#!/usr/bin/env bash
# tests/cuda_fa2_emit.sh ATTNC WORKDIR text|nvcc SPEC VARIANT [tables] — `attnc emit --target cuda --dtype f16|bf16
# --head-dim D[,Dv]`: the tensor-core kernel's specialisation (templates/cuda_fa2.cu) with its entry point
# VARIANT_fa2_launch and head sizes; without --dtype, the scaffold as before; bad combinations exit 2 with one
# line.  nvcc: the bf16 D = 128 text compiles (nvcc -arch=sm_80 -c) and its PTX holds mma.sync m16n8k16
# bf16 (f16 for the f16 text); with `tables`, both texts must hold diagonal tables (docs/toeplitz.md).  Exit 0
# pass, 1 fail, 77 without nvcc (find_nvcc.sh; ctest SKIP_RETURN_CODE).
set -u
attnc=$1 work=$2 mode=$3 spec=$4 variant=$5 want=${6:-}
rm -rf "$work" && mkdir -p "$work" || exit 1
fail=0
bad() { echo "FAIL $*"; fail=1; }
emit() { "$attnc" emit "$spec" --variant "$variant" --target cuda "$@"; }

# the specialisation's text: entry point, head sizes and type as asked
check_text() { # FILE D DV BF16
  grep -qF "extern \"C\" int ${variant}_fa2_launch(const AttnCall *call, int *fault, cudaStream_t stream) {" "$1" ||
    bad "$1 lacks ${variant}_fa2_launch"
  grep -qx "#define ATTNC_FA2_D $2" "$1" && grep -qx "#define ATTNC_FA2_DV $3" "$1" &&
    grep -qx "#define ATTNC_FA2_BF16 $4" "$1" || bad "$1 is not the D = $2, Dv = $3, bf16 = $4 specialisation"
}

if [ "$mode" = text ]; then
  emit --dtype bf16 --head-dim 128 -o "$work/bf16.cu" || bad "emit --dtype bf16 --head-dim 128"
  check_text "$work/bf16.cu" 128 128 1
  emit --dtype f16 --head-dim 64,32 -o "$work/f16.cu" || bad "emit --dtype f16 --head-dim 64,32"
  check_text "$work/f16.cu" 64 32 0
  emit --dtype f16 --shape B=1,H=2,Lq=64,D=32,Dv=48 -o "$work/shape.cu" || bad "emit --dtype f16 --shape ...D=32,Dv=48"
  check_text "$work/shape.cu" 32 48 0
  emit --dtype bf16 --head-dim 64 --tile 64x64 -o "$work/tile.cu" || bad "emit --dtype bf16 --tile 64x64"
  # without --dtype: the scaffold, as before
  emit -o "$work/scaffold.cu" || bad "emit --target cuda"
  grep -q "${variant}_cuda_launch(const AttnCall \*call" "$work/scaffold.cu" && ! grep -q "_fa2_launch" "$work/scaffold.cu" ||
    bad "emit --target cuda without --dtype is not the scaffold"
  # what the tensor-core kernel cannot be asked for: usage errors (exit 2), one line
  while IFS='|' read -r why args; do
    # shellcheck disable=SC2086 # the arguments are words
    "$attnc" emit "$spec" --variant "$variant" $args >"$work/err.log" 2>&1
    rc=$?
    [ $rc -eq 2 ] && [ "$(wc -l <"$work/err.log")" -eq 1 ] || { bad "$why: exit $rc, wanted 2 and one line:"; head -3 "$work/err.log"; }
  done <<'CASES'
f32|--target cuda --dtype f32 --head-dim 64
not a multiple of 16|--target cuda --dtype bf16 --head-dim 72
Dv too large|--target cuda --dtype f16 --head-dim 64,272
head size not a number|--target cuda --dtype f16 --head-dim 6x4
head size of 32 characters (647, not its first 31: 64)|--target cuda --dtype f16 --head-dim 00000000000000000000000000000647
no head size|--target cuda --dtype bf16
no dtype|--target cuda --head-dim 64
another target|--target c --dtype bf16 --head-dim 64
other tiles|--target cuda --dtype bf16 --head-dim 64 --tile 32x64
CASES
  exit $fail
fi

. "$(dirname "$0")/find_nvcc.sh"
emit --dtype bf16 --head-dim 128 -o "$work/bf16.cu" && emit --dtype f16 --head-dim 64 -o "$work/f16.cu" || exit 1
for t in bf16 f16; do
  [ "$want" != tables ] || grep -q '^#define ATTNC_DIAG_TABLES [1-9]' "$work/$t.cu" || bad "$t.cu has no diagonal tables"
  if ! "$nvcc" -arch=sm_80 -c "$work/$t.cu" -o "$work/$t.o" >"$work/$t.log" 2>&1 ||
     ! "$nvcc" -arch=sm_80 -ptx "$work/$t.cu" -o "$work/$t.ptx" >>"$work/$t.log" 2>&1; then
    bad "nvcc -arch=sm_80 $t.cu:"; head -20 "$work/$t.log"; continue
  fi
  grep -qF "mma.sync.aligned.m16n8k16.row.col.f32.$t.$t.f32" "$work/$t.ptx" || bad "the PTX of $t.cu lacks mma.sync ($t)"
done
exit $fail
