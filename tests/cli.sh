#!/usr/bin/env bash
# tests/cli.sh ATTNC NPYRAND — the command line's exit statuses and messages
# (shared/spec/interfaces.md section 1): 0 ok, 1 spec errors, 2 bad command
# line, 3 runtime error of the call.  Each failure must print one line that
# names the problem, and a failed run must leave no output file behind.
set -u
ATTNC=$1
NPYRAND=$2
# shellcheck source=tests/expect.sh
. "$(dirname "$0")/expect.sh" # $here (the checkout), a fresh work folder as cwd, expect()

cat >good.attn <<'A'
// one attention with a required param and a tensor
attention win {
    param window : int;
    tensor slope : float[H];
    mask kv <= q && q - kv < window;
    bias -slope[h] * float(q - kv);
}
A
cat >two.attn <<'A'
attention a { use causal; }
attention b { use causal_bottom_right; }
A
cat >oob.attn <<'A'
attention oob { tensor t : float[4]; bias t[kv]; }
A
printf 'attention bad { mask q + 1; }\n' >bad.attn
"$NPYRAND" q.npy f4 1,4,9,8 --seed 1
"$NPYRAND" k.npy f4 1,2,11,8 --seed 2
"$NPYRAND" v.npy f4 1,2,11,6 --seed 3
"$NPYRAND" k_badD.npy f4 1,2,11,7 --seed 2
"$NPYRAND" k_gqa.npy f4 1,3,11,8 --seed 2
"$NPYRAND" v_gqa.npy f4 1,3,11,6 --seed 2
"$NPYRAND" qi.npy i4 1,4,9,8
"$NPYRAND" q3.npy f4 4,9,8
"$NPYRAND" slope.npy f4 4 --seed 4
"$NPYRAND" slope5.npy f4 5 --seed 4
"$NPYRAND" slopei.npy i4 4
head -c 100 q.npy >trunc.npy
printf 'not a numpy file at all, no sir' >junk.npy
run=(run good.attn --q q.npy --k k.npy --v v.npy)

expect 2 'usage' "$ATTNC"
expect 0 'usage' "$ATTNC" --help
expect 0 'attnc [0-9]' "$ATTNC" --version
expect 2 "unknown command 'frob'" "$ATTNC" frob x.attn
expect 2 "needs a FILE" "$ATTNC" check
expect 2 "unknown option '--bogus'" "$ATTNC" check good.attn --bogus 1
expect 2 "needs a value" "$ATTNC" check good.attn --variant
expect 0 'good.attn: ok \(win\)' "$ATTNC" check good.attn
expect 3 "cannot open 'missing.attn'" "$ATTNC" check missing.attn
expect 3 "cannot read '.'" "$ATTNC" check .
expect 1 'bad.attn:1:22: error: a mask must be bool, found int' "$ATTNC" check bad.attn
expect 2 "no attention named 'zz'" "$ATTNC" check good.attn --variant zz
expect 0 'ok \(a, b\)' "$ATTNC" check two.attn

# run: success, outputs and their sizes (npy header 128 bytes + 4 bytes a float)
expect 0 'win: O \[1, 4, 9, 6\]' "$ATTNC" "${run[@]}" -o o.npy --lse lse.npy --param window=3 --tensor slope=slope.npy --backend interp
[ "$(stat -c %s o.npy)" = $((128 + 4 * 4 * 9 * 6)) ] || { echo "FAIL: o.npy has the wrong size"; fails=$((fails + 1)); }
[ "$(stat -c %s lse.npy)" = $((128 + 4 * 4 * 9)) ] || { echo "FAIL: lse.npy has the wrong size"; fails=$((fails + 1)); }
expect 0 "O \[1, 4, 9, 6\]" "$ATTNC" "${run[@]}" -o o2.npy --param window=3 --tensor slope=slope.npy --backend interp --threads 2
rm -f o.npy lse.npy

# run: bad command lines (2)
expect 2 'needs --q, --k, --v and -o' "$ATTNC" run good.attn --q q.npy
expect 2 "unknown backend 'gpu'" "$ATTNC" "${run[@]}" -o o.npy --backend gpu
expect 2 "--threads: 'many'" "$ATTNC" "${run[@]}" -o o.npy --threads many
expect 2 "expected NAME=VALUE" "$ATTNC" "${run[@]}" -o o.npy --param window
expect 2 "param 'window' is int: 'wide' is not an integer" "$ATTNC" "${run[@]}" -o o.npy --param window=wide --tensor slope=slope.npy
expect 2 "has no param 'windw'" "$ATTNC" "${run[@]}" -o o.npy --param windw=3 --tensor slope=slope.npy
expect 2 "expected NAME=FILE.npy" "$ATTNC" "${run[@]}" -o o.npy --param window=3 --tensor slope
expect 2 "the file has 2 attentions \(a, b\)" "$ATTNC" run two.attn --q q.npy --k k.npy --v v.npy -o o.npy
expect 1 'error: a mask must be bool' "$ATTNC" run bad.attn --q q.npy --k k.npy --v v.npy -o o.npy

# run: runtime errors of the call (3), and no output left behind
expect 3 "missing param 'window'" "$ATTNC" "${run[@]}" -o o.npy --tensor slope=slope.npy
expect 3 "missing tensor 'slope'" "$ATTNC" "${run[@]}" -o o.npy --param window=3
expect 3 "tensor 'slope' has shape \[5\] but the spec needs \[4\]" "$ATTNC" "${run[@]}" -o o.npy --param window=3 --tensor slope=slope5.npy
expect 3 "tensor 'slope' must be float32, got int32" "$ATTNC" "${run[@]}" -o o.npy --param window=3 --tensor slope=slopei.npy
expect 3 "has no tensor 'extra'" "$ATTNC" "${run[@]}" -o o.npy --param window=3 --tensor slope=slope.npy --tensor extra=slope.npy
expect 3 "tensor 'slope': .*missing.npy" "$ATTNC" "${run[@]}" -o o.npy --param window=3 --tensor slope=missing.npy
expect 3 "Q: .*trunc.npy" "$ATTNC" run good.attn --q trunc.npy --k k.npy --v v.npy -o o.npy --param window=3 --tensor slope=slope.npy
expect 3 "Q: .*junk.npy" "$ATTNC" run good.attn --q junk.npy --k k.npy --v v.npy -o o.npy --param window=3 --tensor slope=slope.npy
expect 3 "Q \(qi.npy\) must be float32" "$ATTNC" run good.attn --q qi.npy --k k.npy --v v.npy -o o.npy --param window=3 --tensor slope=slope.npy
expect 3 "Q \(q3.npy\) must have 4 dimensions" "$ATTNC" run good.attn --q q3.npy --k k.npy --v v.npy -o o.npy --param window=3 --tensor slope=slope.npy
expect 3 "head dims differ: Q has D=8, K has D=7" "$ATTNC" run good.attn --q q.npy --k k_badD.npy --v v.npy -o o.npy --param window=3 --tensor slope=slope.npy
expect 3 "H = 4 is not a multiple of Hkv = 3" "$ATTNC" run good.attn --q q.npy --k k_gqa.npy --v v_gqa.npy -o o.npy --param window=3 --tensor slope=slope.npy
expect 3 "oob.attn:1:45: index 4 is out of range \[0, 4\) in dimension 0 of tensor 't' \(at b=0 h=0 q=0 kv=4\)" "$ATTNC" run oob.attn --q q.npy --k k.npy --v v.npy -o o.npy --tensor t=slope.npy
[ -e o.npy ] && { echo "FAIL: a failed run left o.npy behind"; fails=$((fails + 1)); }
expect 3 "" "$ATTNC" run good.attn --q q.npy --k k.npy --v v.npy -o no/such/dir/o.npy --param window=3 --tensor slope=slope.npy

# diff: every backend against the interpreter on made-up inputs (tensors included)
expect 0 'refplan .* ok' "$ATTNC" diff good.attn --shape B=1,H=4,Hkv=2,Lq=37,Lk=41,D=8 --param window=5 --backends refplan --seed 3
expect 0 'refplan .* ok' "$ATTNC" diff "$here/examples/relative_bias_1d.attn" --variant t5_relative --param buckets=16 --param max_dist=32 --backends refplan
expect 2 "--backends: unknown backend 'gpu'" "$ATTNC" diff good.attn --param window=5 --backends gpu
expect 3 "missing param 'window'" "$ATTNC" diff good.attn --backends refplan
expect 3 "index 4 is out of range" "$ATTNC" diff oob.attn --backends refplan --shape Lq=4,Lk=6
# bench: time per call, GFLOP/s from the kept pairs, compile time
expect 0 'kept pairs +0\.5' "$ATTNC" bench "$here/examples/causal.attn" --variant causal_top_left --shape H=2,Lq=64,D=16 --backend refplan --reps 3
expect 0 'GFLOP/s' "$ATTNC" bench good.attn --shape H=2,Lq=64,D=16 --param window=8 --backend interp --reps 2
expect 2 'bench needs --shape' "$ATTNC" bench good.attn
expect 2 "--reps 'x'" "$ATTNC" bench good.attn --shape H=2 --reps x

# run -o / --lse write to what the path names (README, command line): a regular
# file or a link's target via a temp file and a rename, a character device or
# a FIFO straight through (errors reported), anything else refused; never is
# a device or a link replaced.
okrun=("${run[@]}" --param window=3 --tensor slope=slope.npy --backend interp)
osize=$((128 + 4 * 4 * 9 * 6))
ln -s target.npy link.npy # dangling: the link names the file to create
expect 0 'win: O' "$ATTNC" "${okrun[@]}" -o link.npy
[ -L link.npy ] && [ "$(stat -c %s target.npy 2>/dev/null)" = $osize ] ||
  { echo "FAIL: -o through a dangling symlink: the link must stay and its target get the file"; fails=$((fails + 1)); }
mkdir sub && ln -s ../target.npy sub/rel.npy && rm -f target.npy && echo old >target.npy
expect 0 'win: O' "$ATTNC" "${okrun[@]}" -o sub/rel.npy --lse link.npy
[ -L sub/rel.npy ] && [ -L link.npy ] && [ "$(stat -c %s target.npy)" = $((128 + 4 * 4 * 9)) ] ||
  { echo "FAIL: -o/--lse through symlinks to an existing file"; fails=$((fails + 1)); }
mkfifo fifo.npy
timeout 60 cat fifo.npy >fifo.out &
catpid=$!
expect 0 'win: O' timeout 60 "$ATTNC" "${okrun[@]}" -o fifo.npy
if [ -p fifo.npy ]; then wait $catpid; else kill $catpid 2>/dev/null; fi
[ -p fifo.npy ] && [ "$(stat -c %s fifo.out)" = $osize ] ||
  { echo "FAIL: -o FIFO: it must stay a FIFO and its reader get the $osize bytes"; fails=$((fails + 1)); }
expect 3 "sub: is a directory" "$ATTNC" "${okrun[@]}" -o sub
# a pipe whose reader has gone: a write error (exit 3), not death by SIGPIPE
# (the reader exits at once; attnc loads, parses and runs long before it writes)
"$ATTNC" "${okrun[@]}" -o /dev/stdout 2>epipe.txt | true
epipe=${PIPESTATUS[0]}
[ "$epipe" = 3 ] && grep -q "Broken pipe" epipe.txt ||
  { echo "FAIL: -o to a closed pipe: exit $epipe (want 3, 'Broken pipe')"; fails=$((fails + 1)); }
# Devices: as root, private copies of /dev/null and /dev/full (so a regression
# cannot delete the system's); otherwise the system's (which a non-root
# process cannot replace).
null=/dev/null full=/dev/full
if [ "$(id -u)" = 0 ]; then
  null=$work/null full=$work/full
  mknod "$null" c 1 3 2>/dev/null && mknod "$full" c 1 7 2>/dev/null || null= full=
fi
if [ -n "$null" ]; then
  expect 0 'win: O' "$ATTNC" "${okrun[@]}" -o "$null" --lse "$null"
  [ -c "$null" ] || { echo "FAIL: -o $null is no longer a character device"; fails=$((fails + 1)); }
  expect 3 "$full: cannot write: No space left on device" "$ATTNC" "${okrun[@]}" -o "$full"
  [ -c "$full" ] || { echo "FAIL: -o $full is no longer a character device"; fails=$((fails + 1)); }
  # a failed write of the LSE leaves no O either
  expect 3 "$full: cannot write" "$ATTNC" "${okrun[@]}" -o full-o.npy --lse "$full"
  [ -e full-o.npy ] && { echo "FAIL: a failed LSE write left O behind"; fails=$((fails + 1)); }
else
  echo "note: no private device nodes (mknod refused): device cases skipped"
fi

# Every destination is checked before anything is written, and a failure
# leaves nothing partial: no O when the LSE cannot be written, an existing O
# untouched, no temp files.
mkdir out
expect 3 "/nonexistent/L.npy: cannot create a temporary file" "$ATTNC" "${okrun[@]}" -o out/O.npy --lse /nonexistent/L.npy
[ -e out/O.npy ] && { echo "FAIL: a failed LSE write left O behind"; fails=$((fails + 1)); }
echo previous >out/O.npy
expect 3 "is a directory" "$ATTNC" "${okrun[@]}" -o out/O.npy --lse sub
[ "$(cat out/O.npy)" = previous ] || { echo "FAIL: a failed run changed an existing O"; fails=$((fails + 1)); }
ls out sub . | grep -q '\.tmp\.' && { echo "FAIL: temp files left behind"; fails=$((fails + 1)); }
# emit -o X.c writes X.h too: both or neither
mkdir -p kdir/k.h
expect 3 "kdir/k.h: is a directory" "$ATTNC" emit "$here/examples/causal.attn" --variant causal_top_left --target c -o kdir/k.c
[ -e kdir/k.c ] && { echo "FAIL: emit left k.c behind when k.h could not be written"; fails=$((fails + 1)); }
rmdir kdir/k.h
"$ATTNC" emit "$here/examples/causal.attn" --variant causal_top_left --target c -o kdir/k.c &&
[ -s kdir/k.c ] && [ -s kdir/k.h ] || { echo "FAIL: emit -o k.c must write k.c and k.h"; fails=$((fails + 1)); }

# --shape sizes are checked (exit 2, naming the size), and diff/bench/emit
# make no tensor larger than a .npy file may hold (16 GiB).
cat >big.attn <<'A'
attention big { tensor t : float[Lq, Lk]; bias t[q, kv]; }
A
dg=(diff good.attn --param window=5 --backends refplan)
expect 2 "size Lq=-5 is negative" "$ATTNC" "${dg[@]}" --shape Lq=-5
expect 2 "size Lq='abc' is not an integer" "$ATTNC" "${dg[@]}" --shape Lq=abc
expect 2 "size D='' is not an integer" "$ATTNC" "${dg[@]}" --shape D=
expect 2 "size Lk=99999999999999999999 is too large" "$ATTNC" "${dg[@]}" --shape Lk=99999999999999999999
expect 2 "size H is given twice" "$ATTNC" "${dg[@]}" --shape H=1,H=2
expect 2 "Lq=4294967296,Lk=4294967296,D=1': Q, K, V, O and LSE have 21474836480 floats together, more than 4294967296" "$ATTNC" "${dg[@]}" --shape Lq=4294967296,Lk=4294967296,D=1
expect 2 "Q \[B, H, Lq, D\] = \[1, 1, 4294967297, 1\] has more than 4294967296 floats" "$ATTNC" "${dg[@]}" --shape Lq=4294967297,Lk=1,D=1
expect 2 "K \[B, Hkv, Lk, D\] = \[4294967296, 1, 4294967296, 4294967296\] has more than" "$ATTNC" "${dg[@]}" --shape B=4294967296,Lq=0,Lk=4294967296,D=4294967296
expect 2 "size Lq=-1 is negative" "$ATTNC" bench good.attn --shape Lq=-1 --param window=5
expect 2 "Q \[B, H, Lq, D\]" "$ATTNC" bench good.attn --shape Lq=4294967296 --param window=5
expect 2 "size B=-2 is negative" "$ATTNC" emit good.attn --target c --shape B=-2 --param window=5
expect 3 "tensor 't' is too large to make up" "$ATTNC" diff big.attn --backends refplan --shape Lq=131072,Lk=65537,D=1
expect 2 "--int-range 't=0,99999999999': expected NAME=LO,HI" "$ATTNC" diff oob.attn --backends refplan --int-range t=0,99999999999
expect 2 "--seed 'x'" "$ATTNC" diff oob.attn --backends refplan --seed x
expect 2 "--tile '0x4'" "$ATTNC" bench good.attn --shape H=2 --tile 0x4
# a "flag" holding two of the table's flags is no flag (it was taken, its value dropped)
expect 2 "unknown option '--variant --shape' for 'diff'" "$ATTNC" diff good.attn "--variant --shape" x --param window=5 --backends refplan

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
