"""attnc's Python package on NumPy arrays, against tests/reference.py."""
import os
import threading

import numpy as np
import pytest

import attnc
import reference as ref

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def rand(shape, seed, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def inputs(B=2, H=4, Hkv=2, Lq=37, Lk=37, D=24, Dv=8, dtype=np.float32):
    return rand((B, H, Lq, D), 1, dtype), rand((B, Hkv, Lk, D), 2, dtype), rand((B, Hkv, Lk, Dv), 3, dtype)


def close(got, want, tol=2e-5):
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == want.shape
    err = np.max(np.abs(got - want) / (1 + np.abs(want)))
    assert err < tol, f"max relative error {err}"


CAUSAL = "attention causal_test { use causal; }"


def test_causal_gqa_lse():
    q, k, v = inputs()
    o, lse = attnc.compile(CAUSAL)(q, k, v, lse=True)
    ro, rl = ref.attention(q, k, v, mask=lambda i, j: j <= i)
    assert o.dtype == np.float32 and lse.dtype == np.float32
    close(o, ro)
    close(lse, rl)


def test_example_file_params_and_lq_ne_lk():
    k = attnc.compile(os.path.join(EXAMPLES, "sliding_window.attn"), variant="sliding_window_causal")
    assert "window" in k.params
    q, kk, v = inputs(Lq=29, Lk=41)
    o = k(q, kk, v, params={"window": 7})
    # sliding_window_causal: kv <= q and q - kv < window (top-left aligned)
    ro, _ = ref.attention(q, kk, v, mask=lambda i, j: (j <= i) & (i - j < 7))
    close(o, ro)


def test_captured_tensor_and_defines():
    spec = """attention alibi {
        use causal;
        param c : float = 1.0;
        tensor slope : float[H];
        bias -c * slope[h] * float(q - kv);
    }"""
    slope = np.array([0.5, 0.25, 0.125, 0.0625], dtype=np.float64)  # converted to float32 contiguous
    q, k, v = inputs()
    ro, _ = ref.attention(q, k, v, mask=lambda i, j: j <= i, bias=lambda h, i, j: -2.0 * slope[h] * (i - j))
    close(attnc.compile(spec)(q, k, v, params={"c": 2.0}, tensors={"slope": slope}), ro)
    fixed = attnc.compile(spec, defines={"c": 2.0})
    assert "c" not in fixed.params
    close(fixed(q, k, v, tensors={"slope": slope}), ro)


def test_softcap_and_backends():
    spec = "attention sc { use softcap(cap = 5.0); }"
    q, k, v = inputs()
    ro, _ = ref.attention(q, k, v, score=lambda s: 5.0 * np.tanh(s / 5.0))
    for name, ok in attnc.backends().items():
        if ok and name in ("llvm", "interp", "refplan"):
            close(attnc.compile(spec, backend=name)(q, k, v), ro)


def test_strided_views_without_copy():
    """[B, L, H, D] storage (FlashAttention's), and Q, K, V as slices of one fused buffer."""
    B, L, H, D = 2, 33, 4, 16
    qkv = rand((B, L, 3, H, D), 7)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    assert not q.flags.c_contiguous and np.shares_memory(q, qkv)
    o = attnc.compile(CAUSAL)(q, k, v)
    ro, _ = ref.attention(q, k, v, mask=lambda i, j: j <= i)
    close(o, ro)


def test_float16():
    q, k, v = inputs(dtype=np.float16)
    o = attnc.compile(CAUSAL)(q, k, v)
    assert o.dtype == np.float16
    ro, _ = ref.attention(q, k, v, mask=lambda i, j: j <= i)  # on the rounded inputs
    close(o, ro, tol=2e-3)  # O rounded once to f16: half an ulp is 4.9e-4 relative


def test_backward_against_reference():
    q, k, v = inputs(Lq=21, Lk=21, D=16, Dv=16)
    kern = attnc.compile(CAUSAL)
    assert kern.has_backward
    o, lse = kern(q, k, v, lse=True)
    do = rand(o.shape, 9)
    g = kern.backward(q, k, v, o, lse, do)
    want = ref.grads(q, k, v, do, mask=lambda i, j: j <= i)
    for name, w in zip("qkv", want):
        close(g[name], w, tol=1e-4)


def test_tensor_gradient():
    spec = "attention rb { tensor t : float[2 * Lq - 1]; bias t[kv - q + Lq - 1]; }"
    q, k, v = inputs(B=1, H=2, Hkv=2, Lq=9, Lk=9, D=8, Dv=8)
    t = rand((17,), 4)
    kern = attnc.compile(spec)
    o, lse = kern(q, k, v, tensors={"t": t}, lse=True)
    do = rand(o.shape, 5)
    g = kern.backward(q, k, v, o, lse, do, tensors={"t": t})
    # finite differences of sum(O * dO) in float64 on the reference
    f = lambda tt: np.sum(ref.attention(q, k, v, bias=lambda h, i, j: tt[j - i + 8])[0] * do)
    fd = np.array([(f(t + e * 1e-4) - f(t - e * 1e-4)) / 2e-4 for e in np.eye(17)])
    close(g["t"], fd, tol=1e-3)


def test_kept_pairs_and_emit():
    kern = attnc.compile(CAUSAL)
    assert kern.kept_pairs((1, 1, 1, 10, 10, 8, 8)) == 55
    assert "causal_test_attention" in kern.emit("c")
    assert "keep" in kern.emit("ir")


def test_threads_release_the_gil():
    q, k, v = inputs(Lq=64, Lk=64)
    kern = attnc.compile(CAUSAL, threads=1)
    want = kern(q, k, v)
    results = [None] * 4

    def work(i):
        results[i] = kern(q, k, v)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for r in results:
        assert np.array_equal(r, want)


# ---- errors: each raises with the library's (or the binding's) one line ----


def test_spec_error_carries_diagnostics():
    with pytest.raises(attnc.SpecError) as e:
        attnc.compile("attention a { mask kv <= qq; }")
    assert "unknown name 'qq'" in e.value.diagnostics
    assert e.value.status == 1


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda k, q, kk, v: k(q[:, :, :, :8], kk, v), "does not fit"),
        (lambda k, q, kk, v: k(q, kk, v[:, :, :5]), "does not fit"),
        (lambda k, q, kk, v: k(q[0], kk, v), "expected 4 dimensions"),
        (lambda k, q, kk, v: k(q.astype(np.float64), kk, v), "float64 is not supported"),
        (lambda k, q, kk, v: k([1.0], kk, v), "expected a NumPy array"),
        (lambda k, q, kk, v: k(q[:, :, ::-1], kk, v), "stride"),
        (lambda k, q, kk, v: k(q, kk, v, tensors={"nope": q}), "has no tensor 'nope'"),
        (lambda k, q, kk, v: k(q, kk, v, params={"nope": 1}), "nope"),
    ],
)
def test_call_errors(call, message):
    q, k, v = inputs()
    with pytest.raises(attnc.Error) as e:
        call(attnc.compile(CAUSAL), q, k, v)
    assert message in str(e.value)


def test_missing_tensor_and_bad_param_type():
    spec = "attention a { param w : int = 4; tensor t : float[H]; bias t[h] * float(w); }"
    q, k, v = inputs()
    kern = attnc.compile(spec)
    with pytest.raises(attnc.Error, match="t"):
        kern(q, k, v)
    with pytest.raises(attnc.Error, match="w"):
        kern(q, k, v, params={"w": 1.5}, tensors={"t": np.ones(4)})
    with pytest.raises(attnc.Error, match="shape"):
        kern(q, k, v, tensors={"t": np.ones(3)})


def test_compile_errors():
    with pytest.raises(ValueError, match="unknown backend"):
        attnc.compile(CAUSAL, backend="nope")
    with pytest.raises(attnc.Error, match="no attention|variant"):
        attnc.compile(CAUSAL, variant="other")
    with pytest.raises(FileNotFoundError):
        attnc.compile("/no/such/file.attn")


def test_show_pictures_the_mask():
    spec = "attention band { param w : int = 5; mask kv <= q + (Lk - Lq) && kv > q + (Lk - Lq) - w; }"
    kern = attnc.compile(spec, tile=(8, 8))
    p = kern.show((1, 2, 1, 20, 30, 4, 4), params={"w": 5}, at=(0, 1))
    q, kv = np.arange(20)[:, None], np.arange(30)[None, :]
    want = (kv <= q + 10) & (kv > q + 10 - 5)
    assert np.array_equal(p["kept"], want.astype(np.float32))
    assert np.all(p["tiles"][want] > 0)  # a kept pair is in a visited tile
    assert p["rgb"].shape == (20, 68, 3)
    assert np.array_equal(p["rgb"][:, :30, 0], np.where(want, 0, 255))
    small = kern.show((1, 1, 1, 200, 300, 4, 4), params={"w": 50}, size=10)
    assert small["kept"].shape == (10, 10) and 0 < small["kept"].sum() < 100  # fractions of blocks
    with pytest.raises(attnc.Error, match="outside"):
        kern.show((1, 1, 1, 20, 30, 4, 4), at=(0, 3))


def test_a_stream_routes_to_the_device_api():
    """Kernel.__call__ passes a stream only for CUDA tensors; the extension
    then calls attnc_kernel_run_cuda, whose refusal of an llvm kernel shows
    the route (host arrays are never handed to it by the package)."""
    q, k, v = inputs()
    kern = attnc.compile(CAUSAL)
    o, lse = kern(q, k, v, lse=True)
    desc = lambda a, rank=4: attnc._arrays.describe(a, "x", rank=rank)[0]  # noqa: E731
    sizes = (q.shape[0], q.shape[1], k.shape[1], q.shape[2], k.shape[2], q.shape[3], v.shape[3])
    with pytest.raises(attnc.Error, match="attnc_kernel_run_cuda: the kernel is for backend 'llvm'"):
        kern._k.run(sizes, desc(q), desc(k), desc(v), desc(o), desc(lse, 3), [], [], 0)
    kern._k.run(sizes, desc(q), desc(k), desc(v), desc(o), desc(lse, 3), [], [], None)  # host: runs
