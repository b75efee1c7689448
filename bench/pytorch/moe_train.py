"""PyTorch eager reference for bench/suites/pytorch.ts: the model `pleat train` trains, written
the way a PyTorch user writes it (HF Mixtral-style experts: a loop over experts with
index_select / index_add_), trained with torch.optim.AdamW on the CPU, float32.

  x = embed(tokens)                                   tied output layer unless --untie
  per layer:  x = x + Wo attn(rope(Wq n), rope(Wk n), Wv n),  n = rmsnorm(x)   causal, GQA
              x = x + moe(rmsnorm(x))                 router logits -> top-k -> softmax over
                                                      the k; experts SwiGLU w2(silu(w1 n) * w3 n)
              aux loss: coeff * E / (K T^2) * sum_e (sum_t softmax(logits)[t,e]) * count_e
  logits = rmsnorm(x) @ embed^T, mean cross-entropy over next tokens

Prints one JSON object: {"torch", "threads", "blas", "stepSeconds": [...], "tokensPerSecond"}
(tokens/s from the median of the steps after --warmup). Exit 2 on a bad argument.
"""

import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in [
        ("hidden", 32), ("moe-ffn", 32), ("experts", 8), ("topk", 2), ("seq", 16), ("layers", 4),
        ("heads", 4), ("kv-heads", 2), ("vocab", 32), ("global-batch", 1), ("micro-batch", 1),
        ("steps", 6), ("warmup", 2), ("threads", 0), ("seed", 1),
    ]:
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--aux-coeff", type=float, default=0.01)
    p.add_argument("--untie", action="store_true")
    a = p.parse_args()
    if a.hidden % a.heads != 0 or a.heads % a.kv_heads != 0 or a.topk > a.experts:
        print("moe_train.py: --hidden must divide by --heads, --heads by --kv-heads, --topk <= --experts", file=sys.stderr)
        sys.exit(2)
    if a.global_batch % a.micro_batch != 0 or a.steps <= a.warmup:
        print("moe_train.py: --global-batch must divide by --micro-batch and --steps exceed --warmup", file=sys.stderr)
        sys.exit(2)
    return a


def rms_norm(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(seq, dim, theta=10000.0):
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    angles = torch.outer(torch.arange(seq, dtype=torch.float32), inv)
    return angles.cos(), angles.sin()


def rope(x, cos, sin):
    # x [B, heads, S, D]: rotate (even, odd) pairs
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


class Layer(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        h, hd = a.hidden, a.hidden // a.heads
        self.a, self.hd = a, hd
        self.attn_norm = torch.nn.Parameter(torch.ones(h))
        self.wq = torch.nn.Linear(h, a.heads * hd, bias=False)
        self.wk = torch.nn.Linear(h, a.kv_heads * hd, bias=False)
        self.wv = torch.nn.Linear(h, a.kv_heads * hd, bias=False)
        self.wo = torch.nn.Linear(a.heads * hd, h, bias=False)
        self.ffn_norm = torch.nn.Parameter(torch.ones(h))
        self.router = torch.nn.Linear(h, a.experts, bias=False)
        self.w1 = torch.nn.ModuleList(torch.nn.Linear(h, a.moe_ffn, bias=False) for _ in range(a.experts))
        self.w3 = torch.nn.ModuleList(torch.nn.Linear(h, a.moe_ffn, bias=False) for _ in range(a.experts))
        self.w2 = torch.nn.ModuleList(torch.nn.Linear(a.moe_ffn, h, bias=False) for _ in range(a.experts))

    def attention(self, x, cos, sin, mask):
        a, hd = self.a, self.hd
        b, s, _ = x.shape
        n = rms_norm(x, self.attn_norm)
        q = rope(self.wq(n).view(b, s, a.heads, hd).transpose(1, 2), cos, sin)
        k = rope(self.wk(n).view(b, s, a.kv_heads, hd).transpose(1, 2), cos, sin)
        v = self.wv(n).view(b, s, a.kv_heads, hd).transpose(1, 2)
        group = a.heads // a.kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        if hasattr(F, "scaled_dot_product_attention"):  # PyTorch 2: the fused (flash) CPU kernel
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # PyTorch 1: scale q (not the [S, S] scores), mask, softmax
            out = ((q * (1.0 / math.sqrt(hd))) @ k.transpose(-1, -2) + mask).softmax(-1) @ v
        out = out.transpose(1, 2).reshape(b, s, a.heads * hd)
        return x + self.wo(out)

    def moe(self, x):
        a = self.a
        shape = x.shape
        n = rms_norm(x, self.ffn_norm).reshape(-1, shape[-1])
        logits = self.router(n)
        top, chosen = logits.topk(a.topk, dim=-1)
        probs = top.softmax(-1)
        out = torch.zeros_like(n)
        counts = torch.zeros(a.experts)
        for e in range(a.experts):
            token, slot = (chosen == e).nonzero(as_tuple=True)
            counts[e] = token.numel()
            if token.numel() == 0:
                continue
            rows = n.index_select(0, token)
            y = self.w2[e](F.silu(self.w1[e](rows)) * self.w3[e](rows))
            out.index_add_(0, token, y * probs[token, slot].unsqueeze(-1))
        tokens = n.shape[0]
        aux = a.aux_coeff * a.experts / (a.topk * tokens * tokens) * (logits.softmax(-1).sum(0) * counts).sum()
        return x + out.view(shape), aux


class Model(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = torch.nn.Embedding(a.vocab, a.hidden)
        torch.nn.init.normal_(self.embed.weight, std=0.02)
        self.layers = torch.nn.ModuleList(Layer(a) for _ in range(a.layers))
        self.norm = torch.nn.Parameter(torch.ones(a.hidden))
        self.head = torch.nn.Linear(a.hidden, a.vocab, bias=False) if a.untie else None
        cos, sin = rope_tables(a.seq, a.hidden // a.heads)
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)
        self.register_buffer("mask", torch.full((a.seq, a.seq), float("-inf")).triu(1))

    def forward(self, tokens, targets):
        x = self.embed(tokens)
        aux = x.new_zeros(())
        for layer in self.layers:
            x = layer.attention(x, self.cos, self.sin, self.mask)
            x, layer_aux = layer.moe(x)
            aux = aux + layer_aux
        n = rms_norm(x, self.norm)
        logits = self.head(n) if self.head is not None else n @ self.embed.weight.t()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)) + aux


def main():
    a = parse()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Model(a)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)
    micro = a.global_batch // a.micro_batch
    times = []
    for _ in range(a.steps):
        data = torch.randint(0, a.vocab, (micro, a.micro_batch, a.seq + 1))
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for m in range(micro):
            loss = model(data[m, :, :-1], data[m, :, 1:]) / micro
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - start)
    measured = times[a.warmup:]
    with open("/proc/self/maps") as maps:
        blas = sorted({line.split()[-1] for line in maps if "blas" in line.split()[-1].lower()})
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas": blas,
        "stepSeconds": measured,
        "tokensPerSecond": a.global_batch * a.seq / statistics.median(measured),
        "loss": float(loss) * micro,
    }))


if __name__ == "__main__":
    main()
