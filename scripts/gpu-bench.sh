#!/usr/bin/env bash
# The GPU benchmarks and the side-by-side against PyTorch/transformers, on the GPU machine (no Java or Maven needed
# there: the jar and a JRE come in .carry/, built by scripts/make-carry.sh on a machine with nvcc).
#
#   scripts/make-carry.sh                        # here, once
#   bash scripts/gpu-bench.sh                    # there, from the repository root, with .carry carried
#   (device tool: run command "bash scripts/gpu-bench.sh", carry [".carry"]; results come back under $OUT)
#
# Runs: bench/side_by_side.sh --backend cuda (forward 8x64, coalitions 16 x 64 prompts x 32 tokens, GEMM at
# M=2048 K=768 N=3072; nshap bf16 vs PyTorch bf16 SDPA), then nshap bench gemm/attention/forward/coalitions in
# fp32 and bf16. Everything lands in $OUT (default ./gpu-bench-out): summary.txt, the logs, results/bench JSON.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-bench-out}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-bench.log") 2>&1
summary="$OUT/summary.txt"
: > "$summary"
say() { echo "$*" | tee -a "$summary"; }

JAVA="${JAVA:-}"
if [ -z "$JAVA" ]; then
  if [ -f .carry/jre.tar.gz ]; then
    jre="$(mktemp -d)"
    tar xzf .carry/jre.tar.gz -C "$jre"
    JAVA="$jre/jre/bin/java"
  elif command -v java >/dev/null; then
    JAVA="$(command -v java)"
  else
    say "FAIL: no Java: carry .carry (scripts/make-carry.sh) or set JAVA"; exit 1
  fi
fi
JAR="${NSHAP_JAR:-.carry/nshap.jar}"
[ -f "$JAR" ] || JAR=target/nshap.jar
[ -f "$JAR" ] || { say "FAIL: no nshap jar (.carry/nshap.jar or target/nshap.jar)"; exit 1; }
wrapper="$(mktemp)"
cat > "$wrapper" <<W
#!/usr/bin/env bash
exec "$JAVA" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -XX:+IgnoreUnrecognizedVMOptions -Xmx48g -jar "$PWD/$JAR" "\$@"
W
chmod +x "$wrapper"
export NSHAP="$wrapper"

say "commit: $(cat .carry/COMMIT 2>/dev/null || git rev-parse HEAD 2>/dev/null || echo unknown)"
say "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
say "python: $(python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())' 2>&1 | tail -1)"
"$NSHAP" cuda-info 2>&1 | grep -v '^WARNING' | sed 's/^/  /' | tee -a "$summary"

echo "== side-by-side (nshap bf16 vs PyTorch bf16 SDPA)"
timeout "${SBS_TIMEOUT:-420}" bench/side_by_side.sh --backend cuda ${SBS_ARGS:-} > "$OUT/side-by-side.txt" 2> "$OUT/side-by-side.err"
say "side-by-side: exit $?"
cat "$OUT/side-by-side.txt" | tee -a "$summary"
tail -n 20 "$OUT/side-by-side.err"

if [ "${ALL:-1}" = 1 ]; then
  for p in bf16 fp32; do
    for b in "gemm" "attention" "forward" "coalitions"; do
      echo "== nshap bench $b --backend cuda --precision $p"
      timeout 150 "$NSHAP" bench $b --backend cuda --precision "$p" --config small > "$OUT/bench-$b-$p.txt" 2>&1
      rc=$?
      say "bench $b $p: exit $rc"
      grep -E "^  (gemm|own|attention|tokens|forward|model|coalition|GEMM|peak)" "$OUT/bench-$b-$p.txt" | sed 's/^/  /' | tee -a "$summary"
    done
  done
fi
mkdir -p "$OUT/results"
cp -r results/bench "$OUT/results/" 2>/dev/null
exit 0
