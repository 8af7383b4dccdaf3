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
    int vec_width;   /* float lanes per vector: 16 (AVX-512), 8 (AVX2) or 4; used when the plan names none */
    const char *cpu; /* target-cpu / target-features function attributes, or NULL */
    const char *features;
} LlvmTarget;

/* The float lanes of plan p's kernel: the plan's vector width when it is 4,
 * 8 or 16, else target_width.  The backend keys its cache by it. */
int llvm_kernel_width(const Plan *p, int target_width);

/* The host's vector width (16 with AVX-512, 8 with AVX2, else 4), or
 * ATTNC_LLVM_VECTOR_WIDTH=4|8|16: what the plan's vector width should be
 * (backends/llvm/llvm_backend.c). */
int llvm_vector_width(void);

/* Add to `mod` (in its context) `tile_name`, an AttnTileFn computing one work
 * item of plan p in float32 exactly as refplan_tile does in float64, and
 * `scratch_name`, its AttnScratchFn, translating p's schedule at
 * llvm_kernel_width(p, target->vec_width) lanes.  ATTNC_ERR_INTERNAL with a
 * message when the plan holds something the lowering cannot express. */
attnc_status llvm_lower_plan(const Plan *p, const LlvmTarget *target, LLVMModuleRef mod, const char *tile_name,
                             const char *scratch_name, attnc_error *err);

#endif
