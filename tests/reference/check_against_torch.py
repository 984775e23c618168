#!/usr/bin/python3
"""Checks a meshlm_reference_dump directory against PyTorch (tests/reference/torch_gpt.py).

usage: check_against_torch.py DIR [--verbose]

  1. forward:  logits and loss vs torch in float64
               (logits: max|ours - torch| / max|torch|; loss: |ours - torch| / |torch|)  <= 1e-5
  2. backward: every parameter's gradient of the mean loss vs torch in float64
               (||g_ours - g_torch|| / ||g_torch||, per parameter)                     <= 1e-4
  3. training: N AdamW steps on the same batch (lr 1e-3, betas 0.9/0.95, eps 1e-8, weight decay
               0.1 on the c_attn/c_proj/c_fc weights only) vs torch.optim.AdamW, run in float32
               and in float64; the better-agreeing precision is checked: each step's loss
               (relative) and every final parameter (||p_ours - p_torch|| / ||p_torch||)  <= 1e-4

The key bias (the middle third of attn.c_attn.bias) has an analytic gradient of exactly zero:
adding b_k to every key adds q.b_k to a whole row of scores, which softmax ignores. Its computed
gradient is rounding noise (~1e-11 here, exactly 0 only by luck), and Adam divides each
gradient by its own RMS, so the noise becomes updates of up to lr * |g| / (|g| + eps) with a
random sign, in float32 PyTorch just as in meshlm. Those elements are therefore compared not
with PyTorch's but with their starting values: they must stay put to within
KEY_BIAS_DRIFT * steps * lr; the rest of c_attn.bias is checked like any other parameter.

Prints every measured error; exits 1 naming the failed checks.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_gpt  # noqa: E402

FORWARD_TOL = 1e-5
GRAD_TOL = 1e-4
TRAIN_TOL = 1e-4
KEY_BIAS_DRIFT = 1e-2
LR, BETAS, EPS, WEIGHT_DECAY = 1e-3, (0.9, 0.95), 1e-8, 0.1


def key_bias_mask(name, shape, n_embd):
    """For attn.c_attn.bias: True on the key third (see the module docstring); else None."""
    if not name.endswith(".attn.c_attn.bias"):
        return None
    mask = np.zeros(shape, dtype=bool)
    mask[n_embd : 2 * n_embd] = True
    return mask


def max_rel(ours, ref):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    scale = np.max(np.abs(ref))
    diff = np.max(np.abs(ours - ref))
    return diff / scale if scale > 0 else diff


def norm_rel(ours, ref):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    scale = np.linalg.norm(ref)
    diff = np.linalg.norm(ours - ref)
    return diff / scale if scale > 0 else diff


def to_np(t):
    return t.detach().cpu().double().numpy()


class Checker:
    def __init__(self, verbose):
        self.failures = []
        self.verbose = verbose

    def check(self, what, err, tol, show=True):
        ok = bool(np.isfinite(err)) and err <= tol
        if show or not ok:
            print(f"  {'ok  ' if ok else 'FAIL'} {what:<40s} {err:.3e}  (tol {tol:.0e})")
        if not ok:
            self.failures.append(f"{what}: {err:.3e} > {tol:.0e}")
        return ok


def expect_names(what, got, want):
    got, want = set(got), set(want)
    if got != want:
        missing, extra = sorted(want - got), sorted(got - want)
        sys.exit(f"FAIL: {what} holds the wrong tensors (missing {missing}, unexpected {extra})")


def train(model_dir, inputs, targets, steps, dtype):
    model = torch_gpt.load_model(model_dir, dtype)
    opt = torch.optim.AdamW(
        model.param_groups(WEIGHT_DECAY), lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY, foreach=False
    )
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        _, loss = model(inputs, targets)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return np.array(losses), {n: to_np(p) for n, p in model.named_parameters()}


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    verbose = "--verbose" in sys.argv[1:]
    if len(args) != 1:
        sys.exit(__doc__)
    d = args[0]
    torch.manual_seed(0)
    if "OMP_NUM_THREADS" in os.environ:
        torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))

    read = lambda name: torch_gpt.read_safetensors(os.path.join(d, name))[0]  # noqa: E731
    batch, fwd, grads, trained = (read(f) for f in ("batch.safetensors", "forward.safetensors", "grads.safetensors",
                                                    "train.safetensors"))
    inputs = torch.from_numpy(batch["inputs"].astype(np.int64))
    targets = torch.from_numpy(batch["targets"].astype(np.int64))
    B, T = inputs.shape
    ck = Checker(verbose)

    model = torch_gpt.load_model(d, torch.float64)
    cfg = model.config
    names = [n for n, _ in model.named_parameters()]
    print(f"{d}: {cfg}, B={B} T={T}, {sum(p.numel() for p in model.parameters())} parameters")
    expect_names("grads.safetensors", grads, names)
    expect_names("train.safetensors", trained, names + ["losses"])
    if fwd["logits"].shape != (B, T, cfg.vocab_size):
        sys.exit(f"FAIL: logits have shape {list(fwd['logits'].shape)}, expected {[B, T, cfg.vocab_size]}")

    # 1. Forward, against float64.
    logits, loss = model(inputs, targets)
    loss.backward()
    print(f"forward (torch float64; loss ours {float(fwd['loss'][0]):.7f}, torch {loss.item():.7f})")
    ck.check("logits max rel err", max_rel(fwd["logits"], to_np(logits)), FORWARD_TOL)
    ck.check("loss rel err", abs(float(fwd["loss"][0]) - loss.item()) / abs(loss.item()), FORWARD_TOL)
    # For scale: how far float32 PyTorch is from float64 on the same inputs.
    m32 = torch_gpt.load_model(d, torch.float32)
    l32, loss32 = m32(inputs, targets)
    print(f"  (for scale: torch float32 vs float64: logits {max_rel(to_np(l32), to_np(logits)):.3e}, "
          f"loss {abs(loss32.item() - loss.item()) / abs(loss.item()):.3e})")

    # 2. Gradients, against float64.
    print("gradients (torch float64), ||g_ours - g_torch|| / ||g_torch||")
    worst_grad = ("", 0.0)
    for n, p in model.named_parameters():
        err = norm_rel(grads[n], to_np(p.grad))
        if err >= worst_grad[1]:
            worst_grad = (n, err)
        ck.check(f"grad {n}", err, GRAD_TOL, show=verbose)
    print(f"  max over {len(names)} parameters: {worst_grad[1]:.3e} ({worst_grad[0]})")

    # 3. AdamW steps, against float32 and float64 torch.
    steps = len(trained["losses"])
    results = {}
    for dtype in (torch.float32, torch.float64):
        losses, params = train(d, inputs, targets, steps, dtype)
        loss_errs = np.abs(trained["losses"].astype(np.float64) - losses) / np.abs(losses)
        param_errs = {}
        for n in names:
            kb = key_bias_mask(n, params[n].shape, cfg.n_embd)
            keep = ~kb if kb is not None else slice(None)
            param_errs[n] = norm_rel(trained[n][keep], params[n][keep])
        worst = max(loss_errs.max(initial=0.0), max(param_errs.values()))
        results[dtype] = (losses, loss_errs, param_errs, worst)
        wp = max(param_errs, key=param_errs.get)
        print(f"training, torch {str(dtype)[6:]}: max loss rel err {loss_errs.max(initial=0.0):.3e}, "
              f"max param rel err {param_errs[wp]:.3e} ({wp})")
    best = min(results, key=lambda k: results[k][3])
    losses, loss_errs, param_errs, _ = results[best]
    print(f"training checked against torch {str(best)[6:]} ({steps} AdamW steps)")
    print("  step  loss ours      loss torch     rel err")
    for i in range(steps):
        print(f"  {i:4d}  {float(trained['losses'][i]):.7f}  {losses[i]:.7f}  {loss_errs[i]:.3e}")
    ck.check("train loss max rel err", loss_errs.max(initial=0.0), TRAIN_TOL)
    for n in names:
        ck.check(f"final param {n}", param_errs[n], TRAIN_TOL, show=verbose)
    wp = max(param_errs, key=param_errs.get)
    print(f"  final params: max over {len(names)} parameters {param_errs[wp]:.3e} ({wp}; "
          "key thirds of c_attn.bias excluded)")
    # The key biases: zero true gradient, so they must stay (nearly) where they started.
    initial, _ = torch_gpt.read_safetensors(os.path.join(d, "model.safetensors"))
    drift, grad_ratio = 0.0, 0.0
    for n in names:
        kb = key_bias_mask(n, trained[n].shape, cfg.n_embd)
        if kb is not None:
            drift = max(drift, float(np.max(np.abs(trained[n][kb].astype(np.float64) - initial[n][kb]))))
            grad_ratio = max(grad_ratio, float(np.linalg.norm(grads[n][kb]) / np.linalg.norm(grads[n])))
    print(f"  key biases (true gradient 0): ||g_ours|| / ||g(c_attn.bias)|| up to {grad_ratio:.3e}; "
          f"moved at most {drift:.3e} in {steps} steps")
    ck.check("key bias drift / (steps * lr)", drift / (steps * LR), KEY_BIAS_DRIFT)

    if ck.failures:
        print(f"\nFAILED {len(ck.failures)} check(s):\n  " + "\n  ".join(ck.failures))
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
