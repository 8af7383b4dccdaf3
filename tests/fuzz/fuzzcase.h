/* fuzzcase.h — one differential-fuzzing case: a spec text, a call (sizes,
 * params, seed of the random inputs) and a backend configuration (defines,
 * tile sizes, flags), run through the public C API against the reference
 * interpreter, and the comparison of the two. */
#ifndef ATTNC_FUZZCASE_H
#define ATTNC_FUZZCASE_H

#include <stddef.h>
#include <stdint.h>

#include "attnc.h"

enum { FC_MAX = 24 };

typedef struct FcNamed {
    char name[32];
    char text[48];
} FcNamed;

typedef struct FcRange {
    char name[32];
    int64_t lo, hi; /* [lo, hi) */
} FcRange;

typedef struct FuzzCase {
    const char *text; /* the spec, not owned */
    size_t len;
    char variant[48];
    uint64_t data_seed;
    attnc_sizes sz;
    FcNamed params[FC_MAX]; /* given per call to the reference; as -D or per call to the backend */
    int nparams;
    FcNamed defines[FC_MAX]; /* of the params above: which the backend kernel fixes at compile time */
    int ndefines;
    FcRange ranges[FC_MAX]; /* int tensors' element ranges (others: attnc_kernel_tensor_value_range) */
    int nranges;
    attnc_backend backend; /* ATTNC_BACKEND_INTERP with defines: the interpreter against itself */
    int tile_q, tile_k, flags;
    int threads; /* attnc_options.threads of the backend (1..3; 0 reads as 1); the reference runs on one */
    int warm_threads; /* first a call of the backend on this many threads, result unused (0: none): the state of
                       * the thread pool that a process's earlier calls left, for a reproducer */
    int no_lse; /* the backend's call passes LSE = NULL (optional in the API); only O is compared */
    int elem;   /* the backend's Q, K, V, O: 0 float32, 1 f16, 2 bf16 (the inputs are rounded to it for both sides) */
    int grad;   /* also the backward pass: the backend's (when it has one) against the interpreter's */
    int layout; /* the backend's layout: 0 [B,H,L,D], 1 [B,L,H,D], 2 fused QKV slices with O and LSE gapped, 3 paged K and V, 4 a ragged batch (fclayout.c, fcbatch.c) */
} FuzzCase;

typedef enum FcKind {
    FC_SAME = 0,
    FC_SPEC,     /* the text does not check: a generator bug */
    FC_SKIP,     /* inputs too large to make */
    FC_STATUS,   /* one side fails, the other does not (or with another status) */
    FC_PARTIAL,  /* a failed call wrote O or LSE */
    FC_EMPTY,    /* a fully masked row differs (LSE -inf, O 0) */
    FC_SPECIAL,  /* a NaN or infinity differs */
    FC_O,        /* O beyond tolerance */
    FC_LSE,      /* LSE beyond tolerance */
    FC_GRAD,     /* a gradient beyond tolerance (or NaN/inf differ) */
    FC_CRASH,    /* the process died or timed out running the case (difffuzz.c's forked runs) */
    FC_TILES     /* kept pairs or a mask picture differ from those of one-element tiles (a tile map unsound) */
} FcKind;

const char *fc_kind_name(FcKind k);

typedef struct FcResult {
    FcKind kind;
    attnc_status ref_status, status;
    char detail[700];     /* what differed, or the spec's diagnostics */
    char ref_message[160]; /* why the reference call failed, "" if it did not */
    int ref_failed;       /* the reference call failed (a runtime error the spec raises) */
    int empty_rows;       /* fully masked rows the reference has */
    double seconds;       /* compile + run of the backend */
    int tensor_core;      /* the backend's call ran cuda-emu's tensor-core kernel (cuda_emu_fa2_stats) */
    int grid;             /* the backend's call ran the block-order plan (launch_grid_calls) */
    int grid_mapped;      /* ... reading K and V through AttnCall.kv_rows (launch_grid_kv_mapped_calls) */
    int grid_tables;      /* ... reading terms of the cells' offsets from grid tables (launch_grid_table_calls) */
    int diag_tables;      /* the call's 1-D plan read terms of kv - q from tables (launch_diag_table_calls) */
    int band;             /* the call's 1-D plan has a band of keys per row (launch_band_calls) */
    int live_keys;        /* a call handed live key sets that cut keys from ranges (launch_live_key_calls) */
    int short_tiles;      /* a call read pages in place with kv tiles shorter than the plan's (launch_short_tile_calls) */
    int checks_dropped;   /* the run's kept tile map dropped its runtime error checks (map_cache_checks_dropped) */
    int kept_map;         /* a call ran on a kept tile map that skips or masks tiles (map_cache_masked_reuses) */
    int chunked;          /* the call cut its keys into chunks: kv heads interleaved (launch_kv_chunked_calls) */
    int packed;           /* the call read K and V from one kv head's rows copied back to back (launch_kv_packed_calls) */
    int widened;          /* ... and 16-bit K or V widened into float32 on the way (launch_kv_widened_calls) */
} FcResult;

/* Run case c: the reference, then the backend; fill r.  Returns r->kind. */
FcKind fc_run(const FuzzCase *c, FcResult *r);

/* Write c as `key value` lines (case.txt) and read it back; 0 on success. */
int fc_write(const FuzzCase *c, const char *path, const char *comment);
int fc_read(FuzzCase *c, const char *path);

#endif
