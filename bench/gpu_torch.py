#!/usr/bin/env python3
"""bench/gpu_torch.py — the measuring half of bench/gpu.sh (issue 13): attnc's `cuda` backend
(`attnc bench --backend cuda`) against PyTorch's scaled_dot_product_attention (flash / cuDNN) and
flex_attention (torch.compile, Triton) on the same GPU, bf16, for the variants of bench/variants/.

    bench/gpu_torch.py [--device cuda|cpu] [--attnc PATH] [--attnc-backend NAME] [--quick] [--dims 128,64]
                       [--lengths 4096,16384] [--variants dense,causal,...] [--tokens N] [--model-dim N]
                       [--deadline-epoch T] [--out DIR] [--dry-run] [--self-check]

Each cell is one (variant, D, L) with B = tokens / L and H = model-dim / D (B*H*L*D fixed, as in the
FlashAttention-2 paper: 16k tokens, model dimension 2048).  Before timing, one small case per variant
checks every implementation against a float64 reference of attnc's formula (attn-language.md section
1): SDPA's mask or bias, flex's block mask and score_mod, and `attnc run` on the same inputs; a
mis-specified mask shows as a large error there.  Timings: torch with CUDA events (median after a
warm-up, time-boxed); attnc with its own `bench` loop (--reps).  TFLOP/s = 4 * D * kept pairs / time.
Every measurement that fails prints its error in its cell; the rest of the table goes on.

--device cpu (with --self-check) runs the check and a tiny table on the CPU: flex eagerly (its
torch.compile on the CPU takes half a minute), attnc on its default backend.  --dry-run prints the
commands and setups without importing torch (plain python3 is enough).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# variant -> (bench/variants file, what SDPA can do with it)
VARIANTS = {
    "dense": ("dense.attn", "flash/cuDNN"),
    "causal": ("causal.attn", "flash/cuDNN, is_causal"),
    "alibi": ("causal_alibi.attn", "float bias [1, H, L, L] (no flash)"),
    "softcap": ("softcap.attn", None),
    "window": ("window256.attn", "bool mask [L, L] (no flash)"),
    "document": ("document.attn", "bool mask [L, L] (no flash)"),
}
WINDOW, CAP, ALIBI_MAX = 256, 50.0, 8.0  # the prelude's defaults as bench/variants/ use them


def doc_ids(L, avg):
    """Sorted random document ids, about L / avg documents (as bench/run.sh draws them: seed 7)."""
    import numpy as np
    rng = np.random.default_rng(7)
    return np.sort(rng.integers(0, max(1, L // avg), L)).astype(np.int32)


def kept_pairs(variant, B, H, L, doc=None):
    """(b, h, q, kv) elements the variant's mask keeps: the FLOP count is 4 * D * this."""
    if variant in ("dense", "softcap"):
        n = L * L
    elif variant in ("causal", "alibi"):
        n = L * (L + 1) // 2
    elif variant == "window":
        w = min(WINDOW, L)
        n = w * (w + 1) // 2 + (L - w) * w
    else:
        import numpy as np
        n = int((np.unique(doc, return_counts=True)[1].astype(np.int64) ** 2).sum())
    return B * H * n


# ---- torch: the setups -----------------------------------------------------------------------

def flex_mods(variant, H, device, doc):
    """flex_attention's (mask_mod, score_mod) for the variant; None where it has none."""
    import torch
    if variant == "causal":
        return (lambda b, h, q, kv: kv <= q), None
    if variant == "window":
        return (lambda b, h, q, kv: (kv <= q) & (q - kv < WINDOW)), None
    if variant == "document":
        d = doc
        return (lambda b, h, q, kv: d[q] == d[kv]), None
    if variant == "alibi":
        slopes = torch.exp2(-ALIBI_MAX * (torch.arange(H, device=device, dtype=torch.float32) + 1) / H)

        def alibi(score, b, h, q, kv):
            return score - slopes[h] * (q - kv).abs()
        return (lambda b, h, q, kv: kv <= q), alibi
    if variant == "softcap":
        return None, (lambda score, b, h, q, kv: CAP * torch.tanh(score / CAP))
    return None, None


def dense_bias(variant, H, L, device, doc, dtype):
    """What the variant adds to the scaled scores as a dense [1 or H, L, L] tensor (-inf where masked),
    or a bool keep-mask; None for dense and causal (flags), "n/a" where SDPA cannot express it."""
    import torch
    q = torch.arange(L, device=device)[:, None]
    kv = torch.arange(L, device=device)[None, :]
    if variant == "window":
        return (kv <= q) & (q - kv < WINDOW)
    if variant == "document":
        return doc[:, None] == doc[None, :]
    if variant == "alibi":  # head by head: at L = 16384, H = 32 one float32 [H, L, L] would be 34 GB
        slopes = torch.exp2(-ALIBI_MAX * (torch.arange(H, device=device, dtype=torch.float32) + 1) / H)
        dist, keep = (q - kv).abs().float(), kv <= q
        bias = torch.empty(1, H, L, L, device=device, dtype=dtype)
        for h in range(H):
            bias[0, h] = (-slopes[h] * dist).masked_fill(~keep, float("-inf"))
        return bias
    if variant == "softcap":
        return "n/a"
    return None


def reference(variant, q, k, v, doc):
    """attn-language.md section 1 in float64, on the CPU."""
    import torch
    q, k, v = (x.double().cpu() for x in (q, k, v))
    B, H, L, D = q.shape
    s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    qi = torch.arange(L)[:, None]
    ki = torch.arange(L)[None, :]
    keep = torch.ones(L, L, dtype=torch.bool)
    if variant in ("causal", "alibi", "window"):
        keep &= ki <= qi
    if variant == "window":
        keep &= qi - ki < WINDOW
    if variant == "document":
        d = doc.cpu()
        keep &= d[:, None] == d[None, :]
    if variant == "alibi":
        slopes = torch.exp2(-ALIBI_MAX * (torch.arange(H, dtype=torch.float64) + 1) / H)
        s = s - slopes[None, :, None, None] * (qi - ki).abs().double()[None, None]
    if variant == "softcap":
        s = CAP * torch.tanh(s / CAP)
    s = s.masked_fill(~keep, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


class Torch:
    """SDPA and flex_attention calls for one device and dtype."""

    def __init__(self, device, dtype, compile_flex):
        import torch
        from torch.nn.attention import SDPBackend, sdpa_kernel
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        self.torch, self.device, self.dtype = torch, device, dtype
        self.sdpa_kernel, self.B = sdpa_kernel, SDPBackend
        self.create_block_mask = create_block_mask
        self.flex_eager = flex_attention
        if compile_flex:
            import torch._dynamo
            cfg = torch._dynamo.config
            for name in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit",
                         "accumulated_recompile_limit"):
                if hasattr(cfg, name):  # every cell is a new score_mod / block mask: a recompile each
                    setattr(cfg, name, max(getattr(cfg, name), 256))
            self.flex_fn = torch.compile(flex_attention, dynamic=False)
        else:
            self.flex_fn = flex_attention

    def sdpa(self, variant, q, k, v, doc):
        """[(backend name, call)] for the variant: flash and cuDNN for dense / causal, else whatever
        takes the mask; [] where SDPA cannot express it."""
        F = self.torch.nn.functional
        extra = dense_bias(variant, q.shape[1], q.shape[2], q.device, doc, q.dtype)
        if isinstance(extra, str):
            return []
        kw = {"is_causal": True} if variant == "causal" else {"attn_mask": extra} if extra is not None else {}
        if self.device == "cpu":
            return [("math", lambda: F.scaled_dot_product_attention(q, k, v, **kw))]
        if extra is None:
            names = [("flash", self.B.FLASH_ATTENTION), ("cudnn", self.B.CUDNN_ATTENTION)]
        else:
            names = [("cudnn", self.B.CUDNN_ATTENTION), ("efficient", self.B.EFFICIENT_ATTENTION)]

        def call(backend):
            def run():
                with self.sdpa_kernel([backend]):
                    return F.scaled_dot_product_attention(q, k, v, **kw)
            return run
        return [(name, call(b)) for name, b in names]

    def flex(self, variant, q, k, v, doc, eager=False):
        """eager: flex_attention uncompiled (the check's small case: no torch.compile for its shapes)."""
        mask_mod, score_mod = flex_mods(variant, q.shape[1], q.device, doc)
        L = q.shape[2]
        bm = None
        if mask_mod is not None:
            bm = self.create_block_mask(mask_mod, None, None, L, L, device=q.device)
        fn = self.flex_eager if eager else self.flex_fn
        return lambda: fn(q, k, v, score_mod=score_mod, block_mask=bm)


def time_ms(torch, device, fn, budget_s, max_iters=100):
    """Median ms per call after two warm-up calls, at least 3 calls and at most budget_s seconds."""
    fn()
    fn()
    times = []
    start = time.time()
    while len(times) < 3 or (time.time() - start < budget_s and len(times) < max_iters):
        if device == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


def short(e):
    text = str(e).strip().splitlines()
    return (type(e).__name__ + ": " + (text[0] if text else "")).replace("|", "/")[:110]


# ---- attnc: the commands ---------------------------------------------------------------------

def attnc_bench_cmd(a, variant, B, H, L, D, doc_path):
    cmd = [a.attnc, "bench", os.path.join(HERE, "variants", VARIANTS[variant][0]),
           "--shape", f"B={B},H={H},Lq={L},Lk={L},D={D}", "--dtype", a.dtype, "--reps", str(a.attnc_reps)]
    if a.attnc_backend:
        cmd += ["--backend", a.attnc_backend]
    if variant == "document":
        cmd += ["--tensor", f"doc={doc_path}"]
    return cmd


def run_attnc(cmd, timeout):
    """(parsed bench or run output, error line or None, wall seconds)"""
    t = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=max(5, timeout))
    except subprocess.TimeoutExpired:
        return {}, f"no result within {timeout:.0f} s", time.time() - t
    except OSError as e:
        return {}, short(e), time.time() - t
    wall = time.time() - t
    out = {}
    for line in p.stdout.splitlines():
        w = line.split()
        if line.startswith("time/call"):
            out["ms"] = float(w[1])
        elif line.startswith("compile"):
            out["compile_ms"] = float(w[1])
        elif line.startswith("kept pairs"):
            out["kept"] = int(w[3].lstrip("("))
    if p.returncode:
        lines = [x for x in (p.stderr + p.stdout).splitlines() if x.strip()]
        return out, (lines[-1] if lines else f"exit {p.returncode}")[:160], wall
    return out, None, wall


# ---- the check -------------------------------------------------------------------------------

def check(a, T, work):
    """One small case per variant: SDPA, flex and attnc against the float64 reference.  Returns the
    number of failures: an error beyond the limit, or torch refusing a setup (attnc failing to run is
    printed, not counted: the table shows it again and the torch side still stands)."""
    import numpy as np
    torch = T.torch
    B, H, L, D = 1, 4, 512, 64
    tol = 1e-2 if a.dtype != "f32" else 1e-3  # 16-bit: O and P rounded (~3e-3); a wrong mask moves it far more
    g = torch.Generator().manual_seed(11)
    q, k, v = (torch.randn(B, H, L, D, generator=g).to(T.dtype) for _ in range(3))
    for name, x in (("q", q), ("k", k), ("v", v)):
        np.save(os.path.join(work, f"check_{name}.npy"), x.float().numpy())
    docs = doc_ids(L, 48)
    np.save(os.path.join(work, "check_doc.npy"), docs)
    doc_dev = torch.from_numpy(docs).to(T.device)
    qd, kd, vd = (x.to(T.device) for x in (q, k, v))
    print(f"check: B={B} H={H} L={L} D={D} {a.dtype}, ||out - ref|| / ||ref|| against float64 (limit {tol:g})")
    print("| variant | SDPA | flex | attnc | attnc run wall s (compile + first call) |")
    print("|---|---|---|---|---|")
    bad = 0
    for variant in a.variants:
        ref = reference(variant, q, k, v, doc_dev)

        def err(fn):
            nonlocal bad
            try:
                got = fn()
                e = ((got.double().cpu() - ref).norm() / ref.norm()).item()
                bad += not e <= tol
                return f"{e:.2e}" + ("" if e <= tol else " FAIL")
            except Exception as ex:  # a setup torch refuses is a finding too
                bad += 1
                return "error: " + short(ex)
        s_txt = "n/a"
        for name, fn in T.sdpa(variant, qd, kd, vd, doc_dev):  # the first of its backends that runs it
            try:
                fn()
            except Exception as ex:
                s_txt = f"error: {name}: {short(ex)}"
                continue
            s_txt = err(fn) + ("" if T.device == "cpu" else f" ({name})")
            break
        bad += s_txt.startswith("error")
        f_txt = err(T.flex(variant, qd, kd, vd, doc_dev, eager=True))
        a_txt, wall = "not run (no --attnc)", ""
        if a.attnc:
            o_path = os.path.join(work, f"check_o_{variant}.npy")
            cmd = [a.attnc, "run", os.path.join(HERE, "variants", VARIANTS[variant][0]), "--dtype", a.dtype,
                   "-o", o_path] + [x for n in "qkv" for x in (f"--{n}", os.path.join(work, f"check_{n}.npy"))]
            if a.attnc_backend:
                cmd += ["--backend", a.attnc_backend]
            if variant == "document":
                cmd += ["--tensor", "doc=" + os.path.join(work, "check_doc.npy")]
            _, e, w = run_attnc(cmd, 120)
            wall = f"{w:.2f}"
            a_txt = err(lambda: torch.from_numpy(np.load(o_path))) if e is None else "error: " + e
        print(f"| {variant} | {s_txt} | {f_txt} | {a_txt} | {wall} |")
    return bad


# ---- the table -------------------------------------------------------------------------------

def cells(a):
    for D in a.dims:
        for L in a.lengths:
            for variant in a.variants:
                yield variant, D, L, max(1, a.tokens // L), max(1, a.model_dim // D)


def tflops(kept, D, ms):
    return 4.0 * D * kept / (ms * 1e-3) / 1e12 if ms else None


def fmt(x, spec):
    return format(x, spec) if isinstance(x, (int, float)) else (x or "-")


def table(a, T, work):
    torch = T.torch if T else None
    rows = []
    print("\n| variant | D | L | B x H | attnc ms | SDPA ms | flex ms | attnc TFLOP/s | SDPA TFLOP/s | flex TFLOP/s "
          "| attnc/SDPA | attnc/flex | attnc compile ms | flex 1st call s | copies ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for variant, D, L, B, H in cells(a):
        r = {"variant": variant, "D": D, "L": L, "B": B, "H": H}
        left = a.deadline_epoch - time.time()
        if left < 20:
            r["skipped"] = "the time budget is spent"
            rows.append(r)
            print(f"| {variant} | {D} | {L} | {B}x{H} | skipped: the time budget is spent |")
            continue
        doc_path = os.path.join(work, f"doc{L}.npy")
        docs = doc_ids(L, 512) if variant == "document" else None
        if docs is not None:
            import numpy as np
            np.save(doc_path, docs)
        kept = kept_pairs(variant, B, H, L, docs)
        if a.attnc:
            out, e, wall = run_attnc(attnc_bench_cmd(a, variant, B, H, L, D, doc_path), min(120, left - 10))
            r.update({"attnc_" + k: x for k, x in out.items()}, attnc_error=e, attnc_wall_s=wall)
            if out.get("kept") not in (None, kept):
                print(f"note: attnc counts {out['kept']} kept pairs, this script {kept} ({variant}, L={L})")
        if T:
            q, k, v = (torch.randn(B, H, L, D, device=T.device, dtype=T.dtype) for _ in range(3))
            doc_dev = torch.from_numpy(docs).to(T.device) if docs is not None else None
            budget = a.budget_s
            best = None
            try:
                for name, fn in T.sdpa(variant, q, k, v, doc_dev):
                    try:
                        ms = time_ms(torch, T.device, fn, budget)
                        if best is None or ms < best[1]:
                            best = (name, ms)
                    except Exception as ex:
                        r.setdefault("sdpa_errors", []).append(f"{name}: {short(ex)}")
            except Exception as ex:  # the mask itself (memory)
                r.setdefault("sdpa_errors", []).append(short(ex))
            if best:
                r["sdpa_backend"], r["sdpa_ms"] = best
            try:
                t0 = time.time()
                fn = T.flex(variant, q, k, v, doc_dev)
                fn()
                if T.device == "cuda":
                    torch.cuda.synchronize()
                r["flex_first_s"] = time.time() - t0
                r["flex_ms"] = time_ms(torch, T.device, fn, budget)
            except Exception as ex:
                r["flex_error"] = short(ex)
            if T.device == "cuda":  # what attnc's host pointers cost at least: Q, K, V in, O out
                try:
                    host = torch.empty(4 * B * H * L * D, dtype=T.dtype)
                    qkv, o = host[: 3 * B * H * L * D], host[3 * B * H * L * D:]
                    dev = torch.empty_like(qkv, device="cuda")
                    r["copies_ms"] = time_ms(torch, "cuda", lambda: (dev.copy_(qkv), o.copy_(dev[: o.numel()])), 0.3)
                    del host, dev
                except Exception as ex:
                    r["copies_error"] = short(ex)
            del q, k, v
            if T.device == "cuda":
                torch.cuda.empty_cache()
        r["kept"] = kept
        rows.append(r)
        print_row(r)
    return rows


def print_row(r):
    D, kept = r["D"], r["kept"]
    at, st, ft = (tflops(kept, D, r.get(x)) for x in ("attnc_ms", "sdpa_ms", "flex_ms"))
    a_ms = fmt(r.get("attnc_ms"), ".3f") if not r.get("attnc_error") else "error: " + r["attnc_error"]
    if "attnc_wall_s" not in r:
        a_ms = "not run"
    s_ms = (f"{r['sdpa_ms']:.3f} ({r['sdpa_backend']})" if "sdpa_ms" in r else
            "error: " + "; ".join(r["sdpa_errors"]) if r.get("sdpa_errors") else
            "n/a" if VARIANTS[r["variant"]][1] is None else "-")
    f_ms = fmt(r.get("flex_ms"), ".3f") if "flex_error" not in r else "error: " + r["flex_error"]
    ratio = lambda x, y: f"{x / y:.2f}" if x and y else "-"  # noqa: E731 (throughput attnc / other)
    print(f"| {r['variant']} | {D} | {r['L']} | {r['B']}x{r['H']} | {a_ms} | {s_ms} | {f_ms} | {fmt(at, '.1f')} "
          f"| {fmt(st, '.1f')} | {fmt(ft, '.1f')} | {ratio(at, st)} | {ratio(at, ft)} "
          f"| {fmt(r.get('attnc_compile_ms'), '.1f')} | {fmt(r.get('flex_first_s'), '.1f')} "
          f"| {fmt(r.get('copies_ms'), '.3f')} |", flush=True)


# ---- main ------------------------------------------------------------------------------------

def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--attnc", help="the attnc binary (none: torch only)")
    p.add_argument("--attnc-backend", help="attnc's backend (default: cuda on --device cuda, the build's default on cpu)")
    p.add_argument("--dtype", choices=["bf16", "f16", "f32"], help="default bf16 (cpu: f32)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--dims", default="128,64")
    p.add_argument("--lengths", default="4096,16384")
    p.add_argument("--tokens", type=int, default=16384, help="B * L of every cell")
    p.add_argument("--model-dim", type=int, default=2048, help="H * D of every cell")
    p.add_argument("--quick", action="store_true", help="D = 128, L = 4096 only")
    p.add_argument("--budget-s", type=float, default=0.5, help="seconds of timed calls per torch measurement")
    p.add_argument("--attnc-reps", type=int, default=10)
    p.add_argument("--deadline-epoch", type=float, default=0, help="skip the cells left at this time (0: none)")
    p.add_argument("--out", help="write gpu_bench.json there")
    p.add_argument("--dry-run", action="store_true", help="print the commands and setups; run nothing")
    p.add_argument("--self-check", action="store_true", help="the check only (and --device cpu: tiny sizes)")
    a = p.parse_args(argv)
    a.variants = [x for x in a.variants.split(",") if x]
    unknown = [x for x in a.variants if x not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown} (known: {', '.join(VARIANTS)})")
    a.dims = [int(x) for x in a.dims.split(",")]
    a.lengths = [int(x) for x in a.lengths.split(",")]
    if a.quick:
        a.dims, a.lengths = [a.dims[0]], [a.lengths[0]]
    if a.device == "cpu" and a.self_check:  # tiny: the CPU smoke run of the whole path
        a.dims, a.lengths, a.tokens, a.model_dim, a.budget_s, a.attnc_reps = [64], [256], 256, 128, 0.05, 2
    a.dtype = a.dtype or ("f32" if a.device == "cpu" else "bf16")
    if a.attnc_backend is None and a.device == "cuda":
        a.attnc_backend = "cuda"
    if not a.deadline_epoch:
        a.deadline_epoch = time.time() + 1e9
    return a


def dry_run(a):
    print(f"would check {', '.join(a.variants)} at B=1 H=4 L=512 D=64 {a.dtype} on {a.device}: SDPA, flex and "
          f"`attnc run{' --backend ' + a.attnc_backend if a.attnc_backend else ''}` against float64")
    for variant, D, L, B, H in cells(a):
        mask_sdpa = VARIANTS[variant][1] or "n/a (SDPA has no score modification)"
        print(f"{variant} D={D} L={L} B={B} H={H}: SDPA {mask_sdpa}; flex "
              f"{'block mask ' if variant not in ('dense', 'softcap') else ''}"
              f"{'+ score_mod' if variant in ('alibi', 'softcap') else ''}".rstrip())
        if a.attnc:
            print("  " + " ".join(attnc_bench_cmd(a, variant, B, H, L, D, f"WORK/doc{L}.npy")))
    return 0


def main(argv):
    a = parse(argv)
    if a.dry_run:
        return dry_run(a)
    try:
        import torch
    except ImportError as e:
        print(f"PyTorch: not available ({e}): nothing measured")
        return 3
    if a.device == "cuda" and not torch.cuda.is_available():
        print("PyTorch sees no GPU: nothing measured (--device cpu for the smoke run)")
        return 3
    dtype = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[a.dtype]
    print(f"torch {torch.__version__}, device {a.device}"
          f"{' (' + torch.cuda.get_device_name() + ')' if a.device == 'cuda' else ''}, {a.dtype}; "
          f"attnc: {a.attnc or 'not given'}{' --backend ' + a.attnc_backend if a.attnc and a.attnc_backend else ''}")
    T = Torch(a.device, dtype, compile_flex=a.device == "cuda")
    with tempfile.TemporaryDirectory(prefix="attnc-gpu-") as work:
        bad = check(a, T, work)
        rows = table(a, T, work)
    print("\nattnc ms: `attnc bench` time/call (median of --reps); with --backend cuda it runs on device buffers, "
          "so no copies of Q, K, V or O are timed (the per-call tile map upload and geometry launch are); "
          "\"copies ms\": what torch's pageable copy of those bytes would add with host pointers; SDPA: the faster "
          "of its backends (named); ratios: attnc's TFLOP/s over the other's (4 * D * kept pairs / time); attnc "
          "compile ms: `attnc bench`'s compile line (NVRTC runs in its warm-up call: see the check's `attnc run` "
          "wall time); flex 1st call s: its torch.compile and first run.")
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "gpu_bench.json"), "w") as f:
            json.dump({"device": a.device, "dtype": a.dtype, "check_failures": bad, "rows": rows}, f, indent=1)
    if bad:
        print(f"check: {bad} failure(s) above")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
