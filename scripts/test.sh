#!/usr/bin/env bash
# Quick start, step 2 (and CI): the whole test suite.
#  1. gcc, -Werror, optimised: every ctest test;
#  2. clang, -Werror, AddressSanitizer + UndefinedBehaviorSanitizer, with the
#     libFuzzer target run for a fixed number of inputs: every ctest test again.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || exit 1
jobs=$(nproc)
status=0

echo "== build 1: gcc -Werror"
CC=gcc cmake -S . -B build-ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATTNC_WERROR=ON >/dev/null || exit 1
cmake --build build-ci -j"$jobs" >/dev/null || { cmake --build build-ci; exit 1; }
(cd build-ci && ctest -j"$jobs" --output-on-failure) || status=1

echo "== build 2: clang -Werror, ASan + UBSan, fuzzer"
# -O1: the sanitizers' own advice; asserts stay on (Debug) and the tests take ~0.6 of -O0's time (CI's 30 minutes)
CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DATTNC_WERROR=ON \
  -DATTNC_SANITIZE=ON -DATTNC_FUZZ=ON >/dev/null || exit 1
cmake --build build-asan -j"$jobs" >/dev/null || { cmake --build build-asan; exit 1; }
# JIT code is invisible to the sanitizers (the gcc build checks it at LLVM's -O3): a short LLVM pipeline and
# LLVM's -O0 code generator here (JIT compiles were ~30% of this half's CPU; at -O0 one took ~1/4 of the time)
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ATTNC_LLVM_PASSES='function(mem2reg,simplifycfg)' ATTNC_LLVM_CODEGEN=0 ctest -j"$jobs" --output-on-failure) || status=1
exit $status
