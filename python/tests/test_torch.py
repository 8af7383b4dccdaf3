"""attnc with PyTorch: CPU tensors, the autograd op, torch.compile, and a
training step of a tiny model whose gradients match an eager PyTorch
implementation of the same variant.  Skipped (visibly: ctest reports
python/torch as skipped) where torch is not installed."""
import pytest

torch = pytest.importorskip("torch")
import attnc  # noqa: E402
import attnc.pytorch as ap  # noqa: E402

ALIBI = """attention alibi_py {
    use causal;
    tensor slope : float[H];
    bias -slope[h] * float(q - kv);
}"""


def eager_scores(q, k, slope):
    """The variant's masked scores written in PyTorch (GQA by repetition)."""
    H, Hkv, L, D = q.shape[1], k.shape[1], q.shape[2], q.shape[3]
    K = k.repeat_interleave(H // Hkv, 1)
    s = q.float() @ K.float().transpose(-1, -2) / D**0.5
    i = torch.arange(L)
    s = s - slope[None, :, None, None] * (i[:, None] - i[None, :]).float()
    return s.masked_fill(i[None, :] > i[:, None], float("-inf"))


def eager_alibi(q, k, v, slope):
    """The same variant's O in PyTorch."""
    V = v.repeat_interleave(q.shape[1] // k.shape[1], 1)
    return torch.softmax(eager_scores(q, k, slope), -1) @ V.float()


def make(B=2, H=4, Hkv=2, L=23, D=16, Dv=8, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, L, D, generator=g).to(dtype).requires_grad_()
    k = torch.randn(B, Hkv, L, D, generator=g).to(dtype).requires_grad_()
    v = torch.randn(B, Hkv, L, Dv, generator=g).to(dtype).requires_grad_()
    slope = torch.rand(H, generator=g).requires_grad_()
    return q, k, v, slope


def test_forward_float32_and_bfloat16():
    kern = attnc.compile(ALIBI)
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        q, k, v, slope = make(dtype=dtype)
        o = kern(q.detach(), k.detach(), v.detach(), tensors={"slope": slope.detach()})
        assert o.dtype == dtype
        assert (o.float() - eager_alibi(q, k, v, slope)).abs().max().item() < tol


def test_blhd_view_is_read_in_place():
    kern = attnc.compile(ALIBI)
    q, k, v, slope = make()
    qb = q.detach().transpose(1, 2).contiguous().transpose(1, 2)  # [B, L, H, D] storage
    assert not qb.is_contiguous()
    o = kern(qb, k.detach(), v.detach(), tensors={"slope": slope.detach()})
    assert (o - eager_alibi(q, k, v, slope)).abs().max().item() < 1e-5


@pytest.mark.parametrize("compiled", [False, True])
def test_autograd_matches_eager(compiled):
    kern = attnc.compile(ALIBI)
    q, k, v, slope = make()
    fn = lambda q, k, v, s: ap.attention(kern, q, k, v, tensors={"slope": s})  # noqa: E731
    if compiled:
        fn = torch.compile(fn)
    o = fn(q, k, v, slope)
    r = eager_alibi(q, k, v, slope)
    w = torch.randn_like(r)
    got = torch.autograd.grad((o * w).sum(), [q, k, v, slope])
    want = torch.autograd.grad((r * w).sum(), [q, k, v, slope])
    assert (o - r).abs().max().item() < 1e-5
    for a, b in zip(got, want):
        assert (a - b).abs().max().item() < 1e-4


def test_lse_gradient():
    kern = attnc.compile(ALIBI)
    q, k, v, slope = make()
    o, lse = ap.attention(kern, q, k, v, tensors={"slope": slope}, lse=True)
    got = torch.autograd.grad(lse.sum(), [q, k])
    want = torch.autograd.grad(torch.logsumexp(eager_scores(q, k, slope), -1).sum(), [q, k])
    for a, b in zip(got, want):
        assert (a - b).abs().max().item() < 1e-4


class TinyModel(torch.nn.Module):
    """One attention layer with an attnc variant (or its eager twin)."""

    def __init__(self, kernel, d=32, heads=4, kv_heads=2):
        super().__init__()
        self.kernel, self.h, self.hkv, self.dh = kernel, heads, kv_heads, d // heads
        self.wq = torch.nn.Linear(d, d)
        self.wkv = torch.nn.Linear(d, 2 * kv_heads * self.dh)
        self.wo = torch.nn.Linear(d, d)
        self.slope = torch.nn.Parameter(torch.linspace(0.05, 0.5, heads))

    def forward(self, x, eager=False):
        B, L, _ = x.shape
        q = self.wq(x).view(B, L, self.h, self.dh).transpose(1, 2)  # a [B, L, H, D] view: no copy
        k, v = self.wkv(x).view(B, L, 2, self.hkv, self.dh).unbind(2)
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        o = eager_alibi(q, k, v, self.slope) if eager else ap.attention(self.kernel, q, k, v,
                                                                          tensors={"slope": self.slope})
        return self.wo(o.transpose(1, 2).reshape(B, L, -1))


def test_training_step_matches_eager_and_learns():
    torch.manual_seed(0)
    model = TinyModel(attnc.compile(ALIBI))
    x, y = torch.randn(3, 17, 32), torch.randn(3, 17, 32)
    loss = torch.nn.functional.mse_loss(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    eager = torch.nn.functional.mse_loss(model(x, eager=True), y)
    eager_grads = torch.autograd.grad(eager, list(model.parameters()))
    assert abs(loss.item() - eager.item()) < 1e-5
    for a, b in zip(grads, eager_grads):
        assert (a - b).abs().max().item() < 1e-4
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.9 * first


def test_errors_raise():
    kern = attnc.compile(ALIBI)
    q, k, v, slope = make()
    with pytest.raises(attnc.Error, match="slope"):
        ap.attention(kern, q, k, v)
    with pytest.raises(attnc.Error, match="float64"):
        kern(q.detach().double(), k.detach(), v.detach(), tensors={"slope": slope.detach()})


class FakeCudaTensor:
    """What describe() reads of a torch tensor, on device cuda:N, without a
    GPU (this machine has none): the routing to the device path is checked up
    to the library, which then names what is missing."""

    __module__ = "torch.fake_cuda"

    def __init__(self, like, index=0):
        self._t, self.device = like, torch.device("cuda", index)
        self.shape, self.dtype = like.shape, like.dtype

    def data_ptr(self):
        return self._t.data_ptr()

    def stride(self):
        return self._t.stride()


def test_device_tensors_route_to_the_cuda_backend():
    q, k, v, slope = (t.detach() for t in make())
    kern = attnc.compile(ALIBI)
    fq, fk, fv = FakeCudaTensor(q), FakeCudaTensor(k), FakeCudaTensor(v)
    with pytest.raises(attnc.Error, match="needs a kernel compiled with backend='cuda'"):
        kern(fq, fk, fv, tensors={"slope": slope})
    with pytest.raises(attnc.Error, match="one device"):
        kern(fq, k, v, tensors={"slope": slope})
    with pytest.raises(attnc.Error, match="backward pass runs on the CPU"):
        kern.backward(q, k, v, q, q[..., 0], FakeCudaTensor(q), tensors={"slope": slope})
    with pytest.raises(attnc.Error, match="a tensor on 'meta'"):
        kern(q.to("meta"), k, v, tensors={"slope": slope})
    if attnc.backends()["cuda"]:
        pytest.skip("a CUDA driver is present: the device path is tested by cuda/gpu-rt/* on real tensors")
    with pytest.raises(attnc.Error, match="no CUDA driver"):
        attnc.compile(ALIBI, backend="cuda")
