#!/usr/bin/env bash
# tests/cuda_rt_gpu.sh ATTNC EXAMPLE.attn — every attention of an example file through
# `attnc diff --backends cuda` against the interpreter on a GPU (the `cuda` backend: NVRTC + the driver).
# Per `// example-args` line: its own shape in f32; D = Dv = 64 in f16 and bf16 (the tensor-core kernel);
# GQA with odd lengths (H = 8, Hkv = 2, Lq = 131, Lk = 168, D = Dv = 128, bf16); Lq = 150 > Lk = 56 (rows that
# bottom-right-aligned masks leave empty, bf16, D = Dv = 64); and the [B, L, H, D] layout.  A shape on which the
# interpreter itself raises a runtime error (a tensor sized for other lengths) is skipped, saying so.
# Exit 0 pass, 1 fail, 77 (skipped) where the backend is not available (no driver, device or NVRTC).
set -u
attnc=$1 file=$2
# the shape of ARGS with KEY=VALUE pairs replaced
reshape() {
  local shape=$1 kv
  shift
  for kv in "$@"; do
    local key=${kv%%=*}
    if [[ ",$shape," == *",$key="* ]]; then shape=$(sed -E "s/(^|,)$key=[0-9]+/\1$kv/" <<<"$shape"); else shape+=",$kv"; fi
  done
  echo "$shape"
}
fail=0 n=0
while IFS= read -r line; do
  if [[ $line =~ ^//\ example-args\[([A-Za-z_0-9]+)\]:\ (.*)$ ]]; then variant=${BASH_REMATCH[1]} args=${BASH_REMATCH[2]}
  elif [[ $line =~ ^//\ example-args:\ (.*)$ ]]; then
    args=${BASH_REMATCH[1]} variant=$(grep -m1 -oP '^attention \K[A-Za-z_0-9]+' "$file")
  else continue; fi
  read -r -a words <<<"$args"
  shape="" rest=()
  for ((i = 0; i < ${#words[@]}; i++)); do
    if [ "${words[i]}" = --shape ]; then shape=${words[i + 1]}; i=$((i + 1)); else rest+=("${words[i]}"); fi
  done
  cases=("f32|$shape|"
         "f16|$(reshape "$shape" D=64 Dv=64)|"
         "bf16|$(reshape "$shape" D=64 Dv=64)|"
         "bf16|$(reshape "$shape" H=8 Hkv=2 Lq=131 Lk=168 D=128 Dv=128)|"
         "bf16|$(reshape "$shape" Lq=150 Lk=56 D=64 Dv=64)|"
         "bf16|$(reshape "$shape" D=64 Dv=64)|--layout blhd")
  for c in "${cases[@]}"; do
    IFS='|' read -r dtype sh extra <<<"$c"
    n=$((n + 1))
    out=$("$attnc" diff "$file" --variant "$variant" --shape "$sh" "${rest[@]}" --backends cuda --dtype "$dtype" \
          $extra --seed $n 2>&1)
    rc=$?
    if [ $rc -eq 3 ] && grep -qE "no CUDA driver|no CUDA device|NVRTC not found" <<<"$out"; then
      echo "SKIP: $out"; exit 77
    elif [ $rc -eq 3 ] && grep -q "^attnc: interpreter:" <<<"$out"; then
      echo "skipped $variant $dtype $sh: $out"
    elif [ $rc -ne 0 ]; then
      echo "FAIL $variant $dtype $sh $extra (exit $rc):"; echo "$out"; fail=1
    else
      echo "ok $variant $dtype $sh $extra: $(grep '^cuda' <<<"$out")"
    fi
  done
done <"$file"
[ $n -gt 0 ] || { echo "FAIL no example-args line in $file"; exit 1; }
exit $fail
