#!/usr/bin/env bash
# Step 3 of 3 of training the default model. Runs HERE, after the GPU run, on the folder of files it returned:
# reassembles model.safetensors, checks size (<= 32 MiB) and checksum, checks with nshap's CPU backend that it
# reproduces PyTorch's validation losses, evaluates it on datasets/*.jsonl, writes MODEL_CARD.md, and only then
# installs it as models/default (which `nshap` uses when no --model is given).
# Usage: bash scripts/finish-default-model.sh FILES_DIR [TARGET_DIR (default: models/default)]
set -euo pipefail
cd "$(dirname "$0")/.."
in="${1:?usage: finish-default-model.sh FILES_DIR [TARGET_DIR]}"
target="${2:-models/default}"
LIMIT=$((32 * 1024 * 1024))
fail() { echo "finish-default-model: $*" >&2; exit 1; }

[ -d "$in" ] || fail "$in: no such folder"
for f in config.json train_log.json val_check.json; do [ -f "$in/$f" ] || fail "$in/$f missing"; done
ls "$in"/model.safetensors.part* > /dev/null 2>&1 || fail "$in: no model.safetensors.part* files"

tmp="$(dirname "$target")/.$(basename "$target").tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
cat $(ls "$in"/model.safetensors.part* | sort) > "$tmp/model.safetensors"
size=$(stat -c %s "$tmp/model.safetensors")
[ "$size" -le "$LIMIT" ] || fail "model.safetensors is $size bytes, over 32 MiB"
if [ -f "$in/train.log" ]; then
  want=$(sed -n 's/^model.safetensors sha256: \([0-9a-f]*\).*/\1/p' "$in/train.log" | tail -1)
  got=$(sha256sum "$tmp/model.safetensors" | cut -d' ' -f1)
  [ -z "$want" ] || [ "$want" = "$got" ] || fail "model.safetensors reassembled with sha256 $got, the GPU run wrote $want"
  cp "$in/train.log" "$tmp/train.log"
fi
cp "$in/config.json" "$in/train_log.json" "$in/val_check.json" "$tmp/"
[ -f .carry/tokens.json ] && cp .carry/tokens.json "$tmp/tokens.json"
[ -f "$in/tokens.json" ] && cp "$in/tokens.json" "$tmp/tokens.json"
echo "[finish] model.safetensors: $size bytes ($(awk "BEGIN{printf \"%.1f\", $size/1048576}") MiB)"

./nshap model inspect "$tmp" > "$tmp/inspect.txt" 2>&1 || { cat "$tmp/inspect.txt"; fail "nshap cannot read the model"; }

echo "[finish] nshap model loss --backend cpu"
if ! ./nshap model loss --model "$tmp" --check "$tmp/val_check.json" --backend cpu > "$tmp/loss-check-cpu.txt" 2>"$tmp/loss-check-cpu.err"; then
  cat "$tmp/loss-check-cpu.txt" "$tmp/loss-check-cpu.err"
  fail "nshap's CPU backend does not reproduce PyTorch's loss: not installing"
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

overlap_args=()
if [ -f .carry/tokens.bin ] && [ -f .carry/tokens.val.bin ] && [ ${#sets[@]} -gt 0 ] && python3 -c 'import numpy' 2>/dev/null; then
  pt="$(mktemp -d)"
  overlap_args=(--overlap .carry/tokens.bin .carry/tokens.val.bin)
  for s in "${sets[@]}"; do
    n="$(basename "$s" .jsonl)"
    ./nshap datasets tokenize --corpus "$s" --text-column prompt --val-fraction 0 --out "$pt/$n.bin" > /dev/null 2>&1 \
      && overlap_args+=("$n=$pt/$n.bin")
  done
fi

python3 scripts/model-card.py --model "$tmp" --train-log "$tmp/train_log.json" --val-check "$tmp/val_check.json" \
  --tokens "$tmp/tokens.json" --gpu-log "$tmp/train.log" --cpu-check "$tmp/loss-check-cpu.txt" \
  "${eval_args[@]}" "${overlap_args[@]}" --out "$tmp/MODEL_CARD.md"
rm -f "$tmp/loss-check-cpu.err" "$tmp/inspect.txt"

rm -rf "$target"
mv "$tmp" "$target"
trap - EXIT
echo "[finish] installed $target:"
ls -l "$target"
echo "[finish] review $target/MODEL_CARD.md, then: git add $target && git commit"
