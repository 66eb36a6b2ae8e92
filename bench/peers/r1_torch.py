#!/usr/bin/env python3
"""PyTorch peer of the R1 training benchmark (bench/training.ts).

R1: batch 128; 32x32x3 uint8 images cut into 8x8 patches (16 tokens, patchify by
reshape/permute + linear, as the TF.js model); 16-token captions, vocabulary 1000 (PAD = 0,
some padding); width 128, 2 pre-LN blocks per tower, 4 heads, MLP 512, GELU (tanh); d = 64;
CLIP on mean-pooled (masked) tokens, KME with every token a point (M = N = 16, LSE form);
symmetric InfoNCE; AdamW (betas 0.9/0.98, eps 1e-6, wd 0.1 on matrices) with global-norm
clipping 1, as stages/lib/model. torch.set_num_threads(threads).

Usage: r1_torch.py [--similarity clip|kme] [--threads 2] [--warmup 3] [--windows 5]
                   [--steps-per-window 4] [--embed] [--batch 128] [--device cpu|cuda]
Prints one JSON object: per-window samples/s ("windows") and their median, and (with --embed)
per-window inference throughput of the encoders ("images_per_s", "captions_per_s").
--batch and --device serve the GPU check (bench/gpu/check.sh: batch 512 on CUDA); the defaults
are the CPU benchmark's R1. On CUDA the model and the batches live on the GPU, and each step's
loss.item() waits for the GPU, so a window's wall time covers all of its steps' work.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

B, H, W, C, P = 128, 32, 32, 3, 8  # B: the default batch; --batch sets it (main())
L, VOCAB = 16, 1000
WIDTH, DEPTH, HEADS, MLP, D = 128, 2, 4, 512, 64


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(WIDTH)
        self.qkv = nn.Linear(WIDTH, 3 * WIDTH)
        self.out = nn.Linear(WIDTH, WIDTH)
        self.ln2 = nn.LayerNorm(WIDTH)
        self.fc1 = nn.Linear(WIDTH, MLP)
        self.fc2 = nn.Linear(MLP, WIDTH)

    def forward(self, x, bias):  # x [B, T, W]; bias [B, 1, 1, T] or None
        b, t, w = x.shape
        dh = w // HEADS
        q, k, v = self.qkv(self.ln1(x)).split(w, dim=-1)
        q, k, v = (z.reshape(b, t, HEADS, dh).transpose(1, 2) for z in (q, k, v))
        s = q @ k.transpose(-1, -2) / math.sqrt(dh)
        if bias is not None:
            s = s + bias
        a = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, w)
        x = x + self.out(a)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))


class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block() for _ in range(DEPTH)])
        self.lnf = nn.LayerNorm(WIDTH)

    def forward(self, x, bias=None):
        for blk in self.blocks:
            x = blk(x, bias)
        return self.lnf(x)


class Head(nn.Module):
    def __init__(self, kme):
        super().__init__()
        self.kme = kme
        self.proj = nn.Linear(WIDTH, D, bias=False)
        if kme:
            self.wt = nn.Linear(WIDTH, 1)
            nn.init.zeros_(self.wt.weight)
            nn.init.zeros_(self.wt.bias)

    def forward(self, x, mask):  # x [B, T, W]; mask [B, T] float or None
        if not self.kme:
            if mask is None:
                pooled = x.mean(1)
            else:
                pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
            return F.normalize(self.proj(pooled), dim=-1)[:, None, :], None
        u = F.normalize(self.proj(x), dim=-1)
        w = self.wt(x)[..., 0]
        if mask is not None:
            w = w.masked_fill(mask < 0.5, float("-inf"))
        return u, w


class R1(nn.Module):
    def __init__(self, kme):
        super().__init__()
        self.kme = kme
        self.patch = nn.Linear(P * P * C, WIDTH)
        self.img_pos = nn.Parameter(torch.randn(H // P * (W // P), WIDTH) * 0.02)
        self.img = Tower()
        self.img_head = Head(kme)
        self.tok = nn.Embedding(VOCAB, WIDTH)
        self.txt_pos = nn.Parameter(torch.randn(L, WIDTH) * 0.01)
        self.txt = Tower()
        self.txt_head = Head(kme)
        if kme:
            self.log_sigma2 = nn.Parameter(torch.tensor(math.log(0.07)))
        else:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_images(self, images):  # uint8 [B, H, W, C]
        b = images.shape[0]
        x = images.float() / 127.5 - 1
        x = x.reshape(b, H // P, P, W // P, P, C).permute(0, 1, 3, 2, 4, 5)
        x = self.patch(x.reshape(b, -1, P * P * C)) + self.img_pos
        return self.img_head(self.img(x), None)

    def encode_texts(self, ids):  # int64 [B, L]
        b = ids.shape[0]
        mask = (ids > 0).float()
        bias = ((1 - mask) * -1e9).reshape(b, 1, 1, L)
        x = self.tok(ids) + self.txt_pos
        return self.txt_head(self.txt(x, bias), mask)

    def logits(self, a, b):
        (u, wa), (v, wb) = a, b
        if not self.kme:
            scale = self.logit_scale.clamp(max=math.log(100)).exp()
            return scale * u[:, 0] @ v[:, 0].t()
        inv = (-self.log_sigma2.clamp(math.log(0.01), math.log(10))).exp()
        b1, m, d = u.shape
        b2, n, _ = v.shape
        la = wa.log_softmax(-1).reshape(b1 * m, 1)
        lb = wb.log_softmax(-1).reshape(1, b2 * n)
        g = (u.reshape(b1 * m, d) @ v.reshape(b2 * n, d).t()) * inv + la + lb
        g = g.reshape(b1, m, b2, n).transpose(1, 2).reshape(b1, b2, m * n)
        return torch.logsumexp(g, -1) - inv

    def loss(self, images, ids):
        s = self.logits(self.encode_images(images), self.encode_texts(ids))
        y = torch.arange(s.shape[0], device=s.device)
        return (F.cross_entropy(s, y) + F.cross_entropy(s.t(), y)) / 2


def batch(gen):  # on the CPU generator, so the data do not depend on --device
    images = torch.randint(0, 256, (B, H, W, C), dtype=torch.uint8, generator=gen)
    ids = torch.randint(2, VOCAB, (B, L), generator=gen)
    lengths = torch.randint(4, L + 1, (B,), generator=gen)
    ids[torch.arange(L)[None, :] >= lengths[:, None]] = 0
    return images, ids


def set_batch(n):
    # batch() and the rates read the module-level B; its default keeps the CPU benchmark's R1.
    global B
    B = n


def sync(dev):
    # Inference reads no result back, so on CUDA wait for the queued kernels before timing.
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--similarity", default="clip", choices=["clip", "kme"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--steps-per-window", type=int, default=4)
    ap.add_argument("--embed", action="store_true")
    ap.add_argument("--batch", type=int, default=B)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = ap.parse_args()
    set_batch(a.batch)
    dev = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    kme = a.similarity == "kme"
    model = R1(kme).to(dev)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "pos" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
        lr=5e-4, betas=(0.9, 0.98), eps=1e-6)
    batches = [tuple(t.to(dev) for t in batch(gen)) for _ in range(8)]

    def step(i):
        images, ids = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        loss = model.loss(images, ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            if kme:
                model.log_sigma2.clamp_(math.log(0.01), math.log(10))
            else:
                model.logit_scale.clamp_(max=math.log(100))
        return loss.item()

    i = 0
    losses = []
    for _ in range(a.warmup):
        losses.append(step(i))
        i += 1
    rates = []
    for _ in range(a.windows):
        t0 = time.perf_counter()
        for _ in range(a.steps_per_window):
            losses.append(step(i))
            i += 1
        rates.append(a.steps_per_window * B / (time.perf_counter() - t0))
    out = {
        "peer": "pytorch",
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "similarity": a.similarity,
        "batch": B,
        "device": a.device,
        "parameters": sum(p.numel() for p in model.parameters()),
        "samples_per_s": sorted(rates)[len(rates) // 2],
        "windows": rates,
        "losses": losses,
    }
    if dev.type == "cuda":
        out["device_name"] = torch.cuda.get_device_name(dev)
    if a.embed:
        model.eval()
        images, ids = batches[0]
        with torch.inference_mode():
            for _ in range(2):
                model.encode_images(images)
                model.encode_texts(ids)
            ri, rt = [], []
            for _ in range(a.windows):
                t0 = time.perf_counter()
                for _ in range(a.steps_per_window):
                    model.encode_images(images)
                sync(dev)
                ri.append(a.steps_per_window * B / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                for _ in range(a.steps_per_window):
                    model.encode_texts(ids)
                sync(dev)
                rt.append(a.steps_per_window * B / (time.perf_counter() - t0))
        out["images_per_s"] = ri
        out["captions_per_s"] = rt
    print(json.dumps(out))


if __name__ == "__main__":
    main()
