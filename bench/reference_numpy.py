#!/usr/bin/env python3
"""NumPy reference GPT-2 forward (float32, CPU) for `nshap bench` side-by-sides.

Same FLOP-bearing structure as nshap's CPU backend: the batch's sequences packed into one [N, C] matrix so each
linear layer is one GEMM (OpenBLAS via numpy), causal attention per (sequence, head) batched with np.matmul,
gelu_new, and the unembedding only at the scored (last) position of each sequence. Random weights (std 0.02),
or a checkpoint written by `nshap bench reference-data` for --check.

  reference_numpy.py forward    --config small --batch 8 --seq 64
  reference_numpy.py coalitions --config small --coalitions 16 --prompts 8 --tokens 32
  reference_numpy.py check DIR  # logits against nshap's, clean and with neuron masks

JSON goes to stdout, progress to stderr. --threads sets the BLAS threads (default: all cores) before numpy loads.
"""
import argparse
import json
import os
import platform
import struct
import sys
import time

PRESETS = {  # n_layer, n_head, n_embd, n_positions: the same presets as dev.nshap.model.GPT2Config
    "tiny": (2, 4, 64, 128),
    "small": (12, 12, 768, 1024),
    "medium": (24, 16, 1024, 1024),
    "large": (36, 20, 1280, 1024),
    "xl": (48, 25, 1600, 1024),
}
VOCAB = 50257


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="BLAS threads (default: all cores)")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("forward", "coalitions"):
        s = sub.add_parser(name)
        s.add_argument("--config", default="small", choices=sorted(PRESETS))
        s.add_argument("--seed", type=int, default=1)
        s.add_argument("--warmup", type=int, default=2)
        s.add_argument("--reps", type=int, default=7)
        if name == "forward":
            s.add_argument("--batch", type=int, default=8)
            s.add_argument("--seq", type=int, default=64)
            s.add_argument("--trim", action="store_true",
                           help="the last layer after its attention at the last position only, as nshap runs it")
        else:
            s.add_argument("--coalitions", type=int, default=16)
            s.add_argument("--prompts", type=int, default=64)
            s.add_argument("--tokens", type=int, default=32)
            s.add_argument("--keep", type=float, default=0.5)
            s.add_argument("--layers", default="all", help="'all' or a comma list of the layers whose MLP neurons are masked")
            s.add_argument("--max-tokens", type=int, default=2048, help="tokens per forward batch (nshap's CPU default)")
    c = sub.add_parser("check")
    c.add_argument("dir", help="output of `nshap bench reference-data --out DIR`")
    c.add_argument("--tol", type=float, default=2e-3, help="max |logit difference| allowed")
    return p.parse_args(argv)


args = parse_args(sys.argv[1:])
# BLAS reads these when numpy loads: set them first so the reference uses exactly the cores nshap uses.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)
import numpy as np  # noqa: E402


class Model:
    def __init__(self, n_layer, n_head, n_embd, n_pos, vocab, eps=1e-5):
        self.L, self.nh, self.C, self.P, self.V, self.eps = n_layer, n_head, n_embd, n_pos, vocab, eps
        self.H = 4 * n_embd

    @staticmethod
    def random(n_layer, n_head, n_embd, n_pos, vocab, seed):
        m = Model(n_layer, n_head, n_embd, n_pos, vocab)
        rng = np.random.default_rng(seed)
        C, H = n_embd, 4 * n_embd

        def w(*shape):
            return (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02))

        m.wte, m.wpe = w(vocab, C), w(n_pos, C)
        m.blocks = []
        for _ in range(n_layer):
            m.blocks.append(dict(
                ln1w=np.ones(C, np.float32), ln1b=np.zeros(C, np.float32),
                attnw=w(C, 3 * C), attnb=np.zeros(3 * C, np.float32),
                projw=w(C, C), projb=np.zeros(C, np.float32),
                ln2w=np.ones(C, np.float32), ln2b=np.zeros(C, np.float32),
                fcw=w(C, H), fcb=np.zeros(H, np.float32),
                mprojw=w(H, C), mprojb=np.zeros(C, np.float32)))
        m.lnfw, m.lnfb = np.ones(C, np.float32), np.zeros(C, np.float32)
        m.lm_head = m.wte
        return m

    @staticmethod
    def load(d):
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        if cfg.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
            raise SystemExit(f"{d}: activation {cfg['activation_function']} is not the tanh gelu this reference computes")
        m = Model(cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["n_positions"], cfg["vocab_size"],
                  cfg.get("layer_norm_epsilon", 1e-5))
        t = read_safetensors(os.path.join(d, "model.safetensors"))

        def g(name):
            return t.get("transformer." + name, t.get(name))

        m.wte, m.wpe = g("wte.weight"), g("wpe.weight")
        m.blocks = []
        for l in range(m.L):
            p = f"h.{l}."
            m.blocks.append(dict(
                ln1w=g(p + "ln_1.weight"), ln1b=g(p + "ln_1.bias"),
                attnw=g(p + "attn.c_attn.weight"), attnb=g(p + "attn.c_attn.bias"),
                projw=g(p + "attn.c_proj.weight"), projb=g(p + "attn.c_proj.bias"),
                ln2w=g(p + "ln_2.weight"), ln2b=g(p + "ln_2.bias"),
                fcw=g(p + "mlp.c_fc.weight"), fcb=g(p + "mlp.c_fc.bias"),
                mprojw=g(p + "mlp.c_proj.weight"), mprojb=g(p + "mlp.c_proj.bias")))
        m.lnfw, m.lnfb = g("ln_f.weight"), g("ln_f.bias")
        m.lm_head = t.get("lm_head.weight", m.wte)
        return m

    def layer_norm(self, x, w, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + np.float32(self.eps)) * w + b

    def forward(self, tokens, mask=None, all_positions=False, mask_layers=None, trim=False):
        """tokens [B, T] int; mask [B, L, H] of 0/1 (None: clean). Logits [B, V] at the last position, or [B, T, V].

        trim: the last layer's attention output, MLP and residual at the last position only, as nshap does
        (nothing after the last attention mixes positions); the logits are the same."""
        B, T = tokens.shape
        C, nh, H = self.C, self.nh, self.H
        d = C // nh
        x = (self.wte[tokens] + self.wpe[:T]).reshape(B * T, C)
        causal = np.triu(np.full((T, T), -np.inf, np.float32), 1)
        scale = np.float32(1.0 / np.sqrt(d))
        c0 = np.float32(np.sqrt(2.0 / np.pi))
        rows = T                                                            # rows per sequence in x
        for l, b in enumerate(self.blocks):
            h = self.layer_norm(x, b["ln1w"], b["ln1b"])
            qkv = h @ b["attnw"] + b["attnb"]                               # [N, 3C]: one GEMM
            qkv = qkv.reshape(B, T, 3, nh, d).transpose(2, 0, 3, 1, 4)       # [3, B, nh, T, d]
            if trim and not all_positions and l == len(self.blocks) - 1:
                s = (qkv[0][:, :, -1:, :] @ qkv[1].transpose(0, 1, 3, 2)) * scale   # [B, nh, 1, T]: sees every key
                x, rows = x.reshape(B, T, C)[:, -1, :], 1
            else:
                s = (qkv[0] @ qkv[1].transpose(0, 1, 3, 2)) * scale + causal    # [B, nh, T, T]
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            z = (s @ qkv[2]).transpose(0, 2, 1, 3).reshape(B * rows, C)
            x = x + (z @ b["projw"] + b["projb"])
            h = self.layer_norm(x, b["ln2w"], b["ln2b"])
            u = h @ b["fcw"] + b["fcb"]                                     # [N, H]
            u = np.float32(0.5) * u * (np.float32(1) + np.tanh(c0 * (u + np.float32(0.044715) * u * u * u)))
            if mask is not None and (mask_layers is None or l in mask_layers):
                u = (u.reshape(B, rows, H) * mask[:, l, None, :]).reshape(B * rows, H)
            x = x + (u @ b["mprojw"] + b["mprojb"])
        x = x.reshape(B, rows, C)
        if not all_positions:
            x = x[:, -1, :]
        return self.layer_norm(x, self.lnfw, self.lnfb) @ self.lm_head.T


def read_safetensors(path):
    """safetensors: u64 little-endian header length, JSON header {name: {dtype, shape, data_offsets}}, raw data."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, z = e["data_offsets"]
        raw = data[a:z]
        if e["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif e["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif e["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {e['dtype']}, which this reader does not handle")
        out[name] = arr.reshape(e["shape"]).astype(np.float32, copy=False)
    return out


def flops(L, C, V, batch, seq, scored=1):
    """Same FLOP model as nshap's ForwardBench."""
    return 24.0 * C * C * L * batch * seq + 4.0 * C * L * batch * seq * (seq + 1) / 2 + 2.0 * C * V * batch * scored


def stats(ts):
    s = np.sort(np.asarray(ts))
    q = lambda p: float(np.quantile(s, p))
    med = q(0.5)
    return dict(median_s=med, p10_s=q(0.1), p90_s=q(0.9), min_s=float(s[0]), max_s=float(s[-1]),
                spread=(q(0.9) - q(0.1)) / med if med > 0 else 0.0, n=len(s))


def timed(warmup, reps, fn):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return stats(ts)


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = "unknown"
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]["name"] + " " + cfg["Build Dependencies"]["blas"].get("version", "")
    except Exception:
        pass
    kernel = "unknown (threadpoolctl not installed)"
    try:
        import threadpoolctl
        info = [i for i in threadpoolctl.threadpool_info() if i.get("internal_api") == "openblas"]
        if info:
            kernel = f"{info[0].get('architecture')} ({info[0].get('version')}, {info[0].get('num_threads')} threads)"
    except Exception:
        pass
    return dict(cpu_model=cpu, cores=os.cpu_count(), python=platform.python_version(), numpy=np.__version__,
                blas=blas.strip(), blas_threads=args.threads, blas_kernel=kernel,
                openblas_env={k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ},
                load_average=os.getloadavg()[0])


def main():
    if args.cmd == "check":
        return check(args.dir, args.tol)
    L, nh, C, P = PRESETS[args.config]
    print(f"numpy reference: random GPT-2 {args.config}, {args.threads} BLAS threads", file=sys.stderr)
    m = Model.random(L, nh, C, P, VOCAB, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    out = dict(reference="numpy", machine=machine(),
               config=dict(config=args.config, precision="fp32", seed=args.seed, warmup=args.warmup, reps=args.reps))
    if args.cmd == "forward":
        toks = rng.integers(0, VOCAB, size=(args.batch, args.seq))
        out["config"].update(batch=args.batch, seq=args.seq)
        st = timed(args.warmup, args.reps, lambda: m.forward(toks, trim=args.trim))
        out["config"].update(trim_last_layer=args.trim)
        out["time"] = st
        out["tokens_per_s"] = args.batch * args.seq / st["median_s"]
        out["model_gflops"] = flops(L, C, VOCAB, args.batch, args.seq) / st["median_s"] / 1e9
    else:
        Cn, Pn, T = args.coalitions, args.prompts, args.tokens
        toks = rng.integers(0, VOCAB, size=(Pn, T))
        answers = rng.integers(0, VOCAB, size=Pn)
        masks = (rng.random((Cn, L, 4 * C)) < args.keep).astype(np.float32)
        chosen = None
        if args.layers != "all":
            chosen = {int(x) for x in args.layers.split(",")}
            for l in range(L):
                if l not in chosen:
                    masks[:, l, :] = 1.0  # unmasked layers keep every neuron
        per_batch = max(1, args.max_tokens // T)  # sequences per forward, as nshap packs coalitions x prompts
        pairs = [(c, p) for c in range(Cn) for p in range(Pn)]
        out["config"].update(coalitions=Cn, prompts=Pn, tokens=T, keep=args.keep, layers=args.layers, max_tokens_per_batch=args.max_tokens)

        def run():
            loss = np.zeros((Cn, Pn))
            for i in range(0, len(pairs), per_batch):
                chunk = pairs[i:i + per_batch]
                ci = np.array([c for c, _ in chunk])
                pi = np.array([p for _, p in chunk])
                lg = m.forward(toks[pi], masks[ci], mask_layers=chosen).astype(np.float64)
                mx = lg.max(-1, keepdims=True)
                lse = (mx + np.log(np.exp(lg - mx).sum(-1, keepdims=True)))[:, 0]
                loss[ci, pi] = lse - lg[np.arange(len(chunk)), answers[pi]]
            return loss.mean(1)

        st = timed(args.warmup, args.reps, run)
        out["time"] = st
        out["coalition_evals_per_s"] = Cn / st["median_s"]
        out["tokens_per_s"] = Cn * Pn * T / st["median_s"]
        out["model_gflops"] = flops(L, C, VOCAB, Cn * Pn, T) / st["median_s"] / 1e9
    json.dump(out, sys.stdout, indent=2)
    print()


def check(d, tol):
    m = Model.load(d)
    toks = np.load(os.path.join(d, "tokens.npy")).astype(np.int64)
    mask = np.load(os.path.join(d, "mask.npy")).astype(np.float32)
    res = dict(reference="numpy", check=d, tol=tol)
    ok = True
    for name, mk in (("logits.npy", None), ("logits_masked.npy", mask)):
        want = np.load(os.path.join(d, name))
        got = m.forward(toks, mk, all_positions=True)
        diff = float(np.abs(got - want).max())
        # the trimmed forward (--trim) at the last position, against the same logits
        trimmed = float(np.abs(m.forward(toks, mk, trim=True) - want[:, -1, :]).max())
        res[name] = dict(max_abs_diff=diff, trim_max_abs_diff=trimmed, max_abs_logit=float(np.abs(want).max()))
        ok &= diff <= tol and trimmed <= tol
    # A mask that changes nothing would make the masked check vacuous.
    clean, masked = np.load(os.path.join(d, "logits.npy")), np.load(os.path.join(d, "logits_masked.npy"))
    res["mask_effect"] = float(np.abs(clean - masked).max())
    ok &= res["mask_effect"] > 10 * tol
    res["ok"] = bool(ok)
    json.dump(res, sys.stdout, indent=2)
    print()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
