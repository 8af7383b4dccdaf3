# diff_checks.sh — sourced by the differential test scripts (toeplitz.sh,
# toeplitz_grid.sh) with their arguments ATTNC BACKENDS: sets attnc,
# backends, blist (the backends as an array), want (the lines ending in
# "ok" of a passing `attnc diff --backends interp,BACKENDS`: the interpreter
# and each backend) and fail=0; and defines the two checks they make, of
# `attnc diff` and of a runtime error, each printing FAIL with the output
# and setting fail=1.
attnc=$1
backends=$2
IFS=, read -ra blist <<<"$backends"
want=$(( ${#blist[@]} + 1 ))
fail=0

# diff_ok WANT LABEL ARGS...: `attnc diff ARGS` exits 0 with WANT lines ending in " ok"
# (the interpreter's and each backend's).
diff_ok() {
    local want=$1 label=$2 out rc lines
    shift 2
    out=$("$attnc" diff "$@" 2>&1)
    rc=$?
    lines=$(printf '%s\n' "$out" | grep -c ' ok$')
    if [ "$rc" -ne 0 ] || [ "$lines" -ne "$want" ]; then
        echo "FAIL: $label"
        printf '%s\n' "$out"
        fail=1
    fi
}

# bench_fails MESSAGE LABEL ARGS...: `attnc bench ARGS` fails with MESSAGE (a grep pattern) in its output.
bench_fails() {
    local message=$1 label=$2 out
    shift 2
    out=$("$attnc" bench "$@" 2>&1)
    if [ $? -eq 0 ] || ! printf '%s\n' "$out" | grep -q "$message"; then
        echo "FAIL: $label: want the interpreter's error"
        printf '%s\n' "$out"
        fail=1
    fi
}
