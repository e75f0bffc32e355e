#!/usr/bin/env bash
# The GPU check, in one command on a GPU machine without Java or network, from the repository root with .carry/
# carried (built here beforehand by scripts/make-carry.sh):   bash scripts/gpu-check.sh
#
# 1. smoke: one real launch in the first seconds (the RNG kernel against CounterRng);
# 2. correctness: each GPU test class in its own JVM with CUDA_LAUNCH_BLOCKING=1, cheapest and most diagnostic
#    first, so that one fault cannot take the others down;
# 3. timed pass (no CUDA_LAUNCH_BLOCKING): dev.nshap.bench.CudaPerf, then bench/reference_torch.py on the same
#    shapes and workload (PyTorch's matmul is the GEMM anchor: JCublas 12.6 needs libcublas.so.12).
# About 480 s in all (BUDGET_S). Results in $OUT (default ./gpu-out), at most 8 files:
#   summary.txt   one line per test class (passed/failed/skipped, first failing assertion), then the figures
#   gpu-check.log everything          perf.txt  the perf table      side-by-side.json  nshap next to PyTorch
#   rest.tar.gz   per-class logs, perf.json, the PyTorch JSONs, cuda-info
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
BUDGET_S="${BUDGET_S:-470}"
mkdir -p "$OUT"
work="$(mktemp -d)"
exec > >(tee "$OUT/gpu-check.log") 2>&1
summary="$OUT/summary.txt"
: > "$summary"
say() { echo "$*" | tee -a "$summary"; }
T0=$(date +%s)
left() { echo $((BUDGET_S - ($(date +%s) - T0))); }
# limit LIMIT: LIMIT seconds, or what is left of the budget minus RESERVE (the timed pass needs its share)
limit() { local l=$(( $(left) - ${2:-0} )); [ "$l" -lt "$1" ] && echo $(( l > 5 ? l : 5 )) || echo "$1"; }
finish() {
  tar czf "$OUT/rest.tar.gz" -C "$work" . 2>/dev/null
  say "total: $(( $(date +%s) - T0 )) s"
}
trap finish EXIT

[ -f .carry/nshap.jar ] || { say "FAIL: .carry/nshap.jar missing (run scripts/make-carry.sh here and carry .carry)"; exit 1; }
say "commit: $(cat .carry/COMMIT 2>/dev/null || echo unknown)"
say "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
jre="$(mktemp -d)"
tar xzf .carry/jre.tar.gz -C "$jre"
JAVA="$jre/jre/bin/java"
JOPTS=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx32g -XX:+IgnoreUnrecognizedVMOptions)
CP=".carry/nshap.jar:.carry/nshap-tests.jar:.carry/junit/*"
"$JAVA" -version 2>&1 | head -1

"$JAVA" "${JOPTS[@]}" -jar .carry/nshap.jar cuda-info > "$work/cuda-info.txt" 2>&1
probe_rc=$?
say "probe: $(grep -v '^WARNING' "$work/cuda-info.txt" | tr '\n' ' ')"

# one test class in its own JVM: its log in $work, its line in summary.txt
run_class() { # class limit_s
  local cls="dev.nshap.backend.cuda.$1" log="$work/$1.log" t
  [ "$1" = BackendsTest ] && cls=dev.nshap.backend.BackendsTest
  t=$(limit "$2" 200)
  echo "== $1 (limit ${t}s)"
  CUDA_LAUNCH_BLOCKING=1 timeout "$t" "$JAVA" "${JOPTS[@]}" -cp "$CP" dev.nshap.backend.cuda.GpuCheck "$cls" "$summary" > "$log" 2>&1
  local rc=$?
  grep -E "^(PASSED|FAILED|SKIPPED)|top-1 compared" "$log"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then say "$1: FAILED (timed out after ${t}s); last lines: $(tail -n 3 "$log" | tr '\n' ' ' | cut -c1-300)"
  elif [ "$rc" != 0 ] && ! grep -q "^$1: " "$summary"; then say "$1: FAILED (exit $rc before a verdict): $(grep -v '^WARNING' "$log" | tail -n 3 | tr '\n' ' ' | cut -c1-300)"
  fi
  return $rc
}

echo "== smoke: one real launch"
run_class RngKernelTest 60 || say "NOTE: the smoke test did not pass; the other classes run anyway, each in its own JVM"

# cheapest and most diagnostic first: single kernels, then the kernels composed, then the whole forward
for c in EmbeddingKernelTest ResidualKernelTest LayerNormKernelTest GeluInterveneKernelTest \
         AttentionKernelTest GemmKernelTest UnembedKernelTest BackendsTest CudaForwardTest; do
  case "$c" in CudaForwardTest) lim=200 ;; *) lim=90 ;; esac
  run_class "$c" "$lim"
done

echo "== timed pass: dev.nshap.bench.CudaPerf"
t=$(limit 180 70)
timeout "$t" "$JAVA" "${JOPTS[@]}" -cp .carry/nshap.jar dev.nshap.bench.CudaPerf "$work/perf.json" > "$work/perf-raw.txt" 2>&1
prc=$?
grep -E "^perf " "$work/perf-raw.txt" > "$OUT/perf.txt"
cat "$work/perf-raw.txt"
say "perf: exit $prc$([ "$prc" = 124 ] && echo " (timed out after ${t}s)")"

echo "== PyTorch on the same shapes (bench/reference_torch.py)"
PY="${PYTHON:-python3}"
pyok=$("$PY" -c 'import torch, transformers; print(torch.cuda.is_available())' 2>&1 | tail -1)
if [ "$pyok" = True ]; then
  for job in "matmul --m 32768 --k 768 --n 3072" "matmul --m 32768 --k 3072 --n 768" "matmul --m 2048 --k 768 --n 3072" \
             "coalitions --config small --coalitions 16 --prompts 64 --tokens 32"; do
    name=$(echo "$job" | sed 's/ --/_/g; s/ /_/g')
    t=$(limit 90 15)
    timeout "$t" "$PY" bench/reference_torch.py $job --reps 10 > "$work/torch-$name.json" 2> "$work/torch-$name.err"
    echo "torch $job: exit $?"
  done
else
  say "torch: not usable here ($pyok): no PyTorch side-by-side"
fi

# the side-by-side: nshap's figures next to PyTorch's, also as the perf table's last lines
"$PY" - "$work" "$OUT/side-by-side.json" >> "$OUT/perf.txt" <<'PY' || say "side-by-side: could not be built (see gpu-check.log)"
import glob, json, os, sys
work, out = sys.argv[1], sys.argv[2]
def load(p):
    try:
        with open(p) as f: return json.load(f)
    except Exception: return None
perf = load(os.path.join(work, "perf.json")) or {}
torch = {os.path.basename(p)[6:-5]: load(p) for p in glob.glob(os.path.join(work, "torch-*.json"))}
res, rows = {"nshap": perf, "torch": torch}, []
for shape, key in [("M32768_N3072_K768", "matmul_m_32768_k_768_n_3072"), ("M32768_N768_K3072", "matmul_m_32768_k_3072_n_768"),
                   ("M2048_N3072_K768", "matmul_m_2048_k_768_n_3072")]:
    own, t = perf.get("gemm_bf16_" + shape), torch.get(key)
    if own and t and "gflops" in t:
        r = own["tflops"] * 1e3 / t["gflops"]
        res["gemm_" + shape] = {"own_tflops": own["tflops"], "torch_tflops": t["gflops"] / 1e3, "own_over_torch": r}
        rows.append(f"gemm bf16 {shape}: own {own['tflops']:.1f} TFLOP/s, torch.matmul {t['gflops'] / 1e3:.1f} TFLOP/s, ratio {r:.2f} (goal >= 0.70 at K=768 N=3072)")
tc = torch.get("coalitions_config_small_coalitions_16_prompts_64_tokens_32")
for p in ("bf16", "fp32"):
    ev, fw = perf.get("evaluator_" + p), perf.get("forward_" + p)
    if fw: rows.append(f"forward {p} 64x32x16: {fw['tokens_per_s']:.0f} tokens/s")
    if ev:
        line = f"coalition evals/s {p} through the evaluator: {ev['coalition_evals_per_s']:.1f}"
        if tc and "coalition_evals_per_s" in tc and p == "bf16":
            r = ev["coalition_evals_per_s"] / tc["coalition_evals_per_s"]
            res["coalitions_bf16"] = {"nshap_evals_per_s": ev["coalition_evals_per_s"], "torch_hooks_evals_per_s": tc["coalition_evals_per_s"],
                                      "nshap_over_torch": r}
            line += f"; PyTorch + hooks {tc['coalition_evals_per_s']:.1f}; ratio {r:.2f} (goal >= 3)"
        rows.append(line)
with open(out, "w") as f: json.dump(res, f, indent=2)
for r in rows: print("side-by-side " + r)
PY
grep "^side-by-side" "$OUT/perf.txt" | tee -a "$summary"
grep -E "^perf (cublas|forward|evaluator|graph-replay)" "$OUT/perf.txt" >> "$summary"
grep -q "^perf graph-replay.*FAILED" "$OUT/perf.txt" && say "graph-replay: FAILED (see perf.txt)"
if [ "$probe_rc" != 0 ]; then
  say "FAIL: the CUDA backend is not usable on this machine, so the GPU tests skipped"
  exit 3
fi
grep -q ": FAILED" "$summary" && exit 1
exit 0
