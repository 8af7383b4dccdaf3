/* specgen.h — random, well-typed `.attn` files for the differential fuzzer
 * (tests/fuzz/difffuzz.c).  A spec is kept as items holding expression trees
 * (nodes in one array, children by index) so that the fuzzer's minimiser can
 * delete attentions and items and replace subexpressions, then render the text again; the
 * whole GenSpec is a plain struct, copied by assignment.
 *
 * What the generator promises: the text parses and checks (anything else is
 * a generator bug); int values stay small; float values stay bounded (exp
 * and pow see clamped arguments, divisions have denominators >= 0.25) so
 * that float32 backends and the float64 interpreter differ only by
 * rounding; tensor indices are in range by construction or guarded, except
 * for a few deliberate ones.  Runtime errors (an index out of range, an int
 * division by zero, a negative dimension) are left to the interpreter,
 * which is the oracle of which calls fail. */
#ifndef ATTNC_SPECGEN_H
#define ATTNC_SPECGEN_H

#include <stddef.h>
#include <stdint.h>

enum { SG_MAX_NODES = 4000, SG_MAX_ITEMS = 64, SG_MAX_ATTS = 4, SG_MAX_DOMAINS = 24, SG_TEXT = 160 };

typedef enum SgType { SG_INT = 0, SG_FLOAT = 1, SG_BOOL = 2 } SgType;

/* An expression node: a template such as "clamp(%0, %1, %2)" over its
 * children (which may repeat a child, as guards do), or a leaf's text. */
typedef struct SgNode {
    char ty;         /* SgType */
    char prec;       /* binding strength of the rendered form (see specgen.c) */
    char nk;         /* children */
    char op;         /* binary/unary operator or 0 for templates and leaves */
    int kid[3];
    const char *tmpl; /* NULL for a leaf */
    char text[40];    /* leaf text */
} SgNode;

/* One item of an attention: `head` then the rendered expression (if expr >= 0), then ";". */
typedef struct SgItem {
    char head[SG_TEXT];
    int expr; /* node index or -1 */
    int deleted;
} SgItem;

typedef struct SgAtt {
    char name[32];
    SgItem items[SG_MAX_ITEMS];
    int nitems;
    int deleted; /* a helper the minimiser removed */
} SgAtt;

/* Values the driver may give a param (or the int range of a tensor's elements). */
typedef struct SgDomain {
    char name[32];
    SgType ty;
    int is_tensor;    /* an int tensor's element range [lo, hi) */
    int64_t lo, hi;   /* ints: [lo, hi]; tensors: [lo, hi) */
    int zero_percent; /* ints: how often the value is 0 (a zero-trip sum, a division by zero) */
} SgDomain;

typedef struct GenSpec {
    SgNode nodes[SG_MAX_NODES];
    int nnodes;
    SgAtt atts[SG_MAX_ATTS]; /* helpers first; the last one is compiled */
    int natts;
    SgDomain domains[SG_MAX_DOMAINS];
    int ndomains;
    int crlf;             /* render with CR LF line ends */
    uint64_t style_seed;  /* comments and spacing; fixed so re-rendering is stable */
    int square;           /* uses `document`: prefers Lq == Lk */
    int has_scale;        /* the compiled attention has a `scale` (D = 0 is then a valid call) */
    int chain_terms;      /* terms of its long flat chain, 0 if none (the driver makes such calls smaller) */
    int grid_w;           /* a mask in grid coordinates of this width (docs/multidim-tiles.md), 0 if none */
} GenSpec;


/* Binding strength (SgNode.prec), as C: 1 ?:, 2 ||, 3 &&, 4 == !=, 5 < <= > >=, 6 + -, 7 * / %, 8 unary, 9 primary. */
enum { P_TERN = 1, P_OR, P_AND, P_EQ, P_REL, P_ADD, P_MUL, P_UNARY, P_PRIMARY };

/* The generator's random numbers (splitmix64): the same sequence for a seed everywhere. */
static inline uint64_t sg_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Fill *g from seed: the same seed gives the same spec on every machine. */
void specgen_generate(GenSpec *g, uint64_t seed);
/* The text of *g, malloc'd and NUL-terminated; *len its length. */
char *specgen_render(const GenSpec *g, size_t *len);
/* The attention to compile. */
const char *specgen_variant(const GenSpec *g);
/* The domain of param or tensor `name`, or NULL. */
const SgDomain *specgen_domain(const GenSpec *g, const char *name);

/* Minimisation steps, numbered 0 .. specgen_step_count()-1: delete a helper attention, an item,
 * or replace a node by a constant of its type or by a child of its type.
 * Returns 0 when step `i` does not apply to *g (nothing changed). */
int specgen_step_count(const GenSpec *g);
int specgen_apply_step(GenSpec *g, int i);

#endif
