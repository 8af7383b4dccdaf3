#!/usr/bin/env bash
# Quick start, step 1: install what is missing, build attnc, and run an
# example spec end to end on random inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "attnc: built build/attnc"
mkdir -p out
build/npyrand out/q.npy f4 1,8,256,64 --seed 1
build/npyrand out/k.npy f4 1,2,256,64 --seed 2
build/npyrand out/v.npy f4 1,2,256,64 --seed 3
build/attnc check examples/sliding_window.attn
build/attnc run examples/sliding_window.attn --variant sliding_window_causal --param window=32 \
  --q out/q.npy --k out/k.npy --v out/v.npy -o out/o.npy --lse out/lse.npy
# the library, the command and the Python package into /usr/local (cmake --install):
# Debian's python3 then imports attnc
cmake --install build >/dev/null
echo "attnc: installed into /usr/local (attnc, libattnc, attnc.h, attnc.pc, the Python package attnc)"
if [ -d build/python/attnc ]; then
  (cd out && /usr/bin/python3 ../examples/python/quickstart.py .)
fi
