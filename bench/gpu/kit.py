#!/usr/bin/env python3
"""Bookkeeping for bench/gpu/check.sh (the GPU check kit), standard library only.

  kit.py record --who ours|peer --case C --sim S --batch N --rc RC --seconds T --timeout T
                --stdout FILE --stderr FILE [--purpose speed|refcheck]
                                                one JSON line for one measurement
  kit.py profile --case C --sim S --batch N --rc RC --seconds T --timeout T --json FILE
                 --stdout FILE --stderr FILE    one JSON line for one gpu_profile run
  kit.py env --adapter FILE --nvidia-smi FILE --manifest FILE --deno-version FILE --peer-device D
                                                one JSON line describing the machine
  kit.py refchecks --reference FILE --measured "r1:512 c1:256"
                                                "case sim batch" lines: the reference losses
                                                at a batch no speed measurement runs (each
                                                gets a one-step webgpu run to compare with)
  kit.py table JSONL [--reference FILE] [--target 0.25] [--targets "r1:512 c1:256"]
                [--coco-case c1 --coco-steps 20000 --coco-batch 256 --coco-hours 2]
                                                the table, and a closing "summary" JSON line

A measurement's figure is the median of its timed windows (samples/s), as in bench/training.ts,
pooled over the rounds (A B A B: ours and PyTorch alternating on the same case, similarity and
batch); the ratio is ours / PyTorch's. The reference (make_kit.sh: .gpukit/reference.jsonl)
holds wasm's first-step loss per case, similarity and batch, computed where the kit was built;
ours on webgpu starts from the same weights and batches, so its first loss must agree (to about
1e-6; LOSS_TOL allows for reduction order), else its speed means nothing. When the reference of
a case is at a smaller batch than its speed runs (C1: the wasm step at batch 256 takes too long
where the kit is built), the one-step webgpu run at the reference's batch ("refcheck") is the
check that counts for that case and similarity.

The projected coco training time is coco.yaml's 20000 steps of batch 256 at C1's measured
samples/s: step time only (no data loading, logging read-backs, checkpoints or evaluation).
Records are written whatever happened (timeout, crash, unparsable output), so the JSONL alone
tells what the run did.
"""
import argparse
import json
import statistics
import sys
import time

LOSS_TOL = 1e-3


def read(path, limit=None):
    if not path:
        return ""
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


def base(kind, a):
    return {
        "kind": kind,
        "case": a.case,
        "similarity": a.sim,
        "batch": a.batch,
        "rc": a.rc,
        "seconds": a.seconds,
        "timeout_s": a.timeout,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def failure(a, res):
    """The error of a run (None when it succeeded)."""
    if a.rc == -1:
        return "skipped: the check's time budget was spent"
    if a.rc == -2:
        return "skipped: " + (read(a.stderr, 300).strip() or "not available")
    if a.rc in (124, 137):
        return f"timed out after {a.timeout} s"
    if res is not None and res.get("error"):
        return f"exit {a.rc}: {res['error']}"
    if a.rc != 0 or res is None:
        tail = " | ".join(read(a.stderr, 4000).strip().splitlines()[-4:])
        return f"exit {a.rc}: {tail or read(a.stdout, 300).strip() or 'no output'}"
    return None


def record(a):
    rec = base("measurement", a)
    rec["who"] = a.who
    rec["purpose"] = a.purpose
    res = None if a.rc < 0 else last_json(read(a.stdout))
    err = failure(a, res)
    if err:
        rec["error"] = err
    if res is not None:
        rec["result"] = res
        w = res.get("windows") or []
        if w:
            rec["samples_per_s"] = statistics.median(w)
        if res.get("losses"):
            rec["first_loss"] = res["losses"][0]
    print(json.dumps(rec), flush=True)


def profile(a):
    rec = base("profile", a)
    p = None
    if a.rc >= 0:
        try:
            with open(a.json, encoding="utf-8") as f:
                p = json.load(f)
        except (OSError, ValueError):
            p = None
    err = failure(a, p if p is not None else {})
    if p is None and not err:
        err = f"exit {a.rc}: no JSON written"
    if err:
        rec["error"] = err
    if p is not None:
        # The whole profile is in its own file ($OUT); here what the table shows.
        rec["json"] = a.json
        rec["summary"] = p.get("summary")
        rec["step_wall_ms"] = p.get("stepWallMs")
        rec["adapter"] = p.get("adapter")
        t = p.get("timing") or {}
        rec["timing_source"] = t.get("source")
        rec["top_kernels"] = (t.get("topKernels") or [])[:12]
    rec["stdout_tail"] = read(a.stdout, 3000).strip().splitlines()[-30:]
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
            rec["cuda"] = torch.version.cuda
    except Exception as e:  # the table must still come out without torch
        rec["torch"] = f"not importable: {e}"
    print(json.dumps(rec), flush=True)


def references(path):
    """{(case, sim, batch): first-step loss} from reference.jsonl (old lines: case r1)."""
    refs = {}
    for line in read(path).splitlines():
        r = last_json(line)
        if r and r.get("losses") and not r.get("error"):
            refs[(r.get("case", "r1"), r["similarity"], r["batch"])] = r["losses"][0]
    return refs


def pairs(spec):
    """ "r1:512 c1:256" -> [("r1", 512), ("c1", 256)]"""
    out = []
    for item in spec.split():
        c, _, b = item.partition(":")
        out.append((c, int(b)))
    return out


def refchecks(a):
    measured = set(pairs(a.measured))
    for (c, s, b) in sorted(references(a.reference)):
        if (c, b) not in measured and any(c == mc for mc, _ in measured):
            print(c, s, b)


def table(a):
    recs = []
    with open(a.jsonl, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    pass  # a torn line from a killed writer
    envs = [r for r in recs if r.get("kind") == "env"]
    meas = [r for r in recs if r.get("kind") == "measurement"]
    profs = [r for r in recs if r.get("kind") == "profile"]
    peer_device = None
    if envs:
        e = envs[-1]
        peer_device = e.get("peer_device")
        print("GPU:   ", "; ".join(e.get("nvidia_smi") or []) or "(nvidia-smi gave nothing)")
        w = e.get("webgpu") or {}
        lim = (w.get("limits") or {}).get("maxStorageBufferBindingSize")
        print("WebGPU:", w.get("adapter"), "(fallback adapter)" if w.get("fallback") else "",
              f"maxStorageBufferBindingSize {lim / 2**20:.0f} MiB" if lim else "")
        print("peer:  ", "PyTorch", e.get("torch"), "on", peer_device, e.get("cuda_device", ""))

    if profs:
        print("\nprofile (bench/gpu_profile.ts, webgpu):")
        for p in profs:
            head = f"  {p['case']} {p['similarity']} {p['batch']}:"
            if p.get("summary") is not None:
                s = p["summary"]
                print(head, f"{(p.get('step_wall_ms') or 0):.0f} ms/step;",
                      ", ".join(f"{k} {v}" for k, v in s.items()))
                tk = p.get("top_kernels") or []
                if tk:
                    print("    top kernels:", ", ".join(
                        f"{k.get('name')} {k.get('ms', 0):.1f} ms" for k in tk[:6]))
            if p.get("error"):
                print(head, "error:", p["error"][:300])

    refs = references(a.reference)

    def runs(who, k, purpose="speed"):
        return [r for r in meas if r["who"] == who and r.get("purpose", "speed") == purpose
                and (r.get("case", "r1"), r["similarity"], r["batch"]) == k]

    def rate(who, k):
        xs = [x for r in runs(who, k) for x in (r.get("result") or {}).get("windows") or []]
        return statistics.median(xs) if xs else None

    def errs(who, k, purpose="speed"):
        return [r["error"] for r in runs(who, k, purpose) if "error" in r]

    def loss_check(k, purpose="speed"):
        """(ok, worst |first loss - reference|, reference) over ours' runs at k."""
        ref = refs.get(k)
        firsts = [r["first_loss"] for r in runs("ours", k, purpose) if "first_loss" in r]
        if ref is None or not firsts:
            return None, None, ref
        worst = max((l0 - ref for l0 in firsts), key=abs)
        return abs(worst) <= LOSS_TOL, worst, ref

    keys = []
    for r in meas:
        k = (r.get("case", "r1"), r["similarity"], r["batch"])
        if r.get("purpose", "speed") == "speed" and k not in keys:
            keys.append(k)
    checks = []
    for r in meas:
        k = (r.get("case", "r1"), r["similarity"], r["batch"])
        if r.get("purpose") == "refcheck" and k not in checks:
            checks.append(k)
    targets = set(pairs(a.targets))
    cuda = peer_device == "cuda"

    f = (lambda x, d=1: "-" if x is None else f"{x:.{d}f}")
    rows = []
    print()
    print(f"{'case':<4} {'sim':<5} {'batch':>5} {'ours (webgpu)':>14} {'PyTorch':>12} "
          f"{'ratio':>7}  {'n':>3}  {'1st loss vs wasm':<24} target")
    for k in keys:
        o, p = rate("ours", k), rate("peer", k)
        ratio = o / p if o is not None and p else None
        ok, dev, ref = loss_check(k)
        via = ""
        if ok is None:
            # No reference at this batch: the one-step run at the reference's batch decides.
            for ck in checks:
                if ck[:2] == k[:2]:
                    ok, dev, ref = loss_check(ck, "refcheck")
                    via = f" @{ck[2]}"
                    break
        check = ("-" if ok is None else
                 f"ok ({abs(dev):.1e}){via}" if ok else f"OFF by {dev:+.4f}{via}")
        met = None
        if (k[0], k[2]) in targets and cuda and ratio is not None and ok is not False:
            met = ratio >= a.target
        mark = ("-" if (k[0], k[2]) not in targets else
                "no CUDA peer" if not cuda else
                "INVALID: loss off" if ok is False else
                "unknown" if met is None else
                f">= {a.target}: {'met' if met else 'NOT met'}")
        n = f"{len(runs('ours', k))}/{len(runs('peer', k))}"
        print(f"{k[0]:<4} {k[1]:<5} {k[2]:>5} {f(o):>14} {f(p):>12} {f(ratio, 3):>7}  {n:>3}  "
              f"{check:<24} {mark}")
        rows.append({"case": k[0], "similarity": k[1], "batch": k[2], "ours": o, "peer": p,
                     "ratio": ratio, "target": (k[0], k[2]) in targets, "met": met,
                     "loss_ok": ok, "loss_dev": dev, "reference_first_loss": ref,
                     "loss_checked_at": int(via[2:]) if via else k[2],
                     "ours_errors": errs("ours", k), "peer_errors": errs("peer", k)})
    for ck in checks:
        ok, dev, ref = loss_check(ck, "refcheck")
        e = errs("ours", ck, "refcheck")
        check = ("-" if ok is None else
                 f"ok ({abs(dev):.1e})" if ok else f"OFF by {dev:+.4f}")
        print(f"{ck[0]:<4} {ck[1]:<5} {ck[2]:>5} {'(1 step)':>14} {'':>12} {'':>7}  {'':>3}  "
              f"{check:<24} reference check{': ' + e[-1][:120] if e else ''}")

    # coco.yaml: 20000 steps of batch 256, at C1's measured speed.
    coco = []
    for k in keys:
        if k[0] != a.coco_case or k[2] != a.coco_batch:
            continue
        row = next(r for r in rows if (r["case"], r["similarity"], r["batch"]) == k)
        hours = (lambda sps: None if not sps else a.coco_steps * a.coco_batch / sps / 3600)
        h, hp = hours(row["ours"]), hours(row["peer"])
        met = None if h is None or row["loss_ok"] is False else h < a.coco_hours
        coco.append({"similarity": k[1], "hours": h, "peer_hours": hp, "met": met})
    if coco:
        print(f"\nprojected coco.yaml training ({a.coco_steps} steps x {a.coco_batch}, step time "
              f"only), target < {a.coco_hours} h:")
        for c in coco:
            mark = "unknown" if c["met"] is None else ("met" if c["met"] else "NOT met")
            print(f"  {c['similarity']:<5} ours {f(c['hours'], 2)} h, PyTorch "
                  f"{f(c['peer_hours'], 2)} h{'' if cuda else ' (CPU)'}: {mark}")

    for r in rows:
        for who in ("ours", "peer"):
            for e in r[f"{who}_errors"]:
                print(f"  {r['case']}/{r['similarity']}/{r['batch']} {who}: {e[:300]}")
    verdicts = [r["met"] for r in rows if r["target"]] + [c["met"] for c in coco]
    summary = {"kind": "summary", "target": a.target, "targets": a.targets,
               "peer_device": peer_device, "rows": rows, "coco": coco,
               "all_met": (False if any(v is False for v in verdicts) else
                           True if verdicts and all(v is True for v in verdicts) else None)}
    print("\nall targets met:", {True: "yes", False: "no"}.get(summary["all_met"],
                                                              "unknown (a figure is missing)"))
    with open(a.jsonl, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(summary) + "\n")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("record", "profile"):
        r = sub.add_parser(name)
        if name == "record":
            r.add_argument("--who", required=True, choices=["ours", "peer"])
            r.add_argument("--purpose", default="speed", choices=["speed", "refcheck"])
        else:
            r.add_argument("--json", default="")
        r.add_argument("--case", default="r1")
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
    c = sub.add_parser("refchecks")
    c.add_argument("--reference", default="")
    c.add_argument("--measured", default="")
    t = sub.add_parser("table")
    t.add_argument("jsonl")
    t.add_argument("--reference", default="")
    t.add_argument("--target", type=float, default=0.25)
    t.add_argument("--targets", default="r1:512 c1:256")
    t.add_argument("--coco-case", default="c1")
    t.add_argument("--coco-steps", type=int, default=20000)
    t.add_argument("--coco-batch", type=int, default=256)
    t.add_argument("--coco-hours", type=float, default=2.0)
    a = ap.parse_args()
    {"record": record, "profile": profile, "env": env, "refchecks": refchecks,
     "table": table}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
