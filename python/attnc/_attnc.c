/* _attnc.c — the CPython extension behind the `attnc` package: a thin layer
 * over include/attnc.h, written against the header itself (no struct is
 * mirrored in Python, so a change of the C API is a compile error here, not
 * a silent misreading at run time).
 *
 * Arrays cross as plain descriptors the Python side builds from NumPy or
 * PyTorch objects, which it keeps alive for the call:
 *     (address: int, elem: int (attnc_elem), strides: 4 ints in elements)
 * Captured tensors as (name, dtype (attnc_dtype), shape tuple, address).
 * Sizes as a 7-tuple (B, H, Hkv, Lq, Lk, D, Dv).  Every library error raises
 * attnc.Error (attnc.SpecError for a spec with errors, its diagnostics
 * attached) carrying the library's one-line message; kernels run with the
 * GIL released (the library's kernels are thread-safe). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"

static PyObject *Error, *SpecError;

/* Raise attnc.Error(message, status) for a failed call. */
static PyObject *raise_status(attnc_status st, const attnc_error *err) {
    PyObject *e = PyObject_CallFunction(Error, "si", err->message[0] ? err->message : "attnc failed", (int)st);
    if (e) {
        PyErr_SetObject(Error, e);
        Py_DECREF(e);
    }
    return NULL;
}

/* ---- descriptors ---------------------------------------------------------- */

/* An array descriptor (address, elem, (s0, s1, s2, s3)) into *ptr and *layout;
 * None gives a NULL pointer and a zero layout.  0 with an exception set. */
static int parse_array(PyObject *o, const char *what, void **ptr, attnc_layout *layout) {
    memset(layout, 0, sizeof *layout);
    *ptr = NULL;
    if (o == Py_None) return 1;
    unsigned long long address;
    int elem;
    long long s[4];
    if (!PyArg_ParseTuple(o, "Ki(LLLL)", &address, &elem, &s[0], &s[1], &s[2], &s[3])) {
        PyErr_Format(PyExc_TypeError, "%s: expected (address, elem, (4 strides))", what);
        return 0;
    }
    *ptr = (void *)(uintptr_t)address;
    layout->elem = (attnc_elem)elem;
    for (int i = 0; i < 4; i++) layout->stride[i] = s[i];
    return 1;
}

/* The params of a call: a sequence of (name, value) with value a bool, int
 * or float (its Python type says which).  The names are borrowed from the
 * sequence, which the caller keeps.  0 with an exception set. */
static int parse_params(PyObject *seq, attnc_param **out, int *n) {
    *out = NULL;
    *n = 0;
    PyObject *fast = PySequence_Fast(seq, "params must be a sequence of (name, value)");
    if (!fast) return 0;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(fast);
    attnc_param *p = calloc((size_t)count + 1, sizeof *p);
    if (!p) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return 0;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i), *value;
        const char *name;
        if (!PyArg_ParseTuple(item, "sO", &name, &value)) goto fail;
        p[i].name = name;
        if (PyBool_Check(value)) {
            p[i].type = ATTNC_BOOL;
            p[i].b = value == Py_True;
        } else if (PyLong_Check(value)) {
            p[i].type = ATTNC_INT;
            p[i].i = PyLong_AsLongLong(value);
            if (PyErr_Occurred()) goto fail;
        } else if (PyFloat_Check(value)) {
            p[i].type = ATTNC_FLOAT;
            p[i].f = PyFloat_AsDouble(value);
        } else {
            PyErr_Format(PyExc_TypeError, "param '%s' must be a bool, int or float", name);
            goto fail;
        }
    }
    Py_DECREF(fast);
    *out = p;
    *n = (int)count;
    return 1;
fail:
    Py_DECREF(fast);
    free(p);
    return 0;
}

/* Captured tensors: a sequence of (name, dtype, shape tuple, address). */
static int parse_tensors(PyObject *seq, attnc_tensor **out, int *n) {
    *out = NULL;
    *n = 0;
    PyObject *fast = PySequence_Fast(seq, "tensors must be a sequence of (name, dtype, shape, address)");
    if (!fast) return 0;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(fast);
    attnc_tensor *t = calloc((size_t)count + 1, sizeof *t);
    if (!t) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return 0;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i), *shape;
        const char *name;
        int dtype;
        unsigned long long address;
        if (!PyArg_ParseTuple(item, "siOK", &name, &dtype, &shape, &address)) goto fail;
        PyObject *dims = PySequence_Fast(shape, "a tensor's shape must be a sequence of ints");
        if (!dims) goto fail;
        Py_ssize_t rank = PySequence_Fast_GET_SIZE(dims);
        if (rank > ATTNC_MAX_RANK) {
            Py_DECREF(dims);
            PyErr_Format(PyExc_ValueError, "tensor '%s' has %zd dimensions (at most %d)", name, rank, ATTNC_MAX_RANK);
            goto fail;
        }
        t[i].name = name;
        t[i].dtype = (attnc_dtype)dtype;
        t[i].rank = (int)rank;
        for (Py_ssize_t d = 0; d < rank; d++) t[i].shape[d] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(dims, d));
        Py_DECREF(dims);
        if (PyErr_Occurred()) goto fail;
        t[i].data = (const void *)(uintptr_t)address;
    }
    Py_DECREF(fast);
    *out = t;
    *n = (int)count;
    return 1;
fail:
    Py_DECREF(fast);
    free(t);
    return 0;
}

static int parse_sizes(PyObject *o, attnc_sizes *sz) {
    long long v[7];
    if (!PyArg_ParseTuple(o, "LLLLLLL", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6])) return 0;
    *sz = (attnc_sizes){v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
    return 1;
}

/* A call's arguments: sizes, q, k, v, o, lse, params, tensors. */
typedef struct Call {
    attnc_args args;
    attnc_layouts layouts;
    attnc_param *params;
    attnc_tensor *tensors;
} Call;

static void call_free(Call *c) {
    free(c->params);
    free(c->tensors);
}

static int parse_call(PyObject *sizes, PyObject *q, PyObject *k, PyObject *v, PyObject *o, PyObject *lse,
                      PyObject *params, PyObject *tensors, Call *c) {
    memset(c, 0, sizeof *c);
    void *p;
    if (!parse_sizes(sizes, &c->args.sizes)) return 0;
    if (!parse_array(q, "q", &p, &c->layouts.q)) return 0;
    c->args.q = p;
    if (!parse_array(k, "k", &p, &c->layouts.k)) return 0;
    c->args.k = p;
    if (!parse_array(v, "v", &p, &c->layouts.v)) return 0;
    c->args.v = p;
    if (!parse_array(o, "o", &p, &c->layouts.o)) return 0;
    c->args.o = p;
    if (!parse_array(lse, "lse", &p, &c->layouts.lse)) return 0;
    c->args.lse = p;
    if (!parse_params(params, &c->params, &c->args.n_params)) return 0;
    c->args.params = c->params;
    if (!parse_tensors(tensors, &c->tensors, &c->args.n_tensors)) {
        call_free(c);
        return 0;
    }
    c->args.tensors = c->tensors;
    return 1;
}

/* ---- Kernel --------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD attnc_kernel *k;
} Kernel;

static void kernel_dealloc(Kernel *self) {
    attnc_kernel_free(self->k);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *param_value(const attnc_param *p) {
    if (p->type == ATTNC_INT) return PyLong_FromLongLong(p->i);
    if (p->type == ATTNC_FLOAT) return PyFloat_FromDouble(p->f);
    return PyBool_FromLong(p->b);
}

/* info() -> {variant, backend, softmax, has_backward, params: [(name, type, default or None)], tensors: [(name, dtype, rank)]} */
static PyObject *kernel_info(Kernel *self, PyObject *unused) {
    (void)unused;
    static const char *const types[] = {"int", "float", "bool"};
    PyObject *params = PyList_New(0), *tensors = PyList_New(0);
    for (int i = 0; params && i < attnc_kernel_param_count(self->k); i++) {
        attnc_type type;
        int has_default;
        attnc_param def;
        const char *name = attnc_kernel_param_info(self->k, i, &type, &has_default, &def);
        PyObject *d = has_default ? param_value(&def) : (Py_INCREF(Py_None), Py_None);
        PyObject *item = d ? Py_BuildValue("(ssN)", name, types[type], d) : NULL;
        if (!item || PyList_Append(params, item) < 0) Py_CLEAR(params);
        Py_XDECREF(item);
    }
    for (int i = 0; tensors && i < attnc_kernel_tensor_count(self->k); i++) {
        attnc_dtype dtype;
        int rank;
        const char *name = attnc_kernel_tensor_info(self->k, i, &dtype, &rank);
        PyObject *item = Py_BuildValue("(ssi)", name, dtype == ATTNC_F32 ? "float" : "int", rank);
        if (!item || PyList_Append(tensors, item) < 0) Py_CLEAR(tensors);
        Py_XDECREF(item);
    }
    if (!params || !tensors) {
        Py_XDECREF(params);
        Py_XDECREF(tensors);
        return NULL;
    }
    return Py_BuildValue("{s:s,s:s,s:O,s:O,s:N,s:N}", "variant", attnc_kernel_variant(self->k), "backend",
                         attnc_backend_name(attnc_kernel_backend(self->k)), "softmax",
                         attnc_kernel_is_softmax(self->k) ? Py_True : Py_False, "has_backward",
                         attnc_kernel_has_backward(self->k) ? Py_True : Py_False, "params", params, "tensors", tensors);
}

/* tensor_shape(i, sizes, params) -> tuple */
static PyObject *kernel_tensor_shape(Kernel *self, PyObject *args) {
    int i;
    PyObject *sizes, *params;
    attnc_sizes sz;
    if (!PyArg_ParseTuple(args, "iOO", &i, &sizes, &params) || !parse_sizes(sizes, &sz)) return NULL;
    attnc_param *p;
    int np;
    if (!parse_params(params, &p, &np)) return NULL;
    int64_t shape[ATTNC_MAX_RANK];
    attnc_error err = {0};
    attnc_status st = attnc_kernel_tensor_shape(self->k, i, &sz, p, np, shape, &err);
    free(p);
    if (st) return raise_status(st, &err);
    int rank;
    attnc_kernel_tensor_info(self->k, i, NULL, &rank);
    PyObject *t = PyTuple_New(rank);
    for (int d = 0; t && d < rank; d++) PyTuple_SET_ITEM(t, d, PyLong_FromLongLong(shape[d]));
    return t;
}

/* run(sizes, q, k, v, o, lse, params, tensors[, stream]): O and LSE written
 * in place.  With a stream (an integer, 0 the default stream) Q, K, V, O and
 * LSE are device pointers run by attnc_kernel_run_cuda on that stream. */
static PyObject *kernel_run(Kernel *self, PyObject *args) {
    PyObject *sizes, *q, *k, *v, *o, *lse, *params, *tensors, *stream = Py_None;
    if (!PyArg_ParseTuple(args, "OOOOOOOO|O", &sizes, &q, &k, &v, &o, &lse, &params, &tensors, &stream)) return NULL;
    void *device_stream = NULL;
    if (stream != Py_None) {
        device_stream = PyLong_AsVoidPtr(stream);
        if (PyErr_Occurred()) return NULL;
    }
    Call c;
    if (!parse_call(sizes, q, k, v, o, lse, params, tensors, &c)) return NULL;
    attnc_error err = {0};
    attnc_status st;
    Py_BEGIN_ALLOW_THREADS st = stream == Py_None ? attnc_kernel_run_layout(self->k, &c.args, &c.layouts, &err)
                                                  : attnc_kernel_run_cuda(self->k, &c.args, &c.layouts, device_stream,
                                                                          &err);
    Py_END_ALLOW_THREADS call_free(&c);
    if (st) return raise_status(st, &err);
    Py_RETURN_NONE;
}

/* backward(sizes, q, k, v, o, lse, params, tensors, dout, dlse, dq, dk, dv, dtensors):
 * dtensors a sequence of (name, address) of float32 contiguous outputs */
static PyObject *kernel_backward(Kernel *self, PyObject *args) {
    PyObject *sizes, *q, *k, *v, *o, *lse, *params, *tensors, *dout, *dlse, *dq, *dk, *dv, *dtensors;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOOO", &sizes, &q, &k, &v, &o, &lse, &params, &tensors, &dout, &dlse, &dq,
                          &dk, &dv, &dtensors))
        return NULL;
    Call c;
    if (!parse_call(sizes, q, k, v, o, lse, params, tensors, &c)) return NULL;
    attnc_grad g;
    memset(&g, 0, sizeof g);
    void *p;
    attnc_tensor_grad *dt = NULL;
    int ok = parse_array(dout, "dout", &p, &g.dout_layout);
    g.dout = p;
    if (ok && (ok = parse_array(dlse, "dlse", &p, &g.dlse_layout))) g.dlse = p;
    if (ok && (ok = parse_array(dq, "dq", &p, &g.dq_layout))) g.dq = p;
    if (ok && (ok = parse_array(dk, "dk", &p, &g.dk_layout))) g.dk = p;
    if (ok && (ok = parse_array(dv, "dv", &p, &g.dv_layout))) g.dv = p;
    PyObject *fast = ok ? PySequence_Fast(dtensors, "dtensors must be a sequence of (name, address)") : NULL;
    if (fast) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
        dt = calloc((size_t)n + 1, sizeof *dt);
        if (!dt) PyErr_NoMemory();
        for (Py_ssize_t i = 0; dt && i < n; i++) {
            unsigned long long address;
            if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "sK", &dt[i].name, &address)) {
                free(dt);
                dt = NULL;
                break;
            }
            dt[i].data = (float *)(uintptr_t)address;
        }
        g.dtensors = dt;
        g.n_dtensors = (int)n;
    }
    if (!dt) {
        Py_XDECREF(fast);
        call_free(&c);
        return NULL;
    }
    attnc_error err = {0};
    attnc_status st;
    Py_BEGIN_ALLOW_THREADS st = attnc_kernel_backward(self->k, &c.args, &c.layouts, &g, &err);
    Py_END_ALLOW_THREADS free(dt);
    Py_DECREF(fast);
    call_free(&c);
    if (st) return raise_status(st, &err);
    Py_RETURN_NONE;
}

/* emit(target) -> str */
static PyObject *kernel_emit(Kernel *self, PyObject *args) {
    const char *target;
    if (!PyArg_ParseTuple(args, "s", &target)) return NULL;
    char *text = NULL;
    attnc_error err = {0};
    attnc_status st = attnc_kernel_emit(self->k, target, NULL, 0, &text, &err);
    if (st) return raise_status(st, &err);
    PyObject *s = PyUnicode_FromString(text);
    attnc_free(text);
    return s;
}

/* kept_pairs(sizes, params, tensors) -> int */
static PyObject *kernel_kept_pairs(Kernel *self, PyObject *args) {
    PyObject *sizes, *params, *tensors;
    if (!PyArg_ParseTuple(args, "OOO", &sizes, &params, &tensors)) return NULL;
    Call c;
    if (!parse_call(sizes, Py_None, Py_None, Py_None, Py_None, Py_None, params, tensors, &c)) return NULL;
    int64_t kept = 0;
    attnc_error err = {0};
    attnc_status st;
    Py_BEGIN_ALLOW_THREADS st = attnc_kernel_kept_pairs(self->k, &c.args, &kept, &err);
    Py_END_ALLOW_THREADS call_free(&c);
    if (st) return raise_status(st, &err);
    return PyLong_FromLongLong(kept);
}

/* picture(sizes, params, tensors, b, h, rows, cols) -> (bytes of rows * cols float32 kept fractions, bytes of tile modes) */
static PyObject *kernel_picture(Kernel *self, PyObject *args) {
    PyObject *sizes, *params, *tensors;
    long long b, h;
    int rows, cols;
    if (!PyArg_ParseTuple(args, "OOOLLii", &sizes, &params, &tensors, &b, &h, &rows, &cols)) return NULL;
    if (rows < 1 || cols < 1) return PyErr_Format(PyExc_ValueError, "a picture of %d x %d pixels", rows, cols);
    Call c;
    if (!parse_call(sizes, Py_None, Py_None, Py_None, Py_None, Py_None, params, tensors, &c)) return NULL;
    size_t n = (size_t)rows * (size_t)cols;
    PyObject *kept = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * sizeof(float)));
    PyObject *tiles = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (!kept || !tiles) {
        Py_XDECREF(kept);
        Py_XDECREF(tiles);
        call_free(&c);
        return NULL;
    }
    float *kp = (float *)PyBytes_AS_STRING(kept);
    uint8_t *tp = (uint8_t *)PyBytes_AS_STRING(tiles);
    attnc_error err = {0};
    attnc_status st;
    Py_BEGIN_ALLOW_THREADS st = attnc_kernel_picture(self->k, &c.args, b, h, rows, cols, kp, tp, &err);
    Py_END_ALLOW_THREADS call_free(&c);
    if (st) {
        Py_DECREF(kept);
        Py_DECREF(tiles);
        return raise_status(st, &err);
    }
    return Py_BuildValue("(NN)", kept, tiles);
}

static PyMethodDef kernel_methods[] = {
    {"picture", (PyCFunction)kernel_picture, METH_VARARGS, "the mask and tile map of one (b, h) as pixels"},
    {"info", (PyCFunction)kernel_info, METH_NOARGS, "the kernel's variant, backend, params and tensors"},
    {"tensor_shape", (PyCFunction)kernel_tensor_shape, METH_VARARGS, "the shape tensor i must have"},
    {"run", (PyCFunction)kernel_run, METH_VARARGS, "run the kernel on array descriptors"},
    {"backward", (PyCFunction)kernel_backward, METH_VARARGS, "the backward pass on array descriptors"},
    {"emit", (PyCFunction)kernel_emit, METH_VARARGS, "the kernel as text for a target"},
    {"kept_pairs", (PyCFunction)kernel_kept_pairs, METH_VARARGS, "pairs the masks keep in a call"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject KernelType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "attnc._attnc.Kernel",
    .tp_basicsize = sizeof(Kernel),
    .tp_dealloc = (destructor)kernel_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "a compiled attention (attnc_kernel); made by compile()",
    .tp_methods = kernel_methods,
};

/* ---- module functions --------------------------------------------------- */

/* compile(text, filename, variant or None, backend, defines [(name, text)], tile_q, tile_k, threads, flags) -> Kernel */
static PyObject *py_compile(PyObject *mod, PyObject *args) {
    (void)mod;
    const char *text, *filename, *variant, *backend_name;
    Py_ssize_t len;
    PyObject *defines;
    int tile_q, tile_k, threads, flags;
    if (!PyArg_ParseTuple(args, "s#szsOiiii", &text, &len, &filename, &variant, &backend_name, &defines, &tile_q,
                          &tile_k, &threads, &flags))
        return NULL;
    attnc_options opts = {0};
    if (!attnc_backend_parse(backend_name, &opts.backend))
        return PyErr_Format(PyExc_ValueError, "unknown backend '%s' (llvm, tcc, interp, refplan, cuda-emu, cuda)",
                            backend_name);
    PyObject *fast = PySequence_Fast(defines, "defines must be a sequence of (name, value text)");
    if (!fast) return NULL;
    Py_ssize_t nd = PySequence_Fast_GET_SIZE(fast);
    attnc_define *d = calloc((size_t)nd + 1, sizeof *d);
    if (!d) {
        Py_DECREF(fast);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < nd; i++)
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "ss", &d[i].name, &d[i].value)) {
            free(d);
            Py_DECREF(fast);
            return NULL;
        }
    opts.defines = d, opts.n_defines = (int)nd;
    opts.tile_q = tile_q, opts.tile_k = tile_k, opts.threads = threads, opts.flags = flags;
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_status st = attnc_spec_from_string(filename, text, (size_t)len, &spec, &err);
    PyObject *result = NULL;
    if (st == ATTNC_ERR_SPEC) {
        PyObject *e = PyObject_CallFunction(SpecError, "sis", err.message, (int)st,
                                            spec ? attnc_spec_diagnostics(spec) : "");
        if (e) {
            PyErr_SetObject(SpecError, e);
            Py_DECREF(e);
        }
    } else if (st) {
        raise_status(st, &err);
    } else if ((st = attnc_compile(spec, variant, &opts, &k, &err))) {
        raise_status(st, &err);
    } else {
        Kernel *obj = PyObject_New(Kernel, &KernelType);
        if (obj) obj->k = k, k = NULL;
        result = (PyObject *)obj;
    }
    attnc_kernel_free(k);
    attnc_spec_free(spec);
    free(d);
    Py_DECREF(fast);
    return result;
}

/* backends() -> [(name, available)] */
static PyObject *py_backends(PyObject *mod, PyObject *unused) {
    (void)mod, (void)unused;
    static const char *const names[] = {"llvm", "tcc", "interp", "refplan", "cuda-emu", "cuda"};
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list && i < sizeof names / sizeof names[0]; i++) {
        attnc_backend b;
        if (!attnc_backend_parse(names[i], &b)) continue;
        PyObject *item = Py_BuildValue("(sO)", names[i], attnc_backend_available(b) ? Py_True : Py_False);
        if (!item || PyList_Append(list, item) < 0) Py_CLEAR(list);
        Py_XDECREF(item);
    }
    return list;
}

static PyMethodDef module_methods[] = {
    {"compile", py_compile, METH_VARARGS, "compile one attention of a spec's text"},
    {"backends", py_backends, METH_NOARGS, "the backends and whether this machine runs them"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_attnc", "attnc's C library (include/attnc.h)", -1,
                                    module_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__attnc(void) {
    if (PyType_Ready(&KernelType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    /* Error(message, status); SpecError(message, status, diagnostics): defined in Python for their attributes */
    PyObject *globals = PyDict_New(), *builtins = PyEval_GetBuiltins();
    if (!globals || PyDict_SetItemString(globals, "__builtins__", builtins) < 0) return NULL;
    PyObject *r = PyRun_String("class Error(Exception):\n"
                               "    '''An attnc library error: .status (attnc_status) and the library's message.'''\n"
                               "    __module__ = 'attnc'\n"
                               "    def __init__(self, message, status=0):\n"
                               "        super().__init__(message)\n"
                               "        self.status = status\n"
                               "class SpecError(Error):\n"
                               "    '''A spec with errors: .diagnostics holds them rendered as attnc check does.'''\n"
                               "    __module__ = 'attnc'\n"
                               "    def __init__(self, message, status=1, diagnostics=''):\n"
                               "        super().__init__(message + ('\\n' + diagnostics if diagnostics else ''), status)\n"
                               "        self.diagnostics = diagnostics\n",
                               Py_file_input, globals, globals);
    if (!r) return NULL;
    Py_DECREF(r);
    Error = PyDict_GetItemString(globals, "Error");
    SpecError = PyDict_GetItemString(globals, "SpecError");
    Py_INCREF(Error);
    Py_INCREF(SpecError);
    Py_INCREF(&KernelType);
    PyModule_AddObject(m, "Kernel", (PyObject *)&KernelType);
    Py_INCREF(Error);
    PyModule_AddObject(m, "Error", Error);
    Py_INCREF(SpecError);
    PyModule_AddObject(m, "SpecError", SpecError);
    PyModule_AddIntConstant(m, "ABI_VERSION", 1);
    Py_DECREF(globals);
    return m;
}
