/* bind_grad.c — what a backward call binds beside the forward's BoundCall:
 * the layouts of dO, dLSE, dQ, dK and dV, and the buffers of the tensor
 * gradients, all checked before any backend touches memory (bind_grad.h).
 * Outputs may overlap nothing: no input (Q, K, V, O, LSE, dO, dLSE, the
 * captured tensors) and no other output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"
#include "bind_grad.h"

static const char *const grad_names[GT_COUNT] = {"dO", "dLSE", "dQ", "dK", "dV"};

/* Bytes [first, end) of a buffer, named for messages. */
typedef struct Bytes {
    const char *name;
    uintptr_t first, end;
    int output;
    int tensor_grad; /* the gradient of tensor `name`, not the tensor */
} Bytes;

/* How a message names b. */
static const char *bytes_name(const Bytes *b, char *buf, size_t n) {
    if (!b->tensor_grad) return b->name;
    snprintf(buf, n, "the gradient of '%s'", b->name);
    return buf;
}

static int overlaps(const Bytes *a, const Bytes *b) {
    return a->first < a->end && b->first < b->end && a->first < b->end && b->first < a->end;
}

/* The tensor whose gradient d names, or -1. */
static int find_float_tensor(const Attention *a, const char *name) {
    for (int i = 0; i < a->ntensors; i++)
        if (!strcmp(a->tensors[i]->name, name)) return i;
    return -1;
}

static attnc_status bind_dtensors(const BoundCall *bc, const attnc_grad *g, BoundGrad *bg, Bytes *spans, int *n,
                                  attnc_error *err) {
    const Attention *a = bc->attn;
    if (g->n_dtensors < 0 || (g->n_dtensors && !g->dtensors))
        return set_error(err, ATTNC_ERR_USAGE, "n_dtensors = %d but dtensors is NULL", g->n_dtensors);
    for (int j = 0; j < g->n_dtensors; j++) {
        const attnc_tensor_grad *d = &g->dtensors[j];
        if (!d->name) return set_error(err, ATTNC_ERR_USAGE, "tensor gradient %d has no name (NULL)", j);
        int i = find_float_tensor(a, d->name);
        if (i < 0) return set_error(err, ATTNC_ERR_USAGE, "'%s' is not a tensor of attention %s", d->name, a->name);
        const Decl *decl = a->tensors[i];
        if (decl->type != T_FLOAT)
            return set_error(err, ATTNC_ERR_USAGE, "tensor '%s' holds ints: it has no gradient", d->name);
        if (bg->dtensor[i]) return set_error(err, ATTNC_ERR_USAGE, "the gradient of '%s' is asked for twice", d->name);
        int64_t shape[ATTNC_MAX_RANK], count = 1;
        attnc_status st = bind_tensor_shape(bc, decl, shape, err);
        if (st) return st;
        for (int r = 0; r < decl->ndims; r++) count *= shape[r]; /* bounded by bind_tensor_shape */
        if (count && !d->data) return set_error(err, ATTNC_ERR_USAGE, "the gradient of '%s' has no buffer (NULL)", d->name);
        bg->dtensor[i] = d->data;
        uintptr_t first = (uintptr_t)d->data;
        spans[(*n)++] = (Bytes){d->name, first, d->data ? first + (uintptr_t)count * sizeof(float) : first, 1, 1};
    }
    return ATTNC_OK;
}

/* Every captured tensor the call reads, as input spans. */
static void tensor_spans(const BoundCall *bc, Bytes *spans, int *n) {
    for (int i = 0; i < bc->attn->ntensors; i++) {
        const attnc_tensor *t = bc->tensors[i];
        if (!t || !t->data) continue;
        int64_t count = 1;
        for (int r = 0; r < t->rank; r++) count *= t->shape[r];
        size_t size = t->dtype == ATTNC_I32 ? sizeof(int32_t) : sizeof(float);
        uintptr_t first = (uintptr_t)t->data;
        spans[(*n)++] = (Bytes){t->name, first, first + (uintptr_t)count * size, 0, 0};
    }
}

/* The forward's tensors (Q, K, V, O, LSE) as input spans, with bc's layouts. */
static void call_spans(const BoundCall *bc, const attnc_args *args, Bytes *spans, int *n) {
    static const char *const names[BT_COUNT] = {"Q", "K", "V", "O", "LSE"};
    const void *ptr[BT_COUNT] = {args->q, args->k, args->v, args->o, args->lse};
    for (int t = 0; t < BT_COUNT; t++) {
        int64_t dims[4], last = 0;
        bind_tensor_dims(&bc->sz, (BindTensor)t, dims);
        int empty = 0;
        for (int i = 0; i < 4; i++) {
            if (dims[i] == 0) empty = 1;
            last += (dims[i] - 1) * bc->layout[t].stride[i];
        }
        uintptr_t first = (uintptr_t)ptr[t];
        size_t size = bc->layout[t].elem == ATTNC_ELEM_F32 ? 4 : 2;
        spans[(*n)++] = (Bytes){names[t], first, empty || !ptr[t] ? first : first + (uintptr_t)(last + 1) * size, 0, 0};
    }
}

static attnc_status check_overlaps(const Bytes *spans, int n, attnc_error *err) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j && spans[i].output && (j > i || !spans[j].output) && overlaps(&spans[i], &spans[j])) {
                char a[160], b[160];
                return set_error(err, ATTNC_ERR_USAGE, "%s overlaps %s in memory (gradients must not alias anything)",
                                 bytes_name(&spans[i], a, sizeof a), bytes_name(&spans[j], b, sizeof b));
            }
    return ATTNC_OK;
}

attnc_status bind_grad(const BoundCall *bc, const attnc_args *args, const attnc_grad *g, BoundGrad *bg,
                       attnc_error *err) {
    memset(bg, 0, sizeof *bg);
    if (!g) return set_error(err, ATTNC_ERR_USAGE, "no gradient arguments given (NULL)");
    const attnc_sizes *s = &bc->sz;
    if (s->B * s->H * s->Lq != 0 && (!args->o || !args->lse))
        return set_error(err, ATTNC_ERR_USAGE, "the backward pass reads the forward's O and LSE: give both (not NULL)");
    bg->dtensor = calloc((size_t)bc->attn->ntensors + 1, sizeof *bg->dtensor);
    Bytes *spans = calloc((size_t)bc->attn->ntensors + (size_t)(g->n_dtensors > 0 ? g->n_dtensors : 0) + GT_COUNT + BT_COUNT + 1,
                         sizeof *spans);
    if (!bg->dtensor || !spans) {
        free(spans);
        bind_grad_release(bg);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    }
    static const BindTensor like[GT_COUNT] = {BT_O, BT_LSE, BT_Q, BT_K, BT_V};
    const attnc_layout *lay[GT_COUNT] = {&g->dout_layout, &g->dlse_layout, &g->dq_layout, &g->dk_layout,
                                         &g->dv_layout};
    const void *ptr[GT_COUNT] = {g->dout, g->dlse, g->dq, g->dk, g->dv};
    int n = 0;
    attnc_status st = ATTNC_OK;
    for (int t = 0; t < GT_COUNT && !st; t++) {
        int64_t dims[4];
        bind_tensor_dims(s, like[t], dims);
        Bytes *sp = &spans[n++];
        *sp = (Bytes){grad_names[t], 0, 0, t >= GT_DQ, 0};
        st = bind_one_layout(grad_names[t], dims, t == GT_DLSE, t >= GT_DQ, lay[t], ptr[t], &bg->layout[t],
                             &sp->first, &sp->end, err);
    }
    if (!st) st = bind_dtensors(bc, g, bg, spans, &n, err);
    if (!st) {
        call_spans(bc, args, spans, &n);
        tensor_spans(bc, spans, &n);
        st = check_overlaps(spans, n, err);
    }
    free(spans);
    if (st) {
        bind_grad_release(bg);
        return st;
    }
    bg->dout = g->dout, bg->dlse = g->dlse, bg->dq = g->dq, bg->dk = g->dk, bg->dv = g->dv;
    return ATTNC_OK;
}

void bind_grad_release(BoundGrad *bg) {
    free(bg->dtensor);
    bg->dtensor = NULL;
}
