"""attnc as a PyTorch operator with autograd.

    import attnc, attnc.pytorch
    k = attnc.compile(spec_text)
    o = attnc.pytorch.attention(k, q, kk, v, params={"window": 128}, tensors={"bias": table})
    o.sum().backward()          # gradients of q, kk, v and float tensors that require them

`attnc::attention` is a torch.library custom op (opaque to torch.compile,
which traces through its fake implementation); its backward calls attnc's
backward pass (Kernel.backward).  The kernel travels as an integer handle:
kernels passed here are kept for the life of the process.  CPU tensors;
CUDA tensors with a kernel of the "cuda" backend, forward only (it has no
backward pass).
"""
import json
from typing import List, Tuple

import torch

from . import Error

_KERNELS = {}  # handle -> attnc.Kernel (custom ops take no Python objects)


def _handle(kernel):
    h = id(kernel)
    _KERNELS[h] = kernel
    return h


@torch.library.custom_op("attnc::attention", mutates_args=())
def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tensors: List[torch.Tensor], handle: int,
               call: str) -> Tuple[torch.Tensor, torch.Tensor]:
    kernel, c = _KERNELS[handle], json.loads(call)  # call: {"names": tensors' names, "params": {...}}
    o, lse = kernel(q, k, v, params=c["params"], tensors=dict(zip(c["names"], tensors)), lse=True)
    return o, lse


@_attention.register_fake
def _(q, k, v, tensors, handle, call):
    B, H, Lq, _ = q.shape
    return q.new_empty((B, H, Lq, v.shape[3])), q.new_empty((B, H, Lq), dtype=torch.float32)


@torch.library.custom_op("attnc::attention_backward", mutates_args=())
def _attention_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
                        do: torch.Tensor, dlse: torch.Tensor, tensors: List[torch.Tensor], handle: int,
                        call: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, List[torch.Tensor]]:
    """dQ, dK, dV and the gradients of the float tensors (in order)."""
    kernel, c = _KERNELS[handle], json.loads(call)
    given = dict(zip(c["names"], tensors))
    wanted = [n for n, t in given.items() if t.is_floating_point()]
    g = kernel.backward(q, k, v, o, lse, do.contiguous(), dlse.contiguous(), params=c["params"], tensors=given,
                        grad_tensors=wanted)
    return g["q"], g["k"], g["v"], [g[n] for n in wanted]


@_attention_backward.register_fake
def _(q, k, v, o, lse, do, dlse, tensors, handle, call):
    floats = [t for t in tensors if t.is_floating_point()]
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), [t.new_empty(t.shape, dtype=torch.float32)
                                                                             for t in floats]


def _setup_context(ctx, inputs, output):
    q, k, v, tensors, handle, call = inputs
    o, lse = output
    ctx.save_for_backward(q, k, v, o, lse, *tensors)
    ctx.handle, ctx.call = handle, call


def _backward(ctx, do, dlse):
    q, k, v, o, lse, *tensors = ctx.saved_tensors
    do = torch.zeros_like(o) if do is None else do
    dlse = torch.zeros_like(lse) if dlse is None else dlse
    dq, dk, dv, dfloat = _attention_backward(q, k, v, o, lse, do, dlse, tensors, ctx.handle, ctx.call)
    it = iter(dfloat)
    dtensors = [next(it).to(t.dtype) if t.is_floating_point() else None for t in tensors]
    return dq, dk, dv, dtensors, None, None


_attention.register_autograd(_backward, setup_context=_setup_context)


def attention(kernel, q, k, v, params=None, tensors=None, lse=False):
    """O (and LSE with lse=True) of `kernel` on CPU tensors, differentiable
    in q, k, v and the float tensors of `tensors` ({name: tensor})."""
    if not kernel.has_backward and (q.requires_grad or k.requires_grad or v.requires_grad):
        raise Error(f"attention '{kernel.variant}' on backend '{kernel.backend}' has no backward pass", 2)
    names = list((tensors or {}).keys())
    values = [t if isinstance(t, torch.Tensor) else torch.as_tensor(t) for t in (tensors or {}).values()]
    plain = {n: (p.item() if hasattr(p, "item") else p) for n, p in (params or {}).items()}
    o, l = _attention(q, k, v, values, _handle(kernel), json.dumps({"names": names, "params": plain}))
    return (o, l) if lse else o
