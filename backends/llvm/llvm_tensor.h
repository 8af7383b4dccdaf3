/* llvm_tensor.h — Q, K, V, O and LSE as the call holds them (kernel ABI 3:
 * f32, f16 or bf16 elements, strides in elements): exact conversions to and
 * from float32, a runtime switch over an element type, and the conversion of
 * a kv tile's rows into float32 scratch (backends/llvm/llvm_tensor.c).
 * Internal to backends/llvm/llvm_*.c. */
#ifndef ATTNC_LLVM_TENSOR_H
#define ATTNC_LLVM_TENSOR_H
#include "llvm_build.h"

/* The element types of the AttnCall's q_elem .. o_elem (attnc.h's attnc_elem). */
enum { ELEM_F32 = 0, ELEM_F16 = 1, ELEM_BF16 = 2, ELEM_COUNT = 3 };

/* Bytes of one element of type `elem` (an i32 value of the call): 4 or 2, as i64. */
LLVMValueRef lower_elem_bytes(Lower *L, LLVMValueRef elem);

/* x (i16 or <W x i16>: f16 or bf16 bits) widened to float32, exactly. */
LLVMValueRef lower_widen(Lower *L, LLVMValueRef x, int elem);

/* W elements of elem (ELEM_*) at p[at] as W floats: one load, widened unless float32. */
LLVMValueRef lower_load_floats(Lower *L, int elem, LLVMValueRef p, LLVMValueRef at);

/* x (float or <W x float>) rounded to f16 or bf16 (nearest, ties to even; NaN
 * stays a quiet NaN), as its 16 bits (i16 or <W x i16>). */
LLVMValueRef lower_narrow(Lower *L, LLVMValueRef x, int elem);

/* One version of a loop per element type: body(L, ctx, e) is built once for
 * each e in ELEM_F32 .. ELEM_BF16, and `elem` (an i32 of the call) picks one
 * at run time (anything unknown runs the f32 version; bind refuses it first).
 * A constant `elem` (a kernel version's, llvm_lower.h) builds its loop only. */
void lower_elem_switch(Lower *L, LLVMValueRef elem, void (*body)(Lower *, void *, int), void *ctx);

/* dst[j * n + i] = float(src row j)[i] for j < rows, i < n, where row j of
 * `src` (an i8 pointer) starts `stride` elements after row j - 1 and holds
 * f16 or bf16 as `elem` says (the f32 case is never converted: callers read
 * f32 rows in place).  Once per kv tile, before the micro-kernel reads dst. */
void lower_convert_rows(Lower *L, LLVMValueRef elem, LLVMValueRef src, LLVMValueRef stride, LLVMValueRef rows,
                        LLVMValueRef n, LLVMValueRef dst);

/* dst[j * n + i] = src row j [i] for float32 rows `stride` elements apart
 * (src an i8 pointer): whole vectors, then the rest one by one. */
void lower_copy_rows_f32(Lower *L, LLVMValueRef src, LLVMValueRef stride, LLVMValueRef rows, LLVMValueRef n,
                         LLVMValueRef dst);

/* Where key k0, the first key of a kv tile, lies in K (or V): elements from
 * its head's start (kernel ABI: AttnCall.kv_page, page_rows, the page
 * strides): k0 * row_stride when page_rows is 0, else
 * kv_page[k0 / page_rows] * page_stride + (k0 % page_rows) * row_stride;
 * the tile's other rows follow it, row_stride apart, in the same page.  The
 * page table is read only in a paged call: an unpaged one pays a branch per
 * tile. */
LLVMValueRef lower_page_offset(Lower *L, LLVMValueRef kv_page, LLVMValueRef page_rows, LLVMValueRef page_stride,
                               LLVMValueRef row_stride, LLVMValueRef k0);

#endif
