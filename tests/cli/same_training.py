#!/usr/bin/env python3
"""Whether two runs trained the same model: every step's loss in metrics.jsonl within a relative
tolerance, and the final model.safetensors within a relative L2 distance (all tensors as one
vector). Prints one line; exit status 0 when both hold.
Usage: same_training.py RUN_A RUN_B [TOLERANCE (default 1e-5)]"""
import json
import math
import struct
import sys


def losses(run):
    out = {}
    with open(f"{run}/metrics.jsonl") as f:
        for line in f:
            j = json.loads(line)
            if "loss" in j:
                out[j["step"]] = j["loss"]
    return out


def weights(run):
    with open(f"{run}/model.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", f"{name}: {t['dtype']}"
        b, e = t["data_offsets"]
        out[name] = struct.unpack(f"<{(e - b) // 4}f", data[b:e])
    return out


def main():
    a, b = sys.argv[1], sys.argv[2]
    tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
    la, lb = losses(a), losses(b)
    if sorted(la) != sorted(lb):
        print(f"steps differ: {sorted(la)} vs {sorted(lb)}")
        return 1
    worst = max(abs(la[s] - lb[s]) / abs(la[s]) for s in la)
    wa, wb = weights(a), weights(b)
    if sorted(wa) != sorted(wb):
        print("the models' tensors differ")
        return 1
    diff = norm = 0.0
    for name, x in wa.items():
        for u, v in zip(x, wb[name]):
            diff += (u - v) ** 2
            norm += u * u
    rel = math.sqrt(diff / norm)
    print(f"{len(la)} steps, loss rel diff max {worst:.2e}, weights rel L2 {rel:.2e}")
    return 0 if worst <= tol and rel <= tol else 1


sys.exit(main())
