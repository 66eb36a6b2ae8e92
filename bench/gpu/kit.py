#!/usr/bin/env python3
"""Bookkeeping for bench/gpu/check.sh (the GPU check kit), standard library only.

  kit.py record --who ours|peer --sim S --batch N --rc RC --seconds T --timeout T
                --stdout FILE --stderr FILE     one JSON line for one measurement
  kit.py env --adapter FILE --nvidia-smi FILE --manifest FILE --deno-version FILE --peer-device D
                                                one JSON line describing the machine
  kit.py table JSONL [--reference FILE] [--target 0.25 --target-batch 512]
                                                the table, and a closing "summary" JSON line

A measurement's figure is the median of its timed windows (samples/s), as in bench/training.ts;
the ratio is ours / PyTorch's at the same similarity and batch. The reference (make_kit.sh:
.gpukit/reference.jsonl) holds wasm's first-step loss per similarity and batch, computed where
the kit was built; ours on webgpu starts from the same weights and batches, so its first loss
must agree (to about 1e-6; LOSS_TOL allows for reduction order), else its speed means nothing.
Records are written whatever
happened (timeout, crash, unparsable output), so the JSONL alone tells what the run did.
"""
import argparse
import json
import statistics
import sys
import time

LOSS_TOL = 1e-3


def read(path, limit=None):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            s = f.read()
    except OSError:
        return ""
    return s if limit is None else s[-limit:]


def last_json(text):
    # Our child prints its result as the last line; tfjs or Deno may print before it.
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def record(a):
    rec = {
        "kind": "measurement",
        "who": a.who,
        "similarity": a.sim,
        "batch": a.batch,
        "rc": a.rc,
        "seconds": a.seconds,
        "timeout_s": a.timeout,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if a.rc == -1:
        rec["error"] = "skipped: the check's time budget was spent"
    else:
        res = last_json(read(a.stdout))
        if a.rc == 124 or a.rc == 137:
            rec["error"] = f"timed out after {a.timeout} s"
        elif a.rc != 0 or res is None:
            tail = " | ".join(read(a.stderr, 4000).strip().splitlines()[-4:])
            rec["error"] = f"exit {a.rc}: {tail or read(a.stdout, 300).strip() or 'no output'}"
        if res is not None:
            rec["result"] = res
            w = res.get("windows") or []
            if w:
                rec["samples_per_s"] = statistics.median(w)
    print(json.dumps(rec), flush=True)


def env(a):
    rec = {"kind": "env", "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    rec["nvidia_smi"] = read(a.nvidia_smi).strip().splitlines()
    rec["webgpu"] = last_json(read(a.adapter)) or {"raw": read(a.adapter, 2000).strip()}
    rec["deno"] = read(a.deno_version).strip().splitlines()[:1]
    rec["manifest"] = read(a.manifest).strip().splitlines()
    rec["peer_device"] = a.peer_device
    try:
        import torch

        rec["torch"] = torch.__version__
        rec["cuda_available"] = torch.cuda.is_available()
        if rec["cuda_available"]:
            rec["cuda_device"] = torch.cuda.get_device_name(0)
    except Exception as e:  # the table must still come out without torch
        rec["torch"] = f"not importable: {e}"
    print(json.dumps(rec), flush=True)


def table(a):
    recs = []
    with open(a.jsonl, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                recs.append(json.loads(line))
    envs = [r for r in recs if r.get("kind") == "env"]
    meas = [r for r in recs if r.get("kind") == "measurement"]
    if envs:
        e = envs[-1]
        print("GPU:   ", "; ".join(e.get("nvidia_smi") or []) or "(nvidia-smi gave nothing)")
        w = e.get("webgpu") or {}
        print("WebGPU:", w.get("adapter"), "(fallback adapter)" if w.get("fallback") else "")
        print("peer:  ", "PyTorch", e.get("torch"), "on", e.get("peer_device"),
              e.get("cuda_device", ""))
    keys = []
    for r in meas:
        k = (r["similarity"], r["batch"])
        if k not in keys:
            keys.append(k)

    def rate(who, k):
        xs = [x for r in meas if r["who"] == who and (r["similarity"], r["batch"]) == k
              for x in (r.get("result") or {}).get("windows") or []]
        return statistics.median(xs) if xs else None

    def err(who, k):
        es = [r["error"] for r in meas
              if r["who"] == who and (r["similarity"], r["batch"]) == k and "error" in r]
        return es[-1] if es else None

    refs = {}
    for line in read(a.reference).splitlines():
        r = last_json(line)
        if r and r.get("losses"):
            refs[(r["similarity"], r["batch"])] = r["losses"][0]

    def loss0(k):
        # The first step's loss of ours' last successful run at k (warm-up steps included).
        ls = [(r.get("result") or {}).get("losses") for r in meas
              if r["who"] == "ours" and (r["similarity"], r["batch"]) == k]
        ls = [x for x in ls if x]
        return ls[-1][0] if ls else None

    rows = []
    print()
    print(f"{'sim':<5} {'batch':>5} {'ours (webgpu)':>14} {'PyTorch':>12} {'ratio':>7}  "
          f"{'1st loss vs wasm':<18} target")
    for k in keys:
        o, p = rate("ours", k), rate("peer", k)
        ratio = o / p if o is not None and p else None
        met = None
        if k[1] == a.target_batch:
            met = None if ratio is None else ratio >= a.target
        mark = ("-" if k[1] != a.target_batch else
                "unknown" if met is None else
                f">= {a.target}: {'met' if met else 'NOT met'}")
        l0, ref = loss0(k), refs.get(k)
        loss_ok = None if l0 is None or ref is None else abs(l0 - ref) <= LOSS_TOL
        check = ("-" if loss_ok is None else
                 f"ok ({abs(l0 - ref):.1e})" if loss_ok else f"OFF by {l0 - ref:+.4f}")
        f = (lambda x, d=1: "-" if x is None else f"{x:.{d}f}")
        print(f"{k[0]:<5} {k[1]:>5} {f(o):>14} {f(p):>12} {f(ratio, 3):>7}  {check:<18} {mark}")
        rows.append({"similarity": k[0], "batch": k[1], "ours": o, "peer": p, "ratio": ratio,
                     "met": met, "first_loss": l0, "reference_first_loss": ref,
                     "loss_ok": loss_ok, "ours_error": err("ours", k),
                     "peer_error": err("peer", k)})
    for r in rows:
        for who in ("ours", "peer"):
            if r[f"{who}_error"]:
                print(f"  {r['similarity']}/{r['batch']} {who}: {r[f'{who}_error'][:300]}")
    summary = {"kind": "summary", "target": a.target, "target_batch": a.target_batch,
               "rows": rows}
    with open(a.jsonl, "a", encoding="utf-8") as f:
        f.write(json.dumps(summary) + "\n")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--who", required=True, choices=["ours", "peer"])
    r.add_argument("--sim", required=True)
    r.add_argument("--batch", type=int, required=True)
    r.add_argument("--rc", type=int, required=True)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--timeout", type=int, required=True)
    r.add_argument("--stdout", default="")
    r.add_argument("--stderr", default="")
    e = sub.add_parser("env")
    e.add_argument("--adapter", default="")
    e.add_argument("--nvidia-smi", default="")
    e.add_argument("--manifest", default="")
    e.add_argument("--deno-version", default="")
    e.add_argument("--peer-device", default="")
    t = sub.add_parser("table")
    t.add_argument("jsonl")
    t.add_argument("--reference", default="")
    t.add_argument("--target", type=float, default=0.25)
    t.add_argument("--target-batch", type=int, default=512)
    a = ap.parse_args()
    {"record": record, "env": env, "table": table}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
