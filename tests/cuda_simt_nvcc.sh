#!/usr/bin/env bash
# tests/cuda_simt_nvcc.sh TEST_CUDA_SIMT PROGRAM_DIR WORKDIR — the device
# programs of tests/cuda_simt/ as nvcc sees them (`test_cuda_simt --emit`:
# the same text cuda-emu runs) compiled for sm_80 and sm_90: the PTX must
# hold mma.sync m16n8k16 (f16 and bf16) and m16n8k8 (tf32, with
# cvt.rna.tf32.f32), ldmatrix (.trans too), cp.async
# with its commit and wait groups, and the shuffles; ptxas must report no
# spills (`-Xptxas -v`); the sm_80 SASS must hold
# tensor-core instructions (HMMA.16816).  nvcc: on PATH,
# /usr/local/cuda/bin/nvcc, or $ATTNC_NVCC (empty: none).  Exit 0 pass,
# 1 fail, 77 without nvcc (ctest: SKIP_RETURN_CODE 77, a skip, not a pass).
set -u
bin=$1 dir=$2 work=$3
. "$(dirname "$0")/find_nvcc.sh"
cuobjdump=$(dirname "$nvcc")/cuobjdump
rm -rf "$work" && mkdir -p "$work" || exit 1
"$bin" --emit "$dir" "$work" || exit 1
fail=0
for arch in sm_80 sm_90; do
  for cu in "$work"/*.cu; do
    name=$(basename "$cu" .cu)
    if ! "$nvcc" -arch=$arch -ptx "$cu" -o "$work/$name.$arch.ptx" >"$work/$name.$arch.log" 2>&1 ||
       ! "$nvcc" -arch=$arch -cubin -Xptxas -v "$cu" -o "$work/$name.$arch.cubin" >>"$work/$name.$arch.log" 2>&1; then
      echo "FAIL nvcc -arch=$arch $name.cu"; head -20 "$work/$name.$arch.log"; fail=1
    elif grep -q "[1-9][0-9]* bytes spill" "$work/$name.$arch.log"; then
      echo "FAIL $name.cu for $arch spills registers:"; grep spill "$work/$name.$arch.log"; fail=1
    fi
  done
  # what each program must compile to
  while read -r name pattern; do
    if ! grep -qF -- "$pattern" "$work/$name.$arch.ptx" 2>/dev/null; then
      echo "FAIL $name.cu for $arch: the PTX lacks '$pattern'"; fail=1
    fi
  done <<'LIST'
mma mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
mma mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
mma ldmatrix.sync.aligned.m8n8.x4.shared.b16
mma ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
mma cp.async.cg.shared.global
cpasync cp.async.cg.shared.global
cpasync cp.async.commit_group
cpasync cp.async.wait_group 1
cpasync ldmatrix.sync.aligned.m8n8.x1.shared.b16
shfl shfl.sync.bfly.b32
shfl shfl.sync.idx.b32
shfl shfl.sync.down.b32
shfl shfl.sync.up.b32
shfl vote.sync.ballot.b32
throughput mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
flash_tile mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
flash_tile ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
flash_tile cvt.rn.bf16x2.f32
flash_tile cvt.rn.f16x2.f32
flash_tile cp.async.wait_group 1
mma_tf32 mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32
mma_tf32 cvt.rna.tf32.f32
mma_tf32 ldmatrix.sync.aligned.m8n8.x4.shared.b16
LIST
done
if [ -x "$cuobjdump" ]; then
  if ! "$cuobjdump" -sass "$work/mma.sm_80.cubin" 2>/dev/null | grep -q "HMMA.16816.F32"; then
    echo "FAIL mma.cu for sm_80: no HMMA.16816.F32 in the SASS"; fail=1
  fi
else
  echo "cuobjdump not found next to nvcc: SASS not checked"
fi
[ $fail = 0 ] && echo "device programs compiled by $nvcc for sm_80 and sm_90"
exit $fail
