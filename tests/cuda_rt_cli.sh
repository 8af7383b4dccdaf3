#!/usr/bin/env bash
# tests/cuda_rt_cli.sh ATTNC NPYRAND WORK SPEC — `--backend cuda` without a CUDA driver (forced with
# ATTNC_CUDA_DRIVER naming no file, so the test means the same on a GPU machine): run, diff and bench exit 3
# with one line on stderr ("attnc: backend cuda: no CUDA driver (...)") and nothing on stdout; run writes no
# output file.  `emit --target cuda` still works, and an unknown backend name is exit 2.  Exit 0 pass, 1 fail.
set -u
attnc=$1 npyrand=$2 work=$3 spec=$4
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
"$npyrand" q.npy f4 1,2,70,16 --seed 1 >/dev/null && "$npyrand" k.npy f4 1,2,70,16 --seed 2 >/dev/null &&
  "$npyrand" v.npy f4 1,2,70,16 --seed 3 >/dev/null || exit 1
export ATTNC_CUDA_DRIVER=/nonexistent/libcuda.so.1
fail=0
# expect NAME STATUS CMD...: exit STATUS, one stderr line naming the missing driver, empty stdout
expect() {
  local name=$1 want=$2
  shift 2
  "$@" >out.txt 2>err.txt
  local rc=$?
  local lines
  lines=$(wc -l <err.txt)
  if [ $rc -ne "$want" ] || [ "$lines" -ne 1 ] || [ -s out.txt ] ||
     ! grep -q "^attnc: backend cuda: no CUDA driver (/nonexistent/libcuda.so.1: " err.txt; then
    echo "FAIL $name: exit $rc (want $want), $lines stderr lines:"; cat err.txt out.txt; fail=1
  else
    echo "ok $name: $(cat err.txt)"
  fi
}
expect run 3 "$attnc" run "$spec" --variant causal_top_left --backend cuda --q q.npy --k k.npy --v v.npy \
  -o o.npy --lse lse.npy
[ -e o.npy ] || [ -e lse.npy ] && { echo "FAIL run wrote an output file"; fail=1; }
ls -A | grep -v -e '^[qkv].npy$' -e '^out.txt$' -e '^err.txt$' && { echo "FAIL run left files"; fail=1; }
expect diff 3 "$attnc" diff "$spec" --variant causal_top_left --backends cuda --shape B=1,H=2,Hkv=2,Lq=70,Lk=70,D=16,Dv=16
expect bench 3 "$attnc" bench "$spec" --variant causal_top_left --backend cuda --dtype bf16 \
  --shape B=1,H=2,Hkv=2,Lq=70,Lk=70,D=64,Dv=64 --reps 1
"$attnc" emit "$spec" --variant causal_top_left --target cuda -o k.cu >out.txt 2>&1 &&
  grep -q "causal_top_left_cuda_launch" k.cu || { echo "FAIL emit --target cuda:"; cat out.txt; fail=1; }
"$attnc" run "$spec" --variant causal_top_left --backend cudax --q q.npy --k k.npy --v v.npy -o o.npy 2>err.txt
[ $? -eq 2 ] || { echo "FAIL an unknown backend is not exit 2"; fail=1; }
[ $fail -eq 0 ] && echo PASS
exit $fail
