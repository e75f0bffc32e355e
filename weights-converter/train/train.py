#!/usr/bin/env python3
"""Train nshap's small default GPT-2 from scratch.

Input: uint16 token files written by `nshap datasets tokenize` (GPT-2 ids, documents separated by
<|endoftext|> = 50256), so the GPU machine needs no tokenizer files and no network.
Output: a Hugging Face GPT-2 directory (config.json + model.safetensors in f16), train_log.json with
the loss curves, and val_check.json: a few validation sequences with PyTorch's loss on them, which
`nshap model loss --check` reproduces with nshap's own backends.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

EOT = 50256


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True, help="train tokens (.bin, uint16)")
    p.add_argument("--val", required=True, help="validation tokens (.bin, uint16)")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=256)
    p.add_argument("--ctx", type=int, default=128)
    p.add_argument("--batch", type=int, default=128, help="sequences per step")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr", type=float, default=2e-4)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--max-steps", type=int, default=20000)
    p.add_argument("--max-minutes", type=float, default=18.0)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-batches", type=int, default=40)
    p.add_argument("--patience", type=int, default=4, help="evaluations without improvement before stopping")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--max-mib", type=float, default=32.0, help="refuse a saved model larger than this")
    return p.parse_args()


def load_tokens(path):
    a = np.fromfile(path, dtype="<u2")
    if a.size == 0:
        raise SystemExit(f"{path}: no tokens")
    if a.max() >= 50257:
        raise SystemExit(f"{path}: token id {int(a.max())} outside GPT-2's vocabulary")
    return torch.from_numpy(a.astype(np.int64))


def lr_at(step, a):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    frac = min(1.0, (step - a.warmup) / max(1, a.max_steps - a.warmup))
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * frac))


def fixed_windows(tokens, ctx, n):
    """The first n non-overlapping windows of ctx+1 tokens: the same validation set at every evaluation."""
    n = min(n, (tokens.numel() - 1) // (ctx + 1))
    return torch.stack([tokens[i * (ctx + 1): (i + 1) * (ctx + 1)] for i in range(n)])


@torch.no_grad()
def mean_loss(model, windows, device, batch, autocast):
    model.eval()
    total, count = 0.0, 0
    for i in range(0, windows.size(0), batch):
        w = windows[i:i + batch].to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(w[:, :-1]).logits.float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), w[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += w[:, 1:].numel()
    model.train()
    return total / count


def main():
    a = parse_args()
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    train, val = load_tokens(a.train), load_tokens(a.val)
    device = torch.device(a.device)
    autocast = device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    cfg = GPT2Config(vocab_size=50257, n_positions=a.ctx, n_embd=a.n_embd, n_layer=a.n_layer, n_head=a.n_head,
                     activation_function="gelu_new", resid_pdrop=a.dropout, embd_pdrop=a.dropout,
                     attn_pdrop=a.dropout, layer_norm_epsilon=1e-5, bos_token_id=EOT, eos_token_id=EOT,
                     tie_word_embeddings=True)
    model = GPT2LMHeadModel(cfg).to(device)
    params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.95),
                            fused=device.type == "cuda")
    val_windows = fixed_windows(val, a.ctx, a.eval_batches * 32)
    print(f"train {train.numel():,} tokens, val {val.numel():,} tokens ({val_windows.size(0)} eval windows), "
          f"model {params:,} parameters on {device}", flush=True)

    log = {"config": cfg.to_dict(), "args": vars(a), "parameters": params, "train_tokens": int(train.numel()),
           "val_tokens": int(val.numel()), "curve": []}
    best, best_state, bad, step = float("inf"), None, 0, 0
    t0 = time.time()
    recent = []
    while step < a.max_steps:
        starts = torch.randint(0, train.numel() - a.ctx - 1, (a.batch,), generator=gen)
        w = torch.stack([train[s:s + a.ctx + 1] for s in starts.tolist()]).to(device, non_blocking=True)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(w[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent.append(loss.item())
        step += 1
        minutes = (time.time() - t0) / 60
        if step % a.eval_every == 0 or minutes > a.max_minutes:
            vl = mean_loss(model, val_windows, device, 64, autocast)
            tl = float(np.mean(recent))
            recent = []
            log["curve"].append({"step": step, "minutes": round(minutes, 3), "train_loss": tl, "val_loss": vl})
            print(f"step {step:6d}  {minutes:6.2f} min  train {tl:.4f}  val {vl:.4f}  lr {lr_at(step, a):.2e}", flush=True)
            if vl < best - 1e-4:
                best, bad = vl, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
            if bad >= a.patience:
                print(f"validation loss stopped improving ({a.patience} evaluations): stopping", flush=True)
                break
            if minutes > a.max_minutes:
                print("time budget reached: stopping", flush=True)
                break
    train_minutes = (time.time() - t0) / 60
    if best_state is not None:
        model.load_state_dict(best_state)

    os.makedirs(a.out, exist_ok=True)
    model.eval()
    model.half().save_pretrained(a.out, safe_serialization=True)
    size_mib = os.path.getsize(os.path.join(a.out, "model.safetensors")) / 2 ** 20
    if size_mib > a.max_mib:
        raise SystemExit(f"saved model is {size_mib:.1f} MiB, over the {a.max_mib} MiB limit")

    # Reload what was saved, in float32, and measure the losses nshap must reproduce.
    saved = GPT2LMHeadModel.from_pretrained(a.out, torch_dtype=torch.float32).to(device).eval()
    final_val = mean_loss(saved, val_windows, device, 64, False)
    train_windows = fixed_windows(train, a.ctx, a.eval_batches * 32)
    final_train = mean_loss(saved, train_windows, device, 64, False)
    checks = []
    for i in range(8):
        w = val_windows[i:i + 1].to(device)
        with torch.no_grad():
            lg = saved(w[:, :-1]).logits.float()
        nll = torch.nn.functional.cross_entropy(lg[0], w[0, 1:]).item()
        checks.append({"tokens": w[0].tolist(), "loss": nll})
    with open(os.path.join(a.out, "val_check.json"), "w") as f:
        json.dump({"what": "mean next-token NLL of each sequence (positions 1..T) under the saved f16 weights, "
                           "computed by PyTorch in float32", "torch": torch.__version__, "sequences": checks}, f)
    log.update({"best_val_loss_bf16_autocast": best, "final_val_loss_fp32": final_val,
                "final_train_loss_fp32": final_train, "train_minutes": train_minutes, "steps": step,
                "tokens_seen": step * a.batch * a.ctx, "size_mib": size_mib, "torch": torch.__version__,
                "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"})
    with open(os.path.join(a.out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    print(f"saved {a.out} ({size_mib:.1f} MiB): val loss {final_val:.4f}, train loss {final_train:.4f}, "
          f"{train_minutes:.1f} min", flush=True)


if __name__ == "__main__":
    main()
