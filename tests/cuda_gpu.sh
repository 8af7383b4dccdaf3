#!/usr/bin/env bash
# tests/cuda_gpu.sh SRCDIR ATTNC NPYRAND WORK SPEC VARIANT SIZES TILE [-D N=V]... — emit
# VARIANT as CUDA C (params fixed with -D), compile it with
# tests/cuda_gpu_driver.cu, run it on the GPU on random inputs and compare
# with `attnc run --backend interp`.  SIZES: B,H,Hkv,Lq,Lk,D,Dv; TILE: BQxBK.
# Exit 0 agree, 1 fail, 77 (skipped) without nvcc or a GPU; $ATTNC_NVCC
# names nvcc when set (empty: none).
set -u
src=$1 attnc=$2 npyrand=$3 work=$4 spec=$5 variant=$6 sizes=$7 tile=$8
shift 8
if [ -n "${ATTNC_NVCC+set}" ]; then nvcc=$ATTNC_NVCC; else
  nvcc=$(command -v nvcc || true)
  [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
fi
if [ -z "$nvcc" ]; then echo "nvcc not found: skipped"; exit 77; fi
if ! nvidia-smi -L 2>/dev/null | grep -q GPU; then echo "no GPU (nvidia-smi -L): skipped"; exit 77; fi
IFS=, read -r B H Hkv Lq Lk D Dv <<<"$sizes"
bq=${tile%x*} bk=${tile#*x}
defs=() params=()
while [ $# -gt 0 ]; do defs+=("$1" "$2"); params+=(--param "$2"); shift 2; done
mkdir -p "$work" && cd "$work" || exit 1
"$attnc" emit "$spec" --variant "$variant" --target cuda --tile "$tile" "${defs[@]}" -o k.cu || exit 1
"$npyrand" q.npy f4 "$B,$H,$Lq,$D" --seed 1 >/dev/null || exit 1
"$npyrand" k.npy f4 "$B,$Hkv,$Lk,$D" --seed 2 >/dev/null || exit 1
"$npyrand" v.npy f4 "$B,$Hkv,$Lk,$Dv" --seed 3 >/dev/null || exit 1
"$attnc" run "$spec" --variant "$variant" --backend interp --q q.npy --k k.npy --v v.npy -o ref.npy "${params[@]}" || exit 1
"$nvcc" -O2 -arch=native -I"$src/runtime" -DATTNC_LAUNCH="${variant}_cuda_launch" -o driver \
  "$src/tests/cuda_gpu_driver.cu" k.cu >nvcc.log 2>&1 ||
  "$nvcc" -O2 -I"$src/runtime" -DATTNC_LAUNCH="${variant}_cuda_launch" -o driver \
    "$src/tests/cuda_gpu_driver.cu" k.cu >>nvcc.log 2>&1 || { cat nvcc.log; exit 1; }
./driver "$B" "$H" "$Hkv" "$Lq" "$Lk" "$D" "$Dv" "$bq" "$bk" q.npy k.npy v.npy ref.npy
