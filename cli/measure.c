/* measure.c — `attnc diff` (every backend against the reference
 * interpreter on random inputs) and `attnc bench` (time per call, GFLOP/s,
 * compile time, the process's peak resident memory), on inputs made up by
 * made_call.c.  With --dtype the inputs are rounded to it once, and every
 * backend and the interpreter get the same rounded Q, K, V, laid out as
 * --layout says; O is stored in --dtype too.  With --grad, diff compares
 * and bench times the backward pass (measure_grad.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "inputs.h"
#include "made_call.h"
#include "measure_grad.h"
#include "measure.h"
#include "options.h"

static const double DIFF_TOLERANCE = 2e-3; /* relative to 1 + |reference| */

/* The tolerance of O stored as e: two roundings of nearby values to a 16-bit
 * type may land one unit in the last place apart, which is up to 2^-10 (f16)
 * or 2^-7 (bf16) of 1 + |reference|. */
static double o_tolerance(attnc_elem e) {
    return DIFF_TOLERANCE + (e == ATTNC_ELEM_F16 ? 1.0 / 1024 : e == ATTNC_ELEM_BF16 ? 1.0 / 128 : 0);
}

/* O of the call as float32 (exact), into out. */
static void o_floats(const Call *c, size_t no, float *out) {
    float *x = convert_elems(c->o, c->elem, ATTNC_ELEM_F32, no);
    if (x) memcpy(out, x, sizeof(float) * no);
    else memset(out, 0xff, sizeof(float) * no); /* out of memory: NaN, which fails the comparison */
    free(x);
}

/* Whether the call's layouts are the plain ones (f32, [B, H, L, D]): only
 * then is a backend's usage error a failure rather than "not supported yet". */
static int plain_storage(const Options *o) { return o->elem == ATTNC_ELEM_F32 && !o->blhd; }

/* --backends, or every backend this build has but the interpreter. */
static int diff_backends(const Options *o, attnc_backend list[8], int *n) {
    *n = 0;
    if (o->backends) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", o->backends);
        for (char *tok = strtok(buf, ","); tok && *n < 8; tok = strtok(NULL, ",")) {
            if (!attnc_backend_parse(tok, &list[*n])) return fail(EXIT_USAGE, "--backends: unknown backend '%s'", tok, NULL);
            /* cuda is in every build; without a driver or device it fails as a call (exit 3), before the table */
            void *probe = NULL;
            attnc_error err = {0};
            attnc_status st = list[*n] == ATTNC_BACKEND_CUDA && !attnc_backend_available(list[*n])
                                  ? attnc_cuda_alloc(1, &probe, &err) : ATTNC_OK;
            attnc_cuda_free(probe);
            if (st) return fail(status_exit(st), "%s", err.message, NULL);
            if (list[*n] != ATTNC_BACKEND_CUDA && !attnc_backend_available(list[*n]))
                return fail(EXIT_USAGE, "--backends: '%s' is not available in this build", tok, NULL);
            (*n)++;
        }
    } else {
        attnc_backend all[] = {ATTNC_BACKEND_LLVM, ATTNC_BACKEND_TCC, ATTNC_BACKEND_CUDA_EMU, ATTNC_BACKEND_REFPLAN,
                               ATTNC_BACKEND_CUDA};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (attnc_backend_available(all[i])) list[(*n)++] = all[i];
    }
    return 0;
}

int cmd_diff(const Options *o) {
    attnc_sizes sz = o->shape ? o->sizes : (attnc_sizes){1, 4, 4, 128, 128, 64, 64};
    int threads = o->nthreads;
    attnc_backend list[8];
    int n = 0;
    int rc0 = diff_backends(o, list, &n);
    if (rc0) return rc0;
    if (o->grad) return diff_grad(o, &sz, list, n);
    attnc_spec *spec = NULL;
    attnc_kernel *ref = NULL;
    Call call;
    memset(&call, 0, sizeof call);
    int rc = load_spec(o, &spec);
    if (!rc) rc = compile_for(o, spec, ATTNC_BACKEND_INTERP, 1, &ref);
    if (!rc) rc = make_call(o, ref, &sz, &call);
    attnc_error err = {0};
    attnc_status st = rc ? ATTNC_OK : attnc_kernel_run_layout(ref, &call.args, &call.lay, &err);
    if (!rc && st) rc = fail(status_exit(st), "interpreter: %s", err.message, NULL);
    size_t rows = (size_t)(sz.B * sz.H * sz.Lq), no = rows * (size_t)sz.Dv;
    float *o_ref = rc ? NULL : malloc(sizeof(float) * (no + 1)), *lse_ref = rc ? NULL : malloc(sizeof(float) * (rows + 1));
    float *o_got = rc ? NULL : malloc(sizeof(float) * (no + 1));
    if (!rc && (!o_ref || !lse_ref || !o_got)) rc = fail(EXIT_RUNTIME, "out of memory", NULL, NULL);
    if (!rc) {
        o_floats(&call, no, o_ref);
        memcpy(lse_ref, call.lse, sizeof(float) * rows);
        printf("%-10s %12s %12s %12s %12s\n", "backend", "O max abs", "O max rel", "LSE max abs", "LSE max rel");
    }
    int worst = 0;
    for (int i = 0; !rc && i < n; i++) {
        attnc_kernel *k = NULL;
        rc = compile_for(o, spec, list[i], threads, &k);
        /* NaN in every output element first (all-ones bits in f32, f16 and bf16 alike): a row the
         * backend fails to write is a difference, not the interpreter's value left in place */
        if (!rc) memset(call.o, 0xff, (size_t)elem_bytes(o->elem) * no);
        if (!rc) memset(call.lse, 0xff, sizeof(float) * rows);
        st = rc ? ATTNC_OK : attnc_kernel_run_layout(k, &call.args, &call.lay, &err);
        if (st == ATTNC_ERR_USAGE && !plain_storage(o)) { /* the interpreter took these layouts: the backend does not yet */
            printf("%-10s skipped: %s\n", attnc_backend_name(list[i]), err.message);
            attnc_kernel_free(k);
            continue;
        }
        if (st) rc = fail(status_exit(st), "%s", err.message, NULL);
        if (!rc) {
            Errors e = {0};
            o_floats(&call, no, o_got);
            accumulate_error(o_got, o_ref, no, &e.o_abs, &e.o_rel, &e.mismatched_special);
            accumulate_error(call.lse, lse_ref, rows, &e.lse_abs, &e.lse_rel, &e.mismatched_special);
            int bad = e.mismatched_special || e.o_rel > o_tolerance(o->elem) || e.lse_rel > DIFF_TOLERANCE;
            printf("%-10s %12.3g %12.3g %12.3g %12.3g%s\n", attnc_backend_name(list[i]), e.o_abs, e.o_rel, e.lse_abs,
                   e.lse_rel, bad ? (e.mismatched_special ? "  FAIL (NaN/inf differ)" : "  FAIL") : "  ok");
            worst |= bad;
        }
        attnc_kernel_free(k);
    }
    if (!rc && worst) {
        fprintf(stderr, "attnc: a backend differs from the interpreter by more than %g (relative to 1 + |ref|)\n",
                o_tolerance(o->elem));
        rc = EXIT_DIFF;
    }
    free(o_got);
    free(o_ref);
    free(lse_ref);
    call_free(&call);
    attnc_kernel_free(ref);
    attnc_spec_free(spec);
    return rc;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* bench --paged: the made-up K and V copied into pages of page_rows rows
 * ([pages, rows, Hkv, D], or head-major [pages, Hkv, rows, D] with
 * --page-layout hnd), each sequence's pages in reverse order (never
 * consecutive), and the batch that reads them: B sequences of Lq query rows
 * and Lk keys. */
typedef struct Paged {
    void *k, *v;
    int32_t *table;
    int64_t *kv_len;
    attnc_batch batch;
    attnc_args args;
    attnc_layouts lay;
} Paged;

static void copy_to_pages(const Paged *pg, const attnc_sizes *sz, const void *dense, void *pages, int64_t row, int eb,
                          int hnd) {
    int64_t P = pg->batch.page_size, pps = pg->batch.pages_per_seq;
    for (int64_t b = 0; b < sz->B; b++)
        for (int64_t h = 0; h < sz->Hkv; h++)
            for (int64_t kv = 0; kv < sz->Lk; kv++) {
                int64_t p = pg->table[b * pps + kv / P]; /* row kv % P of head h: rows from the pages' start */
                int64_t r = hnd ? (p * sz->Hkv + h) * P + kv % P : (p * P + kv % P) * sz->Hkv + h;
                memcpy((char *)pages + (r * row) * eb,
                       (const char *)dense + (((b * sz->Hkv + h) * sz->Lk + kv) * row) * eb, (size_t)(row * eb));
            }
}

static int make_paged(const Options *o, const attnc_sizes *sz, const Call *call, Paged *pg) {
    if (o->blhd) return fail(EXIT_USAGE, "--paged stores K and V as pages: --layout does not apply", NULL, NULL);
    int64_t P = o->page_rows, pps = (sz->Lk + P - 1) / P, n = sz->B * pps;
    int eb = elem_bytes(o->elem);
    pg->k = calloc((size_t)(n * P * sz->Hkv * sz->D + 1), (size_t)eb);
    pg->v = calloc((size_t)(n * P * sz->Hkv * sz->Dv + 1), (size_t)eb);
    pg->table = malloc(sizeof(int32_t) * (size_t)(n + 1));
    pg->kv_len = malloc(sizeof(int64_t) * (size_t)(sz->B + 1));
    if (!pg->k || !pg->v || !pg->table || !pg->kv_len || n > INT32_MAX)
        return fail(EXIT_RUNTIME, "out of memory for the pages", NULL, NULL);
    for (int64_t i = 0; i < n; i++) pg->table[i] = (int32_t)(n - 1 - i);
    for (int64_t b = 0; b < sz->B; b++) pg->kv_len[b] = sz->Lk;
    pg->batch = (attnc_batch){.page_size = P, .num_pages = n, .pages_per_seq = pps, .block_table = pg->table,
                              .kv_len = pg->kv_len};
    copy_to_pages(pg, sz, call->k, pg->k, sz->D, eb, o->page_hnd);
    copy_to_pages(pg, sz, call->v, pg->v, sz->Dv, eb, o->page_hnd);
    pg->args = call->args;
    pg->args.k = pg->k, pg->args.v = pg->v;
    memset(&pg->lay, 0, sizeof pg->lay); /* Q and O [rows, H, D] (same bytes, other order), K and V pages */
    pg->lay.q.elem = pg->lay.k.elem = pg->lay.v.elem = pg->lay.o.elem = o->elem;
    if (o->page_hnd) { /* a page: [Hkv, P, D]; the pages one after another */
        attnc_layout *l[2] = {&pg->lay.k, &pg->lay.v};
        int64_t row[2] = {sz->D, sz->Dv};
        for (int t = 0; t < 2; t++) l[t]->stride[1] = P * row[t], l[t]->stride[2] = row[t], l[t]->stride[3] = 1;
        pg->batch.k_page_stride = sz->Hkv * P * sz->D, pg->batch.v_page_stride = sz->Hkv * P * sz->Dv;
    }
    return 0;
}

/* bench --backend cuda: Q, K, V, O and LSE in device memory, so that a
 * timed call is the kernel's (with the per-call tile map and tensors moved
 * in), not the copies of the host-pointer call.  0 or an exit status. */
typedef struct DeviceCall {
    attnc_args args;
    void *mem[5];
} DeviceCall;

static int device_call_make(const Call *c, DeviceCall *d) {
    const attnc_sizes *s = &c->args.sizes;
    size_t eb = c->elem == ATTNC_ELEM_F32 ? 4 : 2;
    size_t n[5] = {(size_t)(s->B * s->H * s->Lq * s->D) * eb, (size_t)(s->B * s->Hkv * s->Lk * s->D) * eb,
                   (size_t)(s->B * s->Hkv * s->Lk * s->Dv) * eb, (size_t)(s->B * s->H * s->Lq * s->Dv) * eb,
                   (size_t)(s->B * s->H * s->Lq) * 4};
    const void *from[5] = {c->args.q, c->args.k, c->args.v, NULL, NULL};
    attnc_error err = {0};
    for (int i = 0; i < 5; i++)
        if (attnc_cuda_alloc(n[i], &d->mem[i], &err) || (from[i] && attnc_cuda_copy(d->mem[i], from[i], n[i], 1, &err)))
            return fail(EXIT_RUNTIME, "%s", err.message, NULL);
    d->args = c->args;
    d->args.q = d->mem[0], d->args.k = d->mem[1], d->args.v = d->mem[2], d->args.o = d->mem[3];
    d->args.lse = c->args.lse ? d->mem[4] : NULL;
    return 0;
}

static void device_call_free(DeviceCall *d) {
    for (int i = 0; i < 5; i++) attnc_cuda_free(d->mem[i]);
}

/* One timed call: the backward pass with --grad (its forward ran once before). */
static attnc_status bench_once(const attnc_kernel *k, Call *call, const Paged *pg, GradBufs *gb, const DeviceCall *dc,
                               attnc_error *err) {
    if (gb) return grad_backward(k, gb, err);
    if (dc->mem[0]) return attnc_kernel_run_cuda(k, &dc->args, &call->lay, NULL, err);
    if (pg->batch.page_size) return attnc_kernel_run_batch(k, &pg->args, &pg->lay, &pg->batch, err);
    return attnc_kernel_run_layout(k, &call->args, &call->lay, err);
}

int cmd_bench(const Options *o) {
    attnc_sizes sz = o->sizes;
    attnc_options opts = {0};
    if (o->backend && !attnc_backend_parse(o->backend, &opts.backend))
        return fail(EXIT_USAGE, "unknown backend '%s'", o->backend, NULL);
    int threads = o->nthreads, reps = o->nreps;
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    Call call;
    memset(&call, 0, sizeof call);
    /* compile time: spec text -> callable kernel, as a user pays it */
    double t0 = now_seconds();
    int rc = load_spec(o, &spec);
    if (!rc) rc = compile_for(o, spec, opts.backend, threads, &k);
    double compile_ms = (now_seconds() - t0) * 1e3;
    if (!rc) rc = make_call(o, k, &sz, &call);
    attnc_error err = {0};
    int64_t kept = 0;
    if (!rc && attnc_kernel_kept_pairs(k, &call.args, &kept, &err)) rc = fail(EXIT_RUNTIME, "%s", err.message, NULL);
    Paged pg;
    memset(&pg, 0, sizeof pg);
    if (!rc && o->page_rows) rc = make_paged(o, &sz, &call, &pg);
    GradBufs gb;
    memset(&gb, 0, sizeof gb);
    GradBufs *grad = o->grad ? &gb : NULL;
    if (!rc && grad) rc = grad_bufs_make(o, &call, &gb);
    attnc_status st;
    if (!rc && grad && (st = grad_forward(k, &gb, &err))) rc = fail(status_exit(st), "%s", err.message, NULL);
    DeviceCall dc;
    memset(&dc, 0, sizeof dc);
    int on_device = !rc && !grad && !o->page_rows && attnc_kernel_backend(k) == ATTNC_BACKEND_CUDA;
    if (on_device) rc = device_call_make(&call, &dc);
    if (!rc && (st = bench_once(k, &call, &pg, grad, &dc, &err))) /* warm-up (cuda: NVRTC compiles here) */
        rc = fail(status_exit(st), "%s", err.message, NULL);
    enum { MAX_REPS = 1000 };
    double times[MAX_REPS];
    int done = 0;
    double start = now_seconds();
    while (!rc && done < MAX_REPS && (reps ? done < reps : (done < 3 || now_seconds() - start < 1.0))) {
        double a = now_seconds();
        if ((st = bench_once(k, &call, &pg, grad, &dc, &err))) rc = fail(status_exit(st), "%s", err.message, NULL);
        times[done++] = now_seconds() - a;
    }
    if (!rc) {
        qsort(times, (size_t)done, sizeof times[0], compare_doubles);
        double median = times[done / 2];
        double total = (double)sz.B * sz.H * sz.Lq * sz.Lk;
        /* forward: QK^T and PV; backward: 5 such products (S, dP, dV, dQ, dK) */
        double flops = (grad ? 10.0 : 4.0) * (double)kept * (double)sz.D;
        static const char *const elems[] = {"f32", "f16", "bf16"};
        printf("%sbackend %s, threads %d, B=%lld H=%lld Hkv=%lld Lq=%lld Lk=%lld D=%lld Dv=%lld, %s %s\n",
               grad ? "backward pass, " : "", attnc_backend_name(attnc_kernel_backend(k)), threads, (long long)sz.B, (long long)sz.H,
               (long long)sz.Hkv, (long long)sz.Lq, (long long)sz.Lk, (long long)sz.D, (long long)sz.Dv,
               elems[o->elem], o->page_rows ? "paged" : o->blhd ? "blhd" : "bhld");
        if (o->page_rows)
            printf("K,V pages    %10d rows (%lld pages %s, in reverse order: read in place through the block table, or "
                   "gathered when no kv tile of 8 keys or more divides a page: docs/decode.md)\n",
                   o->page_rows, (long long)pg.batch.num_pages, o->page_hnd ? "[Hkv, rows, D]" : "[rows, Hkv, D]");
        printf("compile      %10.3f ms%s\n", compile_ms, on_device ? " (NVRTC not included: the warm-up call)" : "");
        if (on_device) printf("device       Q, K, V, O, LSE in device memory: no copies timed\n");
        printf("time/call    %10.3f ms   (median of %d after a warm-up)\n", median * 1e3, done);
        printf("kept pairs   %10.4f     (%lld of %.0f)\n", total > 0 ? (double)kept / total : 0.0, (long long)kept,
               total);
        printf("GFLOP/s      %10.2f     (%d * D * kept pairs per call)\n", median > 0 ? flops / median * 1e-9 : 0.0,
               grad ? 10 : 4);
        /* decode is a stream over the KV cache: what matters is how fast it is read */
        double kv_bytes = (double)sz.B * (double)sz.Hkv * (double)sz.Lk * (double)(sz.D + sz.Dv) * elem_bytes(o->elem);
        printf("K,V read     %10.2f GB/s (K and V bytes once per call / time)\n",
               median > 0 ? kv_bytes / median * 1e-9 : 0.0);
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0) /* Linux: kilobytes; inputs, O and the kernel's scratch */
            printf("peak RSS     %10.1f MiB  (the whole process)\n", (double)ru.ru_maxrss / 1024.0);
    }
    device_call_free(&dc);
    free(pg.k), free(pg.v), free(pg.table), free(pg.kv_len);
    grad_bufs_free(&gb);
    call_free(&call);
    attnc_kernel_free(k);
    attnc_spec_free(spec);
    return rc;
}
