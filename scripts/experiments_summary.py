#!/usr/bin/env python3
"""Answers the two hypotheses of the impairment study from the JSON that scripts/reproduce-experiments.sh wrote.

(A) impairment grows smoothly and monotonically with intensity;
(B) a topic's cluster impairs its own topic more than the other topics and more than random clusters.

Only the standard library, so it runs wherever the experiments do. Prints Markdown on stdout.
"""
import json
import math
import os
import sys

EXPERIMENTS = [
    ("exp1-toxic-post", "toxic", "1. toxic cluster, impaired at the neurons' output (blocks.*.mlp.hook_post)"),
    ("exp2-athlete-post", "athlete", "2. Athlete cluster, impaired at the neurons' output (blocks.*.mlp.hook_post)"),
    ("exp3-toxic-pre", "toxic", "3. toxic cluster, noise on the neurons' input (blocks.*.mlp.hook_pre)"),
]
MODES = ["noise", "negative-noise", "scale"]


def load(path):
    with open(path) as f:
        return json.load(f)


def spearman(xs, ys):
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2.0
            i = j + 1
        return r
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    syy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return float("nan") if sxx == 0 or syy == 0 else sxy / (sxx * syy)


def harm_order(curve):
    """Points ordered from no impairment to the strongest: scale runs 1 -> 0, the noise modes 0 -> max."""
    pts = curve["points"]
    return sorted(pts, key=lambda p: p["level"])


def oriented(curve, value):
    """A metric value as harm relative to clean (positive = worse), whatever the metric's direction."""
    sign = -1.0 if curve["higher_is_better"] else 1.0
    return sign * (value - curve["clean"]["mean"])


def strongest(curve, mode):
    pts = harm_order(curve)
    return pts[0] if mode == "scale" else pts[-1]


def fmt(x, digits=3):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def monotonicity(curve, mode):
    pts = harm_order(curve)
    if mode == "scale":
        pts = list(reversed(pts))  # factor 1 (none) -> 0 (ablated)
    harms = [p["harm"] for p in pts]
    levels = [p["level"] for p in pts]
    rho = spearman(list(range(len(harms))), harms)
    # A step counts against monotonicity only if it goes the wrong way beyond both points' intervals.
    breaks = 0
    for a, b in zip(pts, pts[1:]):
        if b["harm_ci_high"] < a["harm_ci_low"]:
            breaks += 1
    total = harms[-1] - harms[0]
    steps = [b - a for a, b in zip(harms, harms[1:])]
    biggest = max((abs(s) for s in steps), default=0.0)
    share = biggest / abs(total) if total != 0 else float("nan")
    return rho, breaks, len(steps), share, levels


def main():
    out, elapsed = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None
    lines = ["# Impairment study: answers", ""]
    if elapsed is not None:
        lines += [f"Whole run: {elapsed} s ({elapsed / 60:.1f} min) wall.", ""]
    verdict_a, verdict_b = [], []
    for exp, own, title in EXPERIMENTS:
        lines += [f"## {title}", ""]
        for mode in MODES:
            path = os.path.join(out, exp, mode, "impairment.json")
            if not os.path.exists(path):
                continue
            d = load(path)
            cfg = d["config"]
            lines += [f"### {mode}, levels {cfg['levels'][0]}..{cfg['levels'][-1]} ({len(cfg['levels'])} levels), "
                      f"{cfg['units']} neurons, {cfg.get('baseline', 0)} random clusters, {cfg.get('seeds', 1)} noise seeds", ""]
            lines += ["| prompts | metric | clean | strongest level | cluster harm [95% CI] | random harm (mean, sd) | z vs random | Spearman(level, harm) | CI-separated reversals | largest step / total |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for c in d["curves"]:
                p = strongest(c, mode)
                rb = oriented(c, p["baseline_mean"]) if "baseline_mean" in p else float("nan")
                sd = p.get("baseline_sd", float("nan"))
                z = (p["harm"] - rb) / sd if sd and sd > 0 else float("nan")
                rho, breaks, steps, share, _ = monotonicity(c, mode)
                lines.append(f"| {c['dataset']} ({c['prompts']}) | {c['metric']} | {fmt(c['clean']['mean'])} | {p['level']:g} | "
                             f"{fmt(p['harm'])} [{fmt(p['harm_ci_low'])}, {fmt(p['harm_ci_high'])}] | {fmt(rb)} ({fmt(sd)}) | "
                             f"{fmt(z, 1)} | {fmt(rho, 2)} | {breaks}/{steps} | {fmt(share, 2)} |")
                if c["metric"] == "loss":
                    verdict_a.append((exp, mode, c["dataset"], rho, breaks))
                    if c["topic"] == own:
                        others = [o for o in d["curves"] if o["metric"] == "loss" and o["topic"] != own]
                        beats_others = all(p["harm_ci_low"] > strongest(o, mode)["harm_ci_high"] for o in others)
                        verdict_b.append((exp, mode, p["harm"], p["harm_ci_low"], p["harm_ci_high"], z, beats_others,
                                          [(o["topic"], strongest(o, mode)["harm"]) for o in others]))
            lines.append("")
        spath = os.path.join(out, exp, "specificity", "specificity.json")
        if os.path.exists(spath):
            s = load(spath)
            names = [x["name"] for x in s["datasets"]]
            lines += [f"Specificity matrix (loss rise, {s['config']['mode']} at level {s['config'].get('level', s['config']['levels'][-1])}; "
                      "z against random clusters of the same per-layer counts; held-out prompts):", "",
                      "| cluster | " + " | ".join(names) + " | specific |", "|---|" + "---|" * (len(names) + 1)]
            for cl in s["clusters"]:
                cells = {c["dataset"]: c for c in s["cells"] if c["cluster"] == cl["name"]}
                row = [f"{fmt(cells[n]['effect'])} [{fmt(cells[n]['ci_low'])}, {fmt(cells[n]['ci_high'])}] z={fmt(cells[n]['z'], 1)}"
                       if n in cells else "" for n in names]
                lines.append(f"| {cl['name']} | " + " | ".join(row) + f" | {'yes' if cl['specific'] else 'no'}: {cl['reason']} |")
            lines.append("")

    lines += ["## Hypothesis A: impairment grows smoothly and monotonically with intensity", ""]
    if verdict_a:
        mono = [v for v in verdict_a if v[4] == 0]
        strong = [v for v in verdict_a if not math.isnan(v[3]) and v[3] >= 0.9]
        lines += [f"Loss curves: {len(mono)} of {len(verdict_a)} have no reversal beyond the 95% intervals; "
                  f"{len(strong)} of {len(verdict_a)} have Spearman(level, harm) >= 0.9.", ""]
    lines += ["## Hypothesis B: a topic's cluster impairs its own topic more than the others and than random clusters", ""]
    for exp, mode, h, lo, hi, z, beats, others in verdict_b:
        o = ", ".join(f"{t} {fmt(v)}" for t, v in others)
        lines.append(f"- {exp} / {mode}: own-topic loss harm {fmt(h)} [{fmt(lo)}, {fmt(hi)}], z = {fmt(z, 1)} against random; "
                     f"others: {o}; own interval above every other topic's: {'yes' if beats else 'no'}.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
