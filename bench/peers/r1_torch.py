#!/usr/bin/env python3
"""PyTorch peer of the training benchmark (bench/training.ts, bench/r1.ts): cases R1 and C1.

R1 (--case r1, the default): batch 128; 32x32x3 uint8 images cut into 8x8 patches (16 tokens,
patchify by reshape/permute + linear, as the TF.js model); 16-token captions, vocabulary 1000
(PAD = 0, some padding); width 128, 2 pre-LN blocks per tower, 4 heads, MLP 512; d = 64.
C1 (--case c1, experiments/coco.yaml's model and batch): batch 256; 64x64x3 images in 8x8
patches (64 tokens); 32-token captions, vocabulary 20000; vision width 256, depth 6, 8 heads,
MLP 1024; text width 256, depth 4, 8 heads, MLP 1024; d = 256.
Both: GELU (tanh), learned positions; CLIP on mean-pooled (masked) tokens, KME with every token
a point (LSE form: logits [B*M, B*N] then a blockwise logsumexp, as stages/lib/similarity/kme.ts);
symmetric InfoNCE; AdamW (lr 5e-4, betas 0.9/0.98, eps 1e-6, wd 0.1 on matrices) with
global-norm clipping 1, as stages/lib/model. torch.set_num_threads(threads).

Usage: r1_torch.py [--case r1|c1] [--similarity clip|kme] [--threads 2] [--warmup 3]
                   [--windows 5] [--steps-per-window 4] [--embed] [--batch N]
                   [--device cpu|cuda]
Prints one JSON object: per-window samples/s ("windows") and their median, every step's loss
("losses", warm-up first), and (with --embed) per-window inference throughput of the encoders
("images_per_s", "captions_per_s"). --batch defaults to the case's.

A step mirrors ours (bench/training.ts): the batch goes from host memory to the device, forward,
backward, clipping, AdamW, clamping; nothing is read back. A window's clock starts after
torch.cuda.synchronize() and stops after the next one (on the CPU both are no-ops and every op
is synchronous); the window's losses are read after its clock stopped. On CUDA: fp32 with TF32
off (matmul and cuDNN), eager (no torch.compile), batches in pinned host memory copied with
non_blocking=True (as a DataLoader with pin_memory does), the model on the GPU, AdamW fused
where torch has it (>= 2.0; "adamw" in the output says which ran).

Two formulations of the same model (--formulation):
- mirror (default): attention and the KME logits written out as in our model, so the peer
  computes exactly what ours computes;
- idiomatic: what a PyTorch user writes: the patches through nn.Conv2d(kernel = stride = patch)
  (open_clip's patch embedding), nn.TransformerEncoderLayer(norm_first=True, batch_first=True,
  activation="gelu" (the exact erf GELU, where ours has the tanh form), dropout 0) with
  src_key_padding_mask, F.normalize, and KME's log mean embedding as one
  torch.logsumexp over an einsum's [B, B, M*N] view. Same sizes, parameters (up to layout),
  loss and optimiser; the benchmark quotes ours against the faster of the two.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# Per case: image (H, W, C, patch), caption length L and vocabulary, both towers
# (width, depth, heads, mlp), point dimension D, default batch B (bench/r1.ts).
CASES = {
    "r1": dict(B=128, H=32, W=32, C=3, P=8, L=16, VOCAB=1000, D=64,
               vision=(128, 2, 4, 512), text=(128, 2, 4, 512)),
    "c1": dict(B=256, H=64, W=64, C=3, P=8, L=32, VOCAB=20000, D=256,
               vision=(256, 6, 8, 1024), text=(256, 4, 8, 1024)),
}


class Block(nn.Module):
    def __init__(self, width, heads, mlp):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, mlp)
        self.fc2 = nn.Linear(mlp, width)

    def forward(self, x, bias):  # x [B, T, W]; bias [B, 1, 1, T] or None
        b, t, w = x.shape
        dh = w // self.heads
        q, k, v = self.qkv(self.ln1(x)).split(w, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, dh).transpose(1, 2) for z in (q, k, v))
        s = q @ k.transpose(-1, -2) / math.sqrt(dh)
        if bias is not None:
            s = s + bias
        a = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, w)
        x = x + self.out(a)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))


class Tower(nn.Module):
    def __init__(self, width, depth, heads, mlp):
        super().__init__()
        self.blocks = nn.ModuleList([Block(width, heads, mlp) for _ in range(depth)])
        self.lnf = nn.LayerNorm(width)

    def forward(self, x, bias=None):
        for blk in self.blocks:
            x = blk(x, bias)
        return self.lnf(x)


class Head(nn.Module):
    def __init__(self, kme, width, d):
        super().__init__()
        self.kme = kme
        self.proj = nn.Linear(width, d, bias=False)
        if kme:
            self.wt = nn.Linear(width, 1)
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


class Model(nn.Module):
    def __init__(self, cfg, kme):
        super().__init__()
        self.cfg = cfg
        self.kme = kme
        c = cfg
        vw, tw = c["vision"][0], c["text"][0]
        self.patch = nn.Linear(c["P"] * c["P"] * c["C"], vw)
        self.img_pos = nn.Parameter(torch.randn(c["H"] // c["P"] * (c["W"] // c["P"]), vw) * 0.02)
        self.img = Tower(*c["vision"])
        self.img_head = Head(kme, vw, c["D"])
        self.tok = nn.Embedding(c["VOCAB"], tw)
        self.txt_pos = nn.Parameter(torch.randn(c["L"], tw) * 0.01)
        self.txt = Tower(*c["text"])
        self.txt_head = Head(kme, tw, c["D"])
        if kme:
            self.log_sigma2 = nn.Parameter(torch.tensor(math.log(0.07)))
        else:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_images(self, images):  # uint8 [B, H, W, C]
        c = self.cfg
        h, w, ch, p = c["H"], c["W"], c["C"], c["P"]
        b = images.shape[0]
        x = images.float() / 127.5 - 1
        x = x.reshape(b, h // p, p, w // p, p, ch).permute(0, 1, 3, 2, 4, 5)
        x = self.patch(x.reshape(b, -1, p * p * ch)) + self.img_pos
        return self.img_head(self.img(x), None)

    def encode_texts(self, ids):  # int64 [B, L]
        b, l = ids.shape
        mask = (ids > 0).float()
        bias = ((1 - mask) * -1e9).reshape(b, 1, 1, l)
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


class IdiomaticModel(Model):
    """The same model as a PyTorch user writes it (see the module docstring)."""

    def __init__(self, cfg, kme):
        super().__init__(cfg, kme)
        c = cfg

        def tower(width, depth, heads, mlp):
            layer = nn.TransformerEncoderLayer(
                width, heads, mlp, dropout=0.0, activation="gelu", batch_first=True,
                norm_first=True)
            return nn.ModuleDict({"enc": nn.TransformerEncoder(layer, depth, enable_nested_tensor=False),
                                  "lnf": nn.LayerNorm(width)})

        del self.img, self.txt, self.patch
        self.conv = nn.Conv2d(c["C"], c["vision"][0], kernel_size=c["P"], stride=c["P"])
        self.img_t = tower(*c["vision"])
        self.txt_t = tower(*c["text"])

    def encode_images(self, images):  # uint8 [B, H, W, C]
        x = images.permute(0, 3, 1, 2).float() / 127.5 - 1
        x = self.conv(x).flatten(2).transpose(1, 2) + self.img_pos
        return self.img_head(self.img_t["lnf"](self.img_t["enc"](x)), None)

    def encode_texts(self, ids):  # int64 [B, L]
        pad = ids == 0
        x = self.tok(ids) + self.txt_pos
        x = self.txt_t["lnf"](self.txt_t["enc"](x, src_key_padding_mask=pad))
        return self.txt_head(x, (~pad).float())

    def logits(self, a, b):
        (u, wa), (v, wb) = a, b
        if not self.kme:
            return super().logits(a, b)
        inv = (-self.log_sigma2.clamp(math.log(0.01), math.log(10))).exp()
        g = torch.einsum("imd,jnd->ijmn", u, v) * inv
        g = g + wa.log_softmax(-1)[:, None, :, None] + wb.log_softmax(-1)[None, :, None, :]
        return torch.logsumexp(g.flatten(2), -1) - inv


def make_batch(cfg, n, gen):  # on the CPU generator, so the data do not depend on --device
    images = torch.randint(0, 256, (n, cfg["H"], cfg["W"], cfg["C"]), dtype=torch.uint8,
                           generator=gen)
    L = cfg["L"]
    ids = torch.randint(2, cfg["VOCAB"], (n, L), generator=gen)
    lengths = torch.randint(4, L + 1, (n,), generator=gen)
    ids[torch.arange(L)[None, :] >= lengths[:, None]] = 0
    return images, ids


def sync(dev):
    # Nothing is read back inside a window, so on CUDA wait for the queued kernels around it.
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="r1", choices=sorted(CASES))
    ap.add_argument("--similarity", default="clip", choices=["clip", "kme"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--steps-per-window", type=int, default=4)
    ap.add_argument("--embed", action="store_true")
    ap.add_argument("--batch", type=int, default=0, help="0: the case's batch")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--formulation", default="mirror", choices=["mirror", "idiomatic"])
    a = ap.parse_args()
    cfg = CASES[a.case]
    B = a.batch or cfg["B"]
    dev = torch.device(a.device)
    if dev.type == "cuda":
        # fp32 as ours (WebGPU has no TF32): no TF32 in matmuls or cuDNN.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    kme = a.similarity == "kme"
    model = (IdiomaticModel if a.formulation == "idiomatic" else Model)(cfg, kme).to(dev)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "pos" not in n)]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}]
    hyper = dict(lr=5e-4, betas=(0.9, 0.98), eps=1e-6)
    adamw = "default"
    if dev.type == "cuda":
        # The fastest AdamW PyTorch has on CUDA (one fused kernel, torch >= 2.0; as ours applies
        # one flat update); the multi-tensor (foreach) default where fused is not available.
        try:
            opt = torch.optim.AdamW(groups, fused=True, **hyper)
            adamw = "fused"
        except (TypeError, RuntimeError, ValueError):
            opt = torch.optim.AdamW(groups, **hyper)
    else:
        opt = torch.optim.AdamW(groups, **hyper)
    # Host batches (pinned on CUDA), copied to the device every step, as a training loop does.
    pin = dev.type == "cuda"
    batches = [tuple(t.pin_memory() if pin else t for t in make_batch(cfg, B, gen))
               for _ in range(4)]

    def step(i):  # queues one step; returns its loss (a 0-dim tensor, not read)
        images, ids = (t.to(dev, non_blocking=pin) for t in batches[i % len(batches)])
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
        return loss.detach()

    i = 0
    losses = []
    for _ in range(a.warmup):
        losses.append(step(i).item())
        i += 1
    rates = []
    for _ in range(a.windows):
        pending = []
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(a.steps_per_window):
            pending.append(step(i))
            i += 1
        sync(dev)
        rates.append(a.steps_per_window * B / (time.perf_counter() - t0))
        losses.extend(x.item() for x in pending)
    out = {
        "peer": "pytorch",
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "case": a.case,
        "similarity": a.similarity,
        "formulation": a.formulation,
        "batch": B,
        "device": a.device,
        "parameters": sum(p.numel() for p in model.parameters()),
        "adamw": adamw,
        "samples_per_s": sorted(rates)[len(rates) // 2] if rates else None,
        "windows": rates,
        "losses": losses,
    }
    if dev.type == "cuda":
        out["device_name"] = torch.cuda.get_device_name(dev)
        out["tf32"] = [torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32]
        out["max_memory_allocated_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
    if a.embed:
        model.eval()
        images, ids = (t.to(dev) for t in batches[0])
        with torch.inference_mode():
            for _ in range(2):
                model.encode_images(images)
                model.encode_texts(ids)
            ri, rt = [], []
            for _ in range(a.windows):
                sync(dev)
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
