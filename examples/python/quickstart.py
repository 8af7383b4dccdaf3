"""attnc from Python in a few lines: write a variant as text, compile it,
run it on NumPy arrays, and look at its mask (scripts/setup.sh runs this).

    PYTHONPATH=build/python python3 examples/python/quickstart.py [OUT_DIR]
"""
import os
import sys

import numpy as np

import attnc

out = sys.argv[1] if len(sys.argv) > 1 else "out"
os.makedirs(out, exist_ok=True)

# Gemma-2's local layers: a sliding window under the causal mask, logits capped
spec = """
attention gemma_local {
    param window : int = 4096;
    use causal;
    mask q - kv < window;
    use softcap(cap = 50.0);
}
"""
kernel = attnc.compile(spec)
rng = np.random.default_rng(0)
B, H, Hkv, L, D = 1, 8, 2, 512, 64
q = rng.standard_normal((B, H, L, D), dtype=np.float32)
k = rng.standard_normal((B, Hkv, L, D), dtype=np.float32)
v = rng.standard_normal((B, Hkv, L, D), dtype=np.float32)
o, lse = kernel(q, k, v, params={"window": 128}, lse=True)
print(f"{kernel}: O {o.shape} {o.dtype}, LSE {lse.shape}")

# the mask and the tile map the kernel uses, as arrays (attnc show draws the same as a PNG)
pic = kernel.show((B, H, Hkv, L, L, D, D), params={"window": 128}, size=64)
kept = pic["kept"]
print(f"kept pairs: {kept.mean():.3f} of all; tiles visited: {(pic['tiles'] > 0).mean():.3f}")
np.save(os.path.join(out, "gemma_local_mask.npy"), pic["rgb"])
for row in kept[::8, ::4]:  # a text rendering, 8x4 pixels per character
    print("".join("#" if f > 0.5 else "+" if f > 0 else "." for f in row))
