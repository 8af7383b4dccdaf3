/* pass_specialize.c — params bound at compile time (-D name=value) become
 * constants, so folding can use them.
 * Requires: an IrFunc and the fixed values by param index.
 * Produces: the same roots with those IR_PARAM nodes replaced. */
#include "ir_passes.h"

typedef struct Fixed {
    const int *is_fixed;
    const Const *value;
} Fixed;

static IrRef to_const(IrModule *m, IrRef old, const IrNode *n, const IrRef *args, void *ctx) {
    (void)old;
    (void)args;
    const Fixed *fx = ctx;
    if (n->op != IR_PARAM || !fx->is_fixed[n->aux]) return IR_NONE;
    return ir_node(m, IR_CONST, n->type, 0, fx->value[n->aux], 0, NULL);
}

int pass_specialize(IrModule *m, IrFunc *f, const int *is_fixed, const Const *value) {
    if (!is_fixed) return 0;
    Fixed fx = {is_fixed, value};
    return ir_rewrite(m, f, to_const, &fx);
}
