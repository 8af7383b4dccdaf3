/* llvm_lower.h — the kernel plan translated to LLVM IR with the LLVM C API.
 * Requires: a Plan (plan.h) and an LLVM module with the target's triple and
 * data layout.  Produces: the two functions of the kernel ABI
 * (middle/kernel_abi.h) in that module.  Used by backends/llvm/llvm_backend.c,
 * which optimises, JIT-compiles and caches the result. */
#ifndef ATTNC_LLVM_LOWER_H
#define ATTNC_LLVM_LOWER_H
#include <llvm-c/Core.h>

#include "plan.h"

typedef struct LlvmTarget {
    int vec_width;   /* float lanes per vector: 16 (AVX-512), 8 (AVX2) or 4 */
    const char *cpu; /* target-cpu / target-features function attributes, or NULL */
    const char *features;
} LlvmTarget;

/* Add to `mod` (in its context) `tile_name`, an AttnTileFn computing one work
 * item of plan p in float32 exactly as refplan_tile does in float64, and
 * `scratch_name`, its AttnScratchFn.  ATTNC_ERR_INTERNAL with a message when
 * the plan holds something the lowering cannot express. */
attnc_status llvm_lower_plan(const Plan *p, const LlvmTarget *target, LLVMModuleRef mod, const char *tile_name,
                             const char *scratch_name, attnc_error *err);

#endif
