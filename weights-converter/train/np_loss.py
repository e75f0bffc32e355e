#!/usr/bin/env python3
"""An independent float64 NumPy GPT-2 forward (no PyTorch): writes a val_check.json in train.py's format for a
Hugging Face GPT-2 directory and a uint16 token file. Lets scripts/test-finish-default-model.sh exercise the
finish step without a GPU, and is a second opinion on any checkpoint's loss."""
import argparse
import json
import math
import os
import struct

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        if info["dtype"] == "BF16":
            u = np.frombuffer(data[lo:hi], dtype="<u2").astype(np.uint32) << 16
            t = u.view(np.float32)
        else:
            t = np.frombuffer(data[lo:hi], dtype=DTYPES[info["dtype"]])
        out[name.removeprefix("transformer.")] = t.reshape(info["shape"]).astype(np.float64)
    return out


def layer_norm(x, g, b, eps):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * g + b


def gelu_new(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def nll(w, cfg, tokens):
    T, H, E = len(tokens) - 1, cfg["n_head"], cfg["n_embd"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    x = w["wte.weight"][tokens[:-1]] + w["wpe.weight"][:T]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(cfg["n_layer"]):
        p = f"h.{l}."
        h = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = np.split(qkv, 3, axis=-1)
        heads = []
        for i in range(H):
            s = slice(i * E // H, (i + 1) * E // H)
            a = q[:, s] @ k[:, s].T / math.sqrt(E // H) + mask
            a = np.exp(a - a.max(-1, keepdims=True))
            heads.append((a / a.sum(-1, keepdims=True)) @ v[:, s])
        x = x + np.concatenate(heads, -1) @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        x = x + gelu_new(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"]) @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], eps)
    logits = x @ w.get("lm_head.weight", w["wte.weight"]).T
    logits -= logits.max(-1, keepdims=True)
    lse = np.log(np.exp(logits).sum(-1))
    return float(np.mean(lse - logits[np.arange(T), tokens[1:]]))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True, help="uint16 token file (e.g. tokens.val.bin)")
    ap.add_argument("--sequences", type=int, default=8)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    w = read_safetensors(os.path.join(a.model, "model.safetensors"))
    ids = np.fromfile(a.tokens, dtype="<u2").astype(np.int64)
    ctx = cfg["n_positions"]
    last = ids.size - (ctx + 1)
    starts = np.linspace(0, last, a.sequences).round().astype(np.int64)
    seqs = [{"tokens": ids[s:s + ctx + 1].tolist(), "loss": nll(w, cfg, ids[s:s + ctx + 1])} for s in starts]
    with open(a.out, "w") as f:
        json.dump({"what": "mean next-token NLL of each window (positions 1..T), NumPy float64 reference forward",
                   "torch": "none (numpy " + np.__version__ + ")", "device": "cpu", "sequences": seqs}, f)
    print(f"wrote {a.out}: mean loss {np.mean([s['loss'] for s in seqs]):.6f}")


if __name__ == "__main__":
    main()
