#!/usr/bin/env bash
# tests/layering.sh — the library's layers point one way (README, "How the code
# is laid out").  Reads every #include "..." of every .c, .h, .l and .y under
# the source folders, resolves it the way the compiler does (the including
# file's folder first, then the one file of that name in the tree), and fails
# with one line per include that points the wrong way:
#
#   include/ (public) <- base/ <- dsl/ <- middle/ <- backends/ (the interface)
#     <- backends/llvm/, backends/c/, backends/cuda/ <- runtime/ <- api/
#   cli/ and python/attnc/ (the Python extension) are clients of the public
#   header only.
#
# Each folder may include itself and the folders below it, nothing else, with
# one sideways edge: backends/cuda/ uses the C emitter (backends/c/), whose
# element code CUDA shares.  templates/ is text embedded in the C and CUDA
# emitters; only backends/c/jit_dense.c compiles one of them.  Within cli/ the
# units (X.c with its X.h) must not form a cycle, and every header of cli/ has
# its .c, so that what two files share cannot hide in a header of neither.
# A folder with sources that is not in the table below fails too.
#
# Usage: tests/layering.sh [SOURCE_ROOT]   (default: the folder above this script)
set -u
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2

below_backends="include base dsl middle backends"
declare -A may=(
    [include]="include"
    [base]="include base"
    [dsl]="include base dsl"
    [middle]="include base dsl middle"
    [backends]="$below_backends"
    [backends/llvm]="$below_backends backends/llvm"
    [backends/c]="$below_backends backends/c templates"
    [backends/cuda]="$below_backends backends/cuda backends/c"
    [runtime]="$below_backends runtime"
    [api]="$below_backends runtime api"
    [cli]="include cli"
    [python/attnc]="include python/attnc"
    [templates]="templates"
)
# single headers a layer may include beyond its folders: base/half.h is
# header-only and self-contained (the emitters paste it into generated code),
# so the CLI rounds --dtype inputs exactly as the kernels do, without a copy
declare -A also_may=([cli]="base/half.h")
# headers the build generates (bison, flex) into the build tree, by owner
declare -A generated=([parser.h]=dsl [lexer.h]=dsl)

# the source files: every folder but the tests, tools, docs and build trees
files=()
for top in */; do
    top=${top%/}
    case $top in tests | bench | examples | scripts | cmake | docs) continue ;; esac
    [[ -e $top/CMakeCache.txt ]] && continue # a build tree
    mapfile -t -O "${#files[@]}" files < <(find "$top" -type f \( -name '*.c' -o -name '*.h' -o -name '*.l' \
        -o -name '*.y' \) | sort)
done

declare -A where # basename -> path (or "?" when two folders have one)
for f in "${files[@]}"; do
    b=${f##*/}
    if [[ -n ${where[$b]:-} ]]; then where[$b]="?"; else where[$b]=$f; fi
done

bad=0
declare -A cli_edges=()
for f in "${files[@]}"; do
    dir=${f%/*}
    if [[ -z ${may[$dir]+x} ]]; then
        echo "$f: $dir/ is not a layer (add it to tests/layering.sh and README)"
        bad=1
        continue
    fi
    while IFS= read -r name; do
        if [[ -f $dir/$name ]]; then
            target=$dir/$name
        elif [[ -n ${generated[$name]:-} ]]; then
            target=${generated[$name]}/$name
        elif [[ ${where[$name]:-} == "?" ]]; then
            echo "$f includes \"$name\": more than one folder has a $name"
            bad=1
            continue
        elif [[ -n ${where[$name]:-} ]]; then
            target=${where[$name]}
        else
            echo "$f includes \"$name\": no such file in the source folders"
            bad=1
            continue
        fi
        tdir=${target%/*}
        if [[ " ${may[$dir]} " != *" $tdir "* && " ${also_may[$dir]:-} " != *" $target "* ]]; then
            echo "$f includes $target: $dir may not include $tdir"
            bad=1
        fi
        if [[ $dir == cli && $tdir == cli ]]; then
            from=${f##*/}
            to=${target##*/}
            [[ ${from%.*} != "${to%.*}" ]] && cli_edges["${from%.*} ${to%.*}"]=1
        fi
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done

# cli/: a header without its .c, and cycles between units
for f in "${files[@]}"; do
    if [[ $f == cli/*.h && ! -f ${f%.h}.c ]]; then
        echo "$f: a cli/ header without cli/$(basename "${f%.h}").c (declare each function in its own file's header)"
        bad=1
    fi
done
if ((${#cli_edges[@]})); then
    if ! loop=$(printf '%s\n' "${!cli_edges[@]}" | tsort 2>&1 >/dev/null); then
        echo "cli/ units include each other in a cycle: $(echo "$loop" | sed -n 's/^tsort: //p' | grep -v 'input contains a loop' | tr '\n' ' ')"
        bad=1
    fi
fi

if ((bad)); then
    echo "layering: FAILED"
    exit 1
fi
echo "layering: ok (${#files[@]} files)"
