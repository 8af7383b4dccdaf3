"""Train a tiny model whose attention is an attnc variant, in PyTorch: the
forward and backward passes are attnc's kernels (attnc.pytorch).

    PYTHONPATH=build/python python3 examples/python/train_tiny.py
(needs PyTorch: pip install torch)
"""
import sys

try:
    import torch
except ImportError:
    print("SKIP: PyTorch is not installed for", sys.executable)
    sys.exit(77)

import attnc
import attnc.pytorch

SPEC = """
attention alibi_local {
    param window : int = 64;
    tensor slope : float[H];
    use causal;
    mask q - kv < window;
    bias -slope[h] * float(q - kv);
}
"""


class Block(torch.nn.Module):
    def __init__(self, kernel, d=64, heads=4):
        super().__init__()
        self.kernel, self.heads, self.dh = kernel, heads, d // heads
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.out = torch.nn.Linear(d, d)
        self.slope = torch.nn.Parameter(torch.logspace(-3, -1, heads, base=2.0))  # learned ALiBi slopes

    def forward(self, x):
        B, L, d = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, self.dh).unbind(2)  # [B, L, H, D] views: no copies
        o = attnc.pytorch.attention(self.kernel, q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                    params={"window": 32}, tensors={"slope": self.slope})
        return x + self.out(o.transpose(1, 2).reshape(B, L, d))


torch.manual_seed(0)
kernel = attnc.compile(SPEC)
model = torch.nn.Sequential(torch.nn.Embedding(16, 64), Block(kernel), torch.nn.Linear(64, 16))
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
# task: predict the token 3 positions back (inside the window)
tokens = torch.randint(0, 16, (8, 96))
for step in range(60):
    logits = model(tokens)[:, 3:]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 16), tokens[:, :-3].reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 20 == 0 or step == 59:
        print(f"step {step:2d}  loss {loss.item():.3f}")
print("slopes learned:", [round(s, 4) for s in model[1].slope.tolist()])
