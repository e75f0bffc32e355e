#!/usr/bin/env python3
"""Train nshap's small default GPT-2 from scratch.

Input: uint16 token files written by `nshap datasets tokenize` (GPT-2 ids, every document preceded by
<|endoftext|> = 50256), so the GPU machine needs no tokenizer files and no network.
Output: a Hugging Face GPT-2 directory (config.json + model.safetensors in f16), train_log.json with
the loss curves, and val_check.json: a few validation sequences with PyTorch's float32 loss on them, which
`nshap model loss --check` reproduces with nshap's own backends.

Written for torch 2.x and transformers 5.x (save_pretrained always writes safetensors there; from_pretrained
takes `dtype`, not the removed-in-spirit `torch_dtype`). Training stops at whichever comes first: validation
loss not improving for --patience evaluations, --max-steps, or --max-minutes; the best-validation weights are saved.
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
VOCAB = 50257


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True, help="train tokens (.bin, uint16 little-endian)")
    p.add_argument("--val", required=True, help="validation tokens (.bin, uint16 little-endian)")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=256)
    p.add_argument("--ctx", type=int, default=128)
    p.add_argument("--batch", type=int, default=128, help="sequences per step")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--max-steps", type=int, default=8000,
                   help="step budget; the cosine schedule ends at min(this, the steps the time budget allows)")
    p.add_argument("--max-minutes", type=float, default=8.0, help="training time budget (the device allows 10 min a command)")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-windows", type=int, default=1024, help="validation windows per evaluation (spread over the file)")
    p.add_argument("--patience", type=int, default=10, help="evaluations without improvement before stopping")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--check-sequences", type=int, default=8)
    p.add_argument("--compile", action="store_true", help="torch.compile the model (faster steps, slower start)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--max-mib", type=float, default=32.0, help="refuse a saved model larger than this")
    return p.parse_args()


def load_tokens(path):
    a = np.fromfile(path, dtype="<u2")
    if a.size == 0:
        raise SystemExit(f"{path}: no tokens")
    if int(a.max()) >= VOCAB:
        raise SystemExit(f"{path}: token id {int(a.max())} outside GPT-2's vocabulary")
    return torch.from_numpy(a.astype(np.int64))


def spread_windows(tokens, ctx, n):
    """n windows of ctx+1 tokens spread evenly over the whole file (the files are ordered by a hash shuffle, but
    evenly spread windows also keep every part of it represented): the same set at every evaluation."""
    last = tokens.numel() - (ctx + 1)
    if last < 0:
        raise SystemExit(f"validation file has {tokens.numel()} tokens, fewer than one window of {ctx + 1}")
    n = max(1, min(n, last // (ctx + 1) + 1))
    starts = torch.linspace(0, last, n).round().long()
    return torch.stack([tokens[s:s + ctx + 1] for s in starts.tolist()])


@torch.no_grad()
def mean_loss(model, windows, device, batch, autocast):
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, windows.size(0), batch):
        w = windows[i:i + batch].to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(w[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), w[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += w[:, 1:].numel()
    model.train(was_training)
    return total / count


def check_saved_layout(out, cfg):
    """nshap reads GPT-2's Hugging Face layout (Conv1D weights [in, out], optional 'transformer.' prefix); stop here,
    with a clear message, if this transformers version saved something else."""
    from safetensors import safe_open
    path = os.path.join(out, "model.safetensors")
    if not os.path.isfile(path):
        raise SystemExit(f"save_pretrained wrote no {path} (files: {sorted(os.listdir(out))})")
    with safe_open(path, framework="pt") as f:
        keys = {k.removeprefix("transformer."): k for k in f.keys()}
        e = cfg.n_embd
        want = {"wte.weight": (VOCAB, e), "wpe.weight": (cfg.n_positions, e), "h.0.attn.c_attn.weight": (e, 3 * e),
                "h.0.mlp.c_fc.weight": (e, 4 * e), "h.0.mlp.c_proj.weight": (4 * e, e), "ln_f.weight": (e,)}
        for name, shape in want.items():
            if name not in keys:
                raise SystemExit(f"{path}: no tensor {name} (has {sorted(keys)[:8]}...)")
            sl = f.get_slice(keys[name])
            got = tuple(sl.get_shape())
            if got != shape:
                raise SystemExit(f"{path}: {name} has shape {got}, nshap expects GPT-2's Conv1D layout {shape}")
            dtype = sl.get_dtype() if hasattr(sl, "get_dtype") else "F16"
            if dtype.upper() not in ("F16", "FLOAT16"):
                raise SystemExit(f"{path}: {name} is {dtype}, expected F16")


def main():
    a = parse_args()
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    train, val = load_tokens(a.train), load_tokens(a.val)
    device = torch.device(a.device)
    autocast = device.type == "cuda"
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for training only; the reference losses below use "highest"
    cfg = GPT2Config(vocab_size=VOCAB, n_positions=a.ctx, n_embd=a.n_embd, n_layer=a.n_layer, n_head=a.n_head,
                     activation_function="gelu_new", resid_pdrop=a.dropout, embd_pdrop=a.dropout,
                     attn_pdrop=a.dropout, layer_norm_epsilon=1e-5, bos_token_id=EOT, eos_token_id=EOT,
                     tie_word_embeddings=True)
    model = GPT2LMHeadModel(cfg).to(device)
    params = sum(p.numel() for p in model.parameters())
    est_mib = params * 2 / 2 ** 20
    if est_mib > a.max_mib:
        raise SystemExit(f"{params:,} parameters are {est_mib:.1f} MiB in f16, over the {a.max_mib} MiB limit")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    extra = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.95), **extra)
    step_model = torch.compile(model) if a.compile else model
    val_windows = spread_windows(val, a.ctx, a.eval_windows)
    train_dev = train.to(device)  # a few MB: sample windows on the device, no host copies per step
    offsets = torch.arange(a.ctx + 1, device=device)
    print(f"train {train.numel():,} tokens, val {val.numel():,} tokens ({val_windows.size(0)} eval windows), "
          f"model {params:,} parameters ({est_mib:.1f} MiB f16) on {device}", flush=True)

    # to_json_string is what save_pretrained writes: JSON-safe whatever the config holds (dtypes and the like).
    log = {"config": json.loads(cfg.to_json_string(use_diff=False)), "args": vars(a), "parameters": params, "train_tokens": int(train.numel()),
           "val_tokens": int(val.numel()), "eval_windows": int(val_windows.size(0)), "curve": []}
    best, best_step, best_state, bad, step = float("inf"), 0, None, 0, 0
    horizon = a.max_steps  # shortened once the step rate is known, so the cosine reaches min_lr within the time budget
    stop_reason = "max steps reached"

    def lr_at(s):
        if s < a.warmup:
            return a.lr * (s + 1) / a.warmup
        frac = min(1.0, (s - a.warmup) / max(1, horizon - a.warmup))
        return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * frac))

    t0 = time.time()
    recent = []
    model.train()
    while step < a.max_steps:
        starts = torch.randint(0, train.numel() - a.ctx - 1, (a.batch,), generator=gen).to(device)
        w = train_dev[starts[:, None] + offsets]
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = step_model(w[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent.append(loss.detach())
        step += 1
        if step == 50 or step == 300:
            if device.type == "cuda":
                torch.cuda.synchronize()
            rate = step / max(1e-6, time.time() - t0)
            horizon = max(a.warmup + 1, min(a.max_steps, int(rate * a.max_minutes * 60 * 0.97)))
            print(f"{rate:.1f} steps/s: cosine schedule over {horizon} steps", flush=True)
        minutes = (time.time() - t0) / 60
        out_of_time = minutes > a.max_minutes
        if step % a.eval_every == 0 or out_of_time or step == a.max_steps:
            vl = mean_loss(model, val_windows, device, 128, autocast)
            tl = float(torch.stack(recent).mean())
            recent = []
            log["curve"].append({"step": step, "minutes": round(minutes, 3), "train_loss": tl, "val_loss": vl, "lr": lr_at(step)})
            print(f"step {step:6d}  {minutes:6.2f} min  train {tl:.4f}  val {vl:.4f}  lr {lr_at(step):.2e}", flush=True)
            if vl < best - 1e-4:
                best, best_step, bad = vl, step, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
            if bad >= a.patience:
                stop_reason = f"validation loss did not improve for {a.patience} evaluations ({a.patience * a.eval_every} steps)"
                break
            if out_of_time:
                stop_reason = f"time budget of {a.max_minutes} min reached"
                break
    train_minutes = (time.time() - t0) / 60
    print(f"stopped at step {step}: {stop_reason}; best validation loss {best:.4f} at step {best_step}", flush=True)
    if best_state is not None:
        model.load_state_dict(best_state)

    os.makedirs(a.out, exist_ok=True)
    model.eval()
    model.half().save_pretrained(a.out)  # transformers 5: always safetensors, tied lm_head stored once (as wte)
    check_saved_layout(a.out, cfg)
    size_mib = os.path.getsize(os.path.join(a.out, "model.safetensors")) / 2 ** 20
    if size_mib > a.max_mib:
        raise SystemExit(f"saved model is {size_mib:.1f} MiB, over the {a.max_mib} MiB limit")

    # Reload what was saved, in float32 with exact (non-TF32) matmuls and the eager attention, and measure the
    # losses nshap must reproduce.
    if device.type == "cuda":
        torch.set_float32_matmul_precision("highest")
    saved = GPT2LMHeadModel.from_pretrained(a.out, dtype=torch.float32, attn_implementation="eager").to(device).eval()
    final_val = mean_loss(saved, val_windows, device, 64, False)
    train_windows = spread_windows(train, a.ctx, a.eval_windows)
    final_train = mean_loss(saved, train_windows, device, 64, False)
    picks = torch.linspace(0, val_windows.size(0) - 1, min(a.check_sequences, val_windows.size(0))).round().long().tolist()
    checks = []
    for i in picks:
        w = val_windows[i:i + 1].to(device)
        with torch.no_grad():
            lg = saved(w[:, :-1]).logits.float()
        nll = torch.nn.functional.cross_entropy(lg[0], w[0, 1:]).item()
        checks.append({"tokens": w[0].tolist(), "loss": nll})
    check_mean = float(np.mean([c["loss"] for c in checks]))
    with open(os.path.join(a.out, "val_check.json"), "w") as f:
        json.dump({"what": "mean next-token NLL of each validation window (positions 1..T) under the saved f16 weights, "
                           "computed by PyTorch in float32 (eager attention, no TF32)",
                   "torch": torch.__version__, "device": str(device), "mean_loss": check_mean, "sequences": checks}, f)
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    try:
        import transformers
        tv = transformers.__version__
    except Exception:
        tv = "?"
    log.update({"best_val_loss_bf16_autocast": best, "best_step": best_step, "stop_reason": stop_reason,
                "final_val_loss_fp32": final_val, "final_train_loss_fp32": final_train,
                "check_sequences_mean_loss_fp32": check_mean, "train_minutes": train_minutes, "steps": step,
                "tokens_seen": step * a.batch * a.ctx, "epochs": step * a.batch * a.ctx / train.numel(),
                "size_mib": size_mib, "torch": torch.__version__, "transformers": tv, "gpu": gpu})
    with open(os.path.join(a.out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    print(f"saved {a.out} ({size_mib:.1f} MiB): val loss {final_val:.4f}, train loss {final_train:.4f} (fp32, saved f16 "
          f"weights), {train_minutes:.1f} min, {step} steps, {log['epochs']:.1f} epochs on {gpu}", flush=True)


if __name__ == "__main__":
    main()
