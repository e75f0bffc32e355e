#!/usr/bin/env python3
"""PyTorch / Hugging Face reference for `nshap bench` side-by-sides on a GPU (no network: built from a config).

GPT2LMHeadModel from GPT2Config (random init, torch.manual_seed(seed)), bf16, attn_implementation="sdpa".
Coalitions are applied the way interpretability code usually does it: a forward hook on every
transformer.h[L].mlp.act multiplies the activations by a per-sequence 0/1 mask over the neurons. Only the last
position is unembedded (transformer -> lm_head on the last hidden state), as nshap scores only that position.

  reference_torch.py coalitions --config small --coalitions 16 --prompts 64 --tokens 32
  reference_torch.py forward    --config small --batch 8 --seq 64
  reference_torch.py matmul     --m 2048 --k 768 --n 3072

Timing: CUDA events around each repetition, after warm-up; median and spread. JSON to stdout.
"""
import argparse
import json
import os
import platform
import subprocess
import sys

PRESETS = {"tiny": (2, 4, 64), "small": (12, 12, 768), "medium": (24, 16, 1024), "large": (36, 20, 1280), "xl": (48, 25, 1600)}
VOCAB, N_POSITIONS = 50257, 1024


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("coalitions", "forward", "matmul"):
        s = sub.add_parser(name)
        s.add_argument("--device", default="cuda", help="cuda (default) or cpu (cpu: fp32, wall clock; for trying the script)")
        s.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
        s.add_argument("--seed", type=int, default=1)
        s.add_argument("--warmup", type=int, default=3)
        s.add_argument("--reps", type=int, default=10)
        if name != "matmul":
            s.add_argument("--config", default="small", choices=sorted(PRESETS))
        if name == "coalitions":
            s.add_argument("--coalitions", type=int, default=16)
            s.add_argument("--prompts", type=int, default=64)
            s.add_argument("--tokens", type=int, default=32)
            s.add_argument("--keep", type=float, default=0.5)
            s.add_argument("--max-tokens", type=int, default=0, help="tokens per forward batch (0: all coalitions x prompts at once)")
        elif name == "forward":
            s.add_argument("--batch", type=int, default=8)
            s.add_argument("--seq", type=int, default=64)
        else:
            s.add_argument("--m", type=int, default=2048)
            s.add_argument("--k", type=int, default=768)
            s.add_argument("--n", type=int, default=3072)
    return p.parse_args(argv)


args = parse_args(sys.argv[1:])
try:
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel
except ImportError as e:
    print(json.dumps({"reference": "torch", "error": f"cannot import {e.name}: install torch and transformers"}))
    sys.exit(3)


def machine(dev):
    m = dict(python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__,
             cuda_runtime=torch.version.cuda, cores=os.cpu_count())
    try:
        with open("/proc/cpuinfo") as f:
            m["cpu_model"] = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if dev.type == "cuda":
        m["gpu"] = torch.cuda.get_device_name(dev)
        try:
            m["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                         capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        except Exception:
            pass
    return m


class Timer:
    """CUDA events around each repetition on the GPU, perf_counter on the CPU."""

    def __init__(self, dev):
        self.cuda = dev.type == "cuda"

    def time(self, warmup, reps, fn):
        import time
        for _ in range(warmup):
            fn()
        self.sync()
        ts = []
        for _ in range(reps):
            if self.cuda:
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                b.synchronize()
                ts.append(a.elapsed_time(b) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
        return stats(ts)

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()


def stats(ts):
    s = sorted(ts)

    def q(p):
        pos = p * (len(s) - 1)
        lo, hi = int(pos), min(int(pos) + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    med = q(0.5)
    return dict(median_s=med, p10_s=q(0.1), p90_s=q(0.9), min_s=s[0], max_s=s[-1],
                spread=(q(0.9) - q(0.1)) / med if med > 0 else 0.0, n=len(s))


def flops(L, C, V, batch, seq, scored=1):
    """Same FLOP model as nshap's ForwardBench."""
    return 24.0 * C * C * L * batch * seq + 4.0 * C * L * batch * seq * (seq + 1) / 2 + 2.0 * C * V * batch * scored


def build(cfg_name, dev, dtype, seed):
    L, nh, C = PRESETS[cfg_name]
    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=L, n_head=nh, n_embd=C, n_positions=N_POSITIONS, vocab_size=VOCAB,
                     activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    try:
        model = GPT2LMHeadModel._from_config(cfg, attn_implementation="sdpa", torch_dtype=dtype)
    except TypeError:  # older transformers
        cfg._attn_implementation = "sdpa"
        model = GPT2LMHeadModel(cfg).to(dtype)
    return model.to(dev).eval(), L, C


def last_logits(model, ids):
    h = model.transformer(input_ids=ids, use_cache=False).last_hidden_state[:, -1, :]
    return model.lm_head(h)


def main():
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"reference": "torch", "error": "no CUDA device visible to PyTorch"}))
        return 3
    dtype = torch.bfloat16 if (args.precision == "bf16" and dev.type == "cuda") else torch.float32
    timer = Timer(dev)
    out = dict(reference="torch", machine=machine(dev),
               config=dict(device=dev.type, precision=str(dtype).replace("torch.", ""), seed=args.seed,
                           warmup=args.warmup, reps=args.reps),
               method="CUDA events around each repetition (device time), torch.inference_mode" if dev.type == "cuda"
               else "perf_counter around each repetition")
    g = torch.Generator(device="cpu").manual_seed(args.seed + 1)
    with torch.inference_mode():
        if args.cmd == "matmul":
            a = torch.randn(args.m, args.k, generator=g).to(dev, dtype)
            b = torch.randn(args.k, args.n, generator=g).to(dev, dtype)
            st = timer.time(args.warmup, args.reps, lambda: torch.matmul(a, b))
            out["config"].update(m=args.m, k=args.k, n=args.n, op="torch.matmul (cuBLAS), output in the input dtype")
            out["time"] = st
            out["gflops"] = 2.0 * args.m * args.k * args.n / st["median_s"] / 1e9
        elif args.cmd == "forward":
            model, L, C = build(args.config, dev, dtype, args.seed)
            ids = torch.randint(0, VOCAB, (args.batch, args.seq), generator=g).to(dev)
            st = timer.time(args.warmup, args.reps, lambda: last_logits(model, ids))
            out["config"].update(config=args.config, batch=args.batch, seq=args.seq, attn="sdpa")
            out["time"] = st
            out["tokens_per_s"] = args.batch * args.seq / st["median_s"]
            out["model_gflops"] = flops(L, C, VOCAB, args.batch, args.seq) / st["median_s"] / 1e9
        else:
            model, L, C = build(args.config, dev, dtype, args.seed)
            H, Cn, Pn, T = 4 * C, args.coalitions, args.prompts, args.tokens
            ids = torch.randint(0, VOCAB, (Pn, T), generator=g).to(dev)
            answers = torch.randint(0, VOCAB, (Pn,), generator=g).to(dev)
            masks = (torch.rand(Cn, L, H, generator=g) < args.keep).to(dev, dtype)
            current = {}

            def hook_for(layer):
                def hook(module, inputs, output):
                    return output * current["mask"][:, layer, None, :]  # [B, 1, H] over [B, T, H]
                return hook

            handles = [model.transformer.h[l].mlp.act.register_forward_hook(hook_for(l)) for l in range(L)]
            ci_all = torch.arange(Cn, device=dev).repeat_interleave(Pn)
            pi_all = torch.arange(Pn, device=dev).repeat(Cn)
            per_batch = Cn * Pn if args.max_tokens <= 0 else max(1, args.max_tokens // T)

            def run():
                loss = torch.empty(Cn * Pn, device=dev, dtype=torch.float32)
                for s in range(0, Cn * Pn, per_batch):
                    ci, pi = ci_all[s:s + per_batch], pi_all[s:s + per_batch]
                    current["mask"] = masks[ci]
                    lg = last_logits(model, ids[pi]).float()
                    loss[s:s + per_batch] = torch.logsumexp(lg, -1) - lg.gather(1, answers[pi][:, None])[:, 0]
                return loss.view(Cn, Pn).mean(1)

            st = timer.time(args.warmup, args.reps, run)
            for h in handles:
                h.remove()
            out["config"].update(config=args.config, coalitions=Cn, prompts=Pn, tokens=T, keep=args.keep, layers="all",
                                 sequences_per_batch=per_batch, attn="sdpa", masks="forward hooks on transformer.h[L].mlp.act")
            out["time"] = st
            out["coalition_evals_per_s"] = Cn / st["median_s"]
            out["tokens_per_s"] = Cn * Pn * T / st["median_s"]
            out["model_gflops"] = flops(L, C, VOCAB, Cn * Pn, T) / st["median_s"] / 1e9
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
