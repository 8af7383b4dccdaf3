"""A NumPy (float64) reference of attention for the Python tests: the
variants written out by hand, independently of attnc's interpreter."""
import numpy as np


def attention(q, k, v, mask=None, bias=None, score=None, scale=None):
    """O, LSE of softmax attention; q [B,H,Lq,D], k [B,Hkv,Lk,D], v [B,Hkv,Lk,Dv];
    mask(qi, ki) -> bool [Lq, Lk] (broadcast over b, h), bias(h, qi, ki) ->
    [H, Lq, Lk] added to the scaled dot product, score(s) applied after."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    B, H, Lq, D = q.shape
    g = H // k.shape[1]
    k, v = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
    s = q @ k.transpose(0, 1, 3, 2) * (1.0 / np.sqrt(D) if scale is None else scale)
    qi, ki = np.arange(Lq)[:, None], np.arange(k.shape[2])[None, :]
    if bias is not None:
        s = s + bias(np.arange(H)[:, None, None], qi[None], ki[None])[None]
    if score is not None:
        s = score(s)
    if mask is not None:
        s = np.where(mask(qi, ki)[None, None], s, -np.inf)
    m = s.max(-1, keepdims=True)
    empty = ~np.isfinite(m)
    p = np.exp(s - np.where(empty, 0.0, m))
    l = p.sum(-1, keepdims=True)
    o = np.where(empty, 0.0, p @ v / np.where(empty, 1.0, l))
    lse = np.where(empty, -np.inf, m + np.log(np.where(empty, 1.0, l)))[..., 0]
    return o, lse


def grads(q, k, v, do, mask=None):
    """dQ, dK, dV of sum(O * dO) for plain (masked) softmax attention."""
    q, k, v, do = (np.asarray(x, dtype=np.float64) for x in (q, k, v, do))
    B, H, Lq, D = q.shape
    Hkv = k.shape[1]
    g = H // Hkv
    K, V = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
    c = 1.0 / np.sqrt(D)
    s = q @ K.transpose(0, 1, 3, 2) * c
    if mask is not None:
        s = np.where(mask(np.arange(Lq)[:, None], np.arange(k.shape[2])[None, :])[None, None], s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    dV = p.transpose(0, 1, 3, 2) @ do
    dp = do @ V.transpose(0, 1, 3, 2)
    ds = p * (dp - (dp * p).sum(-1, keepdims=True)) * c
    dQ = ds @ K
    dK = ds.transpose(0, 1, 3, 2) @ q
    fold = lambda x: x.reshape(B, Hkv, g, *x.shape[2:]).sum(2)
    return dQ, fold(dK), fold(dV)
