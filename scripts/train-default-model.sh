#!/usr/bin/env bash
# Step 2 of 3 of training the default model. Runs ON THE GPU MACHINE from the repository root, with .carry/ carried
# (built by scripts/prepare-training.sh): trains weights-converter/train/train.py on .carry/tokens.bin (validation:
# .carry/tokens.val.bin), then checks with nshap's CPU and CUDA backends (the carried JRE and jar) that they
# reproduce PyTorch's loss on the saved weights.
#
# The device allows 10 minutes a command, so training is capped at TRAIN_MINUTES (default 7) of steps, after a
# 30-step smoke run of a tiny model (SMOKE=0 skips it); with the ~3M-token corpus the validation loss is expected
# to stop improving before the cap (early stopping), and train_log.json says which of the two ended the run.
#
# Everything goes to $OUT, within the device tool's limits (at most 8 files, each at most 16 MiB, plain names):
#   config.json  model.safetensors.part00..02 (split -b 15M; cat them back)  train_log.json  val_check.json
#   train.log (this script's whole output: versions, the loss curve, sha256 of model.safetensors, both loss checks)
# Then, back on the development machine: bash scripts/finish-default-model.sh <the fetched files folder>
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/train-out}"
mkdir -p "$OUT"
exec > >(tee "$OUT/train.log") 2>&1
start=$(date +%s)

for f in .carry/tokens.bin .carry/tokens.val.bin .carry/nshap.jar .carry/jre.tar.gz; do
  [ -f "$f" ] || { echo "FAIL: $f missing (run scripts/prepare-training.sh here first, and carry .carry)"; exit 1; }
done
echo "commit: $(cat .carry/COMMIT 2>/dev/null || echo unknown)"
echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
PY="${PYTHON:-python3}"
"$PY" -c 'import sys, torch, transformers, safetensors, numpy; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "safetensors", safetensors.__version__, "numpy", numpy.__version__, "cuda", torch.cuda.is_available())' \
  || { echo "FAIL: python3 with torch, transformers, safetensors and numpy is needed"; exit 1; }

jre="$(mktemp -d)"
tar xzf .carry/jre.tar.gz -C "$jre"
JAVA="$jre/jre/bin/java"
JOPTS=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -XX:+IgnoreUnrecognizedVMOptions)

if [ "${SMOKE:-1}" = 1 ]; then
  # A few steps of a tiny model through the whole script (save, reload, reference losses) and nshap's CPU check,
  # so that an API surprise costs seconds, not the whole training run.
  echo "== smoke test (1 x 64, 30 steps)"
  smoke="$(mktemp -d)/smoke"
  timeout 120 "$PY" weights-converter/train/train.py --train .carry/tokens.bin --val .carry/tokens.val.bin --out "$smoke" \
    --n-layer 1 --n-head 2 --n-embd 64 --batch 16 --max-steps 30 --warmup 5 --eval-every 10 --eval-windows 64 --check-sequences 2 \
    || { echo "FAIL: the smoke run of train.py failed"; exit 1; }
  timeout 60 "$JAVA" "${JOPTS[@]}" -jar .carry/nshap.jar model loss --model "$smoke" --check "$smoke/val_check.json" --backend cpu \
    || { echo "FAIL: nshap does not reproduce PyTorch's loss on the smoke model"; exit 1; }
  echo "smoke test passed after $(( $(date +%s) - start ))s"
fi

model="$(mktemp -d)/model"
echo "== training (budget ${TRAIN_MINUTES:-7} min)"
timeout "${TRAIN_TIMEOUT:-500}" "$PY" weights-converter/train/train.py --train .carry/tokens.bin --val .carry/tokens.val.bin \
  --out "$model" --max-minutes "${TRAIN_MINUTES:-7}" ${TRAIN_ARGS:-}
trc=$?
echo "train.py: exit $trc after $(( $(date +%s) - start ))s"
if [ "$trc" != 0 ] || [ ! -f "$model/model.safetensors" ]; then
  echo "FAIL: training did not produce a model"
  exit 1
fi

cp "$model/config.json" "$model/train_log.json" "$model/val_check.json" "$OUT/"
split -b 15M -d -a 2 "$model/model.safetensors" "$OUT/model.safetensors.part"
echo "model.safetensors bytes: $(stat -c %s "$model/model.safetensors")"
echo "model.safetensors sha256: $(sha256sum "$model/model.safetensors" | cut -d' ' -f1)"
ls -l "$OUT"

rc=0
for backend in cpu cuda; do
  echo "== nshap model loss --backend $backend"
  timeout 120 "$JAVA" "${JOPTS[@]}" -jar .carry/nshap.jar model loss --model "$model" --check "$model/val_check.json" --backend "$backend"
  brc=$?
  echo "loss check $backend: exit $brc"
  [ "$brc" = 0 ] || rc=2
done
echo "total: $(( $(date +%s) - start ))s"
[ "$rc" = 0 ] && echo "DONE: model trained and both backends reproduce PyTorch's loss" \
  || echo "DONE WITH A FAILED LOSS CHECK: see above (the model files are in \$OUT all the same)"
exit $rc
