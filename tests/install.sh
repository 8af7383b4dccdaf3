#!/usr/bin/env bash
# tests/install.sh BUILD_DIR SOURCE_DIR — install into a temporary prefix and
# build examples/embed against it every documented way (embed.c; decode.c and train_step.c shared;
# tests/install_v2.c, a rotary + sink attention against the interpreter, shared and static): pkg-config (shared),
# pkg-config static_libs, pkg-config --static, and find_package(attnc) for
# both targets; run each.  Also: the soname, and that libattnc.so exports
# only attnc_* symbols; the installed `attnc show` writes a PNG; the installed `attnc emit` of a v2
# attention gives C (with its backward) that cc compiles and CUDA text that nvcc compiles (when present).
set -euo pipefail
build=$(cd "$1" && pwd); src=$(cd "$2" && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "install test: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null || fail "cmake --install failed"
prefix="$tmp/prefix"
for f in bin/attnc include/attnc.h; do [ -e "$prefix/$f" ] || fail "missing $f"; done
pc=$(find "$prefix" -name attnc.pc | head -n1); [ -n "$pc" ] || fail "no attnc.pc installed"
libdir=$(dirname "$(dirname "$pc")")
[ -e "$libdir/libattnc.a" ] || fail "no libattnc.a"
so=$(readlink -f "$libdir/libattnc.so")
soname=$(objdump -p "$so" | awk '/SONAME/ {print $2}')
[ "$soname" = "libattnc.so.0" ] || fail "soname is '$soname', expected libattnc.so.0"
[ -e "$libdir/$soname" ] || fail "no $soname link"
# exported == declared in attnc.h
exported=$(nm -D --defined-only "$so" | awk '{print $NF}' | sed 's/@.*//' | sort -u)
declared=$(grep -o '[ *]attnc_[a-z0-9_]*(' "$prefix/include/attnc.h" | tr -d ' *(' | sort -u)
[ "$exported" = "$declared" ] || fail "libattnc.so exports other than attnc.h declares: $(diff <(echo "$declared") <(echo "$exported") | grep '^[<>]' | head -n5 | tr '\n' ' ')"
"$prefix/bin/attnc" --version >/dev/null || fail "installed attnc does not run"
# the installed `attnc show` draws a PNG (libpng linked in; its pixels are checked by cli/show)
"$prefix/bin/attnc" show "$src/examples/causal.attn" --variant causal_top_left --shape B=1,H=1,Lq=40,Lk=40,D=8 -o "$tmp/causal.png" \
  || fail "installed attnc show failed"
[ "$(head -c 8 "$tmp/causal.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "attnc show wrote no PNG"
# the installed `attnc emit` of a version-2 attention (rotary + learned sink): its ahead-of-time C, with
# NAME_backward, compiles warning-free with the user's compiler; its CUDA text with nvcc when there is one
"$prefix/bin/attnc" emit "$src/examples/v2/learned_sinks.attn" --variant gpt_oss_full --target c -o "$tmp/v2.c" \
  || fail "installed attnc emit --target c (v2) failed"
grep -q "gpt_oss_full_backward" "$tmp/v2.c" || fail "the v2 C text has no gpt_oss_full_backward"
${CC:-cc} -std=c11 -Wall -Wextra -Werror -c "$tmp/v2.c" -o "$tmp/v2.o" || fail "the v2 C text does not compile"
"$prefix/bin/attnc" emit "$src/examples/v2/rotary.attn" --variant llama --target cuda -o "$tmp/v2.cu" \
  || fail "installed attnc emit --target cuda (v2) failed"
nvcc=$(command -v nvcc || true); [ -n "$nvcc" ] || { [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc; }
if [ -n "$nvcc" ]; then
  "$nvcc" -arch=sm_80 -c "$tmp/v2.cu" -o "$tmp/v2cu.o" >"$tmp/nvcc.log" 2>&1 || { cat "$tmp/nvcc.log" >&2; fail "nvcc rejects the v2 CUDA text"; }
fi

export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc="${CC:-cc} ${EXTRA_CFLAGS:-}"
embed="$src/examples/embed/embed.c"
# (-lm: embed.c itself calls libm)
# 1. shared, one pkg-config line (rpath so the test finds the temporary prefix)
# shellcheck disable=SC2046
$cc -std=c11 -o "$tmp/embed-shared" "$embed" $(pkg-config --cflags --libs attnc) -lm -Wl,-rpath,"$libdir" \
  || fail "shared link with pkg-config failed"
# (grep reads a captured string: `objdump | grep -q` under pipefail fails
#  whenever grep exits first and objdump dies of SIGPIPE)
grep -q "NEEDED.*libattnc.so.0" <<<"$(objdump -p "$tmp/embed-shared")" || fail "embed-shared does not use libattnc.so.0"
"$tmp/embed-shared" >/dev/null || fail "embed-shared failed"
# 1b. the decode example (attnc_kernel_run_batch over a paged f16 cache), linked the same way
# shellcheck disable=SC2046
$cc -std=c11 -o "$tmp/decode-shared" "$src/examples/embed/decode.c" $(pkg-config --cflags --libs attnc) -lm \
  -Wl,-rpath,"$libdir" || fail "decode.c: shared link with pkg-config failed"
"$tmp/decode-shared" 300 >/dev/null || fail "decode-shared failed"
# 1c. the training-step example (attnc_kernel_backward from an installed library)
# shellcheck disable=SC2046
$cc -std=c11 -o "$tmp/train-shared" "$src/examples/embed/train_step.c" $(pkg-config --cflags --libs attnc) -lm \
  -Wl,-rpath,"$libdir" || fail "train_step.c: shared link with pkg-config failed"
"$tmp/train-shared" >/dev/null || fail "train-shared failed"
# 1d. a language version 2 attention (rotary with position ids, sinks) against the interpreter backend
# shellcheck disable=SC2046
$cc -std=c11 -o "$tmp/v2-shared" "$src/tests/install_v2.c" $(pkg-config --cflags --libs attnc) -lm \
  -Wl,-rpath,"$libdir" || fail "install_v2.c: shared link with pkg-config failed"
"$tmp/v2-shared" || fail "v2-shared failed"
# 2. static, from the pkg-config variable
# shellcheck disable=SC2046
$cc -std=c11 -o "$tmp/embed-static" "$embed" $(pkg-config --cflags attnc) $(pkg-config --variable=static_libs attnc) -lm \
  || fail "static link with pkg-config static_libs failed"
if grep -q "NEEDED.*libattnc" <<<"$(objdump -p "$tmp/embed-static")"; then fail "embed-static links libattnc.so"; fi
"$tmp/embed-static" >/dev/null || fail "embed-static failed"
# shellcheck disable=SC2046
$cc -std=c11 -o "$tmp/v2-static" "$src/tests/install_v2.c" $(pkg-config --cflags attnc) \
  $(pkg-config --variable=static_libs attnc) -lm || fail "install_v2.c: static link failed"
"$tmp/v2-static" || fail "v2-static failed"
# 3. pkg-config --static links too
# shellcheck disable=SC2046
$cc -std=c11 -o "$tmp/embed-pcstatic" "$embed" $(pkg-config --cflags --libs --static attnc) -lm -Wl,-rpath,"$libdir" \
  || fail "link with pkg-config --static failed"
"$tmp/embed-pcstatic" >/dev/null || fail "embed-pcstatic failed"
# 4. CMake package, both targets
mkdir -p "$tmp/proj"
cat > "$tmp/proj/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.16)
project(embed_user C)
find_package(attnc 0.1 REQUIRED)
add_executable(embed_shared "$embed")
target_link_libraries(embed_shared PRIVATE attnc::attnc m)
add_executable(embed_static "$embed")
target_link_libraries(embed_static PRIVATE attnc::attnc_static)
CM
cmake -S "$tmp/proj" -B "$tmp/proj/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="${CC:-cc}" \
  -DCMAKE_C_FLAGS="${EXTRA_CFLAGS:-}" >/dev/null || fail "find_package(attnc) failed"
cmake --build "$tmp/proj/build" >/dev/null || fail "building against attnc::attnc failed"
"$tmp/proj/build/embed_shared" >/dev/null || fail "cmake embed_shared failed"
"$tmp/proj/build/embed_static" >/dev/null || fail "cmake embed_static failed"
echo "install test: ok ($prefix; soname $soname; pkg-config shared/static/--static and find_package both targets; v2)"
