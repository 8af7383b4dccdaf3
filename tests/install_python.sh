#!/usr/bin/env bash
# tests/install_python.sh BUILD_DIR SOURCE_DIR PYTHON — `pip install ./python`
# against libattnc installed into a temporary prefix (pkg-config), as README
# documents for environments other than the build tree; then the installed
# package runs a causal attention and checks it with NumPy.  Offline: no
# build isolation, no dependencies fetched (setuptools and numpy must be there).
set -euo pipefail
build=$(cd "$1" && pwd); src=$(cd "$2" && pwd); python=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "install/python: $*" >&2; exit 1; }
"$python" -c "import setuptools, pip, numpy" 2>/dev/null || { echo "SKIP: $python lacks pip, setuptools or numpy"; exit 77; }
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null || fail "cmake --install failed"
pc=$(find "$tmp/prefix" -name attnc.pc | head -n1)
cp -r "$src/python" "$tmp/python" # pip builds in the source tree: keep the checkout clean
rm -rf "$tmp/python/tests"
PKG_CONFIG_PATH=$(dirname "$pc") "$python" -m pip install -q --no-build-isolation --no-deps --no-index \
  --target "$tmp/site" "$tmp/python" > "$tmp/pip.log" 2>&1 || { cat "$tmp/pip.log"; fail "pip install failed"; }
cd "$tmp"
PYTHONPATH="$tmp/site" "$python" - <<'PY' || fail "the installed package does not work"
import numpy as np, attnc
assert attnc.__file__.startswith(__import__("os").environ["PYTHONPATH"]), attnc.__file__
k = attnc.compile("attention installed_causal { use causal; }")
rng = np.random.default_rng(0)
q, kk, v = (rng.standard_normal((1, 2, 9, 8)).astype(np.float32) for _ in range(3))
o = k(q, kk, v)
s = q.astype(np.float64) @ kk.astype(np.float64).transpose(0, 1, 3, 2) / np.sqrt(8)
s = np.where(np.tril(np.ones((9, 9), bool)), s, -np.inf)
p = np.exp(s - s.max(-1, keepdims=True))
want = (p / p.sum(-1, keepdims=True)) @ v
assert np.abs(o - want).max() < 1e-5
PY
# cmake --install put the package into the prefix's Python path too (its run path finds the prefix's libattnc)
site=$(find "$tmp/prefix" -path '*dist-packages/attnc/__init__.py' | head -n1)
[ -n "$site" ] || fail "cmake --install did not install the Python package"
PYTHONPATH=$(dirname "$(dirname "$site")") "$python" -c "
import attnc, numpy as np
k = attnc.compile('attention cmake_installed { use causal; }')
q = np.ones((1, 1, 4, 8), np.float32)
assert np.allclose(k(q, q, q), q)
assert attnc._attnc.__file__.startswith('$tmp/prefix'), attnc._attnc.__file__
" || fail "the package cmake --install put into $site does not work"
echo "install/python: ok (pip install ./python against $tmp/prefix, and cmake --install's copy)"
