# tests/expect.sh — sourced by the shell tests of the command line
# (tests/cli.sh, tests/call_edges.sh) before they change folder: $here (the
# checkout), a fresh work folder (removed on exit) as the current folder,
# counters and one assertion.
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
fails=0 passes=0

# expect RC PATTERN CMD...: exit status RC and PATTERN (grep -E) in
# stderr+stdout; a command running past 300 s counts as a failure (exit 124).
expect() {
  local want=$1 pattern=$2
  shift 2
  timeout 300 "$@" >out.txt 2>&1
  local got=$?
  if [ "$got" != "$want" ] || ! grep -qE -- "$pattern" out.txt; then
    echo "FAIL: exit $got (want $want), pattern '$pattern': $*"
    sed 's/^/    /' out.txt | head -5
    fails=$((fails + 1))
  else
    passes=$((passes + 1))
  fi
}

# close GOT WANT TOL WHAT: two float32 .npy files hold the same shape and
# values within TOL ($NPYCLOSE: tests/tools/npyclose.c)
close() {
    if "$NPYCLOSE" "$1" "$2" "$3" >close.txt 2>&1; then passes=$((passes + 1)); else
        echo "FAIL: $4: $(cat close.txt)"
        fails=$((fails + 1))
    fi
}

# absent FILE...: a failed command left none of them
absent() {
    for f in "$@"; do
        if [ -e "$f" ]; then echo "FAIL: $f was written by a failed command"; fails=$((fails + 1)); rm -f "$f"; else passes=$((passes + 1)); fi
    done
}
