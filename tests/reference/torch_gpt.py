"""A GPT-2 in plain PyTorch, written independently of meshlm's C++ code, to check it against.

The module's parameters carry Hugging Face GPT-2 names (GPT2Model's state dict without the
"transformer." prefix: wte.weight, wpe.weight, h.0.ln_1.weight, h.0.attn.c_attn.weight, ...,
ln_f.weight), so a meshlm model directory (config.json + model.safetensors) loads straight in.

Also here: a numpy reader/writer for the safetensors format, so that nothing but torch and
numpy is needed. Importable; used by check_against_torch.py and the benchmarks.
"""

import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length N, N bytes of JSON
# {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the
# raw little-endian data (offsets relative to the end of the header).

_NP_DTYPES = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"),
    "F16": np.dtype("<f2"),
    "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"),
    "F32": np.dtype("<f4"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
    "F64": np.dtype("<f8"),
}
_ST_NAMES = {
    np.dtype("?"): "BOOL",
    np.dtype("u1"): "U8",
    np.dtype("i1"): "I8",
    np.dtype("i2"): "I16",
    np.dtype("u2"): "U16",
    np.dtype("f2"): "F16",
    np.dtype("i4"): "I32",
    np.dtype("u4"): "U32",
    np.dtype("f4"): "F32",
    np.dtype("i8"): "I64",
    np.dtype("u8"): "U64",
    np.dtype("f8"): "F64",
}


def read_safetensors(path):
    """Returns ({name: np.ndarray}, metadata dict). BF16 tensors are widened to float32."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n :]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        dtype, shape = info["dtype"], [int(d) for d in info["shape"]]
        begin, end = (int(x) for x in info["data_offsets"])
        if not 0 <= begin <= end <= len(data):
            raise ValueError(f"{path}: tensor {name} has data_offsets {begin}..{end} outside the data")
        raw = data[begin:end]
        count = int(np.prod(shape, dtype=np.int64))
        if dtype == "BF16":
            if end - begin != 2 * count:
                raise ValueError(f"{path}: tensor {name} has {end - begin} bytes for shape {shape}")
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            if dtype not in _NP_DTYPES:
                raise ValueError(f"{path}: tensor {name} has unsupported dtype {dtype}")
            dt = _NP_DTYPES[dtype]
            if end - begin != dt.itemsize * count:
                raise ValueError(f"{path}: tensor {name} has {end - begin} bytes for {dtype} {shape}")
            arr = np.frombuffer(raw, dtype=dt)
        tensors[name] = arr.reshape(shape).copy()
    return tensors, metadata


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: array-like} (numpy arrays or torch tensors) in insertion order."""
    arrays, dtypes = {}, {}
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().numpy()
        a = np.ascontiguousarray(t)
        native = a.dtype.newbyteorder("=")
        if native not in _ST_NAMES:
            raise ValueError(f"tensor {name}: dtype {a.dtype} has no safetensors name")
        arrays[name] = a.astype(native.newbyteorder("<"), copy=False)
        dtypes[name] = _ST_NAMES[native]
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name, a in arrays.items():
        header[name] = {
            "dtype": dtypes[name],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + a.nbytes],
        }
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # data starts 8-byte aligned
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for a in arrays.values():
            f.write(a.tobytes())
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# The model.


class GPTConfig:
    def __init__(self, vocab_size=256, n_positions=128, n_embd=128, n_layer=4, n_head=4, layer_norm_epsilon=1e-5):
        self.vocab_size = int(vocab_size)
        self.n_positions = int(n_positions)
        self.n_embd = int(n_embd)
        self.n_layer = int(n_layer)
        self.n_head = int(n_head)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_head {self.n_head} does not divide n_embd {self.n_embd}")

    @classmethod
    def from_json(cls, path):
        with open(path) as f:
            j = json.load(f)
        act = j.get("activation_function", "gelu_new")
        if act not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"{path}: activation_function {act} is not GPT-2's tanh GELU")
        return cls(
            vocab_size=j["vocab_size"],
            n_positions=j.get("n_positions", j.get("n_ctx")),
            n_embd=j["n_embd"],
            n_layer=j["n_layer"],
            n_head=j["n_head"],
            layer_norm_epsilon=j.get("layer_norm_epsilon", 1e-5),
        )

    def __repr__(self):
        return (
            f"GPTConfig(vocab_size={self.vocab_size}, n_positions={self.n_positions}, n_embd={self.n_embd}, "
            f"n_layer={self.n_layer}, n_head={self.n_head}, layer_norm_epsilon={self.layer_norm_epsilon})"
        )


class Conv1D(nn.Module):
    """GPT-2's linear layer: weight stored [in, out], y = x @ W + b."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = Conv1D(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = Conv1D(cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        B, T, C = x.shape
        H = self.n_head
        hs = C // H
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, H, hs).transpose(1, 2)  # [B,H,T,hs]
        k = k.view(B, T, H, hs).transpose(1, 2)
        v = v.view(B, T, H, hs).transpose(1, 2)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
        y = F.softmax(scores, dim=-1) @ v  # [B,H,T,hs]
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = Conv1D(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = Conv1D(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2 with the LM head tied to wte; parameter names are GPT2Model's."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.h = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)

    def forward(self, idx, targets=None):
        """idx, targets: int [B,T]. Returns (logits [B,T,V], mean cross-entropy or None).
        Targets < 0 are ignored."""
        B, T = idx.shape
        if T > self.config.n_positions:
            raise ValueError(f"sequence length {T} exceeds n_positions {self.config.n_positions}")
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)[None]
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        logits = x @ self.wte.weight.t()
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1).long(), ignore_index=-1)
        return logits, loss

    def param_groups(self, weight_decay):
        """meshlm's AdamW groups: decay on the 2-D weights of c_attn/c_proj/c_fc only, never on
        embeddings, biases or LayerNorm parameters."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            is_linear_weight = name.endswith(".weight") and p.dim() == 2 and any(
                f".{m}." in name for m in ("c_attn", "c_proj", "c_fc")
            )
            (decay if is_linear_weight else no_decay).append(p)
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def load_hf_state(self, tensors):
        """Loads {name: np.ndarray} with HF GPT-2 names (optionally prefixed "transformer.");
        skips GPT-2's attention-mask buffers and the tied lm_head. Every parameter must be there."""
        own = dict(self.named_parameters())
        seen = set()
        with torch.no_grad():
            for name, arr in tensors.items():
                key = name[len("transformer.") :] if name.startswith("transformer.") else name
                is_mask = key.endswith(".attn.masked_bias") or (key.endswith(".attn.bias") and arr.ndim == 4)
                if key == "lm_head.weight" or is_mask:
                    continue
                if key not in own:
                    raise KeyError(f"unexpected tensor {name}")
                p = own[key]
                if tuple(arr.shape) != tuple(p.shape):
                    raise ValueError(f"tensor {name} has shape {list(arr.shape)}, expected {list(p.shape)}")
                p.copy_(torch.from_numpy(np.asarray(arr, dtype=np.float64)).to(p.dtype))
                seen.add(key)
        missing = sorted(set(own) - seen)
        if missing:
            raise KeyError(f"missing parameters: {', '.join(missing)}")


def load_model(model_dir, dtype=torch.float32):
    """Builds a GPT from a meshlm (or Hugging Face GPT-2) model directory."""
    cfg = GPTConfig.from_json(os.path.join(model_dir, "config.json"))
    model = GPT(cfg).to(dtype)
    tensors, _ = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    model.load_hf_state(tensors)
    return model
