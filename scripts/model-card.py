#!/usr/bin/env python3
"""Writes models/<name>/MODEL_CARD.md from what training and nshap's own checks produced (stdlib only, plus numpy
for the optional overlap check). Called by scripts/finish-default-model.sh; see there for the inputs."""
import argparse
import json
import os
import re
import sys


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def loss_table(text):
    """Rows (seq, tokens, nshap, reference, diff) and the summary lines of `nshap model loss` output."""
    rows, summary = [], []
    for line in text.splitlines():
        m = re.match(r"\s*(\d+)\s+(\d+)\s+(-?[\d.]+)\s+(-?[\d.]+|NaN)\s+([\d.e+-]+|NaN)\s*$", line)
        if m:
            rows.append((int(m[1]), int(m[2]), float(m[3]), m[4], m[5]))
        elif line.startswith(("model ", "mean ", "OK:", "MISMATCH", "nshap:")):
            summary.append(line.strip())
    return rows, summary


def gpu_sections(log):
    """The `nshap model loss` output of each backend from the GPU run's train.log."""
    out = {}
    for m in re.finditer(r"== nshap model loss --backend (\w+)\n(.*?)(?=\n== |\ntotal: |\Z)", log, re.S):
        out[m[1]] = m[2]
    return out


def overlap(train_bin, val_bin, prompt_bins, n=8):
    """Prompts sharing a run of n tokens (their first token skipped: it lacks the leading space it would have inside
    a document) with the training or validation tokens."""
    import numpy as np

    def grams(a):
        a = a.astype(np.uint64)
        if a.size < n:
            return np.zeros(0, dtype=np.uint64)
        h = np.zeros(a.size - n + 1, dtype=np.uint64)
        for k in range(n):
            h = h * np.uint64(1_000_003) + a[k:a.size - n + 1 + k]
        return h

    corpus = np.unique(np.concatenate([grams(np.fromfile(p, dtype="<u2")) for p in (train_bin, val_bin)]))
    result = {}
    for name, p in prompt_bins:
        ids = np.fromfile(p, dtype="<u2")
        docs = np.split(ids, np.nonzero(ids == 50256)[0])[1:]
        hit = 0
        for d in docs:
            g = grams(d[2:])  # d[0] is the separator, d[1] the prompt's first token
            if g.size:
                at = np.minimum(np.searchsorted(corpus, g), corpus.size - 1)
                hit += bool((corpus[at] == g).any())
        result[name] = (hit, len(docs))
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--train-log", required=True)
    ap.add_argument("--val-check", required=True)
    ap.add_argument("--tokens", help="tokens.json from nshap datasets tokenize")
    ap.add_argument("--gpu-log", help="train.log of the GPU run")
    ap.add_argument("--cpu-check", help="output of nshap model loss --backend cpu here")
    ap.add_argument("--evaluation", help="nshap evaluate --out JSON")
    ap.add_argument("--overlap", nargs="*", default=[], help="train.bin val.bin name=prompts.bin ...")
    ap.add_argument("--note", help="one more line for the training section")
    ap.add_argument("--val-windows", type=int, help="validation windows of each evaluation during training")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    tl = load(a.train_log)
    vc = load(a.val_check)
    cpu = "tokens_per_step" in tl  # written by `nshap train`, not by train.py
    if cpu:
        cfg = load(os.path.join(a.model, "config.json"))
        tl["size_mib"] = os.path.getsize(os.path.join(a.model, "model.safetensors")) / 2 ** 20
    else:
        cfg = tl["config"]
        args = tl["args"]
    L = []
    w = L.append
    w(f"# nshap default model: GPT-2 {cfg['n_layer']} layers x {cfg['n_embd']}, trained from scratch")
    w("")
    w("The model `nshap` uses when no `--model` is given. A small GPT-2 trained from random initialisation on the")
    w("public English corpora of `../shared/corpora` (no pretrained GPT-2 could be downloaded in the build environment).")
    if cpu:
        fin = tl["final"]
        than = ("below a bigram model's" if fin["val_loss_f16"] < fin["bigram_val_loss"]
                else "below a unigram model's but not yet a bigram model's" if fin["val_loss_f16"] < fin["unigram_val_loss"]
                else "not yet below a unigram model's")
        w(f"Trained by `nshap train` on the CPU from {tl['tokens_seen']:,} tokens, its validation loss is {than} (table below):")
        if fin["val_loss_f16"] < fin["unigram_val_loss"]:
            w("its neurons' Shapley values describe learnt behaviour, but mostly local word statistics; it is far weaker than")
            w("OpenAI's GPT-2 small (124M parameters, 40 GB of text).")
        else:
            w("its neurons describe next to no learnt behaviour: treat any attribution on it as a test of the pipeline only.")
    else:
        w("It has learnt real text, so its neurons' Shapley values describe learnt behaviour; it is far weaker than")
        w("OpenAI's GPT-2 small (124M parameters, 40 GB of text): expect topic words, not fluent paragraphs.")
    w("")
    w("## Configuration")
    w("")
    w("| | |")
    w("|---|---|")
    for k, v in [("architecture", "GPT2LMHeadModel (Hugging Face layout; Conv1D weights [in, out]; lm_head tied to wte)"),
                 ("layers x width", f"{cfg['n_layer']} x {cfg['n_embd']} ({cfg['n_head']} heads, MLP {4 * cfg['n_embd']} neurons per layer)"),
                 ("context", cfg["n_positions"]), ("vocabulary", f"{cfg['vocab_size']} (GPT-2's r50k_base BPE)"),
                 ("activation", cfg.get("activation_function")), ("layer norm epsilon", cfg.get("layer_norm_epsilon")),
                 ("parameters", f"{tl['parameters']:,}"), ("weights", f"model.safetensors, F16, {tl['size_mib']:.1f} MiB")]:
        w(f"| {k} | {v} |")
    w("")
    if cpu:
        cpu_training(w, tl, a)
    else:
        gpu_training(w, tl, args)

    data_section(w, a)
    reference_section(w, a, vc, cpu)
    evaluation_section(w, a)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(L))
    print(f"wrote {a.out}", file=sys.stderr)


def cpu_training(w, tl, a):
    c, fin = tl["config"], tl["final"]
    rows = tl["train"]
    w("## Training")
    w("")
    w("- Trained by nshap itself on the CPU: `nshap train` (the CPU backward pass, `CpuGradients.lmLoss`), in the"
      " background on the shared 2-core build machine; see README, \"Default model\".")
    w(f"- {tl['step']:,} steps of {c['batch']} windows x {c['ctx']} tokens ({tl['tokens_per_step']:,} tokens per step,"
      f" {tl['tokens_seen']:,} tokens seen = {tl['tokens_seen'] / tl['train_tokens']:.2f} epochs of the {tl['train_tokens']:,}"
      f" training tokens) in {tl['seconds'] / 60:.1f} min of training.")
    w(f"- AdamW (betas {c['beta1']}/{c['beta2']}, eps {c['eps']}, decoupled weight decay {c['weight_decay']} on the four Conv1D"
      f" matrices of each block only: no decay on biases, LayerNorm, wte/wpe), gradient global-norm clip {c['clip']}, peak learning"
      f" rate {c['lr']} after {c['warmup']} linear warm-up steps, cosine to {c['min_lr']} at step {c['steps']:,}; no dropout; f32"
      f" throughout; seed {c['seed']}. {tl['windows'][:1].upper() + tl['windows'][1:]}.")
    lrs = [r[2] for r in rows]
    jumps = [rows[i][0] for i in range(1, len(rows)) if lrs[i] > lrs[i - 1] * (1 + 1e-9) and rows[i][0] > c["warmup"] + 1]
    if jumps:
        w(f"- The run was resumed with a longer horizon (`--resume --steps`) at step(s) {', '.join(str(j - 1) for j in jumps)}:"
          " the cosine was recomputed for the new horizon there (the learning rate of every step is in train_log.json).")
    if a.note:
        w(f"- {a.note}")
    w("")
    w("| | loss (nats/token) |")
    w("|---|---|")
    w(f"| validation, f16 model as committed ({fin['val_windows']} windows of {c['ctx']} tokens spread over the validation file,"
      f" {fin['val_targets']:,} targets) | {fin['val_loss_f16']:.4f} |")
    w(f"| bigram baseline, same targets (Witten-Bell interpolated with the unigram; fitted on the training tokens) | {fin['bigram_val_loss']:.4f} |")
    w(f"| unigram baseline, same targets (add-one) | {fin['unigram_val_loss']:.4f} |")
    w(f"| uniform over the vocabulary | {__import__('math').log(50257):.4f} |")
    tail = rows[-min(50, len(rows)):]
    w(f"| training, mean of the last {len(tail)} steps' batches | {sum(r[1] for r in tail) / len(tail):.4f} |")
    w("")
    w("![loss curve](loss.png)")
    w("")
    if tl["val"]:
        w(f"Validation loss during training (f32, {a.val_windows or 'a few'} windows):")
        w("")
        w("| step | tokens seen | validation |")
        w("|---|---|---|")
        v = tl["val"]
        stride = max(1, len(v) // 12)
        pts = v[::stride] + ([v[-1]] if (len(v) - 1) % stride else [])
        for st, loss in pts:
            w(f"| {st} | {st * tl['tokens_per_step']:,} | {loss:.4f} |")
        w("")


def gpu_training(w, tl, args):
    w("## Training")
    w("")
    w(f"- Script: `weights-converter/train/train.py` (PyTorch {tl.get('torch')}, transformers {tl.get('transformers', '?')}),"
      f" run by `scripts/train-default-model.sh` on one {tl.get('gpu')}.")
    w(f"- {tl['steps']:,} steps of {args['batch']} x {args['ctx']} tokens ({tl['tokens_seen']:,} tokens, {tl.get('epochs', 0):.1f} epochs"
      f" of the {tl['train_tokens']:,} training tokens) in {tl['train_minutes']:.1f} min; stopped because: {tl.get('stop_reason', '?')}.")
    w(f"- AdamW (betas 0.9/0.95, weight decay {args['weight_decay']} on matrices), peak learning rate {args['lr']} after"
      f" {args['warmup']} warm-up steps, cosine to {args['min_lr']}; dropout {args['dropout']}; bf16 autocast; gradient clip 1.0; seed {args['seed']}.")
    w(f"- Evaluated every {args['eval_every']} steps on {tl.get('eval_windows', '?')} validation windows; the weights with the best"
      f" validation loss (step {tl.get('best_step', '?')}) were kept and saved in f16.")
    w("")
    w("| | loss (nats/token) |")
    w("|---|---|")
    w(f"| final train loss (fp32, saved f16 weights, {tl.get('eval_windows', '?')} windows of the training tokens, no dropout) | {tl['final_train_loss_fp32']:.4f} |")
    w(f"| final validation loss (fp32, saved f16 weights, all validation windows) | {tl['final_val_loss_fp32']:.4f} |")
    w(f"| best validation loss during training (bf16 autocast) | {tl['best_val_loss_bf16_autocast']:.4f} |")
    w("")
    curve = tl.get("curve", [])
    if curve:
        w("Loss curve (every few evaluations):")
        w("")
        w("| step | minutes | train | validation |")
        w("|---|---|---|---|")
        stride = max(1, len(curve) // 12)
        pts = curve[::stride] + ([curve[-1]] if (len(curve) - 1) % stride else [])
        for p in pts:
            w(f"| {p['step']} | {p['minutes']:.2f} | {p['train_loss']:.4f} | {p['val_loss']:.4f} |")
        w("")


def data_section(w, a):
    w("## Data")
    w("")
    if a.tokens and os.path.isfile(a.tokens):
        tk = load(a.tokens)
        w(f"Tokenized by `nshap datasets tokenize` ({tk['tokenizer']}); every document is preceded by <|endoftext|> (50256).")
        w(f"Train: {tk['train']['tokens']:,} tokens in {tk['train']['documents']:,} documents (sha256 `{tk['train']['sha256'][:16]}...`);"
          f" validation: {tk['val']['tokens']:,} tokens in {tk['val']['documents']:,} documents (sha256 `{tk['val']['sha256'][:16]}...`).")
        w("")
        w("| source | what | licence | documents | duplicates dropped | train tokens | held out | validation tokens |")
        w("|---|---|---|---|---|---|---|---|")
        for s in tk["sources"]:
            w(f"| {s['name']} | {s['what']} | {s['licence']} | {s['documents_read']:,} | {s['duplicates_dropped']} |"
              f" {s['train_tokens']:,} | {s['val_documents']:,} ({s['val_fraction']:.0%} by hash) | {s['val_tokens']:,} |")
        w("")
        w(f"Split rule (seed {tk['split']['seed']}): {tk['split']['rule']}.")
    else:
        w("(tokens.json was not available when this card was written.)")
    w("")
    w("Licences are those the corpora README gives (`../shared/corpora/README.md`). The weights are derived from all of")
    w("them, among them CC BY-SA 3.0 / GFDL (DBpedia), GPL-3.0 (ETHOS) and research-use-only (AG News) text; use the")
    w("model for research on nshap, and check those terms before redistributing it elsewhere. The toxic-comment sources")
    w("were included on purpose (toxic vs harmless is one of the topics nshap studies): the model will complete text")
    w("with slurs and insults.")
    w("")
    if a.overlap:
        res = overlap(a.overlap[0], a.overlap[1], [tuple(x.split("=", 1)) for x in a.overlap[2:]])
        w("Overlap with the bundled topic sets (`datasets/*.jsonl`, authored for nshap, not drawn from these corpora): prompts"
          " sharing a run of 8 GPT-2 tokens with the training or validation tokens (first prompt token skipped):")
        w("")
        w(", ".join(f"{k}: {h} of {n}" for k, (h, n) in res.items()) + ".")
        w("")


def reference_section(w, a, vc, cpu):
    if cpu:
        w("## nshap agrees with an independent float64 forward")
        w("")
        w(f"`weights-converter/train/np_loss.py` (NumPy {vc.get('torch', '').replace('none (numpy ', '').rstrip(')')}, float64, no nshap code)"
          f" computed from the committed f16 weights the mean next-token loss of {len(vc['sequences'])} validation windows of"
          f" {len(vc['sequences'][0]['tokens'])} tokens (`val_check.json`); `nshap model loss --check val_check.json --backend cpu`"
          " recomputes them:")
        w("")
    else:
        w("## nshap reproduces PyTorch")
        w("")
        w(f"PyTorch {vc.get('torch')} computed, on {vc.get('device')}, in float32 from the saved f16 weights (eager attention,"
      f" no TF32), the mean next-token loss of {len(vc['sequences'])} validation windows of {len(vc['sequences'][0]['tokens'])} tokens"
          " (`val_check.json`). `nshap model loss --check val_check.json` recomputes them with nshap's backends:")
        w("")
    ref = "NumPy float64" if cpu else "PyTorch"
    cols = []
    if a.cpu_check and os.path.isfile(a.cpu_check):
        cols.append(("nshap CPU (here)", loss_table(open(a.cpu_check, encoding="utf-8").read())))
    if a.gpu_log and os.path.isfile(a.gpu_log):
        secs = gpu_sections(open(a.gpu_log, encoding="utf-8").read())
        for b in ("cpu", "cuda"):
            if b in secs:
                cols.append((f"nshap {b.upper()} (GPU machine)", loss_table(secs[b])))
    w(f"| window | {ref} | " + " | ".join(c[0] for c in cols) + " |")
    w("|---|---|" + "---|" * len(cols))
    for i, s in enumerate(vc["sequences"]):
        cells = []
        for _, (rows, _) in cols:
            r = next((r for r in rows if r[0] == i), None)
            cells.append(f"{r[2]:.6f} (diff {r[4]})" if r else "n/a")
        w(f"| {i} | {s['loss']:.6f} | " + " | ".join(cells) + " |")
    w("")
    for name, (_, summary) in cols:
        verdict = next((x for x in summary if x.startswith(("OK", "MISMATCH", "nshap:"))), "no verdict (did the check run?)")
        w(f"- {name}: {verdict}")
    w("")


def evaluation_section(w, a):
    w("## nshap's evaluation on the bundled topic sets")
    w("")
    if a.evaluation and os.path.isfile(a.evaluation):
        ev = load(a.evaluation)
        table = {}
        for r in ev["rows"]:
            table.setdefault(os.path.basename(r["dataset"]), {})[r["metric"]] = r
        w("`nshap evaluate --metric accuracy,loss` (CPU backend) on the clean model; mean over prompts [95% interval]:")
        w("")
        w("| prompt set | prompts | keyword accuracy | keyword loss (nats) |")
        w("|---|---|---|---|")
        for d, m in table.items():
            def fmt(r):
                if not r:
                    return "n/a"
                if "ci_low" in r:  # nshap evaluate's interval
                    return f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
                return f"{r['mean']:.3f} +/- {1.96 * r['stderr']:.3f}"
            n = next(iter(m.values()))["prompts"]
            w(f"| {d} | {n} | {fmt(m.get('accuracy'))} | {fmt(m.get('loss'))} |")
        w("")
        w("Accuracy: every token of the answer keyword is the top-1 prediction under teacher forcing; loss: mean negative log-likelihood of the answer tokens.")
    else:
        w("(no evaluation was run)")
    w("")


if __name__ == "__main__":
    main()
