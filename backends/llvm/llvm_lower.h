/* llvm_lower.h — the kernel plan translated to LLVM IR with the LLVM C API.
 * Requires: a Plan (plan.h) and an LLVM module with the target's triple and
 * data layout.  Produces: the two functions of the kernel ABI
 * (middle/kernel_abi.h) in that module.  Used by backends/llvm/llvm_backend.c,
 * which optimises, JIT-compiles and caches the result. */
#ifndef ATTNC_LLVM_LOWER_H
#define ATTNC_LLVM_LOWER_H
#include <llvm-c/Core.h>

#include "kernel_abi.h"
#include "plan.h"

/* The versions of a kernel (LlvmTarget.variant): each is a tile function of
 * its own, built only when a call needs it (llvm_backend.c).  A version
 * reads and writes Q, K, V and O as the element types it was built for
 * (attnc_elem: no run-time switch over them), and runs its row blocks wide
 * or narrow.  Wide (prefill): a row block runs all C vectors of its rows,
 * a block that holds fewer rows of the item masking the rest off.  Narrow
 * (LLVM_VARIANT_NARROW; decode: every block of the call holds fewer than C
 * vectors of rows): only its vectors that hold rows of the item, with the
 * narrow and 4-row micro-kernels.  Keys through a row map (LLVM_VARIANT_
 * KV_ROWS; AttnCall.kv_rows, multi-dimensional tiles): float32 K and V
 * read in place at the rows the map gives.  Version numbers: narrow + 2 * (q + 3 *
 * (k + 3 * (v + 3 * o))) + 162 * kv_rows, q .. o the element types. */
enum { LLVM_VARIANT_NARROW = 1, LLVM_VARIANT_KV_ROWS = 2 * 3 * 3 * 3 * 3, LLVM_VARIANTS = 2 * LLVM_VARIANT_KV_ROWS };

/* Whether version `variant` reads K and V through AttnCall.kv_rows. */
static inline int llvm_variant_maps_kv(int variant) { return variant >= LLVM_VARIANT_KV_ROWS; }

/* The element type of tensor t (0 Q, 1 K, 2 V, 3 O) in version `variant`. */
static inline int llvm_variant_elem(int variant, int t) {
    int e = variant / 2;
    while (t-- > 0) e /= 3;
    return e % 3;
}

typedef struct LlvmTarget {
    int vec_width;   /* float lanes per vector: 16 (AVX-512), 8 (AVX2) or 4; used when the plan names none */
    const char *cpu; /* target-cpu / target-features function attributes, or NULL */
    const char *features;
    int variant;     /* the version to build (LLVM_VARIANTS) */
} LlvmTarget;

/* The float lanes of plan p's kernel: the plan's vector width when it is 4,
 * 8 or 16, else target_width.  The backend keys its cache by it. */
int llvm_kernel_width(const Plan *p, int target_width);

/* C, the vectors of W lanes in a row block of plan p's kernel. */
int llvm_row_vectors(const Plan *p, int width);

/* The version of a kernel of C = row_vectors vectors of `width` lanes that
 * call c needs: its element types, and narrow when every row block of the
 * call holds fewer than C vectors of rows.  Every version of the call's
 * element types computes the call; this one is the fastest. */
int llvm_call_variant(int row_vectors, int width, const AttnCall *c);

/* Versions of kernels the backend has built in this process (a test hook:
 * each version is built once, on first use; backends/llvm/llvm_backend.c). */
unsigned long llvm_versions_built(void);

/* The host's vector width (16 with AVX-512, 8 with AVX2, else 4), or
 * ATTNC_LLVM_VECTOR_WIDTH=4|8|16: what the plan's vector width should be
 * (backends/llvm/llvm_backend.c). */
int llvm_vector_width(void);

/* Whether f16 is converted in integer lanes (base/half.h's rules) rather than
 * by LLVM's `half` (vcvtph2ps/vcvtps2ph): on a host without F16C, where the
 * JIT would need a runtime library's __extendhfsf2, or with
 * ATTNC_LLVM_SOFT_F16=1 (a test hook; backends/llvm/llvm_backend.c). */
int llvm_soft_f16(void);

/* Whether a target's features (LLVM's "+name,-name,..." list, LlvmTarget.features) include `name`. */
int llvm_has_feature(const char *features, const char *name);

/* Add to `mod` (in its context) `tile_name`, an AttnTileFn computing one work
 * item of plan p in float32 exactly as refplan_tile does in float64 (the
 * version target->variant), and `scratch_name` (unless NULL), its
 * AttnScratchFn (the same for every version), translating p's schedule at
 * llvm_kernel_width(p, target->vec_width) lanes.  ATTNC_ERR_INTERNAL with a
 * message when the plan holds something the lowering cannot express. */
attnc_status llvm_lower_plan(const Plan *p, const LlvmTarget *target, LLVMModuleRef mod, const char *tile_name,
                             const char *scratch_name, attnc_error *err);

/* Add to `mod` `tile_name`, the AttnGradTileFn of plan p's backward
 * schedule (Plan.grad_sched; kernel_abi.h, docs/gradients-kernel.md), and
 * `scratch_name` (unless NULL), its scratch size function, at
 * llvm_kernel_width(p, target->vec_width) lanes; Q, K and V of any element
 * type (a switch per row, not per version).  ATTNC_ERR_INTERNAL with a
 * message when the plan has no backward schedule or holds something the
 * lowering cannot express (backends/llvm/llvm_grad.c). */
attnc_status llvm_lower_grad(const Plan *p, const LlvmTarget *target, LLVMModuleRef mod, const char *tile_name,
                             const char *scratch_name, attnc_error *err);

#endif
