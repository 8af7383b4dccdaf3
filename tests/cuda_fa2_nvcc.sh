#!/usr/bin/env bash
# tests/cuda_fa2_nvcc.sh TEST_CUDA_FA2 WORKDIR EXAMPLE.attn... — the tensor-core
# kernel's CUDA text (templates/cuda_fa2.cu, `test_cuda_fa2 FILE --emit DIR`:
# each attention at D = Dv = 64 in f16, 128 in bf16, 64 and 128 in float32)
# compiled by nvcc for sm_80, the float32 texts for sm_90 too (nvcc -ptx, then
# ptxas -v on that PTX).  The whole matrix for the first attention of the
# first file; every other attention at D = 128 in bf16 (its element code with
# the most registers; the texts of one attention differ only in the template's
# types and sizes, which the first covers: ~100 s of CI's CPU less).  Each
# PTX must hold mma.sync m16n8k16 of the text's type
# (float32: m16n8k8 tf32 and cvt.rna.tf32.f32), ldmatrix (.trans for the 16-bit
# types) and cp.async with its groups; ptxas must report no spills.
# nvcc: on PATH, /usr/local/cuda/bin/nvcc, or $ATTNC_NVCC (empty: none).
# Exit 0 pass, 1 fail, 77 without nvcc (ctest: SKIP_RETURN_CODE 77).
set -u
bin=$1 work=$2
shift 2
. "$(dirname "$0")/find_nvcc.sh"
rm -rf "$work" && mkdir -p "$work" || exit 1
for example in "$@"; do "$bin" "$example" --emit "$work" || exit 1; done
whole=$(sed -n 's/^[[:space:]]*attention[[:space:]]\+\([A-Za-z_][A-Za-z0-9_]*\).*/\1/p' "$1" | head -1)
[ -n "$whole" ] || { echo "FAIL no attention in $1"; exit 1; }
fail=0 n=0
for cu in "$work"/*.cu; do
  base=$(basename "$cu" .cu)
  case $base in "$whole"_[0-9]*_* | *_128_bf16) ;; *) continue ;; esac
  n=$((n + 1))
  type=${base##*_} archs=sm_80
  if [ "$type" = tf32 ]; then
    archs="sm_80 sm_90"
    patterns="mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 cvt.rna.tf32.f32"
  else
    patterns="mma.sync.aligned.m16n8k16.row.col.f32.$type.$type.f32 ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16"
  fi
  for arch in $archs; do
    name=$base.$arch
    if ! "$nvcc" -arch=$arch -ptx "$cu" -o "$work/$name.ptx" >"$work/$name.log" 2>&1 ||
       ! "$(dirname "$nvcc")/ptxas" -arch=$arch -v "$work/$name.ptx" -o "$work/$name.cubin" >>"$work/$name.log" 2>&1; then
      echo "FAIL nvcc -arch=$arch $base.cu"; head -20 "$work/$name.log"; fail=1; continue
    fi
    if grep -q "[1-9][0-9]* bytes spill" "$work/$name.log"; then
      echo "FAIL $base.cu for $arch spills registers:"; grep spill "$work/$name.log"; fail=1
    fi
    for pattern in $patterns ldmatrix.sync.aligned.m8n8.x4.shared.b16 cp.async.cg.shared.global cp.async.wait_group \
                   shfl.sync.bfly.b32; do
      grep -qF -- "$pattern" "$work/$name.ptx" || { echo "FAIL $base.cu for $arch: the PTX lacks '$pattern'"; fail=1; }
    done
    echo "$base $arch: $(grep -o 'Used [0-9]* registers' "$work/$name.log" | head -1), $(grep -o '[0-9]* bytes stack frame' "$work/$name.log" | head -1)"
  done
done
[ $n -gt 0 ] || { echo "FAIL no text emitted"; exit 1; }
exit $fail
