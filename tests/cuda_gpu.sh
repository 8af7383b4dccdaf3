#!/usr/bin/env bash
# tests/cuda_gpu.sh SRCDIR ATTNC NPYRAND WORK SPEC VARIANT SIZES TILE [-D N=V]... — emit
# VARIANT as CUDA C (params fixed with -D), compile it with
# tests/cuda_gpu_driver.cu, run it on the GPU on random inputs and compare
# with `attnc run --backend interp`.  SIZES: B,H,Hkv,Lq,Lk,D,Dv; TILE: BQxBK.
# Exit 0 agree, 1 fail, 77 (skipped) without nvcc or a GPU; $ATTNC_NVCC
# names nvcc when set (empty: none).  Where nvcc exists but no GPU, the
# kernel and the driver are still compiled (a compile error fails the test),
# unless ATTNC_GPU_SKIP_COMPILE is set (tests/cuda.cmake sets it for all but
# three cases, and for all in the sanitizer build).
#
# ATTNC_GPU_DTYPE=f16|bf16 stores Q, K, V and O in that type on the GPU and
# compares with the interpreter's `run --dtype` of it.
# ATTNC_GPU_PHASE=prepare stops after writing WORK (the kernel, the inputs,
# the interpreter's O and a `run` script); ATTNC_GPU_PHASE=run only runs
# WORK/run, which needs nvcc and a GPU but no attnc: how a GPU machine
# without attnc's build dependencies checks kernels prepared elsewhere.
set -u
src=$1 attnc=$2 npyrand=$3 work=$4 spec=$5 variant=$6 sizes=$7 tile=$8
shift 8
phase=${ATTNC_GPU_PHASE:-both}
if [ "$phase" = run ]; then cd "$work" && exec bash ./run; fi
if [ -n "${ATTNC_NVCC+set}" ]; then nvcc=$ATTNC_NVCC; else
  nvcc=$(command -v nvcc || true)
  [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
fi
if [ -z "$nvcc" ] && [ "$phase" != prepare ]; then echo "nvcc not found: skipped"; exit 77; fi
IFS=, read -r B H Hkv Lq Lk D Dv <<<"$sizes"
bq=${tile%x*} bk=${tile#*x}
defs=() params=()
while [ $# -gt 0 ]; do defs+=("$1" "$2"); params+=(--param "$2"); shift 2; done
mkdir -p "$work" && cd "$work" || exit 1
"$attnc" emit "$spec" --variant "$variant" --target cuda --tile "$tile" "${defs[@]}" -o k.cu || exit 1
"$npyrand" q.npy f4 "$B,$H,$Lq,$D" --seed 1 >/dev/null || exit 1
"$npyrand" k.npy f4 "$B,$Hkv,$Lk,$D" --seed 2 >/dev/null || exit 1
"$npyrand" v.npy f4 "$B,$Hkv,$Lk,$Dv" --seed 3 >/dev/null || exit 1
dtype=${ATTNC_GPU_DTYPE:-}
"$attnc" run "$spec" --variant "$variant" --backend interp --q q.npy --k k.npy --v v.npy -o ref.npy "${params[@]}" \
  ${dtype:+--dtype "$dtype"} || exit 1
cp "$src/tests/cuda_gpu_driver.cu" "$src/middle/kernel_abi.h" "$src/base/half.h" .
# the GPU part: compile for this machine's GPU (any GPU without one), then run
cat > run <<RUN
#!/usr/bin/env bash
nvcc=\${ATTNC_NVCC:-\$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ -n "\${ATTNC_GPU_SKIP_COMPILE:-}" ] && ! nvidia-smi -L 2>/dev/null | grep GPU >/dev/null; then
  echo "no GPU (nvidia-smi -L): skipped before compiling (ATTNC_GPU_SKIP_COMPILE)"; exit 77
fi
"\$nvcc" -O2 -arch=native -I. -DATTNC_LAUNCH=${variant}_cuda_launch -o driver cuda_gpu_driver.cu k.cu >nvcc.log 2>&1 ||
  "\$nvcc" -O2 -I. -DATTNC_LAUNCH=${variant}_cuda_launch -o driver cuda_gpu_driver.cu k.cu >>nvcc.log 2>&1 ||
  { cat nvcc.log; exit 1; }
if ! nvidia-smi -L 2>/dev/null | grep GPU >/dev/null; then echo "compiled; no GPU (nvidia-smi -L): skipped"; exit 77; fi
./driver $B $H $Hkv $Lq $Lk $D $Dv $bq $bk q.npy k.npy v.npy ref.npy $dtype
RUN
[ "$phase" = prepare ] && exit 0
ATTNC_NVCC=$nvcc exec bash ./run
