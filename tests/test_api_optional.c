/* test_api_optional.c — every optional pointer of the C API on every backend
 * this build can run (issue 8, bug 10: a NULL LSE crashed llvm kernels).
 *
 * For interp, refplan, llvm, tcc and cuda-emu (those attnc_backend_available
 * reports) and for specs that reach the different ends of a kernel (a plain
 * causal mask, a per-row bias that becomes an LSE offset, a weight clause, a
 * division whose runtime-error checks stay in the kernel, a low-rank bias):
 *   - args.lse = NULL: the call succeeds and O equals the interpreter's O
 *     (computed with an LSE buffer); also when the call faults (nothing is
 *     written to O);
 *   - args.params = NULL with n_params = 0 (every param has a default, or none
 *     exists): the defaults; with a param that has no default: a runtime error
 *     naming it, not a crash;
 *   - args.tensors = NULL with n_tensors = 0 (no tensor): fine; with a tensor
 *     the spec needs: a runtime error naming it;
 *   - err = NULL: compile, run (ok and failing), emit and kept_pairs still
 *     return their status;
 *   - opts = NULL: the default backend, same O;
 *   - attnc_kernel_emit with call = NULL and with a call whose lse, params and
 *     tensors are NULL, for "ir" and for the backend's own target;
 *   - attnc_kernel_kept_pairs with lse, params and tensors NULL.
 * Also the same kernel called with the low-rank count R changing from call to
 * call (3, 0, 5, 0, -1): scratch sized per call, no stale columns.
 * The reference is always the interpreter with every pointer given.  Run it
 * under valgrind or ASan to see the reads as well as the results. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "support.h"

static const double TOLERANCE = 2e-3; /* float32 kernels against the float64 interpreter */

static int fails = 0;
static void check(int ok, const char *backend, const char *what, const char *detail) {
    if (!ok || getenv("ATTNC_TEST_VERBOSE"))
        printf("%s %s: %s%s%s\n", ok ? "ok" : "FAIL", backend, what, ok ? "" : ": ", ok ? "" : detail);
    fails += !ok;
}

typedef struct Spec {
    const char *name, *text;
    int has_params_without_default;
} Spec;

static const Spec specs[] = {
    {"causal", "attention causal_alibi { param slope : float = 0.5; use causal; "
               "bias -slope * 0.05 * float(q - kv); }", 0},
    {"row_bias", "attention row_bias { use causal; bias 0.1 * float(q % 5) + 0.01 * float(kv % 3); }", 0},
    {"weight", "attention relu { use causal; weight max(score, 0.0); }", 0},
    {"checked_division", "attention checked { param d : int = 7; use causal; bias float((q + kv) / (d - kv % 3)) * 0.01; }",
     0},
    {"lowrank", "attention lowrank { param R : int = 2; use causal; "
                "bias sum(r < R) float((q + r) % 5) * float((kv * (r + 1)) % 7) * 0.02; }", 0},
    {"needs_param", "attention needs { param c : float; use causal; bias c * float(q - kv); }", 1},
};

enum { B = 1, H = 4, HKV = 2, L = 50, DH = 16 };
static const attnc_sizes SIZES = {B, H, HKV, L, L, DH, DH};
enum { NO = B * H * L * DH, ROWS = B * H * L };

typedef struct Inputs {
    float *q, *k, *v;
} Inputs;

static attnc_kernel *compile(const attnc_spec *spec, attnc_backend backend) {
    attnc_options opts = {.backend = backend, .threads = 2, .tile_q = 16, .tile_k = 16};
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    if (attnc_compile(spec, NULL, &opts, &k, &err)) {
        printf("FAIL %s: compile: %s\n", attnc_backend_name(backend), err.message);
        fails++;
        return NULL;
    }
    return k;
}

static int same_o(const float *o, const float *ref) {
    for (int i = 0; i < NO; i++)
        if (!close_enough(o[i], ref[i], TOLERANCE)) return 0;
    return 1;
}

/* O of the interpreter with every pointer given (LSE too), params as given. */
static int reference(const attnc_spec *spec, const Inputs *in, const attnc_param *params, int np, float *ref_o) {
    attnc_kernel *k = compile(spec, ATTNC_BACKEND_INTERP);
    float *lse = malloc(sizeof(float) * ROWS);
    attnc_args a = {SIZES, in->q, in->k, in->v, ref_o, lse, params, np, NULL, 0};
    attnc_error err = {0};
    int ok = k && lse && !attnc_kernel_run(k, &a, &err);
    if (k && !ok) printf("FAIL interp reference: %s\n", err.message);
    fails += k && !ok;
    free(lse);
    attnc_kernel_free(k);
    return ok;
}

/* The backend's own emit target. */
static const char *own_target(attnc_backend b) {
    switch (b) {
    case ATTNC_BACKEND_LLVM: return "llvm-ir";
    case ATTNC_BACKEND_TCC: return "c";
    case ATTNC_BACKEND_CUDA_EMU: return "cuda";
    default: return "ir";
    }
}

/* Every optional pointer of one spec on one backend. */
static void optional_pointers(const Spec *s, const attnc_spec *spec, attnc_backend backend, const Inputs *in) {
    const char *bn = attnc_backend_name(backend);
    char what[160];
    attnc_kernel *k = compile(spec, backend);
    float *o = malloc(sizeof(float) * NO), *ref = malloc(sizeof(float) * NO);
    if (!k || !o || !ref || (!s->has_params_without_default && !reference(spec, in, NULL, 0, ref))) goto done;
    attnc_error err = {0};
    attnc_param c = {.name = "c", .type = ATTNC_FLOAT, .f = 0.03}; /* needs_param's value, when it is given */
    attnc_args a = {SIZES, in->q, in->k, in->v, o, NULL, NULL, 0, NULL, 0};
    if (!s->has_params_without_default) {
        /* lse, params and tensors NULL together: the defaults, O only */
        memset(o, 0, sizeof(float) * NO);
        attnc_status st = attnc_kernel_run(k, &a, &err);
        snprintf(what, sizeof what, "%s: lse, params and tensors NULL", s->name);
        check(st == ATTNC_OK && same_o(o, ref), bn, what, st ? err.message : "O differs from the interpreter's");
        /* and err NULL on a call that succeeds */
        memset(o, 0, sizeof(float) * NO);
        st = attnc_kernel_run(k, &a, NULL);
        snprintf(what, sizeof what, "%s: err NULL on a call that succeeds", s->name);
        check(st == ATTNC_OK && same_o(o, ref), bn, what, "status or O wrong");
    } else {
        /* a param without default and params NULL: a runtime error, nothing written */
        for (int i = 0; i < NO; i++) o[i] = 42.0f;
        attnc_status st = attnc_kernel_run(k, &a, &err);
        snprintf(what, sizeof what, "%s: params NULL with a param that needs a value", s->name);
        check(st == ATTNC_ERR_RUNTIME && strstr(err.message, "'c'") && o[0] == 42.0f && o[NO - 1] == 42.0f, bn, what,
              st ? err.message : "the call succeeded");
        st = attnc_kernel_run(k, &a, NULL);
        snprintf(what, sizeof what, "%s: err NULL on a call that fails", s->name);
        check(st == ATTNC_ERR_RUNTIME, bn, what, "not a runtime error");
        /* with the param given, LSE NULL */
        a.params = &c;
        a.n_params = 1;
        if (reference(spec, in, &c, 1, ref)) {
            st = attnc_kernel_run(k, &a, &err);
            snprintf(what, sizeof what, "%s: lse and tensors NULL", s->name);
            check(st == ATTNC_OK && same_o(o, ref), bn, what, st ? err.message : "O differs from the interpreter's");
        }
    }
    /* emit: call NULL, and a call with lse, params (when it can) and tensors NULL */
    const char *targets[2] = {"ir", own_target(backend)};
    for (int t = 0; t < 2; t++) {
        char *text = NULL;
        attnc_status st = attnc_kernel_emit(k, targets[t], NULL, 0, &text, NULL);
        snprintf(what, sizeof what, "%s: emit %s with call NULL and err NULL", s->name, targets[t]);
        check(st == ATTNC_OK && text && text[0], bn, what, "no text");
        attnc_free(text);
        text = NULL;
        st = attnc_kernel_emit(k, targets[t], &a, 0, &text, &err);
        snprintf(what, sizeof what, "%s: emit %s with a call whose lse and tensors are NULL", s->name, targets[t]);
        check(st == ATTNC_OK && text && text[0], bn, what, st ? err.message : "no text");
        attnc_free(text);
    }
    int64_t kept = -1;
    attnc_status st = attnc_kernel_kept_pairs(k, &a, &kept, NULL);
    snprintf(what, sizeof what, "%s: kept_pairs with lse and tensors NULL, err NULL", s->name);
    check(st == ATTNC_OK && kept == (int64_t)B * H * L * (L + 1) / 2, bn, what, "wrong count");
done:
    free(o);
    free(ref);
    attnc_kernel_free(k);
}

/* A call that faults with LSE NULL: a runtime error, O untouched. */
static void fault_without_lse(const attnc_spec *spec, attnc_backend backend, const Inputs *in) {
    const char *bn = attnc_backend_name(backend);
    attnc_kernel *k = compile(spec, backend);
    float *o = malloc(sizeof(float) * NO);
    if (!k || !o) goto done;
    for (int i = 0; i < NO; i++) o[i] = 42.0f;
    attnc_param d = {.name = "d", .type = ATTNC_INT, .i = 1}; /* d - kv % 3 is 0 where kv % 3 == 1 */
    attnc_args a = {SIZES, in->q, in->k, in->v, o, NULL, &d, 1, NULL, 0};
    attnc_error err = {0};
    attnc_status st = attnc_kernel_run(k, &a, &err);
    int untouched = 1;
    for (int i = 0; i < NO; i++) untouched &= o[i] == 42.0f;
    check(st == ATTNC_ERR_RUNTIME && strstr(err.message, "division by zero") && untouched, bn,
          "checked_division: a faulting call with lse NULL", st ? err.message : "the call succeeded");
    check(attnc_kernel_run(k, &a, NULL) == ATTNC_ERR_RUNTIME, bn, "checked_division: the same with err NULL",
          "not a runtime error");
done:
    free(o);
    attnc_kernel_free(k);
}

/* One kernel, the low-rank count changing from call to call (LSE NULL). */
static void rank_per_call(const attnc_spec *spec, attnc_backend backend, const Inputs *in) {
    const char *bn = attnc_backend_name(backend);
    attnc_kernel *k = compile(spec, backend);
    float *o = malloc(sizeof(float) * NO), *ref = malloc(sizeof(float) * NO);
    static const int64_t ranks[] = {3, 0, 5, 0, -1, 2};
    for (size_t i = 0; k && o && ref && i < sizeof ranks / sizeof ranks[0]; i++) {
        attnc_param r = {.name = "R", .type = ATTNC_INT, .i = ranks[i]};
        if (!reference(spec, in, &r, 1, ref)) break;
        attnc_args a = {SIZES, in->q, in->k, in->v, o, NULL, &r, 1, NULL, 0};
        attnc_error err = {0};
        attnc_status st = attnc_kernel_run(k, &a, &err);
        char what[96];
        snprintf(what, sizeof what, "lowrank: call %zu of one kernel, R = %lld", i + 1, (long long)ranks[i]);
        check(st == ATTNC_OK && same_o(o, ref), bn, what, st ? err.message : "O differs from the interpreter's");
    }
    free(o);
    free(ref);
    attnc_kernel_free(k);
}

/* opts NULL: the default backend gives the interpreter's O. */
static void default_options(const attnc_spec *spec, const Inputs *in) {
    attnc_kernel *k = NULL;
    float *o = malloc(sizeof(float) * NO), *ref = malloc(sizeof(float) * NO);
    attnc_status st = attnc_compile(spec, NULL, NULL, &k, NULL);
    check(st == ATTNC_OK && k && attnc_kernel_backend(k) != ATTNC_BACKEND_DEFAULT, "default",
          "compile with opts NULL and err NULL", "failed");
    if (k && o && ref && reference(spec, in, NULL, 0, ref)) {
        attnc_args a = {SIZES, in->q, in->k, in->v, o, NULL, NULL, 0, NULL, 0};
        st = attnc_kernel_run(k, &a, NULL);
        check(st == ATTNC_OK && same_o(o, ref), attnc_backend_name(attnc_kernel_backend(k)),
              "opts NULL, then lse, params, tensors and err NULL", "status or O wrong");
    }
    free(o);
    free(ref);
    attnc_kernel_free(k);
}

/* A spec with a tensor, called with tensors NULL: a runtime error naming it. */
static void missing_tensor(attnc_backend backend, const Inputs *in) {
    static const char text[] = "attention tb { tensor t : float[Lq]; use causal; bias t[q]; }";
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (attnc_spec_from_string("tb.attn", text, strlen(text), &spec, &err)) {
        check(0, "spec", "tb", err.message);
        attnc_spec_free(spec);
        return;
    }
    attnc_kernel *k = compile(spec, backend);
    float o[NO];
    if (k) {
        attnc_args a = {SIZES, in->q, in->k, in->v, o, NULL, NULL, 0, NULL, 0};
        attnc_status st = attnc_kernel_run(k, &a, &err);
        check(st == ATTNC_ERR_RUNTIME && strstr(err.message, "'t'"), attnc_backend_name(backend),
              "tensors NULL when the spec needs one", st ? err.message : "the call succeeded");
        check(attnc_kernel_run(k, &a, NULL) == ATTNC_ERR_RUNTIME, attnc_backend_name(backend),
              "the same with err NULL", "not a runtime error");
    }
    attnc_kernel_free(k);
    attnc_spec_free(spec);
}

int main(void) {
    static const attnc_backend backends[] = {ATTNC_BACKEND_INTERP, ATTNC_BACKEND_REFPLAN, ATTNC_BACKEND_LLVM,
                                             ATTNC_BACKEND_TCC, ATTNC_BACKEND_CUDA_EMU};
    rng_seed(8);
    Inputs in = {random_floats((size_t)B * H * L * DH), random_floats((size_t)B * HKV * L * DH),
                 random_floats((size_t)B * HKV * L * DH)};
    int ran = 0;
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        attnc_spec *spec = NULL;
        attnc_error err = {0};
        if (attnc_spec_from_string(specs[s].name, specs[s].text, strlen(specs[s].text), &spec, &err)) {
            check(0, "spec", specs[s].name, err.message);
            attnc_spec_free(spec);
            continue;
        }
        for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
            if (!attnc_backend_available(backends[b])) continue;
            ran++;
            optional_pointers(&specs[s], spec, backends[b], &in);
            if (!strcmp(specs[s].name, "checked_division")) fault_without_lse(spec, backends[b], &in);
            if (!strcmp(specs[s].name, "lowrank")) rank_per_call(spec, backends[b], &in);
            if (s == 0) missing_tensor(backends[b], &in);
        }
        if (s == 0) default_options(spec, &in);
        attnc_spec_free(spec);
    }
    free(in.q);
    free(in.k);
    free(in.v);
    printf("%d spec x backend runs, %d failed\n", ran, fails);
    return fails != 0;
}
