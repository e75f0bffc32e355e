#!/usr/bin/env python3
"""Joins nshap's bench JSON and a reference's JSON into one side-by-side table and JSON.

  compare.py --out FILE.json --title TEXT KIND:NSHAP1[,NSHAP2..]:REF1[,REF2..] ...

KIND is forward, coalitions or gemm. Where a side ran several rounds, its best median (highest rate) is kept:
noise on a shared machine only ever slows a run down, and both sides get the same treatment.
"""
import argparse
import json
import os
import sys
import tempfile
from datetime import datetime, timezone


def nshap_rows(j):
    return {r["name"]: r for r in j["results"]}


def nshap_metrics(kind, j):
    rows = nshap_rows(j)
    kind = kind.split("-")[0]
    if kind == "forward":
        r = rows["forward tokens/s"]
        return {"tokens/s": (r["value"], r["time"])}
    if kind == "coalitions":
        return {"coalition evals/s": (rows["coalition evaluations/s"]["value"], rows["coalition evaluations/s"]["time"]),
                "tokens/s": (rows["tokens/s"]["value"], rows["tokens/s"]["time"])}
    if kind == "gemm":
        r = next(v for k, v in rows.items() if k.endswith("own kernel") or k.endswith("(OpenBLAS)") or k.endswith("(Vector API)"))
        return {"GEMM GFLOP/s": (r["value"], r["time"])}
    raise SystemExit(f"unknown kind {kind}")


def ref_metrics(kind, j):
    if "error" in j:
        raise SystemExit(f"reference failed: {j['error']}")
    kind = kind.split("-")[0]
    if kind == "forward":
        return {"tokens/s": (j["tokens_per_s"], j["time"])}
    if kind == "coalitions":
        return {"coalition evals/s": (j["coalition_evals_per_s"], j["time"]), "tokens/s": (j["tokens_per_s"], j["time"])}
    return {"GEMM GFLOP/s": (j["gflops"], j["time"])}


def best(kind, files, fn):
    runs = [fn(kind, json.load(open(f))) for f in files]
    out = {}
    for key in runs[0]:
        vals = [r[key] for r in runs]
        v, t = max(vals, key=lambda x: x[0])
        out[key] = dict(value=v, median_s=t["median_s"], spread=t["spread"], rounds=[x[0] for x in vals])
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="side-by-side")
    p.add_argument("--ref-name", default="reference")
    p.add_argument("pairs", nargs="+")
    a = p.parse_args()
    result = dict(title=a.title, created_utc=datetime.now(timezone.utc).isoformat(), rows=[])
    for spec in a.pairs:
        kind, ns, rf = spec.split(":")
        nf, rfs = ns.split(","), rf.split(",")
        n, r = best(kind, nf, nshap_metrics), best(kind, rfs, ref_metrics)
        first_n, first_r = json.load(open(nf[0])), json.load(open(rfs[0]))
        result.setdefault("nshap_machine", first_n["machine"])
        result.setdefault("reference_machine", first_r["machine"])
        for key in n:
            result["rows"].append(dict(workload=kind, metric=key, nshap=n[key], reference=r[key],
                                       ratio=n[key]["value"] / r[key]["value"],
                                       nshap_config=first_n["config"], reference_config=first_r["config"],
                                       nshap_files=nf, reference_files=rfs))
    m = result["nshap_machine"]
    print(a.title)
    print(f"  machine: {m.get('cpu_model')}, {m.get('cores')} cores, {m.get('java')}"
          + (f", GPU {m['gpu']['name']}" if isinstance(m.get("gpu"), dict) else f", GEMM {m['cpu_gemm']}" if "cpu_gemm" in m else ""))
    loads = sorted({json.load(open(f))["machine"].get("load_average") for spec in a.pairs for side in spec.split(":")[1:]
                    for f in side.split(",")} - {None})
    if loads:
        print(f"  load average (1 min) at the start of the runs: {loads[0]:.1f} .. {loads[-1]:.1f}")
        result["load_average_range"] = [loads[0], loads[-1]]
    rm = result["reference_machine"]
    print(f"  reference: " + ", ".join(f"{k} {rm[k]}" for k in ("numpy", "blas", "blas_threads", "blas_kernel", "torch", "transformers", "gpu") if k in rm))
    print(f"  {'workload':<16} {'metric':<18} {'nshap':>12} {'spread':>7} {a.ref_name:>12} {'spread':>7} {'nshap/ref':>10}")
    for row in result["rows"]:
        print(f"  {row['workload']:<16} {row['metric']:<18} {row['nshap']['value']:>12.2f} {100 * row['nshap']['spread']:>6.1f}% "
              f"{row['reference']['value']:>12.2f} {100 * row['reference']['spread']:>6.1f}% {row['ratio']:>9.2f}x")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(a.out)), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    os.replace(tmp, a.out)
    print(f"  json: {a.out}")


if __name__ == "__main__":
    sys.exit(main())
