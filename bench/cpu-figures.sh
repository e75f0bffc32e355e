#!/usr/bin/env bash
# Every CPU figure the docs quote, in one run on a quiet machine (nothing else running: the numbers are wall time):
#   1. the side-by-side against NumPy (forward 8x64 and 64x32, coalitions), bench/side_by_side.sh; then (1b) the
#      forwards again against a reference that, like nshap, runs its last layer after the attention at the last
#      position only;
#   2. forward 8x64 and 64x32 again on a second Java runtime, when JAVA2 names one (the jar stays at release 17);
#   3. the GPT-2-small layer-5 group game (96 players of 32 neurons, 4 prompts x 32 tokens): coalition
#      evaluations/s on the Vector-API GEMM (the backend before OpenBLAS) and on OpenBLAS, back to back;
#   4. the backward pass against a forward of the same batch (8 x 64), on both GEMMs.
# JSON goes to results/bench/ (each tool's own naming); the tables to stdout.
#
#   bash bench/cpu-figures.sh                 # JAVA2=/path/to/java bash bench/cpu-figures.sh for step 2
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
NSHAP="${NSHAP:-$root/nshap}"
# four rounds a side: on a machine whose speed moves within minutes, one round can land anywhere
ROUNDS="${ROUNDS:-4}"
stamp=$(date -u +%Y%m%d-%H%M%S)
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== 1. side-by-side against NumPy"
bash bench/side_by_side.sh --rounds "$ROUNDS"
echo "== 1b. the same forwards against a NumPy reference that trims its last layer as nshap does (like for like)"
bash bench/side_by_side.sh --rounds "$ROUNDS" --ref-trim --skip-check
if [ -n "${JAVA2:-}" ]; then
  echo "== 2. forward on $("$JAVA2" -version 2>&1 | head -1)"
  for shape in 8x64 64x32; do
    NSHAP_JAVA="$JAVA2" "$NSHAP" bench forward --config small --batch "${shape%x*}" --seq "${shape#*x}" --reps 3 --warmup 1 \
      --json "results/bench/forward-cpu-small-$shape-java2-$stamp.json"
  done
fi
echo "== 3. layer-5 group game, Vector-API GEMM then OpenBLAS"
for gemm in java openblas; do
  NSHAP_GEMM=$gemm "$NSHAP" bench shapley --config small --players blocks.5.mlp.hook_post --group-size 32 \
    --prompts 4 --tokens 32 --evaluations 200 --reps 1 --warmup 1 --json "results/bench/shapley-cpu-small-layer5-$gemm-$stamp.json"
done
echo "== 4. backward against forward, 8 x 64"
for gemm in java openblas; do
  NSHAP_GEMM=$gemm "$NSHAP" bench backward --config small --batch 8 --seq 64 --reps 3 --warmup 1 \
    --json "results/bench/backward-cpu-small-$gemm-$stamp.json"
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
