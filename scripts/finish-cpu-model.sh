#!/usr/bin/env bash
# Installs the model of an `nshap train` run as models/default (or TARGET), with its checks and MODEL_CARD.md:
# size (<= 24 MiB f16), an independent NumPy float64 loss on validation windows that `nshap model loss --check`
# must reproduce, `nshap evaluate` on datasets/*.jsonl, the loss curve. Nothing is installed unless every check passes.
# Usage: bash scripts/finish-cpu-model.sh RUN_DIR TOKENS.bin [TARGET_DIR (default: models/default)]
#   RUN_DIR: the --out of `nshap train` (model/, train_log.json, loss.png); TOKENS.bin: its --tokens file
#   (TOKENS.val.bin and TOKENS.json beside it).   Env: NOTE="one more line for the card's training section".
#   VAL_WINDOWS=N: validation windows per evaluation during training, for logs that do not record it.
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:?usage: finish-cpu-model.sh RUN_DIR TOKENS.bin [TARGET_DIR]}"
tokens="${2:?usage: finish-cpu-model.sh RUN_DIR TOKENS.bin [TARGET_DIR]}"
target="${3:-models/default}"
LIMIT=$((24 * 1024 * 1024))
fail() { echo "finish-cpu-model: $*" >&2; exit 1; }

stem="${tokens%.bin}"
for f in "$run/model/config.json" "$run/model/model.safetensors" "$run/train_log.json" "$run/loss.png" "$stem.val.bin" "$stem.json"; do
  [ -f "$f" ] || fail "$f missing"
done
python3 -c 'import json,sys; sys.exit(0 if "final" in json.load(open(sys.argv[1])) else 1)' "$run/train_log.json" \
  || fail "$run/train_log.json has no final evaluation: the run has not ended (a checkpoint's model is not finished)"

tmp="$(dirname "$target")/.$(basename "$target").tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
cp "$run/model/config.json" "$run/model/model.safetensors" "$run/train_log.json" "$run/loss.png" "$tmp/"
cp "$stem.json" "$tmp/tokens.json"
size=$(stat -c %s "$tmp/model.safetensors")
[ "$size" -le "$LIMIT" ] || fail "model.safetensors is $size bytes, over 24 MiB"
echo "[finish] model.safetensors: $size bytes ($(awk "BEGIN{printf \"%.1f\", $size/1048576}") MiB)"

echo "[finish] NumPy float64 reference loss on 8 validation windows"
python3 weights-converter/train/np_loss.py --model "$tmp" --tokens "$stem.val.bin" --sequences 8 --out "$tmp/val_check.json"
echo "[finish] nshap model loss --check --backend cpu"
if ! ./nshap model loss --model "$tmp" --check "$tmp/val_check.json" --backend cpu > "$tmp/loss-check-cpu.txt" 2>"$tmp/loss-check-cpu.err"; then
  cat "$tmp/loss-check-cpu.txt" "$tmp/loss-check-cpu.err"
  fail "nshap's CPU backend does not reproduce the float64 reference loss: not installing"
fi
cat "$tmp/loss-check-cpu.txt"

eval_args=()
shopt -s nullglob
sets=(datasets/*.jsonl)
if [ ${#sets[@]} -gt 0 ]; then
  echo "[finish] nshap evaluate on ${sets[*]}"
  ./nshap evaluate --model "$tmp" --backend cpu --datasets "$(IFS=,; echo "${sets[*]}")" --metric accuracy,loss --out "$tmp/evaluation.json"
  eval_args=(--evaluation "$tmp/evaluation.json")
fi
vw=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("val_windows_during_training", ""))' "$run/train_log.json")
vw="${vw:-${VAL_WINDOWS:-}}"   # logs of older builds lack the count: VAL_WINDOWS=N gives it
python3 scripts/model-card.py --model "$tmp" --train-log "$tmp/train_log.json" --val-check "$tmp/val_check.json" \
  --tokens "$tmp/tokens.json" --cpu-check "$tmp/loss-check-cpu.txt" "${eval_args[@]}" \
  ${NOTE:+--note "$NOTE"} ${vw:+--val-windows "$vw"} --out "$tmp/MODEL_CARD.md"
rm -f "$tmp/loss-check-cpu.err"
# The checks ran on the temporary folder: name the installed one in what they wrote.
sed -i "s|$tmp|$target|g" "$tmp/evaluation.json" "$tmp/loss-check-cpu.txt"

rm -rf "$target"
mv "$tmp" "$target"
trap - EXIT
echo "[finish] installed $target:"
ls -l "$target"
