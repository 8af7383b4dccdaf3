#!/usr/bin/env bash
# tests/grid_diff.sh ATTNC BACKENDS USES FILE VARIANT ARGS... — multi-dimensional
# tiles (docs/multidim-tiles.md) on one call: `attnc emit --target ir` must
# say that the call runs the block-order plan (USES 1) or not (USES 0: the
# grid does not divide, or Lq != Lk; USES -: not asked, the attention reads
# tensors that only diff makes up), and `attnc diff ARGS` must find every
# backend of BACKENDS (comma-separated) within tolerance of the interpreter.
set -u
ATTNC=$1 BACKENDS=$2 USES=$3 FILE=$4 VARIANT=$5
shift 5
emit_args=() # the shape, params and tile of ARGS
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in --shape | --param | --tile) emit_args+=("${args[i]}" "${args[i + 1]}") ;; esac
done
[ "$USES" = - ] && exec "$ATTNC" diff "$FILE" --variant "$VARIANT" --backends "$BACKENDS" "$@"
if ! out=$("$ATTNC" emit "$FILE" --variant "$VARIANT" --target ir "${emit_args[@]}" 2>&1); then
  echo "FAIL: emit: $out"
  exit 1
fi
if grep -q "runs the block-order plan" <<<"$out"; then uses=1; else uses=0; fi
if [ "$uses" != "$USES" ]; then
  echo "FAIL: the call $([ "$uses" = 1 ] && echo uses || echo does not use) the block-order plan (expected $USES)"
  exit 1
fi
grep -A2 "tile map (rows in block order)" <<<"$out"
"$ATTNC" diff "$FILE" --variant "$VARIANT" --backends "$BACKENDS" "$@"
