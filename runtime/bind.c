/* bind.c — per-call binding of sizes, params and captured tensors.
 * Requires: a checked Attention, the params fixed at compile time, the
 * caller's attnc_args.
 * Produces: a BoundCall every backend can trust: sizes valid and small
 * enough that index arithmetic cannot overflow, every param valued (given,
 * fixed or default), every tensor present with the shape its declaration
 * evaluates to, the scale computed.  Errors name the offending thing. */
#include "bind.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"

/* Text of an int: an optional sign, then decimal digits or 0x and hex digits
 * (no octal, no spaces, nothing after).  0 when it is not one; *range set
 * when it is one outside int64. */
static int parse_int_text(const char *text, int64_t *out, int *range) {
    const char *p = text + (*text == '-' || *text == '+');
    int hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
    const char *digits = p + (hex ? 2 : 0);
    if (!*digits) return 0;
    for (const char *c = digits; *c; c++)
        if (!(hex ? isxdigit((unsigned char)*c) : isdigit((unsigned char)*c))) return 0;
    errno = 0;
    long long v = strtoll(text, NULL, hex ? 16 : 10);
    *range = errno == ERANGE;
    *out = v;
    return 1;
}

/* Text of a float: what strtod reads, whole, except NaN and numbers that
 * overflow float32 (kernels compute in binary32); "inf" and "-inf" are
 * allowed, written out (see docs/language-choices.md). */
static attnc_status parse_float_text(const char *name, const char *text, double *out, attnc_error *err) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || isspace((unsigned char)*text))
        return set_error(err, ATTNC_ERR_USAGE, "param '%s' is float: '%s' is not a number", name, text);
    if (isnan(v)) return set_error(err, ATTNC_ERR_USAGE, "param '%s' is float: NaN ('%s') is not accepted", name, text);
    int written_inf = isinf(v) && strpbrk(text, "iI") != NULL;
    if ((isinf(v) && !written_inf) || (isfinite(v) && fabs(v) > FLT_MAX))
        return set_error(err, ATTNC_ERR_USAGE, "param '%s': '%s' is beyond the float32 range (write inf for infinity)",
                         name, text);
    *out = v;
    return ATTNC_OK;
}

attnc_status bind_parse_value(Type t, const char *name, const char *text, Const *out, attnc_error *err) {
    if (!*text) return set_error(err, ATTNC_ERR_USAGE, "param '%s' has an empty value", name);
    if (t == T_BOOL) {
        if (strcmp(text, "true") == 0) {
            out->b = 1;
        } else if (strcmp(text, "false") == 0) {
            out->b = 0;
        } else {
            return set_error(err, ATTNC_ERR_USAGE, "param '%s' is bool: expected true or false, got '%s'", name, text);
        }
        return ATTNC_OK;
    }
    if (t == T_INT) {
        int64_t v;
        int range = 0;
        if (!parse_int_text(text, &v, &range))
            return set_error(err, ATTNC_ERR_USAGE, "param '%s' is int: '%s' is not an integer", name, text);
        if (range) return set_error(err, ATTNC_ERR_USAGE, "param '%s': '%s' is out of the int64 range", name, text);
        out->i = v;
        return ATTNC_OK;
    }
    return parse_float_text(name, text, &out->f, err);
}

void bind_release(BoundCall *bc) {
    free(bc->params);
    free(bc->tensors);
    bc->params = NULL;
    bc->tensors = NULL;
}

/* Largest element count we accept for one array: keeps every index product in int64. */
static const int64_t MAX_ELEMS = (int64_t)1 << 40;

static int mul_ok(int64_t *acc, int64_t x) {
    if (x != 0 && *acc > MAX_ELEMS / x) return 0;
    *acc *= x;
    return 1;
}

static attnc_status check_sizes(const attnc_args *args, attnc_error *err) {
    const attnc_sizes *s = &args->sizes;
    const struct {
        const char *name;
        int64_t v, min;
    } dims[] = {{"B", s->B, 0}, {"H", s->H, 0}, {"Hkv", s->Hkv, 0}, {"Lq", s->Lq, 0},
                {"Lk", s->Lk, 0}, {"D", s->D, 0}, {"Dv", s->Dv, 0}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        if (dims[i].v < dims[i].min)
            return set_error(err, ATTNC_ERR_RUNTIME, "size %s = %lld is invalid (must be at least %lld)", dims[i].name,
                             (long long)dims[i].v, (long long)dims[i].min);
        if (dims[i].v > MAX_ELEMS)
            return set_error(err, ATTNC_ERR_RUNTIME, "size %s = %lld is too large", dims[i].name, (long long)dims[i].v);
    }
    /* zero sizes are empty arrays (docs/language-choices.md); no KV heads only with no query heads */
    if (s->Hkv == 0 && s->H != 0)
        return set_error(err, ATTNC_ERR_RUNTIME, "Hkv = 0 but H = %lld: query heads need a KV head", (long long)s->H);
    if (s->Hkv != 0 && s->H % s->Hkv != 0)
        return set_error(err, ATTNC_ERR_RUNTIME, "H = %lld is not a multiple of Hkv = %lld (grouped-query attention)",
                         (long long)s->H, (long long)s->Hkv);
    int64_t nq = s->B, nk = s->B, nv = s->B, no = s->B;
    if (!mul_ok(&nq, s->H) || !mul_ok(&nq, s->Lq) || !mul_ok(&nq, s->D) || !mul_ok(&nk, s->Hkv) ||
        !mul_ok(&nk, s->Lk) || !mul_ok(&nk, s->D) || !mul_ok(&nv, s->Hkv) || !mul_ok(&nv, s->Lk) ||
        !mul_ok(&nv, s->Dv) || !mul_ok(&no, s->H) || !mul_ok(&no, s->Lq) || !mul_ok(&no, s->Dv))
        return set_error(err, ATTNC_ERR_RUNTIME, "sizes are too large: an array would exceed 2^40 elements");
    if ((nq && !args->q) || (nk && !args->k) || (nv && !args->v) || (no && !args->o))
        return set_error(err, ATTNC_ERR_RUNTIME, "a NULL pointer was given for %s", (nq && !args->q) ? "Q"
                                                                                   : (nk && !args->k) ? "K"
                                                                                   : (nv && !args->v) ? "V"
                                                                                                      : "O");
    return ATTNC_OK;
}

/* ---- layouts: element types and strides ---------------------------------- */

static const char *const tensor_names[BT_COUNT] = {"Q", "K", "V", "O", "LSE"};

/* The dims of tensor t ([B, H, L, D]; LSE [B, H, Lq] with a last dim of 1). */
void bind_tensor_dims(const attnc_sizes *s, BindTensor t, int64_t dims[4]) {
    int64_t heads = t == BT_K || t == BT_V ? s->Hkv : s->H, len = t == BT_K || t == BT_V ? s->Lk : s->Lq;
    int64_t row = t == BT_Q || t == BT_K ? s->D : t == BT_LSE ? 1 : s->Dv;
    dims[0] = s->B, dims[1] = heads, dims[2] = len, dims[3] = row;
}

static int elem_bytes(attnc_elem e) { return e == ATTNC_ELEM_F32 ? 4 : 2; }

/* Element offsets span [0, *last] (nothing when the tensor is empty: *last = -1). */
static int last_offset(const int64_t dims[4], const int64_t stride[4], int64_t *last) {
    *last = 0;
    for (int i = 0; i < 4; i++)
        if (dims[i] == 0) {
            *last = -1;
            return 1;
        }
    for (int i = 0; i < 4; i++) {
        int64_t step = dims[i] - 1; /* < 2^40; strides are at most 2^60 */
        if (step && stride[i] > (((int64_t)1 << 62) - *last) / step) return 0;
        *last += step * stride[i];
    }
    return 1;
}

/* Whether no two elements of the tensor share an offset: along the dims of
 * size > 1 in increasing stride order, each stride steps over the whole
 * extent of the dims before it (the usual sufficient test). */
static int no_self_overlap(const int64_t dims[4], const int64_t stride[4]) {
    int order[4], n = 0;
    for (int i = 0; i < 4; i++)
        if (dims[i] > 1) order[n++] = i;
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && stride[order[b]] < stride[order[b - 1]]; b--) {
            int t = order[b];
            order[b] = order[b - 1], order[b - 1] = t;
        }
    int64_t span = 1; /* elements covered so far */
    for (int k = 0; k < n; k++) {
        int64_t st = stride[order[k]];
        if (st < span) return 0;
        span = st * (dims[order[k]] - 1) + span; /* bounded by last_offset's check */
    }
    return 1;
}

attnc_status bind_one_layout(const char *N, const int64_t dims[4], int lse_like, int output, const attnc_layout *l,
                             const void *ptr, BoundLayout *out, uintptr_t *first, uintptr_t *end, attnc_error *err) {
    if (l->elem != ATTNC_ELEM_F32 && l->elem != ATTNC_ELEM_F16 && l->elem != ATTNC_ELEM_BF16)
        return set_error(err, ATTNC_ERR_USAGE, "%s's element type %d is not f32, f16 or bf16", N, (int)l->elem);
    if (lse_like && l->elem != ATTNC_ELEM_F32)
        return set_error(err, ATTNC_ERR_USAGE, "%s is float32 only (its layout asks for %s)", N,
                         l->elem == ATTNC_ELEM_F16 ? "f16" : "bf16");
    out->elem = l->elem;
    int given = l->stride[0] || l->stride[1] || l->stride[2] || (!lse_like && l->stride[3]);
    if (!given) { /* contiguous */
        out->stride[3] = 1;
        for (int i = 2; i >= 0; i--) out->stride[i] = out->stride[i + 1] * dims[i + 1];
    } else {
        for (int i = 0; i < (lse_like ? 3 : 4); i++) {
            if (l->stride[i] < 0)
                return set_error(err, ATTNC_ERR_USAGE, "%s's stride %d is negative (%lld)", N, i, (long long)l->stride[i]);
            if (l->stride[i] > ((int64_t)1 << 60))
                return set_error(err, ATTNC_ERR_USAGE, "%s's stride %d is too large (%lld)", N, i, (long long)l->stride[i]);
            out->stride[i] = l->stride[i];
        }
        if (lse_like) out->stride[3] = 1;
        else if (out->stride[3] != 1 && dims[3] > 1)
            return set_error(err, ATTNC_ERR_USAGE, "%s's rows must be contiguous: stride 3 is %lld, not 1", N,
                             (long long)out->stride[3]);
    }
    int64_t last;
    if (!last_offset(dims, out->stride, &last))
        return set_error(err, ATTNC_ERR_USAGE, "%s's strides reach beyond 2^62 elements", N);
    if (l->extent < 0) return set_error(err, ATTNC_ERR_USAGE, "%s's extent is negative (%lld)", N, (long long)l->extent);
    if (l->extent > 0 && last >= l->extent)
        return set_error(err, ATTNC_ERR_USAGE, "%s's strides reach element %lld, beyond its extent of %lld elements", N,
                         (long long)last, (long long)l->extent);
    if (output && last >= 0 && !no_self_overlap(dims, out->stride))
        return set_error(err, ATTNC_ERR_USAGE, "%s's strides make two of its elements share memory", N);
    *first = (uintptr_t)ptr;
    *end = last < 0 || !ptr ? *first : *first + (uintptr_t)(last + 1) * (uintptr_t)elem_bytes(l->elem);
    return ATTNC_OK;
}

/* Check one layout and resolve it into bc->layout[t]; its bytes are [*first, *end). */
static attnc_status bind_layout(const attnc_args *args, BindTensor t, const attnc_layout *l, const void *ptr,
                                BoundCall *bc, uintptr_t *first, uintptr_t *end, attnc_error *err) {
    int64_t dims[4];
    bind_tensor_dims(&args->sizes, t, dims);
    return bind_one_layout(tensor_names[t], dims, t == BT_LSE, t == BT_O || t == BT_LSE, l, ptr, &bc->layout[t],
                           first, end, err);
}

/* Every layout (NULL: all zero), and (for a call that runs) the outputs
 * clear of the inputs. */
static attnc_status bind_layouts(const attnc_args *args, const attnc_layouts *layouts, int runs, BoundCall *bc,
                                 attnc_error *err) {
    static const attnc_layouts zero;
    if (!layouts) layouts = &zero;
    const attnc_layout *lay[BT_COUNT] = {&layouts->q, &layouts->k, &layouts->v, &layouts->o, &layouts->lse};
    const void *ptr[BT_COUNT] = {args->q, args->k, args->v, args->o, args->lse};
    uintptr_t first[BT_COUNT], end[BT_COUNT];
    for (int t = 0; t < BT_COUNT; t++) {
        attnc_status st = bind_layout(args, (BindTensor)t, lay[t], ptr[t], bc, &first[t], &end[t], err);
        if (st) return st;
    }
    for (int out = BT_O; runs && out <= BT_LSE; out++)
        for (int other = 0; other < BT_COUNT; other++)
            if (other != out && first[out] < end[out] && first[other] < end[other] && first[out] < end[other] &&
                first[other] < end[out])
                return set_error(err, ATTNC_ERR_USAGE, "%s overlaps %s in memory (outputs must not alias)",
                                 tensor_names[out], tensor_names[other]);
    return ATTNC_OK;
}

attnc_status bind_check_layouts(const attnc_args *args, const attnc_layouts *layouts, int runs, attnc_error *err) {
    if (!args) return set_error(err, ATTNC_ERR_USAGE, "no arguments given (NULL)");
    BoundCall bc;
    memset(&bc, 0, sizeof bc);
    attnc_status st = check_sizes(args, err);
    return st ? st : bind_layouts(args, layouts, runs, &bc, err);
}

static const attnc_param *find_param(const attnc_args *args, const char *name) {
    for (int i = 0; i < args->n_params; i++)
        if (args->params[i].name && strcmp(args->params[i].name, name) == 0) return &args->params[i];
    return NULL;
}

static attnc_status convert_param(const Decl *d, const attnc_param *p, Const *out, attnc_error *err) {
    if (p->type != ATTNC_INT && p->type != ATTNC_FLOAT && p->type != ATTNC_BOOL)
        return set_error(err, ATTNC_ERR_RUNTIME, "param '%s' has an invalid type %d (ATTNC_INT, ATTNC_FLOAT or ATTNC_BOOL)",
                         d->name, (int)p->type);
    if (d->type == T_BOOL) {
        if (p->type != ATTNC_BOOL) return set_error(err, ATTNC_ERR_RUNTIME, "param '%s' is bool; a number was given", d->name);
        out->b = p->b != 0;
    } else if (p->type == ATTNC_BOOL) {
        return set_error(err, ATTNC_ERR_RUNTIME, "param '%s' is %s; a bool was given", d->name, type_name(d->type));
    } else if (d->type == T_FLOAT) {
        out->f = p->type == ATTNC_INT ? (double)p->i : p->f;
    } else if (p->type == ATTNC_INT) {
        out->i = p->i;
    } else {
        if (!(p->f == floor(p->f) && fabs(p->f) < 9.2e18))
            return set_error(err, ATTNC_ERR_RUNTIME, "param '%s' is int; %g is not an integer", d->name, p->f);
        out->i = (int64_t)p->f;
    }
    return ATTNC_OK;
}

/* Evaluate an expression over sizes and params only (defaults, dims, scale). */
static attnc_status eval_call_level(const BoundCall *bc, const TExpr *e, Const *out, attnc_error *err) {
    InterpEnv *env = calloc(1, sizeof *env);
    char msg[400] = "";
    if (!env) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    env->bc = bc;
    env->msg = msg;
    env->msgsize = sizeof msg;
    env->call_level = 1;
    env->sums_left = INT32_MAX;
    *out = interp_eval(env, e);
    int failed = env->failed;
    free(env);
    return failed ? set_error(err, ATTNC_ERR_RUNTIME, "%s", msg) : ATTNC_OK;
}

/* The length of a row of dot (spec 9.2) in this call. */
static int64_t row_length(const BoundCall *bc, const TExpr *r) {
    if (r->kind != X_ROW) return bc->sz.D;
    return bc->tensors[decl_canon(r->decl)->index]->shape[r->nargs];
}

/* Every dot in e pairs rows of equal lengths; else an error of the call naming it
 * (checked once per call, whether or not the masks keep any element). */
static attnc_status check_dots(const BoundCall *bc, const TExpr *e, attnc_error *err) {
    if (!e || !(e->deps & DEP_ROW)) return ATTNC_OK;
    if (e->kind == X_LET) return check_dots(bc, e->decl->init, err);
    if (e->kind == X_DOT) {
        int64_t n0 = row_length(bc, e->args[0]), n1 = row_length(bc, e->args[1]);
        if (n0 != n1)
            return set_error(err, ATTNC_ERR_RUNTIME, "%s:%d:%d: dot of rows of different lengths (%lld and %lld)",
                             e->span.src ? e->span.src->name : "<spec>", e->span.first_line, e->span.first_col,
                             (long long)n0, (long long)n1);
        return ATTNC_OK;
    }
    attnc_status st = ATTNC_OK;
    for (int i = 0; i < e->nargs && !st; i++) st = check_dots(bc, e->args[i], err);
    return st;
}

static attnc_status bind_dots(const Attention *a, const BoundCall *bc, attnc_error *err) {
    attnc_status st = check_dots(bc, a->weight, err);
    for (int i = 0; i < a->nbiases && !st; i++) st = check_dots(bc, a->biases[i], err);
    for (int i = 0; i < a->nscores && !st; i++) st = check_dots(bc, a->scores[i], err);
    return st;
}

/* rotary's base, dims and interleaved for this call (spec 9.3): dims odd,
 * negative or over D is an error of the call. */
static attnc_status bind_rotary(const Rotary *r, BoundCall *bc, attnc_error *err) {
    Const v;
    attnc_status st = ATTNC_OK;
    bc->rope_base = 10000.0;
    bc->rope_dims = bc->sz.D;
    bc->rope_interleaved = 0;
    if (r->base && !(st = eval_call_level(bc, r->base, &v, err))) bc->rope_base = v.f;
    if (!st && r->dims && !(st = eval_call_level(bc, r->dims, &v, err))) bc->rope_dims = v.i;
    if (!st && r->interleaved && !(st = eval_call_level(bc, r->interleaved, &v, err))) bc->rope_interleaved = v.b;
    if (!st && (bc->rope_dims < 0 || bc->rope_dims % 2 != 0 || bc->rope_dims > bc->sz.D))
        st = set_error(err, ATTNC_ERR_RUNTIME, "rotary's dims is %lld; it must be even and between 0 and D = %lld",
                       (long long)bc->rope_dims, (long long)bc->sz.D);
    return st;
}

static attnc_status bind_params(const Attention *a, const FixedParams *fixed, const attnc_args *args, BoundCall *bc,
                                attnc_error *err) {
    for (int i = 0; i < args->n_params; i++) {
        const char *name = args->params[i].name;
        if (!name) return set_error(err, ATTNC_ERR_RUNTIME, "param %d has no name", i);
        for (int j = 0; j < i; j++)
            if (args->params[j].name && strcmp(args->params[j].name, name) == 0)
                return set_error(err, ATTNC_ERR_RUNTIME, "param '%s' is given twice", name);
        int known = 0;
        for (int j = 0; j < a->nparams; j++)
            if (strcmp(a->params[j]->name, name) == 0) {
                if (fixed && fixed->is_fixed[j])
                    return set_error(err, ATTNC_ERR_RUNTIME, "param '%s' was fixed when the kernel was compiled", name);
                known = 1;
            }
        if (!known) return set_error(err, ATTNC_ERR_RUNTIME, "attention '%s' has no param '%s'", a->name, name);
    }
    /* in declaration order: a default may read earlier params */
    for (int j = 0; j < a->nparams; j++) {
        const Decl *d = a->params[j];
        const attnc_param *p = find_param(args, d->name);
        attnc_status st = ATTNC_OK;
        if (fixed && fixed->is_fixed[j])
            bc->params[j] = fixed->value[j];
        else if (p)
            st = convert_param(d, p, &bc->params[j], err);
        else if (d->init)
            st = eval_call_level(bc, d->init, &bc->params[j], err);
        else
            st = set_error(err, ATTNC_ERR_RUNTIME, "missing param '%s' (%s, no default)", d->name, type_name(d->type));
        if (st) return st;
    }
    return ATTNC_OK;
}

static const attnc_tensor *find_tensor(const attnc_args *args, const char *name) {
    for (int i = 0; i < args->n_tensors; i++)
        if (args->tensors[i].name && strcmp(args->tensors[i].name, name) == 0) return &args->tensors[i];
    return NULL;
}

static void shape_text(char *buf, size_t n, const int64_t *shape, int rank) {
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

attnc_status bind_tensor_shape(const BoundCall *bc, const Decl *d, int64_t *shape, attnc_error *err) {
    int64_t count = 1;
    for (int i = 0; i < d->ndims; i++) {
        Const v;
        attnc_status st = eval_call_level(bc, d->dims[i], &v, err);
        if (st) return st;
        if (v.i < 0)
            return set_error(err, ATTNC_ERR_RUNTIME, "dimension %d of tensor '%s' evaluates to %lld (negative)", i,
                             d->name, (long long)v.i);
        shape[i] = v.i;
        if (!mul_ok(&count, v.i))
            return set_error(err, ATTNC_ERR_RUNTIME, "tensor '%s' would exceed 2^40 elements", d->name);
    }
    return ATTNC_OK;
}

static attnc_status bind_tensor(const BoundCall *bc, const Decl *d, const attnc_tensor *t, attnc_error *err) {
    attnc_dtype want = d->type == T_INT ? ATTNC_I32 : ATTNC_F32;
    if (t->dtype != want)
        return set_error(err, ATTNC_ERR_RUNTIME, "tensor '%s' must be %s, got %s", d->name,
                         want == ATTNC_I32 ? "int32" : "float32", t->dtype == ATTNC_I32 ? "int32" : "float32");
    int64_t need[ATTNC_MAX_RANK];
    attnc_status st = bind_tensor_shape(bc, d, need, err);
    if (st) return st;
    int same = t->rank == d->ndims;
    for (int i = 0; same && i < d->ndims; i++) same = t->shape[i] == need[i];
    if (!same) {
        char got[160], exp[160];
        shape_text(got, sizeof got, t->shape, t->rank < 0 || t->rank > ATTNC_MAX_RANK ? 0 : t->rank);
        shape_text(exp, sizeof exp, need, d->ndims);
        return set_error(err, ATTNC_ERR_RUNTIME, "tensor '%s' has shape %s but the spec needs %s", d->name, got, exp);
    }
    int64_t count = 1;
    for (int i = 0; i < d->ndims; i++) count *= need[i]; /* bounded by bind_tensor_shape */
    if (count > 0 && !t->data) return set_error(err, ATTNC_ERR_RUNTIME, "tensor '%s' has no data (NULL)", d->name);
    return ATTNC_OK;
}

static attnc_status bind_tensors(const Attention *a, const attnc_args *args, BoundCall *bc, attnc_error *err) {
    for (int i = 0; i < args->n_tensors; i++) {
        const char *name = args->tensors[i].name;
        if (!name) return set_error(err, ATTNC_ERR_RUNTIME, "tensor %d has no name", i);
        int known = 0;
        for (int j = 0; j < a->ntensors; j++) known |= strcmp(a->tensors[j]->name, name) == 0;
        if (!known) return set_error(err, ATTNC_ERR_RUNTIME, "attention '%s' has no tensor '%s'", a->name, name);
        for (int j = 0; j < i; j++)
            if (args->tensors[j].name && strcmp(args->tensors[j].name, name) == 0)
                return set_error(err, ATTNC_ERR_RUNTIME, "tensor '%s' is given twice", name);
    }
    for (int j = 0; j < a->ntensors; j++) {
        const attnc_tensor *t = find_tensor(args, a->tensors[j]->name);
        if (!t) return set_error(err, ATTNC_ERR_RUNTIME, "missing tensor '%s'", a->tensors[j]->name);
        attnc_status st = bind_tensor(bc, a->tensors[j], t, err);
        if (st) return st;
        bc->tensors[j] = t;
    }
    return ATTNC_OK;
}

attnc_status bind_call(const Attention *a, const FixedParams *fixed, const attnc_args *args, BoundCall *bc,
                       attnc_error *err) {
    return bind_call_layout(a, fixed, args, NULL, 0, bc, err);
}

attnc_status bind_call_layout(const Attention *a, const FixedParams *fixed, const attnc_args *args,
                              const attnc_layouts *layouts, int runs, BoundCall *bc, attnc_error *err) {
    memset(bc, 0, sizeof *bc);
    if (!args) return set_error(err, ATTNC_ERR_USAGE, "no arguments given (NULL)");
    attnc_status st = check_sizes(args, err);
    if (!st) st = bind_layouts(args, layouts, runs, bc, err);
    if (st) return st;
    if ((args->n_params && !args->params) || args->n_params < 0)
        return set_error(err, ATTNC_ERR_USAGE, "n_params = %d but params is NULL", args->n_params);
    if ((args->n_tensors && !args->tensors) || args->n_tensors < 0)
        return set_error(err, ATTNC_ERR_USAGE, "n_tensors = %d but tensors is NULL", args->n_tensors);
    bc->attn = a;
    bc->sz = args->sizes;
    bc->params = calloc((size_t)a->nparams + 1, sizeof *bc->params);
    bc->tensors = calloc((size_t)a->ntensors + 1, sizeof *bc->tensors);
    if (!bc->params || !bc->tensors) {
        bind_release(bc);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    }
    st = bind_params(a, fixed, args, bc, err);
    if (!st) st = bind_tensors(a, args, bc, err);
    if (!st) {
        if (a->scale) {
            Const v;
            st = eval_call_level(bc, a->scale, &v, err);
            bc->scale = v.f;
        } else {
            bc->scale = 1.0 / sqrt((double)args->sizes.D);
        }
        /* with D = 0 the dot product is an empty sum: scale * 0 must mean 0 */
        if (!st && args->sizes.D == 0 && !isfinite(bc->scale))
            st = set_error(err, ATTNC_ERR_RUNTIME,
                           "D = 0 needs a finite scale, and the scale is %g (the default is 1/sqrt(D)): "
                           "give the attention a `scale` clause", bc->scale);
    }
    if (!st && a->rotary) st = bind_rotary(a->rotary, bc, err);
    if (!st) st = bind_dots(a, bc, err);
    if (st) bind_release(bc);
    return st;
}
