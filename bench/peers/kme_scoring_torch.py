#!/usr/bin/env python3
"""PyTorch peer of the KME retrieval-scoring benchmark (bench/kme_scoring_standalone.ts, run by
`deno task bench evaluation`).

Measures the wall and process-CPU time to score the full [nI x nC] KME matrix (nC = 5 nI) on
random COCO-5k-shaped data (P = 16 L2-normalised points in d = 64 per set, weights = softmax of
logits uniform in [-1, 1], sigma2 = 0.05, float32) and to rank it like stages/lib/eval/retrieval.ts
(two streaming phases: relevant-pair scores first, then per-block counts of competitors scoring
>= them; pessimistic ties). Data generation is not timed. Caption c belongs to image c // 5.

  s(i, c) = logsumexp_{m,n}(<u_m, v_n> / sigma2 + log alpha_m + log beta_n) - 1 / sigma2

Formulation (fastest of those tried, see FORMULATION): the log-weights and -1/sigma2 are folded
into one matmul by two extra columns, [u/sigma2, la - 1/sigma2, 1] . [v, 1, lb] = x, so a block is
mm (into a preallocated buffer) -> exp_ in place -> sum over the two point axes -> log. No max is
subtracted: x <= 0 (|<u, v>| <= 1, log-weights <= 0) and x >= -2/sigma2 + 2 log(min weight) ~ -50,
so exp neither overflows nor underflows in float32 and the result equals the max-shifted LSE up to
rounding (~5e-6 vs a float64 reference). Tried at 256 images x 8192 captions, 2 threads, on a
loaded 2-core machine: torch.logsumexp(dim=(1, 3)) on the [bi, P, bc, P] view ~0.18 Mpairs/s;
exp-kernel then alpha/beta weighting by bmm or multiply+sum ~0.2 Mpairs/s (fresh allocations);
folded matmul + exp_ + sum ~0.3 Mpairs/s with fresh allocations, 1.5-2.0 with a preallocated
buffer (out=; 128 MiB fresh tensors per block cost ~1 s of page faults). Block 64 x 2048 was
as fast as or faster than 32x1024, 128x2048, 256x1024.

Usage: kme_scoring_torch.py [--images 5000] [--threads 2]
Prints one JSON line on stdout; progress goes to stderr.
"""
import argparse
import json
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--images", type=int, default=5000)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))  # before torch loads OpenBLAS
import torch  # noqa: E402

P, D, SIGMA2, CPI, BI, BC = 16, 64, 0.05, 5, 64, 2048
FORMULATION = f"folded-weight mm(out=) + exp_ + sum(1,3) + log, no max shift; blocks {BI}x{BC}"
INV = 1.0 / SIGMA2


def random_sets(n):
    x = torch.rand(n, P, D) * 2 - 1
    x /= x.norm(dim=-1, keepdim=True)
    return x, torch.log_softmax(torch.rand(n, P) * 2 - 1, dim=-1)


def main():
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    nI = args.images
    nC = CPI * nI
    U, la = random_sets(nI)
    V, lb = random_sets(nC)
    caption_image = torch.arange(nC) // CPI

    t0, cpu0 = time.perf_counter(), time.process_time()
    one = lambda n: torch.ones(n * P, 1)  # noqa: E731
    A = torch.cat([U.reshape(-1, D) * INV, la.reshape(-1, 1) - INV, one(nI)], 1)  # [nI*P, D+2]
    B = torch.cat([V.reshape(-1, D), one(nC), lb.reshape(-1, 1)], 1)  # [nC*P, D+2]

    # Phase 1: relevant pairs. Image i's captions are the CPI consecutive ones from CPI*i.
    x = torch.bmm(A.view(nI, P, -1), B.view(nI, CPI * P, -1).transpose(1, 2)).exp_()
    own = x.view(nI, P, CPI, P).sum(dim=(1, 3)).log_()  # [nI, CPI]
    best = own.max(dim=1).values  # [nI] best relevant caption score per image
    own = own.reshape(nC)  # [nC] own-image score per caption

    # Phase 2: stream the full matrix; relevant entries are masked out of the counts.
    i2t = torch.zeros(nI, dtype=torch.int64)
    t2i = torch.zeros(nC, dtype=torch.int64)
    buf = torch.empty(BI * P * BC * P)
    last, nblocks, done = time.perf_counter(), -(-nI // BI) * -(-nC // BC), 0
    for i0 in range(0, nI, BI):
        bi = min(BI, nI - i0)
        for c0 in range(0, nC, BC):
            bc = min(BC, nC - c0)
            x = buf[: bi * P * bc * P].view(bi * P, bc * P)  # contiguous, no allocation
            torch.mm(A[i0 * P:(i0 + bi) * P], B[c0 * P:(c0 + bc) * P].T, out=x)
            s = x.exp_().view(bi, P, bc, P).sum(dim=(1, 3)).log_()  # [bi, bc]
            rel = caption_image[c0:c0 + bc][None, :] == torch.arange(i0, i0 + bi)[:, None]
            s.masked_fill_(rel, float("-inf"))
            i2t[i0:i0 + bi] += (s >= best[i0:i0 + bi, None]).sum(1)
            t2i[c0:c0 + bc] += (s >= own[None, c0:c0 + bc]).sum(0)
            done += 1
            if time.perf_counter() - last > 10:
                last = time.perf_counter()
                print(f"{done}/{nblocks} blocks, {last - t0:.1f} s", file=sys.stderr, flush=True)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0

    print(json.dumps({
        "peer": "pytorch", "torch": torch.__version__, "threads": args.threads,
        "images": nI, "captions": nC, "seconds": round(seconds, 2), "cpuSeconds": round(cpu, 2),
        "formulation": FORMULATION,
        "i2t_R@1": round(100 * (i2t == 0).double().mean().item(), 3),  # rank = 1 + count
        "t2i_R@1": round(100 * (t2i == 0).double().mean().item(), 3),
    }))


if __name__ == "__main__":
    main()
