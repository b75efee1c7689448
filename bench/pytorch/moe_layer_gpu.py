"""PyTorch eager reference for issue 15's check "one MoE layer (T 8192, H 4096, F 14336, E 8,
top-2) forward and backward at least as fast as PyTorch eager on the same machine": ONE MoE
layer's forward and backward written the way a PyTorch user writes it (HF Mixtral's loop over
experts, eager mode, no torch.compile), timed on a GPU (or on the CPU with small shapes).

  x [T, H] float32, router Wr [H, E] float32      (both require grad)
  logits = x @ Wr                                  float32
  probs  = softmax(logits) over E                  float32
  w, selected = top-k(probs); w = w / sum(w)       Mixtral: softmax, top-k, renormalise the k
  experts e = 0..E-1, bfloat16 (--expert-dtype):   Wg[e] [H, F], Wu[e] [H, F], Wd[e] [F, H]
  out = zeros [T, H] float32
  for e in range(E):
      token, slot = torch.where(selected == e)
      xe = x[token].to(bf16)
      ye = (silu(xe @ Wg[e]) * (xe @ Wu[e])) @ Wd[e]         bf16 GEMMs, fp32 accumulation
      out.index_add_(0, token, ye.float() * w[token, slot, None])
  out.backward(dy)                                 dy [T, H] float32, fixed random;
                                                   gradients to x, Wr and every expert weight

Model FLOPs per step (forward + backward), with k = --topk (every token is routed to exactly k
distinct experts, so T*k rows go through the experts whatever the routing):
  forward   2*T*H*E  (router)  +  6*T*k*H*F   (3 GEMMs of 2*H*F per routed row)
  backward  4*T*H*E  (router)  + 12*T*k*H*F   (twice the forward's expert GEMMs)
  total     6*T*H*E + 18*T*k*H*F
"tflops" is that total / the median step's seconds / 1e12 (elementwise work, softmax, top-k,
gathers and index_add_ are not counted).

Each rep is one forward + backward, gradients set to None before it (untimed); on CUDA a rep is
timed with a torch.cuda.Event pair between torch.cuda.synchronize() calls, on the CPU with
time.perf_counter. Init is deterministic (torch.manual_seed(--seed)): x ~ N(0, 1),
Wr and expert weights ~ N(0, 0.02), dy ~ N(0, 1).

Prints one JSON object on stdout: {"torch", "device", "dtype", "shape", "msPerStep" (each timed
rep), "medianMs", "tflops", "flopsPerStep", "peakMemoryBytes" (torch.cuda.max_memory_allocated(),
null on the CPU)}. --check (meant for small shapes) also runs a dense reference without routing
loops (every expert on every token in one batched matmul, out[t] = sum over t's k experts of
w * expert MLP(x[t]), via a [T, E] gate matrix that is zero off the selected experts) from copies
of the same inputs and adds "check": max abs differences of out and of the gradients of x, Wr
and the expert weights, each with the reference's max abs value. Errors (no CUDA when a CUDA
device is asked for, out of memory, anything else at run time) print {"error": "..."} and exit 1;
a bad argument exits 2.

  /opt/torch/.venv/bin/python bench/pytorch/moe_layer_gpu.py                  # the issue's shape
  python3 bench/pytorch/moe_layer_gpu.py --device cpu --tokens 64 --hidden 32 --ffn 48 \\
      --experts 4 --topk 2 --warmup 1 --reps 2 --check
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda if available, else cpu)")
    for name, default in [
        ("tokens", 8192), ("hidden", 4096), ("ffn", 14336), ("experts", 8), ("topk", 2),
        ("warmup", 2), ("reps", 5), ("seed", 1),
    ]:
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--expert-dtype", choices=sorted(DTYPES), default="bfloat16")
    p.add_argument("--check", action="store_true", help="compare with a dense reference (small shapes)")
    a = p.parse_args()
    if min(a.tokens, a.hidden, a.ffn, a.experts, a.topk, a.reps) < 1 or a.warmup < 0 or a.topk > a.experts:
        print("moe_layer_gpu.py: sizes and --reps must be >= 1, --warmup >= 0, --topk <= --experts", file=sys.stderr)
        sys.exit(2)
    return a


def fail(message):
    print(json.dumps({"error": message}))
    sys.exit(1)


def init(a, device, dtype):
    """Deterministic inputs and parameters (all leaves requiring grad) and the fixed dy."""
    torch.manual_seed(a.seed)
    t, h, f, e = a.tokens, a.hidden, a.ffn, a.experts

    def param(shape, std, dt):
        return (torch.randn(shape, device=device) * std).to(dt).requires_grad_()

    x = param((t, h), 1.0, torch.float32)
    wr = param((h, e), 0.02, torch.float32)
    wg = [param((h, f), 0.02, dtype) for _ in range(e)]
    wu = [param((h, f), 0.02, dtype) for _ in range(e)]
    wd = [param((f, h), 0.02, dtype) for _ in range(e)]
    dy = torch.randn((t, h), device=device)
    return x, wr, wg, wu, wd, dy


def route(x, wr, k):
    logits = x @ wr
    probs = logits.softmax(-1)
    weights, selected = probs.topk(k, dim=-1)
    weights = weights / weights.sum(-1, keepdim=True)
    return weights, selected


def moe_layer(x, wr, wg, wu, wd, k, dtype):
    """HF Mixtral's loop over experts: gather each expert's rows, SwiGLU MLP, index_add_."""
    weights, selected = route(x, wr, k)
    out = torch.zeros_like(x)
    for e in range(len(wg)):
        token, slot = torch.where(selected == e)
        if token.numel() == 0:
            continue
        xe = x[token].to(dtype)
        ye = (F.silu(xe @ wg[e]) * (xe @ wu[e])) @ wd[e]
        out.index_add_(0, token, ye.float() * weights[token, slot, None])
    return out


def dense_reference(x, wr, wg, wu, wd, k, dtype):
    """No routing loops: every expert on every token (one batched matmul per projection), then
    out[t] = sum_e gate[t, e] * Y[e, t] with gate = the renormalised top-k weights scattered
    into [T, E] (zero off the selected experts)."""
    weights, selected = route(x, wr, k)
    gate = torch.zeros(x.shape[0], wr.shape[1], device=x.device).scatter(1, selected, weights)
    xb = x.to(dtype).unsqueeze(0)                      # [1, T, H]
    y = (F.silu(xb @ wg) * (xb @ wu)) @ wd             # [E, T, H]
    return (gate.t().unsqueeze(-1) * y.float()).sum(0)


def check(a, x, wr, wg, wu, wd, dy, dtype):
    params = [x, wr, *wg, *wu, *wd]
    for p in params:
        p.grad = None
    out = moe_layer(x, wr, wg, wu, wd, a.topk, dtype)
    out.backward(dy)

    def leaf(t):
        return t.detach().clone().requires_grad_()

    rx, rwr = leaf(x), leaf(wr)
    rwg, rwu, rwd = (leaf(torch.stack([w.detach() for w in ws])) for ws in (wg, wu, wd))
    ref = dense_reference(rx, rwr, rwg, rwu, rwd, a.topk, dtype)
    ref.backward(dy)

    def diff(got, want):
        return {"maxAbsDiff": (got.float() - want.float()).abs().max().item(),
                "refMaxAbs": want.float().abs().max().item()}

    def grads(ws):  # an expert no token was routed to has no gradient: zero
        return torch.stack([w.grad if w.grad is not None else torch.zeros_like(w) for w in ws])

    return {
        "reference": "dense: all experts on all tokens, [T, E] gate matrix, no routing loops",
        "out": diff(out.detach(), ref.detach()),
        "dx": diff(x.grad, rx.grad),
        "dWr": diff(wr.grad, rwr.grad),
        "dWg": diff(grads(wg), rwg.grad),
        "dWu": diff(grads(wu), rwu.grad),
        "dWd": diff(grads(wd), rwd.grad),
    }


def run(a, device, dtype):
    cuda = device.type == "cuda"
    x, wr, wg, wu, wd, dy = init(a, device, dtype)
    params = [x, wr, *wg, *wu, *wd]
    times = []
    for rep in range(a.warmup + a.reps):
        for p in params:
            p.grad = None
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
        else:
            t0 = time.perf_counter()
        out = moe_layer(x, wr, wg, wu, wd, a.topk, dtype)
        out.backward(dy)
        if cuda:
            end.record()
            torch.cuda.synchronize(device)
            ms = start.elapsed_time(end)
        else:
            ms = (time.perf_counter() - t0) * 1e3
        del out
        if rep >= a.warmup:
            times.append(ms)
    t, h, f, e, k = a.tokens, a.hidden, a.ffn, a.experts, a.topk
    flops = 6 * t * h * e + 18 * t * k * h * f
    median = statistics.median(times)
    result = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "dtype": f"{a.expert_dtype} experts, float32 router",
        "shape": {"tokens": t, "hidden": h, "ffn": f, "experts": e, "topk": k},
        "msPerStep": times,
        "medianMs": median,
        "tflops": flops / (median / 1e3) / 1e12,
        "flopsPerStep": flops,
        "peakMemoryBytes": torch.cuda.max_memory_allocated(device) if cuda else None,
    }
    if a.check:
        result["check"] = check(a, x, wr, wg, wu, wd, dy, dtype)
    return result


def main():
    a = parse()
    name = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        fail(f"bad --device {name!r}: {err}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            fail(f"--device {name}: CUDA is not available (torch {torch.__version__})")
        if device.index is not None:
            if device.index >= torch.cuda.device_count():
                fail(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
            torch.cuda.set_device(device)
    elif device.type != "cpu":
        fail(f"--device {name}: only cuda and cpu are supported")
    try:
        result = run(a, device, DTYPES[a.expert_dtype])
    except Exception as err:  # out of memory (torch.cuda.OutOfMemoryError is a RuntimeError) and the rest
        kind = "out of memory" if "out of memory" in str(err).lower() else type(err).__name__
        fail(f"{kind}: {str(err)[:2000]}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
