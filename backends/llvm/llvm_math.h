/* llvm_math.h — the IR's arithmetic that takes more than one LLVM
 * instruction (backends/llvm/llvm_math.c).  Internal to backends/llvm/llvm_*.c. */
#ifndef ATTNC_LLVM_MATH_H
#define ATTNC_LLVM_MATH_H
#include "llvm_build.h"

/* 2^x of a float scalar or vector, inline, relative error about 2e-7. */
LLVMValueRef lower_exp2(Lower *L, LLVMValueRef x);

/* log(x), or log2(x) when base2, inline, relative error about 1e-7. */
LLVMValueRef lower_log(Lower *L, LLVMValueRef x, int base2);

/* Floor division (want_mod 0) or modulo (1) of int64 scalars or vectors with
 * the IR's total semantics: x/0 = x%0 = 0, x/-1 = -x, x%-1 = 0. */
LLVMValueRef lower_int_divmod(Lower *L, LLVMValueRef a, LLVMValueRef d, int want_mod);

/* Python-style float modulo (the result has the divisor's sign). */
LLVMValueRef lower_float_mod(Lower *L, LLVMValueRef a, LLVMValueRef d);

/* Built-in function fn of the nargs arguments a (their IR types at); fails
 * L for a function it does not know. */
LLVMValueRef lower_call(Lower *L, Fn fn, LLVMValueRef *a, int nargs, const Type *at);

#endif
