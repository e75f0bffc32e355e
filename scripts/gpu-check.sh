#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, with .carry/ carried (built by scripts/make-carry.sh):
# the CUDA tests (every kernel and the full forward pass against the CPU backend) and, when the jar has it,
# `nshap bench`. No Java is needed there: the JRE comes in .carry/jre.tar.gz. Results go to $OUT:
#   gpu-check.log (everything), summary.txt (device, test counts, bench figures), junit/ (XML reports)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.log") 2>&1
summary="$OUT/summary.txt"
: > "$summary"
say() { echo "$*" | tee -a "$summary"; }

[ -f .carry/nshap.jar ] || { say "FAIL: .carry/nshap.jar missing (run scripts/make-carry.sh and carry .carry)"; exit 1; }
say "commit: $(cat .carry/COMMIT 2>/dev/null || echo unknown)"
say "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
jre="$(mktemp -d)/"
tar xzf .carry/jre.tar.gz -C "$jre"
JAVA="$jre/jre/bin/java"
JOPTS=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx48g -XX:+IgnoreUnrecognizedVMOptions)
"$JAVA" -version 2>&1 | head -1
CP=".carry/nshap.jar:.carry/nshap-tests.jar"

"$JAVA" "${JOPTS[@]}" -jar .carry/nshap.jar cuda-info > "$OUT/cuda-info.txt" 2>&1
probe_rc=$?
say "probe: $(grep -v '^WARNING' "$OUT/cuda-info.txt" | tr '\n' ' ')"

echo "== GPU tests"
start=$(date +%s)
"$JAVA" "${JOPTS[@]}" -jar .carry/junit-platform-console-standalone.jar execute \
  --class-path "$CP" --disable-banner --details=tree --reports-dir "$OUT/junit" \
  --select-package dev.nshap.backend.cuda --select-class dev.nshap.backend.BackendsTest \
  ${GPU_TEST_EXTRA:-} > "$OUT/tests.txt" 2>&1
rc=$?
cat "$OUT/tests.txt"
say "tests: exit $rc in $(( $(date +%s) - start ))s"
grep -E "tests (successful|failed|skipped|aborted|found)|containers (skipped|failed|aborted)" "$OUT/tests.txt" | sed 's/^/  /' | tee -a "$summary"
if grep -qE "[1-9][0-9]* (tests|containers) (skipped|aborted)" "$OUT/tests.txt"; then
  say "NOTE: some tests were skipped or aborted: see tests.txt (no GPU seen, or no cuBLAS)"
fi

echo "== kernel and forward timings (dev.nshap.backend.cuda.CudaPerf)"
timeout "${PERF_TIMEOUT:-240}" "$JAVA" "${JOPTS[@]}" -cp .carry/nshap.jar dev.nshap.backend.cuda.CudaPerf > "$OUT/perf.txt" 2>&1
prc=$?
cat "$OUT/perf.txt"
say "perf: exit $prc"
grep -E "^(cuda-perf|kernel|forward)" "$OUT/perf.txt" | sed 's/^/  /' >> "$summary"

"$JAVA" "${JOPTS[@]}" -jar .carry/nshap.jar --help > "$OUT/nshap-help.txt" 2>&1
if grep -qE '^ +bench( |$)' "$OUT/nshap-help.txt"; then
  for p in bf16 fp32; do
    echo "== nshap bench --backend cuda --precision $p ${BENCH_ARGS:-}"
    timeout "${BENCH_TIMEOUT:-200}" "$JAVA" "${JOPTS[@]}" -jar .carry/nshap.jar bench --backend cuda --precision "$p" ${BENCH_ARGS:-} \
      > "$OUT/bench-$p.txt" 2>&1
    brc=$?
    cat "$OUT/bench-$p.txt"
    say "bench $p: exit $brc"
    tail -n 30 "$OUT/bench-$p.txt" | sed 's/^/  /' >> "$summary"
  done
else
  say "bench: this jar has no 'nshap bench' command yet; skipped"
fi
if [ "$probe_rc" != 0 ]; then
  say "FAIL: the CUDA backend is not usable on this machine, so the GPU tests were skipped"
  exit 3
fi
exit $rc
