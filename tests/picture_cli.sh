#!/usr/bin/env bash
# `attnc show`: the PNG it draws decodes and matches the mask pixel by pixel
# (test_picture --png), and bad input gets one line, its exit status and no file.
#   picture_cli.sh ATTNC TEST_PICTURE WORKDIR
set -u
attnc=$1 check=$2 work=$3
mkdir -p "$work"
spec=$work/picture.attn
printf '%s\n' 'attention band { param w : int = 5; mask kv <= q + (Lk - Lq) && kv > q + (Lk - Lq) - w; }' > "$spec"
fail() { echo "FAIL: $*"; exit 1; }
png=$work/band.png
rm -f "$png"
"$attnc" show "$spec" --shape B=1,H=2,Hkv=1,Lq=20,Lk=30,D=4 --param w=5 --at 0,1 --size 60 --tile 8x8 -o "$png" ||
  fail "show exited $?"
"$check" --png "$png" || fail "the picture does not match the mask"
# bad input: exit status, one line, nothing written
expect() { # STATUS WORDS ARGS...
  local want=$1 words=$2
  shift 2
  rm -f "$work/bad.png"
  "$attnc" show "$spec" "$@" > "$work/out" 2> "$work/err"
  local rc=$?
  [ $rc -eq "$want" ] || fail "show $* exited $rc, want $want: $(cat "$work/err")"
  grep -q -- "$words" "$work/err" || fail "show $*: message '$(cat "$work/err")' lacks '$words'"
  [ "$(wc -l < "$work/err")" -eq 1 ] || fail "show $*: more than one line"
  [ ! -e "$work/bad.png" ] || fail "show $* wrote a file"
}
expect 2 "needs --shape" -o "$work/bad.png"
expect 2 "--size" --shape Lq=8 --size 3 -o "$work/bad.png"
expect 2 "--at" --shape Lq=8 --at 1 -o "$work/bad.png"
expect 2 "outside" --shape B=1,H=2,Lq=8 --at 0,2 -o "$work/bad.png"
expect 2 "positive" --shape Lq=0 -o "$work/bad.png"
expect 2 "not an integer" --shape Lq=8 --param w=x -o "$work/bad.png"
expect 3 "" --shape Lq=8 -o "$work/no/such/dir/bad.png"
echo "ok: attnc show draws the mask and the tile map; bad input refused"
