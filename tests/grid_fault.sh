#!/usr/bin/env bash
# tests/grid_fault.sh ATTNC NPYRAND BACKENDS — a runtime error inside a call
# run in block order (docs/multidim-tiles.md): every backend of BACKENDS
# (comma-separated) must report the interpreter's message, naming the
# element by its original row (q=37), and write no output.
set -u
ATTNC=$1 NPYRAND=$2 BACKENDS=$3
# shellcheck source=tests/expect.sh
. "$(dirname "$0")/expect.sh" # a fresh work folder as cwd
cat >f.attn <<'A'
attention f {
    param width : int;
    mask abs(kv % width - q % width) <= 1 && abs(kv / width - q / width) <= 1;
    bias float(1 / (q - 37));
}
A
"$NPYRAND" q.npy f4 1,2,256,16 --seed 1
"$NPYRAND" k.npy f4 1,1,256,16 --seed 2
"$NPYRAND" v.npy f4 1,1,256,8 --seed 3
"$ATTNC" emit f.attn --target ir --shape B=1,H=2,Hkv=1,Lq=256,Lk=256,D=16,Dv=8 --param width=16 |
  grep -q "runs the block-order plan" || { echo "FAIL: the call does not run the block-order plan"; exit 1; }
want=$("$ATTNC" run f.attn --q q.npy --k k.npy --v v.npy -o o.npy --param width=16 --backend interp 2>&1)
grep -q "q=37" <<<"$want" || { echo "FAIL: interp: $want"; exit 1; }
fails=0
for b in ${BACKENDS//,/ }; do
  rm -f o.npy
  got=$("$ATTNC" run f.attn --q q.npy --k k.npy --v v.npy -o o.npy --param width=16 --backend "$b" 2>&1)
  rc=$?
  if [ "$got" != "$want" ] || [ $rc != 3 ] || [ -e o.npy ]; then
    echo "FAIL $b: exit $rc, '$got' (want exit 3, '$want', no o.npy)"
    fails=1
  else
    echo "ok $b: $got"
  fi
done
exit $fails
