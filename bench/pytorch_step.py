"""PyTorch's side of the step benchmark: the same GPT (tests/reference/torch_gpt.py), the
same synthetic tokens, AdamW with the same hyper-parameters, global-norm clipping.

    /usr/bin/python3 bench/pytorch_step.py CONFIG.toml [--threads N] [--steps N] [--warmup N]
        [--precision fp32|bf16] [--section.key value ...]

bf16 is PyTorch's CPU autocast (bf16 matrix products through oneDNN, f32 master weights).
Config keys are overridden as in `meshlm bench` (e.g. --train.block_size 1024).

Prints a summary and one JSON line. Run it the way bench/compare_pytorch.sh does (PyTorch's
best set-up on this machine: OpenMP OpenBLAS, AVX-512 kernels).
"""

import argparse
import json
import os
import resource
import sys
import time
import tomllib

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import torch_gpt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args, extra = ap.parse_known_args()
    torch.set_num_threads(args.threads)
    with open(args.config, "rb") as f:
        toml = tomllib.load(f)
    if len(extra) % 2:
        ap.error(f"overrides come in pairs --section.key value: {extra}")
    for key, value in zip(extra[::2], extra[1::2]):
        section, name = key.lstrip("-").split(".", 1)
        toml.setdefault(section, {})[name] = type(toml.get(section, {}).get(name, 0))(value)
    m, t, o = toml.get("model", {}), toml.get("train", {}), toml.get("optim", {})
    cfg = torch_gpt.GPTConfig(m["vocab_size"], m["n_positions"], m["n_embd"], m["n_layer"], m["n_head"])
    B, T = t.get("micro_batch", 16), t.get("block_size", 0) or m["n_positions"]
    model = torch_gpt.GPT(cfg)
    with torch.no_grad():  # GPT-2's init for the embeddings too, so both systems see the same loss scale
        torch.nn.init.normal_(model.wte.weight, std=0.02)
        torch.nn.init.normal_(model.wpe.weight, std=0.02)
    opt = torch.optim.AdamW(model.param_groups(o.get("weight_decay", 0.1)), lr=3e-4,
                            betas=(o.get("beta1", 0.9), o.get("beta2", 0.95)), eps=1e-8)
    i = torch.arange(B * T)
    x = ((i * 7919 + 13) % cfg.vocab_size).view(B, T)
    y = ((i * 104729 + 7) % cfg.vocab_size).view(B, T)
    times = []
    for s in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s >= args.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    med = times[len(times) // 2]
    n = sum(p.numel() for p in model.parameters())
    L, H, Q = cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head
    flops = (6 * n + 12 * L * H * Q * T) * B * T
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    print(f"pytorch {torch.__version__} {args.config}: {args.precision}, {args.threads} threads, {n} params, B {B} T {T}: median {med:.1f} "
          f"ms/step (min {times[0]:.1f}, max {times[-1]:.1f}, {len(times)} steps), {B * T / med * 1e3:.0f} tok/s, "
          f"{flops / med / 1e6:.1f} GFLOP/s (PaLM accounting), loss {loss.item():.4f}, peak memory {peak_mib:.0f} MiB")
    print(json.dumps({"system": "pytorch", "median_ms": med, "min_ms": times[0], "max_ms": times[-1],
                      "tokens_per_s": B * T / med * 1e3, "gflops_palm": flops / med / 1e6, "peak_rss_mib": peak_mib}))


if __name__ == "__main__":
    main()
