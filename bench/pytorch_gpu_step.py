"""PyTorch's side of the GPU step benchmark, the peer of `meshlm bench --device cuda`: the GPT of
tests/reference/torch_gpt.py with attention through scaled_dot_product_attention, the same
synthetic tokens, fused AdamW, global-norm clipping, on one CUDA device.

    /usr/bin/python3 bench/pytorch_gpu_step.py CONFIG.toml [--steps N] [--warmup N]
        [--precision fp32|bf16] [--compile] [--tf32] [--peak-tflops X] [--section.key value ...]

fp32 is true fp32 matrix products (TF32 off, as meshlm's cuBLAS path) unless --tf32; bf16 is
CUDA autocast around forward and loss (fp32 master weights). --compile wraps the model in
torch.compile (default mode); at least 3 warm-up steps then absorb the compilation.
Config keys are overridden as in `meshlm bench` (e.g. --train.block_size 1024).

Prints a summary and one JSON line (keys as bench/pytorch_step.py's where they apply). Run it
the way bench/compare_pytorch_gpu.sh does.
"""

import argparse
import json
import os
import resource
import sys
import time
import tomllib
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import torch_gpt  # noqa: E402

# meshlm's defaults (src/meshlm/train/run_config.hpp, optim/optimizer.hpp) for the keys read
# here; they also give an override its type.
DEFAULTS = {
    "model": {"vocab_size": 256, "n_positions": 128, "n_embd": 128, "n_layer": 4, "n_head": 4,
              "layer_norm_epsilon": 1e-5},
    "train": {"micro_batch": 16, "block_size": 0, "lr": 3e-4, "grad_clip": 1.0, "seed": 1337},
    "optim": {"name": "adamw", "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1,
              "decay_embeddings": False},
}

# H100 SXM dense peaks, TFLOP/s: bf16 tensor cores, TF32 tensor cores, fp32 CUDA cores.
PEAK_TFLOPS = {"bf16": 989.0, "tf32": 495.0, "fp32": 67.0}


def fail(msg):
    print(f"pytorch_gpu_step.py: {msg}", file=sys.stderr)
    sys.exit(2)


def split_overrides(argv):
    """Pulls `--section.key value` (or `--section.key=value`) pairs out of argv."""
    rest, pairs, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        name = a[2:].split("=", 1)[0]
        if a.startswith("--") and "." in name:
            if "=" in a:
                pairs.append((name, a.split("=", 1)[1]))
            elif i + 1 < len(argv):
                pairs.append((name, argv[i + 1]))
                i += 1
            else:
                fail(f"override {a} has no value")
        else:
            rest.append(a)
        i += 1
    return rest, pairs


def convert(text, like):
    if isinstance(like, bool):
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    return type(like)(text)


def load_config(path, overrides):
    """The TOML over meshlm's defaults, then the overrides; returns {section: {key: value}}."""
    with open(path, "rb") as f:
        toml = tomllib.load(f)
    cfg = {s: dict(d) for s, d in DEFAULTS.items()}
    for section, values in toml.items():
        if isinstance(values, dict):
            cfg.setdefault(section, {}).update(values)
    for key, text in overrides:
        section, name = key.split(".", 1)
        # typed as meshlm's default, else as the TOML's value; other keys stay text (unused here)
        like = DEFAULTS.get(section, {}).get(name, cfg.get(section, {}).get(name, text))
        try:
            cfg.setdefault(section, {})[name] = convert(text, like)
        except ValueError as e:
            fail(f"--{key} {text}: {e}")
    return cfg


class SDPAttention(torch_gpt.CausalSelfAttention):
    """torch_gpt's attention (same c_attn/c_proj parameters) through PyTorch's fused kernels."""

    def forward(self, x):
        B, T, C = x.shape
        H = self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, H, C // H).transpose(1, 2)  # [B,H,T,hs]
        k = k.view(B, T, H, C // H).transpose(1, 2)
        v = v.view(B, T, H, C // H).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # scale 1/sqrt(hs), no dropout
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


def build_model(gcfg):
    """torch_gpt.GPT with every block's attention swapped for SDPAttention (weights carried over)."""
    model = torch_gpt.GPT(gcfg)
    for block in model.h:
        attn = SDPAttention(gcfg)
        attn.load_state_dict(block.attn.state_dict())
        block.attn = attn
    with torch.no_grad():  # GPT-2's init for the embeddings too, as bench/pytorch_step.py
        torch.nn.init.normal_(model.wte.weight, std=0.02)
        torch.nn.init.normal_(model.wpe.weight, std=0.02)
    return model


def param_groups(model, weight_decay, decay_embeddings):
    """meshlm's groups (torch_gpt.GPT.param_groups), embeddings decayed too with optim.decay_embeddings."""
    decay, no_decay = (g["params"] for g in model.param_groups(weight_decay))
    if decay_embeddings:
        emb = {id(model.wte.weight), id(model.wpe.weight)}
        decay += [p for p in no_decay if id(p) in emb]
        no_decay = [p for p in no_decay if id(p) not in emb]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def tokens(B, T, vocab, device):
    """bench/pytorch_step.py's and meshlm's synthetic batch."""
    i = torch.arange(B * T, device=device)
    return ((i * 7919 + 13) % vocab).view(B, T), ((i * 104729 + 7) % vocab).view(B, T)


def step_flops(n_params, gcfg, B, T):
    """Model FLOPs per step, (PaLM, llm.c) accounting of shared/bench-configs.md."""
    L, H, Q = gcfg.n_layer, gcfg.n_head, gcfg.n_embd // gcfg.n_head
    return (6 * n_params + 12 * L * H * Q * T) * B * T, (6 * n_params + 6 * L * gcfg.n_embd * T) * B * T


def set_tf32(on):
    """Sets (only if it differs) the legacy switch: the fp32_precision API of 2.9+ makes inductor
    raise a mixed-API error in some releases. Its deprecation warning is noise here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if torch.backends.cuda.matmul.allow_tf32 != on:
            torch.backends.cuda.matmul.allow_tf32 = on


def main():
    argv, overrides = split_overrides(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("config")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--compile", action="store_true", help="torch.compile(model), default mode")
    ap.add_argument("--tf32", action="store_true", help="let fp32 matrix products use TF32 tensor cores")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="peak for MFU (default: H100 SXM dense, 989 bf16, 67 fp32, 495 fp32 with --tf32)")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be positive and --warmup not negative")
    if not torch.cuda.is_available():
        fail(f"no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is false)")
    warmup = max(args.warmup, 3) if args.compile else args.warmup

    cfg = load_config(args.config, overrides)
    m, t, o = cfg["model"], cfg["train"], cfg["optim"]
    if o["name"] != "adamw":
        fail(f"optim.name is {o['name']!r}: this benchmark runs AdamW only")
    try:
        gcfg = torch_gpt.GPTConfig(m["vocab_size"], m["n_positions"], m["n_embd"], m["n_layer"], m["n_head"],
                                   m["layer_norm_epsilon"])
    except ValueError as e:
        fail(str(e))
    B, T = int(t["micro_batch"]), int(t["block_size"]) or gcfg.n_positions
    if T > gcfg.n_positions:
        fail(f"train.block_size ({T}) exceeds model.n_positions ({gcfg.n_positions})")
    clip = float(t["grad_clip"]) if t["grad_clip"] > 0 else 1e30  # meshlm's bench always takes the norm

    dev = torch.device("cuda")
    torch.cuda.reset_peak_memory_stats(dev)  # the whole run's peak
    set_tf32(args.tf32)
    torch.manual_seed(int(t["seed"]))
    with dev:  # parameters created (and initialised) on the GPU
        model = build_model(gcfg)
    params = list(model.parameters())
    n = sum(p.numel() for p in params)  # tied head once, positions included
    opt = torch.optim.AdamW(param_groups(model, float(o["weight_decay"]), bool(o["decay_embeddings"])),
                            lr=float(t["lr"]), betas=(float(o["beta1"]), float(o["beta2"])), eps=float(o["eps"]),
                            fused=True)
    run = torch.compile(model) if args.compile else model
    x, y = tokens(B, T, gcfg.vocab_size, dev)
    bf16 = args.precision == "bf16"

    times, first_ms = [], 0.0
    for s in range(warmup + args.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = run(x, y)[1]  # the logits are not kept
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1e3
        if s == 0:
            first_ms = ms
        if s >= warmup:
            times.append(ms)

    step_ms = list(times)
    times.sort()
    med = times[len(times) // 2]  # as meshlm's StepBenchmark::median_ms
    palm, llmc = step_flops(n, gcfg, B, T)
    kind = "tf32" if args.precision == "fp32" and args.tf32 else args.precision
    peak = args.peak_tflops or PEAK_TFLOPS[kind]
    mfu = palm / (med / 1e3) / (peak * 1e12)
    alloc_mib = torch.cuda.max_memory_allocated(dev) / 2**20
    reserved_mib = torch.cuda.max_memory_reserved(dev) / 2**20
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    gpu = torch.cuda.get_device_name(dev)
    loss_v = loss.item()
    mode = "compiled" if args.compile else "eager"
    print(f"pytorch {torch.__version__} on {gpu}, {args.config}: {args.precision}{' (TF32 on)' if args.tf32 else ''}, "
          f"{mode}, {n} params, B {B} T {T}")
    print(f"step: median {med:.2f} ms (min {times[0]:.2f}, max {times[-1]:.2f} over {len(times)} steps after {warmup} "
          f"warm-up; first step {first_ms:.0f} ms), {B * T / med * 1e3:.0f} tokens/s, loss {loss_v:.4f}")
    print(f"model FLOP/s: {palm / med / 1e9:.1f} TFLOP/s (PaLM accounting) -> MFU {100 * mfu:.1f}% of {peak:g} TFLOP/s; "
          f"{llmc / med / 1e9:.1f} TFLOP/s (llm.c)")
    print(f"peak GPU memory: {alloc_mib:.0f} MiB allocated, {reserved_mib:.0f} MiB reserved by the caching allocator")
    print(json.dumps({
        "system": "pytorch", "device": "cuda", "gpu_name": gpu, "torch_version": torch.__version__,
        "precision": args.precision, "tf32": args.tf32, "compile": args.compile, "params": n, "B": B, "T": T,
        "steps": len(times), "warmup": warmup, "median_ms": med, "min_ms": times[0], "max_ms": times[-1],
        "step_ms": step_ms, "first_step_ms": first_ms, "tokens_per_s": B * T / med * 1e3,
        "gflops_palm": palm / med / 1e6, "gflops_llmc": llmc / med / 1e6, "peak_gflops": peak * 1e3, "mfu": mfu,
        "loss": loss_v, "peak_gpu_mib": alloc_mib, "peak_gpu_reserved_mib": reserved_mib, "peak_rss_mib": rss_mib}))


if __name__ == "__main__":
    main()
