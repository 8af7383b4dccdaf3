#!/usr/bin/env bash
# tests/call_edges.sh ATTNC NPYRAND — the edges of one call on the command
# line (issue 8): zero sizes in .npy inputs, param text that is not exactly
# a value of the param's type (--param and -D, exit 2), and a sum that would
# run for hours (refused before running, exit 3).
set -u
ATTNC=$1
NPYRAND=$2
# shellcheck source=tests/expect.sh
. "$(dirname "$0")/expect.sh" # $here (the checkout), a fresh work folder as cwd, expect()

cat >p.attn <<'A'
attention p { param cap : float; param flag : bool = true; param n : int = 0;
  mask flag; bias cap * tanh(float(q - kv) / cap) + float(n) * 0.0; }
A
printf 'attention s { param n : int; bias sum(r < n) 0.0; }\n' >s.attn
printf 'attention c { scale 0.5; mask kv <= q; }\n' >c.attn
"$NPYRAND" q.npy f4 1,2,3,4 --seed 1
"$NPYRAND" k.npy f4 1,2,5,4 --seed 2
"$NPYRAND" v.npy f4 1,2,5,2 --seed 3
"$NPYRAND" v0.npy f4 1,2,5,0
"$NPYRAND" qb0.npy f4 0,2,3,4
"$NPYRAND" kb0.npy f4 0,2,5,4
"$NPYRAND" vb0.npy f4 0,2,5,2
"$NPYRAND" qd0.npy f4 1,2,3,0
"$NPYRAND" kd0.npy f4 1,2,5,0
run=(run p.attn --q q.npy --k k.npy --v v.npy -o o.npy)

for b in interp refplan llvm tcc cuda-emu; do
  "$ATTNC" run c.attn --q q.npy --k k.npy --v v.npy -o o.npy --backend "$b" >/dev/null 2>&1 || continue
  expect 0 "O \[0, 2, 3, 2\]" "$ATTNC" run c.attn --q qb0.npy --k kb0.npy --v vb0.npy -o ob.npy --lse lb.npy --backend "$b"
  expect 0 "O \[1, 2, 3, 2\]" "$ATTNC" run c.attn --q qd0.npy --k kd0.npy --v v.npy -o od.npy --lse ld.npy --backend "$b"
  expect 0 "O \[1, 2, 3, 0\]" "$ATTNC" run c.attn --q q.npy --k k.npy --v v0.npy -o o0.npy --lse l0.npy --backend "$b"
  "$ATTNC" run c.attn --q q.npy --k k.npy --v v.npy -o o2.npy --lse l2.npy --backend "$b" >/dev/null
  if cmp -s l0.npy l2.npy; then passes=$((passes + 1)); else echo "FAIL: $b: Dv = 0 changes the LSE"; fails=$((fails + 1)); fi
  grep -qa "'shape': (0, 2, 3, 2)" ob.npy && passes=$((passes + 1)) || { echo "FAIL: $b: B = 0 output shape"; fails=$((fails + 1)); }
  expect 3 "sum\(r < n\) with n = 1099511627776" "$ATTNC" run s.attn --q q.npy --k k.npy --v v.npy -o so.npy --param n=1099511627776 --backend "$b"
done
test -e so.npy && { echo "FAIL: a refused call wrote its output"; fails=$((fails + 1)); }

expect 2 "beyond the float32 range" "$ATTNC" "${run[@]}" --param cap=1e999
expect 2 "NaN" "$ATTNC" "${run[@]}" --param cap=nan
expect 0 "O \[1, 2, 3, 2\]" "$ATTNC" "${run[@]}" --param cap=inf
expect 2 "expected true or false, got '1'" "$ATTNC" "${run[@]}" --param cap=1 --param flag=1
expect 2 "out of the int64 range" "$ATTNC" "${run[@]}" --param cap=1 --param n=9223372036854775808
expect 2 "'3x' is not an integer" "$ATTNC" "${run[@]}" --param cap=1 --param n=3x
expect 2 "empty value" "$ATTNC" "${run[@]}" --param cap=
expect 2 "beyond the float32 range" "$ATTNC" emit p.attn --target ir -D cap=1e999
expect 2 "expected true or false" "$ATTNC" emit p.attn --target ir -D cap=1 -D flag=0

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
