/* api.c — the public C library (include/attnc.h).
 * Requires: the front end (parse_source, sema_check) and the backends.
 * Produces: opaque spec and kernel handles.  A kernel owns its own checked
 * copy of the attention (re-parsed from the spec's text into its own arena),
 * so it outlives the spec it came from and can be run from many threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "api_internal.h"
#include "api_kernel.h"
#include "grid.h"
#include "bind.h"
#include "ir.h"
#include "launch.h"
#include "launch_device.h"
#include "kept_buffers.h"
#include "map_cache.h"
#include "plan.h"
#include "registry.h"
#include "sema.h"
#include "interp.h"
#include "threads.h"

extern const char attnc_prelude_text[];
extern const unsigned long attnc_prelude_text_len;

enum { MAX_SPEC_BYTES = 16 << 20 };

struct attnc_spec {
    Compiled c;
    char *text;
    size_t len;
    char *name;
};

/* Parse and check text into c (arena-owned); 0 only when out of memory
 * (diagnostics that could not all be kept or rendered included). */
static int compile_text(Compiled *c, const char *name, const char *text, size_t len) {
    memset(c, 0, sizeof *c);
    c->arena = arena_new();
    if (!c->arena) return 0;
    diag_init(&c->diag, c->arena);
    c->src = (Source){name, text, len};
    c->prelude_src = (Source){"<prelude>", attnc_prelude_text, attnc_prelude_text_len};
    AstFile *prelude = parse_source(&c->prelude_src, c->arena, &c->diag);
    AstFile *file = parse_source(&c->src, c->arena, &c->diag);
    if (!prelude || !file) return 0;
    c->prog = sema_check(file, prelude, c->arena, &c->diag);
    diag_render(&c->diag);
    return c->prog != NULL && !c->diag.failed && !arena_failed(c->arena);
}

static void compiled_free(Compiled *c) {
    diag_fini(&c->diag);
    arena_free(c->arena);
}

attnc_status attnc_spec_from_string(const char *filename, const char *text, size_t len, attnc_spec **out,
                                    attnc_error *err) {
    if (!out) return set_error(err, ATTNC_ERR_USAGE, "out is NULL");
    *out = NULL;
    if (!text && len) return set_error(err, ATTNC_ERR_USAGE, "text is NULL");
    if (len > MAX_SPEC_BYTES)
        return set_error(err, ATTNC_ERR_SPEC, "%s: spec is too large (%zu bytes; the limit is %d)",
                         filename ? filename : "<string>", len, MAX_SPEC_BYTES);
    attnc_spec *s = calloc(1, sizeof *s);
    if (!s) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    s->name = strdup(filename ? filename : "<string>");
    s->text = malloc(len + 1);
    if (!s->name || !s->text) {
        attnc_spec_free(s);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    }
    if (len) memcpy(s->text, text, len);
    s->text[len] = 0;
    s->len = len;
    if (!compile_text(&s->c, s->name, s->text, len)) {
        attnc_spec_free(s);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory while parsing");
    }
    *out = s;
    if (s->c.diag.errors)
        return set_error(err, ATTNC_ERR_SPEC, "%s: %d error%s in the spec", s->name, s->c.diag.errors,
                         s->c.diag.errors == 1 ? "" : "s");
    return ATTNC_OK;
}

attnc_status attnc_spec_from_file(const char *path, attnc_spec **out, attnc_error *err) {
    if (!out || !path) return set_error(err, ATTNC_ERR_USAGE, "path or out is NULL");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return set_error(err, ATTNC_ERR_RUNTIME, "cannot open '%s'", path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int too_big = 0, nomem = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            if (cap > (size_t)MAX_SPEC_BYTES + 1) {
                too_big = 1;
                break;
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                nomem = 1; /* not a shorter spec */
                break;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (too_big) {
        free(buf);
        return set_error(err, ATTNC_ERR_SPEC, "%s: spec is too large (the limit is %d bytes)", path, MAX_SPEC_BYTES);
    }
    if (bad) {
        free(buf);
        return set_error(err, ATTNC_ERR_RUNTIME, "cannot read '%s' (is it a directory?)", path);
    }
    if (nomem) {
        free(buf);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory reading '%s'", path);
    }
    attnc_status st = attnc_spec_from_string(path, buf ? buf : "", len, out, err);
    free(buf);
    return st;
}

int attnc_spec_error_count(const attnc_spec *s) { return s ? s->c.diag.errors : 0; }
const char *attnc_spec_diagnostics(const attnc_spec *s) { return s ? diag_text(&s->c.diag) : ""; }
int attnc_spec_variant_count(const attnc_spec *s) { return s ? s->c.prog->nattns : 0; }

const char *attnc_spec_variant_name(const attnc_spec *s, int i) {
    if (!s || i < 0 || i >= s->c.prog->nattns) return NULL;
    return s->c.prog->attns[i]->name;
}

void attnc_spec_free(attnc_spec *s) {
    if (!s) return;
    if (s->c.arena) compiled_free(&s->c);
    free(s->text);
    free(s->name);
    free(s);
}

/* ---- kernels ---------------------------------------------------------- */

const char *attnc_backend_name(attnc_backend b) {
    switch (b) {
    case ATTNC_BACKEND_INTERP: return "interp";
    case ATTNC_BACKEND_LLVM: return "llvm";
    case ATTNC_BACKEND_TCC: return "tcc";
    case ATTNC_BACKEND_CUDA_EMU: return "cuda-emu";
    case ATTNC_BACKEND_REFPLAN: return "refplan";
    case ATTNC_BACKEND_CUDA: return "cuda";
    default: return "default";
    }
}

int attnc_backend_parse(const char *name, attnc_backend *out) {
    static const attnc_backend all[] = {ATTNC_BACKEND_INTERP, ATTNC_BACKEND_LLVM, ATTNC_BACKEND_TCC,
                                        ATTNC_BACKEND_CUDA_EMU, ATTNC_BACKEND_REFPLAN, ATTNC_BACKEND_CUDA};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (name && strcmp(name, attnc_backend_name(all[i])) == 0) {
            *out = all[i];
            return 1;
        }
    return 0;
}

int attnc_backend_available(attnc_backend b) {
    const BackendImpl *impl = backend_find(b);
    return b == ATTNC_BACKEND_DEFAULT || (impl && impl->can_run && (!impl->probe || impl->probe(NULL) == ATTNC_OK));
}

/* The fastest backend this build can run. */
static attnc_backend default_backend(void) {
    if (attnc_backend_available(ATTNC_BACKEND_LLVM)) return ATTNC_BACKEND_LLVM;
    if (attnc_backend_available(ATTNC_BACKEND_TCC)) return ATTNC_BACKEND_TCC;
    return ATTNC_BACKEND_INTERP;
}

const char *attnc_version(void) { return ATTNC_VERSION_TEXT; }

/* "a, b, c": the file's attentions, for messages. */
static void variant_names(const Program *p, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < p->nattns && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", i ? ", " : "", p->attns[i]->name);
}

static const Attention *find_variant(const Program *p, const char *variant, attnc_error *err) {
    char names[300];
    if (variant) {
        for (int i = 0; i < p->nattns; i++)
            if (strcmp(p->attns[i]->name, variant) == 0) return p->attns[i];
        variant_names(p, names, sizeof names);
        set_error(err, ATTNC_ERR_USAGE, "no attention named '%s' in the file (it has: %s)", variant, names);
        return NULL;
    }
    if (p->nattns == 1) return p->attns[0];
    variant_names(p, names, sizeof names);
    set_error(err, ATTNC_ERR_USAGE, "the file has %d attentions (%s); choose one with --variant", p->nattns, names);
    return NULL;
}

static attnc_status apply_defines(attnc_kernel *k, const attnc_options *opts, attnc_error *err) {
    const Attention *a = k->attn;
    k->fixed.is_fixed = calloc((size_t)a->nparams + 1, sizeof(int));
    k->fixed.value = calloc((size_t)a->nparams + 1, sizeof(Const));
    k->unbound = calloc((size_t)a->nparams + 1, sizeof(int));
    if (!k->fixed.is_fixed || !k->fixed.value || !k->unbound) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    for (int i = 0; opts && i < opts->n_defines; i++) {
        const attnc_define *d = &opts->defines[i];
        int found = -1;
        for (int j = 0; j < a->nparams; j++)
            if (d->name && strcmp(a->params[j]->name, d->name) == 0) found = j;
        if (found < 0)
            return set_error(err, ATTNC_ERR_USAGE, "-D %s: attention '%s' has no param of that name",
                             d->name ? d->name : "(null)", a->name);
        if (k->fixed.is_fixed[found]) return set_error(err, ATTNC_ERR_USAGE, "-D %s is given twice", d->name);
        attnc_status st = bind_parse_value(a->params[found]->type, d->name, d->value ? d->value : "",
                                           &k->fixed.value[found], err);
        if (st) return st;
        k->fixed.is_fixed[found] = 1;
    }
    for (int j = 0; j < a->nparams; j++)
        if (!k->fixed.is_fixed[j]) k->unbound[k->nunbound++] = j;
    return ATTNC_OK;
}

/* Whether a kernel goes without multi-dimensional tiles (Plan.grid): asked
 * to, or its backend does not run through runtime/launch.c's tile loop (the
 * interpreter, the device backends: they would never use the block-order
 * kernel), or its rows are tables made per work item (per original row). */
static int grid_off(attnc_backend backend, const attnc_options *opts, int rows) {
    return rows || (opts && (opts->flags & ATTNC_OPT_NO_GRID_TILES)) ||
           !(backend == ATTNC_BACKEND_LLVM || backend == ATTNC_BACKEND_TCC || backend == ATTNC_BACKEND_REFPLAN);
}

attnc_status attnc_compile(const attnc_spec *spec, const char *variant, const attnc_options *opts, attnc_kernel **out,
                           attnc_error *err) {
    if (!spec || !out) return set_error(err, ATTNC_ERR_USAGE, "spec or out is NULL");
    *out = NULL;
    if (spec->c.diag.errors)
        return set_error(err, ATTNC_ERR_SPEC, "%s has errors; see its diagnostics", spec->name);
    attnc_backend chosen = opts ? opts->backend : ATTNC_BACKEND_DEFAULT;
    attnc_backend backend = chosen == ATTNC_BACKEND_DEFAULT ? default_backend() : chosen;
    const BackendImpl *probed = backend_find(backend);
    attnc_status unusable = probed && probed->can_run && probed->probe ? probed->probe(err) : ATTNC_OK;
    if (unusable) return unusable; /* e.g. no CUDA driver: the machine's, not the caller's, error */
    if (!attnc_backend_available(backend))
        return set_error(err, ATTNC_ERR_USAGE, "backend '%s' is not available in this build",
                         attnc_backend_name(backend));
    if (opts && (opts->threads < 0 || opts->n_defines < 0 || (opts->n_defines && !opts->defines)))
        return set_error(err, ATTNC_ERR_USAGE, "invalid options (negative threads or defines count)");
    if (opts && (opts->tile_q < 0 || opts->tile_k < 0 || opts->tile_q > 4096 || opts->tile_k > 4096))
        return set_error(err, ATTNC_ERR_USAGE, "tile sizes must be between 1 and 4096 (0: default)");
    attnc_kernel *k = calloc(1, sizeof *k);
    if (!k) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    k->text = malloc(spec->len + 1);
    k->name = strdup(spec->name);
    if (!k->text || !k->name) {
        attnc_kernel_free(k);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    }
    memcpy(k->text, spec->text, spec->len + 1);
    attnc_status st = ATTNC_OK;
    if (!compile_text(&k->c, k->name, k->text, spec->len))
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory while parsing");
    else if (k->c.diag.errors)
        st = set_error(err, ATTNC_ERR_INTERNAL, "re-checking the spec for the kernel failed");
    if (!st) {
        k->attn = find_variant(k->c.prog, variant, err);
        if (!k->attn) st = ATTNC_ERR_USAGE;
    }
    if (!st) st = apply_defines(k, opts, err);
    /* dot products of rows: tables per call (middle/rows_table.h); a form they cannot express runs on the interpreter */
    const char *why = NULL;
    int rows = !st && attention_interp_only(k->attn) && backend != ATTNC_BACKEND_INTERP;
    if (rows && !(k->rows = rows_rewrite(k->c.arena, k->attn, &why))) {
        if (chosen == ATTNC_BACKEND_DEFAULT && strcmp(why, "out of memory") != 0) {
            backend = ATTNC_BACKEND_INTERP;
        } else {
            st = set_error(err, strcmp(why, "out of memory") ? ATTNC_ERR_USAGE : ATTNC_ERR_NOMEM,
                           "attention '%s' has a %s, which backend '%s' does not compile yet; the interpreter runs "
                           "it (--backend interp)", k->attn->name, why, attnc_backend_name(backend));
        }
    }
    if (!st && !(backend == ATTNC_BACKEND_INTERP && attention_interp_only(k->attn))) {
        const BackendImpl *impl = backend_find(backend);
        PlanOptions po = {opts ? opts->tile_q : 0, opts ? opts->tile_k : 0, impl->vec_width ? impl->vec_width() : 0,
                          k->fixed.is_fixed, k->fixed.value, NULL, opts && (opts->flags & ATTNC_OPT_SEPARABLE_BIAS),
                          impl->toeplitz, grid_off(backend, opts, k->rows != NULL)};
        k->plan = plan_compile(k->c.arena, k->rows ? k->rows->attn : k->attn, &po);
        if (!k->plan) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory in the middle end");
        else k->plan->rows = k->rows;
    }
    /* the kept tile maps (NULL when the masks read tensors), made before the backend compiles: a failure here
     * must not come after a compile that a backend's cache (llvm's) has kept */
    MapCache *maps = NULL, *gmaps = NULL;
    if (!st && k->plan) st = map_cache_new(k->plan, &maps, err);
    if (!st && k->plan && k->plan->grid) st = map_cache_new(k->plan->grid->plan, &gmaps, err);
    if (!st && k->plan && k->plan->grid) st = kept_buffers_new(&k->ck.grid_rows, err); /* likewise */
    if (!st && k->plan) st = kept_buffers_new(&k->ck.packed_rows, err);
    if (!st && k->plan) st = kept_buffers_new(&k->ck.grad_rows, err);
    if (!st) st = kept_buffers_new(&k->gathered, err);
    if (!st) {
        k->impl = backend_find(backend); /* available, so registered */
        st = k->impl->compile(k->plan, opts, &k->ck, &k->state, err); /* the interpreter's takes a NULL plan */
    }
    if (!st && k->plan && k->plan->grid && k->ck.tile) { /* the block-order plan's kernel beside it */
        st = k->impl->compile(k->plan->grid->plan, opts, &k->gck, &k->gstate, err);
        if (!st) k->ck.grid = &k->gck, k->gck.maps = gmaps, gmaps = NULL;
    }
    if (!st && k->ck.tile) k->ck.maps = maps, maps = NULL;
    map_cache_free(maps);
    map_cache_free(gmaps);
    if (st) {
        attnc_kernel_free(k);
        return st;
    }
    k->backend = backend;
    k->threads = opts ? opts->threads : 0;
    if (opts) k->opts = *opts;
    k->opts.defines = NULL; /* not owned: the kernel keeps the values in fixed */
    k->opts.n_defines = 0;
    *out = k;
    return ATTNC_OK;
}

const char *attnc_kernel_variant(const attnc_kernel *k) { return k ? k->attn->name : NULL; }

int attnc_kernel_is_softmax(const attnc_kernel *k) { return k && !k->attn->weight; }

attnc_backend attnc_kernel_backend(const attnc_kernel *k) { return k ? k->backend : ATTNC_BACKEND_DEFAULT; }

void attnc_kernel_free(attnc_kernel *k) {
    if (!k) return;
    if (k->impl && k->state) k->impl->release(k->state);
    if (k->impl && k->gstate) k->impl->release(k->gstate);
    map_cache_free(k->ck.maps);
    map_cache_free(k->gck.maps);
    kept_buffers_free(k->ck.grid_rows);
    kept_buffers_free(k->ck.packed_rows);
    kept_buffers_free(k->ck.grad_rows);
    rope_scratch_free(k->rope);
    kept_buffers_free(k->gathered);
    if (k->c.arena) compiled_free(&k->c);
    free(k->fixed.is_fixed);
    free(k->fixed.value);
    free(k->unbound);
    free(k->text);
    free(k->name);
    free(k);
}

int attnc_kernel_param_count(const attnc_kernel *k) { return k ? k->nunbound : 0; }

static attnc_type public_type(Type t) { return t == T_INT ? ATTNC_INT : t == T_FLOAT ? ATTNC_FLOAT : ATTNC_BOOL; }

const char *attnc_kernel_param_info(const attnc_kernel *k, int i, attnc_type *type, int *has_default,
                                    attnc_param *def) {
    if (!k || i < 0 || i >= k->nunbound) return NULL;
    const Decl *d = k->attn->params[k->unbound[i]];
    if (type) *type = public_type(d->type);
    /* a default is constant only when it reads no sizes or params */
    int constant = d->init && !(d->init->deps & (DEP_SIZE | DEP_PARAM)) && d->init->kind == X_CONST;
    if (has_default) *has_default = d->init != NULL;
    if (def) {
        memset(def, 0, sizeof *def);
        def->name = d->name;
        def->type = public_type(d->type);
        if (constant) {
            def->i = d->init->c.i;
            def->f = d->type == T_FLOAT ? d->init->c.f : 0;
            def->b = d->type == T_BOOL ? d->init->c.b : 0;
        }
    }
    return d->name;
}

int attnc_kernel_tensor_count(const attnc_kernel *k) { return k ? k->attn->ntensors : 0; }

const char *attnc_kernel_tensor_info(const attnc_kernel *k, int i, attnc_dtype *dtype, int *rank) {
    if (!k || i < 0 || i >= k->attn->ntensors) return NULL;
    const Decl *d = k->attn->tensors[i];
    if (dtype) *dtype = d->type == T_INT ? ATTNC_I32 : ATTNC_F32;
    if (rank) *rank = d->ndims;
    return d->name;
}

attnc_status attnc_kernel_tensor_shape(const attnc_kernel *k, int i, const attnc_sizes *sizes,
                                       const attnc_param *params, int n_params, int64_t *shape, attnc_error *err) {
    if (!k || !sizes || !shape || i < 0 || i >= k->attn->ntensors)
        return set_error(err, ATTNC_ERR_USAGE, "bad arguments to attnc_kernel_tensor_shape");
    /* bind with no tensors, then evaluate the one wanted: reuse bind's checks */
    const Attention *a = k->attn;
    Attention only_params = *a;
    only_params.ntensors = 0;
    only_params.scale = NULL;
    only_params.rotary = NULL; /* and no clause reads a tensor (dot rows are checked against their shapes) */
    only_params.nbiases = only_params.nscores = 0;
    only_params.weight = only_params.sink = NULL;
    static const float dummy = 0;
    attnc_args args = {*sizes, &dummy, &dummy, &dummy, (float *)&dummy, NULL, params, n_params, NULL, 0};
    BoundCall bc;
    attnc_status st = bind_call(&only_params, &k->fixed, &args, &bc, err);
    if (st) return st;
    st = bind_tensor_shape(&bc, a->tensors[i], shape, err);
    bind_release(&bc);
    return st;
}

/* The caller's args with a valid pointer for every empty array, which the
 * API allows to be NULL: backends may then offset Q, K, V and O freely
 * (arithmetic on NULL is undefined even by 0).  Nothing is read or written
 * through them. */
attnc_args api_with_empty_arrays(const attnc_args *args, float *dummy) {
    const attnc_sizes *s = &args->sizes;
    attnc_args a = *args;
    if (!a.q && s->B * s->H * s->Lq * s->D == 0) a.q = dummy;
    if (!a.k && s->B * s->Hkv * s->Lk * s->D == 0) a.k = dummy;
    if (!a.v && s->B * s->Hkv * s->Lk * s->Dv == 0) a.v = dummy;
    if (!a.o && s->B * s->H * s->Lq * s->Dv == 0) a.o = dummy;
    return a;
}

int api_plain_layouts(const BoundCall *bc) {
    const attnc_sizes *s = &bc->sz;
    for (int t = 0; t < BT_COUNT; t++) {
        const BoundLayout *l = &bc->layout[t];
        int kv = t == BT_K || t == BT_V;
        int64_t heads = kv ? s->Hkv : s->H, len = kv ? s->Lk : s->Lq;
        int64_t row = t == BT_LSE ? 1 : t == BT_Q || t == BT_K ? s->D : s->Dv;
        if (l->elem != ATTNC_ELEM_F32 || l->stride[2] != row || l->stride[1] != len * row ||
            l->stride[0] != heads * len * row)
            return 0;
    }
    return 1;
}

attnc_status attnc_kernel_run(const attnc_kernel *k, const attnc_args *args, attnc_error *err) {
    return attnc_kernel_run_layout(k, args, NULL, err);
}

attnc_status attnc_kernel_run_layout(const attnc_kernel *k, const attnc_args *args, const attnc_layouts *layouts,
                                     attnc_error *err) {
    return attnc_kernel_run_pages(k, args, layouts, NULL, 0, err);
}

int attnc_kernel_threads(const attnc_kernel *k) { return k->threads > 0 ? k->threads : pool_cores(); }

/* A rotary or a dot of K rows reads K before the kernel, as a dense tensor:
 * then the batch gathers the pages first. */
static int reads_k_before(const attnc_kernel *k) { return (k->rows && rows_read_k(k->rows)) || k->attn->rotary; }

/* Pages of fewer rows than this are gathered: a kv tile costs its row block's softmax rescaling and a tile map
 * entry, which tiles of a few keys would pay more often than one copy of the rows costs (docs/decode.md). */
enum { MIN_PAGE_TILE = 8 };

int64_t attnc_kernel_page_tile(const attnc_kernel *k, int64_t page_rows) {
    if (!k || !k->plan || !k->ck.pages || page_rows <= 0 || reads_k_before(k)) return 0;
    int64_t bk = k->plan->bk;
    if (page_rows % bk == 0) return bk;
    if (!k->ck.short_kv_tiles) return 0;
    /* the widest tile below the plan's that a page holds a whole number of */
    for (int64_t t = bk - 1; t >= MIN_PAGE_TILE; t--)
        if (page_rows % t == 0) return t;
    return 0;
}

/* The work bound, then the backend's runner or the threaded launcher (with
 * tensors made per work item when `it` is not NULL). */
static attnc_status run_plan(const attnc_kernel *k, BoundCall *bc, const attnc_args *a, int threads,
                             const LaunchPages *pages, const LaunchItemTensors *it, attnc_error *err) {
    attnc_status st = tile_check_work(k->plan, bc, err);
    if (st) return st;
    if (k->impl->device) return launch_device_run(k->plan, k->impl->device, &k->ck, bc, a, NULL, 0, err);
    if (k->impl->run) return k->impl->run(k->plan, &k->ck, bc, a, threads, err);
    return launch_run_items(k->plan, &k->ck, bc, a, threads, k->opts.flags, pages, it, err);
}

/* Whether the kernel's tables of Q rows are made per work item: on the
 * threaded launcher with the llvm and tcc kernels, whose loads are all
 * bounds-checked element reads of the plan's IR (tile_table.h's premise);
 * refplan and cuda-emu keep per-call tables, as do the device and the
 * backends with their own runners. */
static int q_tables_per_item(const attnc_kernel *k) {
    return !k->impl->device && !k->impl->run && (k->backend == ATTNC_BACKEND_LLVM || k->backend == ATTNC_BACKEND_TCC);
}

/* run_plan, with the tables of the kernel's dot products computed first. */
static attnc_status run_kernel(const attnc_kernel *k, BoundCall *bc, const attnc_args *a, int threads,
                               const LaunchPages *pages, attnc_error *err) {
    if (!k->rows) return run_plan(k, bc, a, threads, pages, NULL, err);
    if (pages && rows_read_k(k->rows))
        return set_error(err, ATTNC_ERR_USAGE, "attention '%s' has a dot of K rows: a paged KV cache is not "
                         "supported with it yet", bc->attn->name);
    RowsCall rc;
    attnc_status st = api_rows_bind(k, bc, a->q, a->k, threads > 0 ? threads : pool_cores(), q_tables_per_item(k), &rc,
                                    err);
    if (st) return st;
    LaunchItemTensors items = rc.items ? rows_items_hook(rc.items) : (LaunchItemTensors){0};
    st = run_plan(k, &rc.bc, a, threads, pages, rc.items ? &items : NULL, err);
    api_rows_release(&rc);
    /* a runtime error is named as the spec reads: by the interpreter on the call without tables */
    if (st == ATTNC_ERR_RUNTIME) {
        attnc_error mine = {0};
        if (interp_run(bc, a->q, a->k, a->v, NULL, NULL, &mine) == ATTNC_ERR_RUNTIME && err) *err = mine;
    }
    return st;
}

attnc_status attnc_kernel_run_pages(const attnc_kernel *k, const attnc_args *args, const attnc_layouts *layouts,
                                    const LaunchPages *pages, int threads, attnc_error *err) {
    if (!k) return set_error(err, ATTNC_ERR_USAGE, "kernel is NULL");
    if (threads <= 0) threads = k->threads;
    BoundCall bc;
    attnc_status st = bind_call_layout(k->attn, &k->fixed, args, layouts, 1, &bc, err);
    if (st) return st;
    if (!k->impl->layouts && !api_plain_layouts(&bc)) {
        bind_release(&bc);
        return set_error(err, ATTNC_ERR_USAGE, "backend '%s' takes only float32, contiguous tensors",
                         attnc_backend_name(k->backend));
    }
    float dummy[1] = {0};
    attnc_args a = api_with_empty_arrays(args, dummy);
    const attnc_sizes *sz = &bc.sz;
    if (st || sz->B * sz->H * sz->Lq == 0) {
        /* an error, or no output rows: nothing to compute (sizes are bounded: no overflow) */
    } else if (!k->plan) {
        st = k->impl->run(k->plan, &k->ck, &bc, &a, threads, err); /* the interpreter */
    } else if (k->ck.v2 && !k->impl->device) { /* cuda-emu: the CUDA text's own kernels around the kernel */
        st = api_run_v2_kernels(k, &bc, &a, threads, pages, NULL, NULL, err);
    } else if ((bc.attn->rotary || bc.attn->sink) && k->backend != ATTNC_BACKEND_INTERP) {
        st = api_run_rope_sink(k, &bc, &a, threads, pages, run_kernel, err);
    } else {
        st = run_kernel(k, &bc, &a, threads, pages, err);
    }
    bind_release(&bc);
    if (!st && err) {
        err->status = ATTNC_OK;
        err->message[0] = 0;
    }
    return st;
}

attnc_status attnc_kernel_param_from_text(const attnc_kernel *k, const char *name, const char *text, attnc_param *out,
                                          attnc_error *err) {
    if (!k || !name || !text || !out) return set_error(err, ATTNC_ERR_USAGE, "bad arguments");
    const Attention *a = k->attn;
    for (int j = 0; j < a->nparams; j++) {
        const Decl *d = a->params[j];
        if (strcmp(d->name, name) != 0) continue;
        if (k->fixed.is_fixed[j])
            return set_error(err, ATTNC_ERR_USAGE, "param '%s' was fixed when the kernel was compiled", name);
        Const v;
        attnc_status st = bind_parse_value(d->type, name, text, &v, err);
        if (st) return st;
        memset(out, 0, sizeof *out);
        out->name = d->name;
        out->type = public_type(d->type);
        if (d->type == T_INT) out->i = v.i;
        else if (d->type == T_FLOAT) out->f = v.f;
        else out->b = v.b;
        return ATTNC_OK;
    }
    return set_error(err, ATTNC_ERR_USAGE, "attention '%s' has no param '%s'", a->name, name);
}

void attnc_free(void *p) { free(p); }

/* What call_tile_map computes from the map before freeing it: the kept
 * pairs, or a picture of one (b, h) (attnc_kernel_picture). */
typedef struct MapUse {
    int64_t *kept;
    int64_t b, h;
    int rows, cols;
    float *pixels;
    uint8_t *tiles;
} MapUse;

/* Where the IR says an element a mask count evaluates raises a runtime
 * error: the interpreter evaluates the masks there and names it. */
typedef struct MaskFault {
    const BoundCall *bc;
    attnc_error *err; /* the caller's (may be NULL) */
    attnc_status st;
} MaskFault;

static int mask_fault_at(void *ctx, int64_t b, int64_t h, int64_t q, int64_t kv) {
    MaskFault *mf = ctx;
    attnc_error e = {0};
    int kept = interp_masks_at(mf->bc, b, h, q, kv, &e);
    if (kept < 0) {
        mf->st = e.status;
        if (mf->err) *mf->err = e;
    }
    return kept;
}

/* The tile map of a call (Q, K, V, O not read), and with use != NULL what it
 * asks (then the map is freed); a kernel with tables gets zero ones: masks
 * never read a dot. */
/* The tile map of the block-order plan when this call's grid divides (the
 * kernel then runs it: runtime/launch.c), for `attnc emit --shape`. */
static attnc_status print_grid_map(const attnc_kernel *k, const attnc_args *call, StrBuf *sb, attnc_error *err) {
    static float unread[1];
    attnc_args args = *call;
    args.q = args.k = args.v = unread, args.o = unread;
    BoundCall bc;
    TileMap tm;
    int64_t W, H;
    attnc_status st = bind_call(k->attn, &k->fixed, &args, &bc, err);
    if (st) return st;
    int grid = grid_applies(k->plan, k->plan->grid, &bc, &W, &H);
    if (grid < 0) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    if (grid > 0 && !(st = tile_map_build(k->plan->grid->plan, &bc, &tm, err))) {
        sb_printf(sb, "this call's grid (width %lld) divides into the blocks: its kernel runs the block-order plan\n",
                  (long long)W);
        plan_print_tile_map(k->plan->grid->plan, &tm, "tile map (rows in block order)", sb);
        tile_map_free(&tm);
    }
    bind_release(&bc);
    return st;
}

static attnc_status call_tile_map(const attnc_kernel *k, const attnc_args *call, TileMap *tm, const MapUse *use,
                                  attnc_error *err) {
    /* Q, K, V and O are not read here (attnc.h), so NULL is allowed: bind
     * checks pointers for the runs that read them, so it sees one never used. */
    static float unread[1];
    attnc_args args = *call;
    if (!args.q) args.q = unread;
    if (!args.k) args.k = unread;
    if (!args.v) args.v = unread;
    if (!args.o) args.o = unread;
    BoundCall bc;
    attnc_status st = bind_call(k->attn, &k->fixed, &args, &bc, err);
    if (st) return st;
    RowsCall rc;
    const BoundCall *bound = &bc;
    if (k->rows && !(st = api_rows_bind(k, &bc, NULL, NULL, 1, 0, &rc, err))) bound = &rc.bc;
    if (!st) st = tile_map_build(k->plan, bound, tm, err);
    if (!st && use) {
        MaskFault mf = {&bc, err, ATTNC_OK};
        TileFaultHook hook = {mask_fault_at, &mf};
        int64_t r = use->kept ? tile_count_kept(k->plan, bound, tm, &hook)
                              : tile_picture(k->plan, bound, tm, use->b, use->h, use->rows, use->cols, use->pixels,
                                             use->tiles, &hook);
        if (use->kept && r >= 0) *use->kept = r;
        if (r == -2) st = mf.st; /* the interpreter's message is in err */
        else if (r < 0 || (!use->kept && r == 0)) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
        tile_map_free(tm);
    }
    if (bound != &bc) api_rows_release(&rc);
    bind_release(&bc);
    return st;
}

/* What a kernel without a plan (a version-2 attention on the interpreter) cannot do. */
static attnc_status interp_only_error(const attnc_kernel *k, const char *what, attnc_error *err) {
    return set_error(err, ATTNC_ERR_USAGE, "attention '%s' uses '%s' (language version 2), which the middle end "
                     "does not compile yet: it %s", k->attn->name, attention_interp_only(k->attn), what);
}

attnc_status attnc_kernel_emit(const attnc_kernel *k, const char *target, const attnc_args *call, int flags,
                               char **out, attnc_error *err) {
    if (!k || !target || !out) return set_error(err, ATTNC_ERR_USAGE, "bad arguments to attnc_kernel_emit");
    *out = NULL;
    if (!k->plan) return interp_only_error(k, "has no compiled form", err);
    /* C and CUDA text do what the library does around the kernel (c_emit_v2.c, cuda_emit_v2.c) */
    if (strcmp(target, "ir") != 0 && strcmp(target, "c") != 0 && strcmp(target, "cuda") != 0 &&
        (k->attn->rotary || k->attn->sink || k->rows))
        return set_error(err, ATTNC_ERR_USAGE, "attention '%s' has a %s, which the library applies around the kernel "
                         "(not in its code): target '%s' would compute without it", k->attn->name,
                         k->attn->rotary ? "rotary" : k->attn->sink ? "sink" : "dot of rows (per-call tables)", target);
    StrBuf sb = {0};
    attnc_status st = ATTNC_OK;
    if (strcmp(target, "ir") != 0) {
        /* a backend's own text: the first backend of this build that knows the target */
        attnc_backend order[] = {k->backend, ATTNC_BACKEND_TCC, ATTNC_BACKEND_LLVM, ATTNC_BACKEND_CUDA_EMU};
        st = ATTNC_ERR_USAGE;
        for (size_t i = 0; i < sizeof order / sizeof order[0] && st == ATTNC_ERR_USAGE; i++) {
            const BackendImpl *impl = backend_find(order[i]);
            if (impl) st = impl->emit(k->plan, &k->opts, target, &sb, err); /* each translates the diag block */
        }
        if (st == ATTNC_ERR_USAGE)
            st = set_error(err, ATTNC_ERR_USAGE, "target '%s' is not available in this build", target);
        if (st) {
            sb_free(&sb);
            return st;
        }
        *out = sb.p ? sb.p : calloc(1, 1);
        return *out ? ATTNC_OK : set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    }
    if (flags & ATTNC_EMIT_PASSES) {
        /* run the middle end again, this time keeping the dump of every pass */
        Arena *scratch = arena_new();
        PlanOptions po = {k->plan->bq, k->plan->bk, k->plan->vec_width, k->fixed.is_fixed, k->fixed.value, &sb,
                          (k->opts.flags & ATTNC_OPT_SEPARABLE_BIAS) != 0, k->impl->toeplitz, k->plan->grid == NULL};
        if (!scratch || !plan_compile(scratch, k->rows ? k->rows->attn : k->attn, &po))
            st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
        arena_free(scratch);
    }
    TileMap tm, *tmp = NULL;
    if (!st && call && !(st = call_tile_map(k, call, &tm, NULL, err))) tmp = &tm;
    if (!st) plan_print(k->plan, tmp, &sb);
    if (!st && call && k->ck.grid && !(k->opts.flags & ATTNC_OPT_NO_GRID_TILES)) st = print_grid_map(k, call, &sb, err);
    if (!st && k->attn->rotary) sb_printf(&sb, "rotary: Q and K rows rotated once per call before the kernel\n");
    if (!st && k->attn->sink) sb_printf(&sb, "sink: merged into each row's O and LSE after the kernel\n");
    if (tmp) tile_map_free(tmp);
    if (!st && sb.failed) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    if (st) {
        sb_free(&sb);
        return st;
    }
    *out = sb.p ? sb.p : calloc(1, 1);
    return *out ? ATTNC_OK : set_error(err, ATTNC_ERR_NOMEM, "out of memory");
}

const Plan *attnc_kernel_plan(const attnc_kernel *k) { return k ? k->plan : NULL; }
const FixedParams *attnc_kernel_fixed(const attnc_kernel *k) { return k ? &k->fixed : NULL; }
const Attention *attnc_kernel_attention(const attnc_kernel *k) { return k ? k->attn : NULL; }

attnc_status attnc_kernel_kept_pairs(const attnc_kernel *k, const attnc_args *call, int64_t *kept, attnc_error *err) {
    if (!k || !call || !kept) return set_error(err, ATTNC_ERR_USAGE, "bad arguments to attnc_kernel_kept_pairs");
    if (!k->plan) return interp_only_error(k, "has no tile map to count kept pairs with", err);
    TileMap tm;
    MapUse use = {kept, 0, 0, 0, 0, NULL, NULL};
    return call_tile_map(k, call, &tm, &use, err);
}

attnc_status attnc_kernel_picture(const attnc_kernel *k, const attnc_args *call, int64_t b, int64_t h, int rows,
                                  int cols, float *kept, uint8_t *tiles, attnc_error *err) {
    if (!k || !call || !kept) return set_error(err, ATTNC_ERR_USAGE, "bad arguments to attnc_kernel_picture");
    if (!k->plan) return interp_only_error(k, "has no tile map to draw", err);
    const attnc_sizes *sz = &call->sizes;
    if (b < 0 || b >= sz->B || h < 0 || h >= sz->H)
        return set_error(err, ATTNC_ERR_USAGE, "attnc_kernel_picture: (b, h) = (%lld, %lld) is outside B = %lld, "
                         "H = %lld", (long long)b, (long long)h, (long long)sz->B, (long long)sz->H);
    if (rows < 1 || cols < 1 || rows > sz->Lq || cols > sz->Lk)
        return set_error(err, ATTNC_ERR_USAGE, "attnc_kernel_picture: %d x %d pixels for Lq = %lld, Lk = %lld (each "
                         "side from 1 to its length)", rows, cols, (long long)sz->Lq, (long long)sz->Lk);
    TileMap tm;
    MapUse use = {NULL, b, h, rows, cols, kept, tiles};
    return call_tile_map(k, call, &tm, &use, err);
}

attnc_status attnc_kernel_tensor_value_range(const attnc_kernel *k, int i, const attnc_sizes *sizes,
                                             const attnc_param *params, int n_params, int64_t *lo, int64_t *hi,
                                             attnc_error *err) {
    if (!k || !lo || !hi || i < 0 || i >= k->attn->ntensors)
        return set_error(err, ATTNC_ERR_USAGE, "bad arguments to attnc_kernel_tensor_value_range");
    if (!k->plan) return interp_only_error(k, "has no IR to bound tensor values with", err);
    *lo = 0;
    *hi = 4;
    const IrModule *m = k->plan->ir;
    int narrowed = 0;
    for (int n = 0; n < m->n; n++) {
        const IrNode *use = ir_at(m, n);
        if (use->op != IR_LOAD || use->aux >= k->attn->ntensors) continue; /* not a table of dot products */
        for (int d = 0; d < use->nargs; d++) {
            const IrNode *ix = ir_at(m, use->args[d]);
            if (ix->op != IR_LOAD || ix->aux != i) continue;
            int64_t shape[ATTNC_MAX_RANK];
            attnc_status st = attnc_kernel_tensor_shape(k, use->aux, sizes, params, n_params, shape, err);
            if (st) return st;
            if (!narrowed || shape[d] < *hi) *hi = shape[d];
            narrowed = 1;
        }
    }
    if (*hi < 1) *hi = 1;
    return ATTNC_OK;
}
