"""attnc from Python: attention variants written as `.attn` text, compiled
to fused kernels by libattnc, run on NumPy arrays or PyTorch tensors.

    import attnc, numpy as np
    k = attnc.compile("attention causal_softcap { use causal; use softcap(cap = 30.0); }")
    o = k(q, kv_k, kv_v)                # q [B, H, Lq, D], k/v [B, Hkv, Lk, D or Dv]
    o, lse = k(q, kv_k, kv_v, lse=True)

Arrays are [B, H, L, D] views of any strides whose last dimension is
contiguous (so [B, L, H, D] storage, transposed, is passed without a copy),
float32, float16 or (PyTorch) bfloat16; the kernels compute in float32 and
round O once.  CUDA tensors run on a kernel of the "cuda" backend (forward
only), on the current stream.  O has Q's element type, LSE is float32.  `attnc.pytorch`
holds an autograd op.  Errors raise attnc.Error with the library's message
(attnc.SpecError for a spec with errors, its diagnostics attached).  The
binding is a C extension written against attnc.h (python/attnc/_attnc.c):
no C struct is mirrored in Python.
"""
import os

from . import _attnc
from ._arrays import describe, device_of, empty_like_layout, tensor_arg
from ._attnc import Error, SpecError

__all__ = ["compile", "Kernel", "Error", "SpecError", "backends"]

OPT_EXACT_F32 = 8  # attnc.h ATTNC_OPT_EXACT_F32


def backends():
    """{name: available} for every backend this libattnc knows."""
    return dict(_attnc.backends())


def _value_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def compile(source, variant=None, backend="llvm", defines=None, threads=0, tile=None, exact_f32=False):
    """Compile one attention of a spec: `source` is the spec's text or the
    path of a .attn file; `variant` names the attention (None: the file's
    only one); `defines` fixes params at compile time ({name: value});
    `threads` per call (0: every core); `tile` = (rows of Q, rows of K)."""
    if isinstance(source, os.PathLike) or (isinstance(source, str) and "{" not in source):
        path = os.fspath(source)
        with open(path, encoding="utf-8") as f:
            text, filename = f.read(), path
    else:
        text, filename = source, "<string>"
    defs = [(name, _value_text(value)) for name, value in (defines or {}).items()]
    tq, tk = tile or (0, 0)
    flags = OPT_EXACT_F32 if exact_f32 else 0
    return Kernel(_attnc.compile(text, filename, variant, backend, defs, tq, tk, threads, flags))


def _params(params):
    out = []
    for name, value in (params or {}).items():
        if hasattr(value, "item"):  # NumPy / PyTorch scalars
            value = value.item()
        out.append((name, value))
    return out


class Kernel:
    """A compiled attention.  Thread-safe: calls release the GIL."""

    def __init__(self, handle):
        self._k = handle
        info = handle.info()
        self.variant = info["variant"]
        self.backend = info["backend"]
        self.softmax = info["softmax"]
        self.has_backward = info["has_backward"]
        self.params = {name: (type_, default) for name, type_, default in info["params"]}
        self.tensors = {name: (dtype, rank) for name, dtype, rank in info["tensors"]}

    def __repr__(self):
        return f"<attnc.Kernel {self.variant} on {self.backend}>"

    def _call_parts(self, q, k, v, params, tensors):
        dq, lib, qshape = describe(q, "q")
        dk, _, kshape = describe(k, "k")
        dv, _, vshape = describe(v, "v")
        B, H, Lq, D = qshape
        if kshape[0] != B or kshape[3] != D:
            raise Error(f"k: shape {kshape} does not fit q's {qshape} (expected [{B}, Hkv, Lk, {D}])", 2)
        if vshape[:3] != kshape[:3]:
            raise Error(f"v: shape {vshape} does not fit k's {kshape} (expected [{B}, {kshape[1]}, {kshape[2]}, Dv])", 2)
        sizes = (B, H, kshape[1], Lq, kshape[2], D, vshape[3])
        tlist, keep = self._tensor_args(tensors)
        return (dq, dk, dv), lib, sizes, _params(params), tlist, keep

    def _tensor_args(self, tensors):
        """The captured tensors given, as descriptors, and the arrays to keep alive for the call."""
        given = dict(tensors or {})
        unknown = set(given) - set(self.tensors)
        if unknown:
            raise Error(f"attention '{self.variant}' has no tensor '{sorted(unknown)[0]}'", 2)
        keep, tlist = [], []
        for name, (dtype, _rank) in self.tensors.items():
            if name in given:  # a missing one: the library names it
                arr, desc = tensor_arg(given[name], dtype, name)
                keep.append(arr)
                tlist.append(desc)
        return tlist, keep

    def __call__(self, q, k, v, params=None, tensors=None, lse=False):
        """O (and LSE with lse=True) of one call on NumPy arrays or CPU
        PyTorch tensors, or CUDA tensors on the "cuda" backend (run on the
        current stream; O and LSE on the same device); `params` {name:
        value}, `tensors` {name: array}."""
        (dq, dk, dv), lib, sizes, plist, tlist, keep = self._call_parts(q, k, v, params, tensors)
        stream = self._stream(q, k, v)
        B, H, _Hkv, Lq, _Lk, _D, Dv = sizes
        o = empty_like_layout(q, lib, (B, H, Lq, Dv), None)
        l = empty_like_layout(q, lib, (B, H, Lq), "float32")
        self._k.run(sizes, dq, dk, dv, describe(o, "o")[0], describe(l, "lse", rank=3)[0], plist, tlist, stream)
        del keep
        return (o, l) if lse else o

    def _stream(self, q, k, v):
        """None for a call on host memory; for CUDA tensors the current
        stream of their device, as an integer (attnc_kernel_run_cuda)."""
        devices = [device_of(x) for x in (q, k, v)]
        if all(d is None for d in devices):
            return None
        if any(d != devices[0] for d in devices):
            where = ", ".join(f"{n} on {d or 'cpu'}" for n, d in zip("qkv", devices))
            raise Error(f"q, k and v must be on one device ({where})", 2)
        if self.backend != "cuda":
            raise Error(f"q: a tensor on '{devices[0]}' needs a kernel compiled with backend='cuda' "
                        f"(this one runs on '{self.backend}')", 2)
        if devices[0].index not in (None, 0):
            raise Error(f"q: a tensor on '{devices[0]}': the cuda backend runs on the first device (cuda:0)", 2)
        import torch

        return torch.cuda.current_stream(devices[0]).cuda_stream

    def backward(self, q, k, v, o, lse, do, dlse=None, params=None, tensors=None, grad_tensors=None):
        """Gradients of sum(O * dO) + sum(LSE * dLSE) for one forward call
        (its inputs and outputs): {"q": dQ, "k": dK, "v": dV, name: dT for
        each float tensor in grad_tensors (None: every float tensor given)}."""
        arrays = {"q": q, "k": k, "v": v, "o": o, "lse": lse, "do": do, "dlse": dlse}
        for name, x in arrays.items():
            if x is not None and device_of(x) is not None:
                raise Error(f"{name}: a tensor on '{device_of(x)}': attnc's backward pass runs on the CPU backends, "
                            f"in host memory", 2)
        (dq_, dk_, dv_), lib, sizes, plist, tlist, keep = self._call_parts(q, k, v, params, tensors)
        names = [n for n, (dt, _r) in self.tensors.items() if dt == "float" and n in (tensors or {})]
        if grad_tensors is not None:
            names = [n for n in names if n in set(grad_tensors)]
        out = {
            "q": empty_like_layout(q, lib, tuple(q.shape), None),
            "k": empty_like_layout(k, lib, tuple(k.shape), None),
            "v": empty_like_layout(v, lib, tuple(v.shape), None),
        }
        for i, name in enumerate(self.tensors):
            if name in names:
                out[name] = empty_like_layout(q, lib, self._k.tensor_shape(i, sizes, plist), "float32")
        dtensors = [(name, describe(out[name], name, any_rank=True)[0][0]) for name in names]
        self._k.backward(sizes, dq_, dk_, dv_, describe(o, "o")[0], describe(lse, "lse", rank=3)[0], plist, tlist,
                         describe(do, "dout")[0], None if dlse is None else describe(dlse, "dlse", rank=3)[0],
                         describe(out["q"], "dq")[0], describe(out["k"], "dk")[0], describe(out["v"], "dv")[0],
                         dtensors)
        del keep
        return out

    def emit(self, target="c"):
        """The kernel as text: "c" (ahead-of-time C), "cuda", or "ir"."""
        return self._k.emit(target)

    def kept_pairs(self, sizes, params=None, tensors=None):
        """Pairs (b, h, q, kv) the masks keep for sizes (B, H, Hkv, Lq, Lk, D, Dv)."""
        tlist, keep = self._tensor_args(tensors)
        kept = self._k.kept_pairs(tuple(sizes), _params(params), tlist)
        del keep
        return kept

    def show(self, sizes, params=None, tensors=None, at=(0, 0), size=512):
        """The picture `attnc show` draws, as arrays: for query head at[1] of
        batch at[0] of a call of sizes (B, H, Hkv, Lq, Lk, D, Dv), at most
        size x size pixels over the Lq x Lk pairs: {"kept": float32 [rows,
        cols] fraction of each pixel's pairs the masks keep, "tiles": uint8
        [rows, cols] tile map (0 EMPTY, 1 FULL, 2 PARTIAL), "rgb": uint8
        [rows, 2 * cols + 8, 3] both panels as the PNG shows them (unscaled)}."""
        import numpy as np

        sizes = tuple(int(s) for s in sizes)
        rows, cols = min(sizes[3], size), min(sizes[4], size)
        tlist, keep = self._tensor_args(tensors)
        kept, tiles = self._k.picture(sizes, _params(params), tlist, at[0], at[1], rows, cols)
        del keep
        kept = np.frombuffer(kept, dtype=np.float32).reshape(rows, cols)
        tiles = np.frombuffer(tiles, dtype=np.uint8).reshape(rows, cols)
        return {"kept": kept, "tiles": tiles, "rgb": _rgb(kept, tiles)}


def _rgb(kept, tiles):
    """The two panels of cli/show_cmd.c: black = kept; the tile map white
    (EMPTY), green (FULL), orange (PARTIAL), darkened where pairs are kept."""
    import numpy as np

    rows, cols = kept.shape
    img = np.full((rows, 2 * cols + 8, 3), 255, dtype=np.uint8)
    img[:, :cols] = np.floor(255.0 * (1.0 - kept) + 0.5).astype(np.uint8)[..., None]
    palette = np.array([[255, 255, 255], [120, 200, 120], [245, 170, 80]], dtype=np.float32)
    shade = palette[np.minimum(tiles, 2)] * (1.0 - 0.6 * kept)[..., None]
    img[:, cols + 8:] = np.floor(shade + 0.5).astype(np.uint8)
    return img

