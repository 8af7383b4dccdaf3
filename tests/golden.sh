#!/usr/bin/env bash
# golden.sh — golden diagnostic tests for `attnc check` (TinyCC/Wren style).
#
#   tests/golden.sh ATTNC FILE.attn            compare with FILE.expect
#   tests/golden.sh ATTNC FILE.attn --bless    (re)write FILE.expect
#   tests/golden.sh ATTNC --bless-all DIR      (re)write DIR/*.expect
#
# The check runs in FILE's directory with the bare file name, so messages read
# `FILE.attn:LINE:COL: ...`.  The expectation is what the command printed on
# stdout, then what it printed on stderr, then a last line `exit: N`.
# On a mismatch a unified diff (expected -> actual) is printed and the exit
# status is 1; 2 means the runner itself was misused.
set -u

usage() {
    echo "usage: $0 ATTNC FILE.attn [--bless] | $0 ATTNC --bless-all DIR" >&2
    exit 2
}

[ $# -ge 2 ] || usage
attnc=$1
shift
case $attnc in
/*) ;;
*) attnc=$PWD/$attnc ;;
esac
if [ ! -x "$attnc" ]; then
    echo "golden.sh: '$attnc' is not an executable" >&2
    exit 2
fi

# The schedule in `emit --target ir` dumps states the vector width of the
# default backend (llvm), which is the host's: pin it, so dumps are the same
# on every machine.
export ATTNC_LLVM_VECTOR_WIDTH=16

# actual FILE.attn: print the actual result of `attnc check FILE.attn` on
# stdout -- or, when the file has a line `// golden-args: CMD ARGS...`, of
# `attnc CMD FILE.attn ARGS...` (e.g. `emit --target ir --shape Lq=64`).
actual() {
    local dir base out err rc cmd args
    dir=$(dirname -- "$1")
    base=$(basename -- "$1")
    args=$(sed -n 's|^// golden-args: *||p' "$1" | head -n 1)
    cmd=check
    if [ -n "$args" ]; then
        cmd=${args%% *}
        args=${args#"$cmd"}
    fi
    out=$(mktemp) && err=$(mktemp) || exit 2
    # shellcheck disable=SC2086 # the args line is split into words on purpose
    (cd "$dir" && exec "$attnc" "$cmd" "$base" $args) >"$out" 2>"$err"
    rc=$?
    cat "$out" "$err"
    echo "exit: $rc"
    rm -f "$out" "$err"
}

bless() {
    local expect=${1%.attn}.expect
    actual "$1" >"$expect" || exit 2
    echo "blessed $expect"
}

if [ "$1" = "--bless-all" ]; then
    [ $# -eq 2 ] || usage
    [ -d "$2" ] || { echo "golden.sh: '$2' is not a directory" >&2; exit 2; }
    n=0
    for f in "$2"/*.attn; do
        [ -e "$f" ] || continue
        bless "$f"
        n=$((n + 1))
    done
    echo "blessed $n files"
    exit 0
fi

file=$1
shift
mode=compare
if [ $# -eq 1 ] && [ "$1" = "--bless" ]; then
    mode=bless
elif [ $# -ne 0 ]; then
    usage
fi
case $file in
*.attn) ;;
*) usage ;;
esac
[ -f "$file" ] || { echo "golden.sh: no such file '$file'" >&2; exit 2; }

if [ $mode = bless ]; then
    bless "$file"
    exit 0
fi

expect=${file%.attn}.expect
if [ ! -f "$expect" ]; then
    echo "golden.sh: no '$expect' (run with --bless to create it)" >&2
    exit 1
fi
got=$(mktemp) || exit 2
actual "$file" >"$got"
if diff -u --label "$expect" --label "actual: attnc check $(basename -- "$file")" "$expect" "$got"; then
    rm -f "$got"
    exit 0
fi
rm -f "$got"
exit 1
