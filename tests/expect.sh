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
