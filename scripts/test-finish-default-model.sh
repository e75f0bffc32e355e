#!/usr/bin/env bash
# Exercises scripts/finish-default-model.sh end to end without a GPU: a random-init f16 model stands in for the
# trained one, an independent NumPy float64 forward (weights-converter/train/np_loss.py) stands in for PyTorch's
# val_check.json, and the result is installed into a temporary folder, never models/default.
# Needs: .carry/tokens.val.bin (scripts/prepare-training.sh) or it tokenizes a small sample; python3 with numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
files="$work/files"
mkdir -p "$files"
printf '{"n_layer": 4, "n_head": 4, "n_embd": 256, "n_positions": 128, "vocab_size": 50257}\n' > "$work/config.json"
./nshap model init --config "$work/config.json" --dtype f16 --seed 1 --out "$work/model" > /dev/null
val=.carry/tokens.val.bin
if [ ! -f "$val" ]; then
  ./nshap datasets tokenize --sources ethos,toxigen --val-fraction 0.5 --out "$work/tok.bin" > /dev/null
  val="$work/tok.val.bin"
fi
python3 weights-converter/train/np_loss.py --model "$work/model" --tokens "$val" --out "$files/val_check.json"
cp "$work/model/config.json" "$files/"
split -b 15M -d -a 2 "$work/model/model.safetensors" "$files/model.safetensors.part"
python3 - "$files/train_log.json" <<'PY'
import json, sys
cfg = {"n_layer": 4, "n_head": 4, "n_embd": 256, "n_positions": 128, "vocab_size": 50257,
       "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}
args = {"batch": 128, "ctx": 128, "lr": 2e-3, "min_lr": 1e-4, "warmup": 200, "weight_decay": 0.1, "dropout": 0.1,
        "seed": 1, "eval_every": 100}
json.dump({"config": cfg, "args": args, "parameters": 16058112, "train_tokens": 1, "val_tokens": 1, "eval_windows": 912,
           "curve": [{"step": 100, "minutes": 0.1, "train_loss": 9.0, "val_loss": 9.1}],
           "best_val_loss_bf16_autocast": 9.1, "best_step": 100, "stop_reason": "FAKE (test of the finish script)",
           "final_val_loss_fp32": 9.1, "final_train_loss_fp32": 9.0, "train_minutes": 0.1, "steps": 100,
           "tokens_seen": 1638400, "epochs": 0.5, "size_mib": 30.6, "torch": "none", "transformers": "none",
           "gpu": "none (fake)"}, open(sys.argv[1], "w"))
PY
{ echo "model.safetensors sha256: $(sha256sum "$work/model/model.safetensors" | cut -d' ' -f1)"; } > "$files/train.log"
ls -l "$files"
bash scripts/finish-default-model.sh "$files" "$work/installed"
for f in config.json model.safetensors MODEL_CARD.md val_check.json train_log.json loss-check-cpu.txt; do
  [ -f "$work/installed/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
grep -q "OK: nshap reproduces" "$work/installed/MODEL_CARD.md" || { echo "FAIL: the card has no passing loss check"; exit 1; }
cmp "$work/model/model.safetensors" "$work/installed/model.safetensors"
echo "PASS: finish-default-model.sh reassembled, checked, evaluated and wrote the card:"
sed -n '1,400p' "$work/installed/MODEL_CARD.md"
