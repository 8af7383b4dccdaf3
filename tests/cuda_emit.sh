#!/usr/bin/env bash
# tests/cuda_emit.sh ATTNC WORKDIR [NVCC] SPEC... — `attnc emit --target cuda`
# for every attention of every SPEC: the text must name the entry point
# NAME_cuda_launch and the kernel; with NVCC (a path, or "" for none) it must
# also compile with `nvcc -arch=sm_80`: the first attention to an object file
# (`-c`: the host compiler too), the others to PTX (`-ptx`: nvcc's front end
# still reads the whole text, host code included; half the time of `-c`)
# without optimising the device code (`-Xcicc -O0`: what these check is that
# the text compiles, and cicc's optimiser was 2/3 of the time; the first one
# and the tensor-core texts, tests/cuda_fa2_nvcc.sh, compile optimised).  Exit 0 pass, 1 fail, 77 when NVCC
# is wanted ("require": nvcc on PATH, /usr/local/cuda/bin/nvcc, or $ATTNC_NVCC
# when set, empty meaning none) but absent (ctest: SKIP_RETURN_CODE 77).
set -u
attnc=$1 work=$2 nvcc=$3
shift 3
mkdir -p "$work"
if [ "$nvcc" = "require" ]; then
  if [ -n "${ATTNC_NVCC+set}" ]; then
    nvcc=$ATTNC_NVCC # the environment names it (empty: behave as if there were none)
  else
    nvcc=$(command -v nvcc || true)
    [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
  fi
  if [ -z "$nvcc" ]; then echo "nvcc not found: skipped"; exit 77; fi
fi
fail=0 count=0
for spec in "$@"; do
  for name in $(sed -n 's/^[[:space:]]*attention[[:space:]]\+\([A-Za-z_][A-Za-z0-9_]*\).*/\1/p' "$spec"); do
    count=$((count + 1))
    out=$work/$name.cu
    if ! "$attnc" emit "$spec" --variant "$name" --target cuda -o "$out" >"$work/$name.log" 2>&1; then
      echo "FAIL emit $spec $name"; cat "$work/$name.log"; fail=1; continue
    fi
    if ! grep -q "extern \"C\" int ${name}_cuda_launch(const AttnCall \*call, int \*fault, cudaStream_t stream) {" "$out" ||
       ! grep -q "__global__ void __launch_bounds__(ATTNC_NT) ${name}_cuda_kernel(" "$out"; then
      echo "FAIL $spec $name: the text lacks ${name}_cuda_launch or ${name}_cuda_kernel"; fail=1; continue
    fi
    if [ -n "$nvcc" ]; then
      mode=(-ptx -Xcicc -O0 -o "$work/$name.ptx")
      [ "$count" -eq 1 ] && mode=(-c -o "$work/$name.o")
      if ! "$nvcc" -arch=sm_80 "${mode[@]}" "$out" >"$work/$name.nvcc.log" 2>&1; then
        echo "FAIL nvcc $spec $name"; head -30 "$work/$name.nvcc.log"; fail=1
      fi
    fi
  done
done
echo "$count attentions checked${nvcc:+ (nvcc: $nvcc)}"
[ "$count" -gt 0 ] || fail=1
exit $fail
